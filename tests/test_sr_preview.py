"""A super-resolution run's sample strips show different images where the folder has them: the
crop side had been the largest image's, which one 128x128 photo among 128x85 ones alone could
give, so every tile showed the same crop of it."""
import torch

from ganforge.data.superres import HRImages


def _image(h, w, value):
    return torch.full((3, h, w), value, dtype=torch.uint8)


def test_the_preview_side_lets_n_different_images_fill_the_tiles():
    images = [_image(128, 128, 0), _image(85, 128, 1), _image(128, 85, 2), _image(85, 128, 3)]
    data = HRImages(images=images, name="folder:x")
    side = data.preview_side(4)
    assert side == 85
    tiles = data.preview(4, side)
    assert tiles.shape == (4, 3, 85, 85)
    assert sorted(int(t[0, 0, 0]) for t in tiles) == [0, 1, 2, 3]  # one tile of each image
    assert data.preview_side(1) == 128  # one tile: the largest crop
    assert data.preview_side(8) == 85  # more tiles than images: every image, the smallest side
