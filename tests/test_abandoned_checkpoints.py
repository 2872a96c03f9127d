"""Checkpoints newer than the one a rollback or a diverged end points ``latest`` back to are
abandoned: the next save removes them. They had counted among train.keep_checkpoints, so the
pruning kept the broken steps in place of good ones, and they stayed listed as the run's newest."""
import torch

from ganforge.training import checkpoint as ckpt


def _save(root, step, keep=2, protect=()):
    return ckpt.save(root, step, {"G.w": torch.full((2,), float(step))}, {"step": step}, keep=keep,
                     protect=protect)


def _names(root):
    return sorted(p.name for p in root.glob("step_*"))


def test_the_next_save_after_going_back_removes_the_abandoned_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40):
        _save(root, step)
    assert _names(root) == ["step_0000030", "step_0000040"]
    ckpt.point_latest(root, "step_0000030")  # a rollback to step 30 (or a diverged end, then a resume)
    # until training writes again, the abandoned step is still there to look at
    assert _names(root) == ["step_0000030", "step_0000040"] and ckpt.find(tmp_path).name == "step_0000030"
    _save(root, 35)
    # the two newest up to the step just written; step 40 was from before going back
    assert _names(root) == ["step_0000030", "step_0000035"]
    assert ckpt.find(tmp_path).name == "step_0000035"


def test_best_and_protected_checkpoints_are_kept_even_when_abandoned(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        _save(root, step, keep=3)
    ckpt.mark_best(root, "step_0000030")
    ckpt.point_latest(root, "step_0000010")
    _save(root, 15, keep=1, protect=("step_0000010",))
    assert _names(root) == ["step_0000010", "step_0000015", "step_0000030"]
    assert ckpt.find(tmp_path, "best").name == "step_0000030"
