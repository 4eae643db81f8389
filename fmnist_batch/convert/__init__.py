"""Photo -> the 28x28 image the model sees: decoding, the dataset's own steps, segmentation."""
