"""The bundled model: model.tflite, model.keras and the model card describing both."""
