"""A review of pix2pix-folder and cyclegan-folder on a user's own folders: the sample strips of a
few held-out pairs, and a paired folder missing one side."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import apply_overrides, from_dict
from ganforge.data import pairs
from ganforge.errors import DataError
from ganforge.objectives.pix2pix import preview_inputs


def test_a_grid_shows_each_held_out_pair_once():
    """8 held-out pairs had filled a grid of 16 as two identical halves."""
    three = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 4, 4)
    a, b = preview_inputs({"preview_a": three, "preview_b": three}, 16)
    assert len(a) == len(b) == 3 and len(set(a[:, 0, 0, 0].tolist())) == 3
    # unpaired: as many as the larger side, the smaller one cycling
    a, b = preview_inputs({"preview_a": three[:2], "preview_b": three}, 16)
    assert len(a) == len(b) == 3
    assert len(preview_inputs({"preview_a": three, "preview_b": three}, 2)[0]) == 2


def _save(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(path)


def _cfg(root):
    raw = {"objective": "pix2pix", "data": {"name": f"folder:{root}", "resolution": 16, "channels": 3},
           "translate": {"task": "paired"}}
    return from_dict(apply_overrides(raw, []))


@pytest.mark.parametrize("sides, message", [
    (("A",), r"has A/ but no B/: a paired folder needs both, partners named alike \(A/001.png with B/001.jpg\)"),
    (("B",), r"has B/ but no A/: a paired folder needs both"),
    (("a", "b"), r"has a/ and b/: a paired folder's sides are named A/ and B/, in capitals; rename them"),
])
def test_a_paired_folder_missing_a_side_is_told_which(tmp_path, sides, message, recwarn):
    """With only A/, the user had been told that A/ 'is not read ... move them up' (a warning
    for side-by-side AB images), then that the folder held neither layout."""
    for side in sides:
        _save(tmp_path / "d" / side / "000.png")
    with pytest.raises(DataError, match=message):
        pairs.load_pairs(_cfg(tmp_path / "d"))
    assert not [w for w in recwarn if "not read" in str(w.message)]


def test_empty_sides_are_said_to_hold_no_images(tmp_path):
    (tmp_path / "d" / "A").mkdir(parents=True)
    (tmp_path / "d" / "B").mkdir()
    _save(tmp_path / "d" / "A" / "000.png")
    with pytest.raises(DataError, match=r"d/B holds no images \(.*\.png"):
        pairs.load_pairs(_cfg(tmp_path / "d"))
    (tmp_path / "d" / "A" / "000.png").unlink()
    with pytest.raises(DataError, match=r"d/A and .*d/B hold no images"):
        pairs.load_pairs(_cfg(tmp_path / "d"))


def test_pairs_of_different_shapes_and_images_beside_a_and_b_are_warned_of(tmp_path):
    root = tmp_path / "d"
    for i in range(4):
        _save(root / "A" / f"{i}.png")
        _save(root / "B" / f"{i}.png")
    Image.fromarray(np.zeros((40, 64, 3), dtype=np.uint8)).save(root / "B" / "3.png")  # 64x40 against 16x16
    _save(root / "ab.png")
    with pytest.warns(UserWarning) as record:
        data = pairs.load_pairs(_cfg(root))
    said = [str(w.message) for w in record]
    assert any("1 pair in" in m and "A/3.png 16x16, B/3.png 64x40" in m for m in said), said
    assert any("1 image in" in m and "(ab.png) is not read: with A/ and B/ there" in m for m in said), said
    assert len(data) == 3  # every 10th held out: 1 of 4
