"""Running conversion and prediction at scale: the worker pool, the local engine, the Ray engine."""
