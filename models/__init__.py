"""The bundled models and the model card that declares them all: the main and photo networks, the garment
reader, the person detectors and the scope judge (each with its source and licence: NOTICE.md)."""
