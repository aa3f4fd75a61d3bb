"""routeq's benchmark suite: ``python bench/run.py`` (see run.py). Not tests: nothing is asserted."""
