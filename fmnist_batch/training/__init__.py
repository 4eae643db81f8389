"""Training and its evidence: the dataset, retrain, labelled photos, the photo model, figures, metrics."""
