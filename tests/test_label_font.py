"""Class names in labelled grids are drawn with a font that has their characters."""
import numpy as np
import torch

from ganforge.labels import labeled_grid


def _label(name: str) -> np.ndarray:
    """The label margin of a one-row grid of class ``name`` (images all black)."""
    grid = np.asarray(labeled_grid(-torch.ones(1, 3, 16, 16), torch.tensor([0]), [name], 1))
    return grid[:, : grid.shape[1] - 20]


def test_accented_names_are_drawn_and_missing_glyphs_are_a_question_mark():
    assert not np.array_equal(_label("å"), _label("a"))
    assert not np.array_equal(_label("å"), _label("?"))  # PIL's built-in font drew a box for it
    assert np.array_equal(_label("猫"), _label("?"))  # no font here has it: a '?', not a box
