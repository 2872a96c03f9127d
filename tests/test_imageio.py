"""Images read as a viewer shows them, by every reader: EXIF orientation applied, 16-bit samples
scaled (not clipped to white), transparency on white (not on whatever lies under the alpha),
TIFF and GIF read; symlinked subfolders followed; a streamed file that no longer decodes is
replaced by the next one, not a crash; dropped SR images and unpaired files are named."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import imageio
from ganforge.data import load_dataset
from ganforge.errors import GanforgeWarning


def _phone_photo(path):
    """Red top half, blue bottom half as seen; stored rotated with EXIF Orientation 6, as a
    phone saves a portrait photo."""
    upright = np.zeros((48, 32, 3), np.uint8)
    upright[:24, :, 0] = 255
    upright[24:, :, 2] = 255
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    stored.save(path, format="JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_16_bit_and_transparency(tmp_path):
    _phone_photo(tmp_path / "phone.jpg")
    arr = imageio.read_array(tmp_path / "phone.jpg", "RGB")
    assert arr.shape == (48, 32, 3)  # upright: taller than wide
    assert arr[:20, :, 0].mean() > 200 and arr[28:, :, 2].mean() > 200  # red above blue

    gradient = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(gradient).save(tmp_path / "scan16.png")
    with Image.open(tmp_path / "scan16.png") as img:
        assert img.mode.startswith("I")  # 16-bit samples
    scan = imageio.read_array(tmp_path / "scan16.png", "L")[..., 0]
    assert scan.min() == 0 and scan.max() == 255 and 100 < scan.mean() < 155  # a gradient, not white

    sprite = np.zeros((16, 16, 4), np.uint8)
    sprite[..., 1] = 255  # green hidden under alpha 0
    sprite[4:12, 4:12] = [200, 0, 0, 255]
    Image.fromarray(sprite, "RGBA").save(tmp_path / "sprite.png")
    out = imageio.read_array(tmp_path / "sprite.png", "RGB")
    assert out[0, 0].tolist() == list(imageio.BACKGROUND) and out[8, 8].tolist() == [200, 0, 0]

    Image.fromarray(sprite[..., :3]).save(tmp_path / "frame.gif")
    Image.fromarray(sprite[..., :3]).save(tmp_path / "page.tif")
    assert imageio.read_array(tmp_path / "page.tif", "RGB").shape == (16, 16, 3)
    assert imageio.read_array(tmp_path / "frame.gif", "RGB").shape == (16, 16, 3)

    # the training folder sees the same: the photo upright, the scan as a gradient
    ds = load_dataset(f"folder:{tmp_path}", resolution=16, channels=3)
    assert len(ds) == 5  # jpg, png x2, gif, tif
    files = sorted(p.name for p in tmp_path.iterdir())
    photo = ds.images[files.index("phone.jpg")]
    assert photo[0, :4].float().mean() > 200 and photo[2, -4:].float().mean() > 200


def test_server_upload_is_read_upright():
    from ganforge.serve.server import Settings, decode_upload

    buf = io.BytesIO()
    _phone_photo(buf)
    arr = decode_upload(buf.getvalue(), Settings(), "RGB")
    assert arr.shape == (48, 32, 3) and arr[:20, :, 0].mean() > 200


def test_symlinked_subfolders_are_followed_once(tmp_path):
    root, extra = tmp_path / "data", tmp_path / "extra"
    root.mkdir()
    extra.mkdir()
    for i in range(2):
        Image.new("RGB", (12, 12), (i, 0, 0)).save(root / f"{i}.png")
    for i in range(3):
        Image.new("RGB", (12, 12), (0, i, 0)).save(extra / f"{i}.png")
    os.symlink(extra, root / "more")
    os.symlink(root, extra / "loop")  # a link back up the tree: read once, no endless walk
    assert len(load_dataset(f"folder:{root}", resolution=8)) == 2 + 3 + 0  # was 2


def test_a_streamed_file_that_stops_decoding_is_replaced_with_a_warning(tmp_path):
    for i in range(4):
        Image.new("RGB", (12, 12), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}", resolution=8, max_memory_bytes=1)  # streamed
    (tmp_path / "1.png").write_bytes((tmp_path / "1.png").read_bytes()[:40])  # damaged after the scan
    data = ds.torch_dataset()
    with pytest.warns(UserWarning, match="cannot decode .*1.png .*the next file takes its place") as caught:
        image, _ = data[1]
    # a GanforgeWarning, so the CLI prints it as a one-line warning (it had been a UserWarning that
    # named torch's DataLoader, and Python's two-line format followed, 175 lines for one batch)
    assert caught[0].category is GanforgeWarning and not caught[0].filename.endswith("folder.py")
    assert torch.equal(image, data[2][0])  # file 2 in its place: deterministic


def test_dropped_sr_images_and_unpaired_files_are_named(tmp_path):
    from ganforge import api  # noqa: F401  (registers the families' config sections)
    from ganforge.config import load_config
    from ganforge.data.pairs import _paired_folder
    from ganforge.data.superres import load_hr

    hr = tmp_path / "hr"
    hr.mkdir()
    Image.new("RGB", (80, 64), (9, 9, 9)).save(hr / "big.png")
    Image.new("RGB", (24, 24), (9, 9, 9)).save(hr / "small.png")
    _, cfg = load_config("srresnet-x4", [f"data.name=folder:{hr}", "sr.crop=32"])
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 images .*smaller than sr.crop=32 .*small.png"):
        assert len(load_hr(cfg).images) == 1

    pairs = tmp_path / "pairs"
    for side in ("A", "B"):
        (pairs / side).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20)).save(pairs / side / f"{i}.png")
    Image.new("RGB", (20, 20)).save(pairs / "A" / "only_a.png")
    _, cfg = load_config("pix2pix-denoise", [f"data.name=folder:{pairs}", "data.resolution=16",
                                             "translate.load_size=16"])
    with pytest.warns(UserWarning, match=r"1 file in .* has no partner .*A/only_a.png"):
        _paired_folder(cfg, pairs)



def test_a_stray_image_that_makes_a_class_folder_unlabelled_is_named(tmp_path):
    from ganforge import api
    from ganforge.config import load_config
    from ganforge.errors import ConfigError

    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.new("RGB", (12, 12), (60 * i, 0, 0)).save(tmp_path / c / f"{i}.png")
    Image.new("RGB", (12, 12)).save(tmp_path / "preview.png")
    _, cfg = load_config("cgan-fashion-mnist", [f"data.name=folder:{tmp_path}", "data.resolution=8"])
    with pytest.raises(ConfigError, match=r"an image beside the class subfolders \(e.g. preview.png\) makes it "
                                          r"one unlabelled set; move it into a subfolder"):
        api.build(cfg)


def test_a_malformed_exif_block_keeps_the_photo_unturned(tmp_path):
    """Pillow cannot rewrite an EXIF block with a mistyped tag (PageNumber as text); turning the
    photo raised struct.error: a crash in translate, a 500 from the server, a photo dropped from
    training. It is now read as stored."""
    import struct

    def entry(tag, kind, count, value):
        return struct.pack(">HHI", tag, kind, count) + value

    # Orientation 6 (a SHORT), and PageNumber (two SHORTs by the spec) stored as ASCII
    entries = [entry(0x0112, 3, 1, struct.pack(">HH", 6, 0)), entry(0x0129, 2, 3, b"hi\x00\x00")]
    ifd = struct.pack(">H", len(entries)) + b"".join(entries) + struct.pack(">I", 0)
    exif = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    Image.new("RGB", (20, 10), (200, 0, 0)).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    assert imageio.read_array(tmp_path / "photo.jpg", "RGB").shape in ((10, 20, 3), (20, 10, 3))
    assert len(load_dataset(f"folder:{tmp_path}", resolution=8)) == 1


def test_a_link_up_the_tree_is_not_followed(tmp_path):
    data, other = tmp_path / "proj" / "data", tmp_path / "proj" / "other"
    for folder, n in ((data, 2), (other, 5)):
        folder.mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (12, 12)).save(folder / f"{i}.png")
    os.symlink("..", data / "up")  # would pull in proj/other and everything else under proj
    assert len(load_dataset(f"folder:{data}", resolution=8)) == 2


def test_a_class_error_names_the_folder_not_the_classes_json_name(tmp_path):
    import json

    from ganforge.errors import DataError

    for d in ("0_T-shirt-top", "1_Bag"):
        (tmp_path / d).mkdir()
        Image.new("RGB", (12, 12)).save(tmp_path / d / "a.png")
    (tmp_path / "classes.json").write_text(json.dumps({"folders": ["0_T-shirt-top", "1_Bag"],
                                                       "class_names": ["T-shirt/top", "Bag"]}))
    assert load_dataset(f"folder:{tmp_path}", resolution=8).class_names == ["T-shirt/top", "Bag"]
    data = (tmp_path / "0_T-shirt-top" / "a.png").read_bytes()
    (tmp_path / "0_T-shirt-top" / "a.png").write_bytes(data[:40])  # header fine, body not
    with pytest.raises(DataError, match="class folder '0_T-shirt-top'"):
        load_dataset(f"folder:{tmp_path}", resolution=8)


def test_a_streamed_folder_that_fails_on_its_first_batch_is_one_line_and_leaves_nothing(tmp_path):
    """Raised in a DataLoader worker, the DataError had come back wrapped in the worker's
    traceback; and the run directory (config and the step-0 checkpoint) had blocked the retry."""
    from conftest import tiny_config
    from ganforge import api
    from ganforge.errors import DataError

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(40):
        Image.new("RGB", (12, 12), (4 * i, 0, 0)).save(root / f"{i:02d}.png")
    ds = load_dataset(f"folder:{root}", resolution=16, max_memory_bytes=1)  # streamed
    for p in root.glob("*.png"):
        p.write_bytes(p.read_bytes()[:40])  # damaged after the scan
    cfg = tiny_config(**{"data.num_workers": 1, "train.steps": 2, "train.batch_size": 4})
    with pytest.raises(DataError) as err:  # (its warnings are the worker process's)
        api.train(cfg, tmp_path / "run", progress=False, dataset=ds)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith("cannot decode ") and "files after it" in message
    assert not (tmp_path / "run").exists()


def test_a_colour_folder_read_as_grey_says_so_and_a_split_typo_is_refused(tmp_path):
    """A YAML that did not set data.channels took Fashion-MNIST's 1 and trained a colour folder in
    grey without a word; data.split=bogus was recorded and trained on."""
    from ganforge.errors import DataError

    for i in range(3):
        Image.new("RGB", (12, 12), (200, 40 * i, 0)).save(tmp_path / f"{i}.png")
    with pytest.warns(UserWarning, match="holds colour images; they are read as grayscale .* set data.channels=3"):
        assert load_dataset(f"folder:{tmp_path}", resolution=8, channels=1).images.shape[1] == 1
    with pytest.raises(DataError, match="data.split=bogus: a folder has one split"):
        load_dataset(f"folder:{tmp_path}", split="bogus", resolution=8, channels=3)
