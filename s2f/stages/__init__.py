"""Thin entry points, one per DVC stage: parse paths, read the stage's own params section, call one library function."""
