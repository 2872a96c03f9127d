"""Training on one's own folder says what it cannot see from the command: images mostly smaller
than data.resolution are enlarged to it (the samples learn the blur), and grayscale images read
with data.channels=3 train three equal channels. Both had been silent."""
import warnings

import numpy as np
import pytest
from PIL import Image

from ganforge.data import load_dataset


def _folder(path, sizes, mode="RGB"):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path / f"{i}.png")
    return path


def _said(name, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_dataset(name, **kwargs)
    return [str(w.message) for w in caught]


def test_a_folder_of_mostly_small_images_is_said_to_be_enlarged(tmp_path):
    folder = _folder(tmp_path / "small", [(24, 30)] * 3 + [(20, 40), (64, 64)])
    said = _said(f"folder:{folder}", resolution=32, channels=3)
    assert said == [f"4 of 5 images in {folder} are smaller than data.resolution=32 (short sides 20 to 64 pixels, "
                    f"median 24) and are enlarged to it, so the samples learn their blur; set a data.resolution "
                    f"of at most 24, or use larger images"]
    assert _said(f"folder:{folder}", resolution=24, channels=3) == []  # small enough: nothing to say
    big = _folder(tmp_path / "big", [(16, 16), (16, 16), (40, 40), (48, 48), (64, 64)])
    assert _said(f"folder:{big}", resolution=32, channels=3) == []  # a minority enlarged


@pytest.mark.parametrize("channels, said", [
    (3, "holds grayscale images only; data.channels=3 trains on three equal channels of each; set data.channels=1"),
    (1, None),
    (None, None),  # the default follows the images: 1 channel
])
def test_grayscale_images_read_with_three_channels_are_said(tmp_path, channels, said):
    folder = _folder(tmp_path / "gray", [(16, 16)] * 3, mode="L")
    got = _said(f"folder:{folder}", resolution=16, channels=channels)
    assert got == ([f"{folder} {said}"] if said else []), got
