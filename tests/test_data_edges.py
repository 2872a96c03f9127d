"""Edge cases of image folders: aliased class folders, broken links, what `data fetch` counts,
the memory threshold for streaming, and unreadable files in translation folders."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganforge.objectives  # noqa: F401  (registers the families' config sections)
from ganforge.config import from_dict
from ganforge.data import ImageDataset, StreamingFolderDataset, base, fetch, load_dataset, pairs
from ganforge.errors import DataError


def save(path: Path, size=(20, 20), color=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), color, dtype=np.uint8)).save(path)


def truncated(path: Path):
    """A PNG whose header reads but whose body does not: fails only when decoded."""
    save(path, size=(64, 64))
    path.write_bytes(path.read_bytes()[:60])


# ----------------------------------------------------------------------------- class aliases


def test_class_folder_linked_to_another_class_is_named(tmp_path):
    save(tmp_path / "cat" / "a.png")
    save(tmp_path / "dog" / "b.png")
    os.symlink("cat", tmp_path / "kitty")
    with pytest.raises(DataError, match=r"class folder 'kitty' \(a link to cat\) .* is the same folder as "
                                        r"class folder 'cat'.*remove the link") as info:
        load_dataset(f"folder:{tmp_path}")
    assert "no readable images" not in str(info.value) and "\n" not in str(info.value)


def test_class_folder_linked_into_another_class_is_named(tmp_path):
    save(tmp_path / "cat" / "a.png")
    save(tmp_path / "cat" / "persian" / "b.png")
    os.symlink(os.path.join("cat", "persian"), tmp_path / "persian")
    with pytest.raises(DataError, match=r"class folder 'persian' .* lies inside class folder 'cat'"):
        load_dataset(f"folder:{tmp_path}")


def test_class_folder_linked_to_the_folder_itself_is_named(tmp_path):
    save(tmp_path / "cat" / "a.png")
    os.symlink(".", tmp_path / "all")
    with pytest.raises(DataError, match=r"class folder 'all' \(a link to \.\) .* points at the folder itself"):
        load_dataset(f"folder:{tmp_path}")


def test_class_folder_linked_from_elsewhere_is_a_class(tmp_path):
    root = tmp_path / "pets"
    save(root / "cat" / "a.png")
    save(tmp_path / "elsewhere" / "b.png")
    os.symlink(tmp_path / "elsewhere", root / "dog")
    ds = load_dataset(f"folder:{root}")
    assert ds.class_names == ["cat", "dog"] and ds.labels.tolist() == [0, 1]


# ----------------------------------------------------------------------------- broken links


def test_broken_link_is_listed_among_skipped_files(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "b.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "dead.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unusable image file in .*: dead.png \(broken link to "
                                         r".*gone.png\)") as record:
        ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds) == 2 and len(record) == 1


def test_folder_of_only_broken_links_says_none_readable(tmp_path):
    os.symlink(tmp_path / "gone.png", tmp_path / "dead.png")
    with pytest.raises(DataError, match=r"1 image file, none readable \(e.g. dead.png \(broken link"):
        load_dataset(f"folder:{tmp_path}")


# ----------------------------------------------------------------------------- data fetch


def test_fetch_counts_what_training_uses(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "b.png")
    save(tmp_path / "tiny.png", size=(2, 2))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    truncated(tmp_path / "trunc.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        used = len(load_dataset(f"folder:{tmp_path}"))
    message = fetch(f"folder:{tmp_path}")
    assert used == 2
    assert message == (f"folder:{tmp_path}: 2 images at {tmp_path.resolve()}; skipped 3 unusable image "
                       f"files: bad.png (cannot identify image file), tiny.png (2x2 pixels, under 8x8), "
                       f"trunc.png (image file is truncated)")


def test_fetch_refuses_a_class_that_training_would_find_empty(tmp_path):
    save(tmp_path / "a" / "x.png")
    truncated(tmp_path / "b" / "t.png")
    with pytest.raises(DataError, match="class folder 'b' .* has no readable images"):
        fetch(f"folder:{tmp_path}")


# ----------------------------------------------------------------------------- streaming threshold


def test_streaming_threshold_follows_available_memory(tmp_path, monkeypatch):
    for i in range(4):
        save(tmp_path / f"{i}.png")  # 4 x 3 x 20 x 20 = 4800 bytes decoded
    monkeypatch.setattr(base, "available_memory", lambda: 8000)  # half: 4000 < 4800
    assert isinstance(load_dataset(f"folder:{tmp_path}"), StreamingFolderDataset)
    monkeypatch.setattr(base, "available_memory", lambda: 20000)
    assert isinstance(load_dataset(f"folder:{tmp_path}"), ImageDataset)
    monkeypatch.setattr(base, "available_memory", lambda: 8000)  # an explicit setting stands
    assert isinstance(load_dataset(f"folder:{tmp_path}", max_memory_bytes=10**6), ImageDataset)


def test_default_threshold_is_capped_at_4_gib(monkeypatch):
    monkeypatch.setattr(base, "available_memory", lambda: 64 * 2**30)
    assert base.default_max_memory_bytes() == 4 * 2**30
    monkeypatch.setattr(base, "available_memory", lambda: 2 * 2**30)
    assert base.default_max_memory_bytes() == 2**30
    monkeypatch.setattr(base, "available_memory", lambda: None)  # unknown: the fixed cap
    assert base.default_max_memory_bytes() == 4 * 2**30


# ----------------------------------------------------------------------------- translation folders


def cfg_for(root: Path, task: str, **translate):
    return from_dict({"objective": "pix2pix",
                      "data": {"name": f"folder:{root}", "resolution": 16, "channels": 3},
                      "train": {"batch_size": 2, "device": "cpu"},
                      "translate": {"task": task, "holdout": 0.5, **translate}})


def test_paired_folder_skips_a_pair_with_an_unreadable_file(tmp_path):
    for i in range(6):
        save(tmp_path / "A" / f"{i}.png", color=(i * 40, 0, 0))
        save(tmp_path / "B" / f"{i}.png", color=(0, i * 40, 0))
    (tmp_path / "A" / "2.png").write_bytes(b"junk")
    (tmp_path / "B" / "4.png").unlink()
    os.symlink(tmp_path / "gone.png", tmp_path / "B" / "4.png")
    with pytest.warns(UserWarning, match=r"skipped 2 pairs with an unreadable file in .*: A/2.png \(cannot "
                                         r"identify image file\), B/4.png \(broken link to .*gone.png\)"):
        data = pairs.load_pairs(cfg_for(tmp_path, "paired"))
    reds = sorted(data.a[:, 0, 0, 0].tolist() + data.test_a[:, 0, 0, 0].tolist())
    greens = sorted(data.b[:, 1, 0, 0].tolist() + data.test_b[:, 1, 0, 0].tolist())
    assert reds == [0, 40, 120, 200] and greens == reds  # pairs 0, 1, 3, 5, still matched


def test_paired_folder_with_no_readable_pair_is_refused(tmp_path):
    for i in range(2):
        save(tmp_path / "A" / f"{i}.png")
        (tmp_path / "B").mkdir(exist_ok=True)
        (tmp_path / "B" / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no pair in .* has both files readable \(e.g. B/0.png"):
        pairs.load_pairs(cfg_for(tmp_path, "paired"))


def test_side_by_side_folder_skips_unreadable_images(tmp_path):
    for i in range(4):
        Image.new("RGB", (32, 16), (200, 10, 10)).save(tmp_path / f"{i}.png")
    (tmp_path / "1.png").write_bytes(b"junk")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable AB image in .*: 1.png \(cannot identify"):
        data = pairs.load_pairs(cfg_for(tmp_path, "paired"))
    assert len(data.a) + len(data.test_a) == 3


def test_unpaired_folder_skips_unreadable_files(tmp_path):
    for i in range(6):
        save(tmp_path / "trainA" / f"{i}.png")
        save(tmp_path / "trainB" / f"{i}.png")
    (tmp_path / "trainB" / "3.png").write_bytes(b"junk")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file in .*: trainB/3.png \(cannot "
                                         r"identify image file\)"):
        data = pairs.load_pairs(cfg_for(tmp_path, "unpaired"))
    assert (len(data.a), len(data.test_a)) == (3, 3) and (len(data.b), len(data.test_b)) == (3, 2)
    for i in range(6):
        (tmp_path / "trainB" / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no image in .*trainB is readable"):
        pairs.load_pairs(cfg_for(tmp_path, "unpaired"))
