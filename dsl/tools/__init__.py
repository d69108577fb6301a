"""Tools over policy sets: policy tests, coverage, diff, replay, history readers, the formatter."""
