"""The offline photographs (scikit-image's sample images) and the patch cutter."""
import numpy as np
import pytest

from ganforge.data import photos
from ganforge.errors import DataError


def test_cut_patches_grid_and_layout():
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = photos.cut_patches([img], size=3, stride=2)
    # tops 0, 2 and lefts 0, 2, 4 -> 6 patches, CHW
    assert out.shape == (6, 3, 3, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[4], img[2:5, 2:5].transpose(2, 0, 1))
    with pytest.raises(DataError, match="lower the patch size"):
        photos.cut_patches([img], size=8)


def test_missing_scikit_image_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install scikit-image"):
        photos.load_photos("train")


def test_unknown_split():
    with pytest.raises(DataError, match="train, test, all"):
        photos.photo_paths("valid")


def test_splits_are_disjoint_colour_photographs():
    pytest.importorskip("skimage")
    assert not set(photos.TRAIN_PHOTOS) & set(photos.TEST_PHOTOS)
    for split in ("train", "test"):
        imgs = photos.load_photos(split)
        assert len(imgs) == len(photos.SPLITS[split])
        for img in imgs:
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            assert min(img.shape[:2]) >= 300
            # colour: the channels differ somewhere
            assert np.abs(img[..., 0].astype(int) - img[..., 2]).mean() > 1
