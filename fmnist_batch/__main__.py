from fmnist_batch.cli import entry_point

entry_point()
