"""``ganforge augment`` review: --force deletes only a folder augment wrote (a user's dataset with
a classes.json of its own had been deleted), a huge --per-class is refused before its labels are
built, progress while sampling (the same images as one run.sample call), and SIGTERM leaves as
Ctrl-C does (the partial folder removed, the old one kept)."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, random_dataset, tiny_config

from ganforge import api, cli, synthetic
from ganforge.errors import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ds = random_dataset(n=48, labels=True)
    ds.labels = torch.arange(48) % 3
    ds.class_names = ["cat", "dog", "bird"]
    run_dir = tmp_path_factory.mktemp("augrev") / "run"
    api.train(tiny_config(objective="conditional"), run_dir, progress=False, dataset=ds)
    return api.load(run_dir)


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_force_refuses_a_users_dataset_that_has_a_classes_json_of_its_own(run, tmp_path, capsys):
    mine = tmp_path / "mydata"
    for name in ("cat", "dog"):
        (mine / name).mkdir(parents=True)
        (mine / name / "x.png").write_bytes(b"my photo")
    (mine / "classes.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    before = files(mine)
    handler = signal.getsignal(signal.SIGTERM)
    assert cli.main(["augment", str(run.run_dir), "--per-class", "2", "--out", str(mine), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force refused" in err and "not a dataset written by ganforge augment" in err
    assert "nothing was deleted" in err and files(mine) == before
    assert signal.getsignal(signal.SIGTERM) is handler  # augment's SIGTERM handler is gone after it


def test_force_refuses_an_export_with_anything_of_the_users_added(run, tmp_path):
    out = tmp_path / "syn"
    synthetic.export(run, out, per_class=1)
    (out / "notes.txt").write_text("mine")  # beside the class folders
    with pytest.raises(ConfigError, match="notes.txt is not one of the class folders"):
        synthetic.export(run, out, per_class=1, force=True)
    (out / "notes.txt").unlink()
    real = out / "1_dog" / "photo.jpg"  # real images mixed into a class folder
    real.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="1_dog/photo.jpg is not an image augment wrote"):
        synthetic.export(run, out, per_class=1, force=True)
    real.unlink()
    # a name of augment's pattern that it did not write: 1_dog holds images 1 of per_class=1
    for name in ("1_000099.png", "0_000001.png", "1_000000.png", "01_000001.png"):
        (out / "1_dog" / name).write_bytes(b"mine")
        with pytest.raises(ConfigError, match=f"1_dog/{name} is not an image augment wrote"):
            synthetic.export(run, out, per_class=1, force=True)
        (out / "1_dog" / name).unlink()
    synthetic.export(run, out, per_class=2, force=True)  # augment's own folder is still replaced
    assert json.loads((out / "classes.json").read_text())["per_class"] == 2
    assert sum(len(list(d.iterdir())) for d in out.iterdir() if d.is_dir()) == 6


def test_a_huge_per_class_is_refused_before_its_labels_are_built(run, tmp_path, monkeypatch):
    import ganforge.config

    def never(*args):
        raise AssertionError("built the labels of a count that does not fit")

    monkeypatch.setattr(ganforge.config, "available_memory", lambda: 2**30)
    monkeypatch.setattr(synthetic, "balanced_labels", never)
    with pytest.raises(ConfigError, match=r"--per-class 1000000000 \(3000000000 images\) needs about") as info:
        synthetic.export(run, tmp_path / "syn", per_class=10**9)
    assert "\n" not in str(info.value) and not (tmp_path / "syn").exists()


def test_progress_comes_while_sampling_and_the_images_are_one_sample_calls(run, tmp_path, monkeypatch):
    calls, lines = [], []
    sample = run.objective.sample
    monkeypatch.setattr(run.objective, "sample", lambda *a, **k: calls.append(1) or sample(*a, **k))
    out = tmp_path / "syn.npz"
    synthetic.export(run, out, per_class=334, fmt="npz", seed=7, log=lambda m: lines.append((len(calls), m)))
    assert (1, "  sampled 500/1002 images") in lines  # said after the first batch of 500, not at the end
    labels = synthetic.balanced_labels(334, 3)
    want = api.to_uint8_hwc(run.sample(1002, seed=7, labels=labels))  # one call, batches of 500
    with np.load(out) as d:
        assert np.array_equal(d["images"], want)
    done = []
    small = run.sample(30, seed=3, ema=False, labels=labels[:30], batch_size=4, on_batch=done.append)
    assert done == [4, 8, 12, 16, 20, 24, 28, 30]
    assert torch.equal(small, run.sample(30, seed=3, ema=False, labels=labels[:30], batch_size=4))


def test_force_over_an_old_folder_says_it_removes_it(run, tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "PROGRESS_MIN", 3)
    out, lines = tmp_path / "syn", []
    synthetic.export(run, out, per_class=1, log=lines.append)
    assert not any("removing the old" in m for m in lines)  # nothing to remove
    synthetic.export(run, out, per_class=1, force=True, log=lines.append)
    assert lines[-1] == f"  removing the old {out} ..."


def test_sigterm_while_writing_removes_the_partial_folder_and_keeps_the_old_one(run, tmp_path):
    out = tmp_path / "syn"
    synthetic.export(run, out, per_class=1)
    old = files(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "augment", str(run.run_dir), "--per-class",
                             "1000", "--out", str(out), "--force"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if "wrote" in line:  # the partial folder is there now
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == "ganforge: interrupted (SIGTERM)"
    assert files(out) == old and sorted(p.name for p in tmp_path.iterdir()) == ["syn"]
