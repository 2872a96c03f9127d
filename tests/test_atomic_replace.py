"""Replacing an output folder (augment --force, export --format folder --force) survives a kill at
any moment: the old or the new folder is whole at --out, or the old one waits aside and the next
run puts it back, and the same command run again is not refused. A full disk while safetensors
writes is a one-line StorageError. Temporary files that killed writes left are removed by the
next write of the same file, never a live process's.

A kill is simulated by copying the folder, as kill -9 would leave it, at the chosen moment of the
replacement and stopping the export there; the next run is then made on the copy."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import torch

import ganforge
from conftest import random_dataset, tiny_config
from ganforge import api, atomic, synthetic
from ganforge.errors import ConfigError, StorageError
from ganforge.serve.export import export_folder

PER_CLASS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ds = random_dataset(n=24, labels=True)
    ds.labels = torch.arange(24) % 3
    ds.class_names = ["shirt", "bag", "boot"]
    run_dir = tmp_path_factory.mktemp("replace") / "run"
    api.train(tiny_config(objective="conditional", **{"train.steps": 2}), run_dir, progress=False, dataset=ds)
    return ganforge.load(run_dir)


def files(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class Killed(BaseException):
    """Stops the export where kill -9 would have (not an Exception: nothing may handle it)."""


def kill_at(monkeypatch, moment, out, crashed):
    """At ``moment`` of replacing the folder ``out`` holds now, copy out's parent to ``crashed``
    as a kill would leave it, and stop: "before" the first rename or delete of the old folder,
    "after" it, or "during" its deletion (its index file first, then one more entry)."""
    old = out.stat().st_ino
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def is_old(path):
        return os.path.isdir(path) and os.stat(path).st_ino == old

    def crash():
        monkeypatch.undo()
        shutil.copytree(out.parent, crashed, symlinks=True)
        raise Killed

    def replace(src, dst):
        if is_old(src):
            if moment == "before":
                crash()
            real_replace(src, dst)
            if moment == "after":
                crash()
        else:
            real_replace(src, dst)

    def rmtree(path, *args, **kwargs):
        if is_old(path):
            if moment == "before":
                crash()
            if moment == "during":
                entries = sorted(os.scandir(path), key=lambda e: not e.name.endswith(".json"))
                for entry in entries[:2]:
                    real_rmtree(entry.path) if entry.is_dir() else os.unlink(entry.path)
                crash()
        real_rmtree(path, *args, **kwargs)
        if moment == "after" and not os.path.exists(path):
            crash()

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)


def check_kill_moments(monkeypatch, tmp_path, write, new):
    """For each moment: kill ``write(out, force=True)`` replacing the old folder, check what the
    kill left, then that the same command run again leaves the new folder whole."""
    for moment in ("before", "after", "during"):
        out = tmp_path / moment / "work" / "out"
        write(out, force=False)
        old = files(out)
        crashed = tmp_path / moment / "crashed"
        kill_at(monkeypatch, moment, out, crashed)
        with pytest.raises(Killed):
            write(out, force=True)
        out = crashed / "out"
        asides = [p for p in crashed.iterdir() if p.name.startswith(".out.old-")]
        left = files(out) if out.is_dir() else [files(p) for p in asides]
        assert left in (old, new, [old]), f"killed {moment}: neither the old nor the new folder is whole"
        if not out.exists():  # killed between the two renames: the next run puts the old one back
            with pytest.raises(ConfigError, match="already exists; pass --force"):
                write(out, force=False)
            assert files(out) == old
        write(out, force=True)
        assert files(out) == new, moment
        assert not [p.name for p in crashed.iterdir() if p.name.startswith(".out.old-")], moment


def test_augment_force_killed_while_replacing_leaves_a_whole_dataset_and_reruns(run, tmp_path, monkeypatch):
    def write(out, force):
        synthetic.export(run, out, per_class=PER_CLASS, force=force, seed=int(force))

    write(tmp_path / "new" / "out", force=True)
    check_kill_moments(monkeypatch, tmp_path, write, files(tmp_path / "new" / "out"))


def test_export_folder_force_killed_while_replacing_keeps_a_whole_model(run, tmp_path, monkeypatch):
    def write(out, force):
        export_folder(run, out, force=force)

    write(tmp_path / "new" / "out", force=False)  # the card names the folder: the same name
    check_kill_moments(monkeypatch, tmp_path, write, files(tmp_path / "new" / "out"))
    assert ganforge.load(tmp_path / "after" / "crashed" / "out").step == run.step


def test_leftovers_of_a_live_replacement_are_left_alone(tmp_path):
    """Another process replacing the folder right now has it aside for a moment: not ours."""
    out = tmp_path / "out"
    aside = tmp_path / f".out.old-{os.getppid()}"
    aside.mkdir()
    (aside / "classes.json").write_text("{}")
    atomic.restore_replaced(out)
    assert not out.exists() and (aside / "classes.json").is_file()
    gone = tmp_path / f".out.old-{dead_pid()}"
    aside.rename(gone)
    atomic.restore_replaced(out)
    assert (out / "classes.json").is_file() and not gone.exists()


def test_a_full_disk_while_safetensors_writes_is_one_line(run, tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    out = tmp_path / "model"
    export_folder(run, out)
    old = files(out)

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(StorageError) as info:
        export_folder(run, out, force=True)
    message = str(info.value)
    assert "\n" not in message and f"cannot write {out}: No space left on device; free some space" in message
    assert files(out) == old and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_killed_writes_temporary_files_are_removed_by_the_next_write(tmp_path):
    dest = tmp_path / "x.npz"
    stale = time.time() - atomic.STALE_SECONDS - 60
    dead = tmp_path / f".x.npz.tmp{dead_pid()}.npz"
    dead_folder = tmp_path / f".x.npz.tmp{dead_pid()}.npz.d"  # not x.npz's temporary name
    live = tmp_path / f".x.npz.tmp{os.getppid()}.npz"
    fresh = tmp_path / f".x.npz.tmp{dead_pid() + 1_000_000}.npz"  # no such pid, but just written
    other = tmp_path / f".y.npz.tmp{dead_pid()}.npz"
    for path in (dead, live, other, fresh):
        path.write_bytes(b"part")
    dead_folder.mkdir()
    for path in (dead, live, other, dead_folder):
        os.utime(path, (stale, stale))
    atomic.atomic_write_bytes(dest, b"whole")
    assert dest.read_bytes() == b"whole" and not dead.exists()
    assert live.exists() and fresh.exists() and other.exists() and dead_folder.exists()
    folder = tmp_path / "syn"
    dead_tmp = tmp_path / f".syn.tmp{dead_pid()}"  # an augment killed before it renamed its folder in
    (dead_tmp / "0_a").mkdir(parents=True)
    os.utime(dead_tmp, (stale, stale))
    with atomic.atomic_path(folder) as tmp:
        tmp.mkdir()
    assert folder.is_dir() and not dead_tmp.exists()
