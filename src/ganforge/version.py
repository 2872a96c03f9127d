"""ganforge's version, in a module of its own: the modules that record it (checkpoints, images'
provenance, reports, evaluation records) import it from here, not from the package, whose lazy
attributes import the training code (an import circle in the structure otherwise)."""
__version__ = "0.1.0"  # as pyproject.toml's
