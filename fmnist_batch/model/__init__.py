"""The model card and the runtime that runs a model (LiteRT, Keras as a fallback)."""
