"""Where a run was trained: every checkpoint records torch's version, the device, the resolved
precision and the CPU thread count; a resume that differs in any of them says so once (it is not
bit-exact with an uninterrupted run), and loaded runs, model folders and their cards show it."""
import json

import pytest
import torch

import ganforge
from ganforge import api
from ganforge.serve.export import environment_text, export_folder
from ganforge.training import checkpoint as ckpt

from conftest import random_dataset, tiny_config

NOTE = "was trained with"


@pytest.fixture
def threads():
    """Set torch's thread count inside the test; restored after."""
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


def _train(run, steps, capsys, *, resume=False):
    cfg = tiny_config(**{"train.steps": steps})
    if resume:
        cfg = api.resume_config(run, [f"train.steps={steps}"])
    capsys.readouterr()
    api.train(cfg, run, resume=resume, progress=False, dataset=random_dataset())
    return capsys.readouterr().out


def test_each_checkpoint_records_where_it_was_trained(tmp_path, capsys, threads):
    threads(1)
    run = tmp_path / "run"
    _train(run, 3, capsys)
    _, state = ckpt.load(ckpt.find(run))
    env = state["environment"]
    assert env == {"ganforge": ganforge.__version__, "torch": str(torch.__version__), "device": "cpu",
                   "precision": "fp32", "threads": 1}
    assert type(env["torch"]) is str  # a TorchVersion had made the checkpoint unreadable (weights_only)
    assert api.load(run).environment == env


def test_a_resume_on_another_thread_count_says_so_once_and_names_the_fix(tmp_path, capsys, threads):
    run = tmp_path / "run"
    threads(2)
    _train(run, 3, capsys)
    threads(1)
    out = _train(run, 6, capsys, resume=True)
    assert out.count(NOTE) == 1, out
    line = next(x for x in out.splitlines() if NOTE in x)
    assert "step_0000003 was trained with torch threads 2, this resume has torch threads 1" in line, line
    assert "not bit-exact" in line and "OMP_NUM_THREADS=2" in line, line
    # the checkpoint it wrote records the new count, so resuming again on it says nothing
    assert api.load(run).environment["threads"] == 1
    assert NOTE not in _train(run, 9, capsys, resume=True)


def _trained_then_edited(tmp_path, capsys, threads, edit):
    """A 3-step run on one thread whose checkpoint's environment record ``edit`` changed (emptied:
    removed, as a checkpoint of a version before the record has none)."""
    threads(1)
    run = tmp_path / "run"
    _train(run, 3, capsys)
    path = ckpt.find(run)
    _, state = ckpt.load(path)
    edit(state["environment"])
    if not state["environment"]:
        del state["environment"]
    torch.save(state, path / ckpt.STATE)
    return run


def test_a_resume_where_precision_and_torch_differ_names_both(tmp_path, capsys, threads):
    # as if trained on a CPU with native bf16 by another torch: auto had resolved to bf16 there
    run = _trained_then_edited(tmp_path, capsys, threads, lambda env: env.update(precision="bf16", torch="2.13.0"))
    out = _train(run, 6, capsys, resume=True)
    line = next(x for x in out.splitlines() if NOTE in x)
    assert "trained with torch 2.13.0, precision bf16, this resume has torch " in line, line
    assert "precision fp32" in line and "OMP_NUM_THREADS" not in line, line


def test_a_checkpoint_of_an_older_version_resumes_without_a_note(tmp_path, capsys, threads):
    run = _trained_then_edited(tmp_path, capsys, threads, lambda env: env.clear())
    assert api.load(run).environment is None
    threads(2)
    out = _train(run, 6, capsys, resume=True)
    assert NOTE not in out, out


def test_a_model_folder_and_its_card_keep_it(tmp_path, capsys, threads):
    threads(1)
    run = tmp_path / "run"
    _train(run, 3, capsys)
    loaded = api.load(run)
    folder = export_folder(loaded, tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["environment"] == loaded.environment
    assert api.load(folder).environment == loaded.environment
    card = (folder / "README.md").read_text()
    text = f"Trained with ganforge {ganforge.__version__}, torch {torch.__version__}, fp32 on CPU, 1 thread."
    assert text in card
    assert card.index(text) > card.index("## Training config")


def test_environment_in_words():
    assert environment_text({"ganforge": "0.1.0", "torch": "2.14.1", "device": "cpu", "precision": "bf16",
                             "threads": 2}) == "ganforge 0.1.0, torch 2.14.1, bf16 on CPU, 2 threads"
    assert environment_text({"ganforge": "0.1.0", "torch": "2.14.1", "device": "cuda", "precision": "bf16",
                             "device_name": "NVIDIA H200"}) == "ganforge 0.1.0, torch 2.14.1, bf16 on NVIDIA H200"
    assert environment_text({"ganforge": "0.1.0", "torch": "2.14.1", "device": "cpu", "precision": "fp32",
                             "threads": 1, "processes": 2}) == ("ganforge 0.1.0, torch 2.14.1, fp32 on 2 processes, "
                                                                "each CPU, 1 thread")


def test_the_report_and_the_comparison_show_it(tmp_path, capsys, threads):
    from ganforge.report import build_comparison, build_html, load_run

    threads(1)
    _train(tmp_path / "a", 3, capsys)
    threads(2)
    _train(tmp_path / "b", 3, capsys)
    a, b = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    assert a.environment["threads"] == 1 and b.environment["threads"] == 2
    assert f"fp32 <small>CPU, 1 thread; torch {torch.__version__}</small>" in build_html(a)
    page = build_comparison([a, b])
    assert "fp32, CPU, 1 thread<" in page and "fp32, CPU, 2 threads<" in page
    # a run on 2 processes (--nproc 2) says so: its "1 thread" had read as all of its compute
    state_file = ckpt.find(tmp_path / "a") / ckpt.STATE
    state = torch.load(state_file, weights_only=True)
    assert state["world_size"] == 1 and "processes" not in a.environment
    torch.save({**state, "world_size": 2}, state_file)
    assert f"fp32 <small>2 processes, each CPU, 1 thread; torch {torch.__version__}</small>" in build_html(
        load_run(tmp_path / "a"))
    assert environment_text(api.load(tmp_path / "a").environment).endswith(  # the model card's words
        "fp32 on 2 processes, each CPU, 1 thread")


def test_a_report_without_a_readable_checkpoint_goes_on_without_it(tmp_path, capsys, threads):
    from ganforge.report import build_html, load_run

    threads(1)
    _train(tmp_path / "run", 3, capsys)
    for state in (tmp_path / "run" / "checkpoints").glob("step_*/state.pt"):
        state.write_bytes(b"damaged")
    run = load_run(tmp_path / "run")
    assert run.environment is None
    assert "Trained with" not in build_html(run)
