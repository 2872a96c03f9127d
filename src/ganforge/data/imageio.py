"""``ganforge.imageio`` under its earlier name, for code and model cards that import it from here.
It moved out of the ``data`` package so that commands which only read image files (``ganforge
provenance``) do not import the datasets and torch with it."""
from ..imageio import BACKGROUND, EXTENSIONS, normalize, read, read_array, too_large, upright  # noqa: F401
