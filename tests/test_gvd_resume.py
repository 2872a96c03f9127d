"""``ganforge bench gan-vs-diffusion`` keeps each seed as it finishes: a Ctrl-C at seed 1 of a
1-2.5 hour benchmark had left no result at all, and the only way on, --force, threw away the
seeds already finished. Now OUT/seed<N>.json (and the seed's grids) are written when the seed
ends, --resume continues with the same settings, and --force starts over. No training here:
run_seed is replaced by a fake that leaves the runs a real seed leaves."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganforge import cli

TINY = ["--steps", 1, "--n", 20, "--quality-samplers", "ddim3", "--speed-samplers", "ddim3"]


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of the command line run in this process."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def gvd(monkeypatch):
    pytest.importorskip("diffusers")
    from ganforge.bench import gan_vs_diffusion
    from ganforge.commands import bench as cmd

    monkeypatch.setattr(cmd, "_check_scoring", lambda s: None)  # no extractor needed: nothing is scored
    return gan_vs_diffusion


def _fake_run_seed(monkeypatch, gvd, calls: list, stop_at: int | None = None,
                   numbers: dict[int, float] | None = None) -> None:
    """run_seed as a fake: it leaves a GAN run (config.yaml, a checkpoint) and a diffusion
    baseline folder, as a real seed does, and numbers that differ on every call (so a seed
    measured again is told from one reused) unless ``numbers`` gives each seed's; at seed
    ``stop_at`` a Ctrl-C after the GAN run was started."""
    def run_seed(s, seed, out, log):
        calls.append(seed)
        gan = out / f"gan-seed{seed}"
        (gan / "checkpoints" / "step_0000001").mkdir(parents=True)
        (gan / "config.yaml").write_text("objective: gan\n")
        if seed == stop_at:
            raise KeyboardInterrupt
        (out / f"diffusion-seed{seed}").mkdir()
        (out / f"diffusion-seed{seed}" / "config.json").write_text("{}")
        value = numbers[seed] if numbers else 10.0 * len(calls) + seed
        metrics = {k: value for k in gvd.METRICS}
        return {"seed": seed, "gan": {"train": {"steps": 1}, "metrics": dict(metrics), "images_per_s": value},
                "diffusion": {"train": {"steps": 1}, "metrics": {"ddim3": dict(metrics)},
                              "images_per_s": {"ddim3": 1.0}},
                "grids": {"GAN": torch.full((64, 1, 8, 8), value / 100)},
                "protocol": {"extractor": "x", "warnings": [f"warning of seed {seed}"]}}

    monkeypatch.setattr(gvd, "run_seed", run_seed)


def _interrupted_at_seed_1(capsys, monkeypatch, gvd, out: Path) -> dict:
    """A benchmark of seeds 0,1 stopped by a Ctrl-C during seed 1; seed 0's saved result."""
    _fake_run_seed(monkeypatch, gvd, [], stop_at=1)
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out)
    assert code == 130 and err.count("\n") == 1, err
    assert "keeps 1 of 2 seeds finished (0)" in err and "rerun the same command with --resume" in err, err
    return json.loads((out / "seed0.json").read_text())


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_interrupted_seed_is_resumed_and_the_finished_one_reused(gvd, tmp_path, capsys, monkeypatch):
    out = tmp_path / "gvd"
    saved = _interrupted_at_seed_1(capsys, monkeypatch, gvd, out)
    assert saved["settings"]["n"] == 20 and saved["gan"]["metrics"]["fid"] == 10.0
    assert (out / "seed0-grids.pt").is_file() and not (out / "seed1.json").exists()

    calls: list = []
    _fake_run_seed(monkeypatch, gvd, calls)
    code, stdout, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out, "--resume")
    assert code == 0, err
    assert calls == [1]  # seed 0 reused, seed 1 (its unfinished GAN run replaced) run again
    assert f"seed 0: reused from {out / 'seed0.json'} (finished earlier)" in stdout
    assert (out / "gan-seed0" / "config.yaml").is_file()  # the finished seed's runs are kept
    result = json.loads((out / "gan-vs-diffusion.json").read_text())
    assert [r["seed"] for r in result["per_seed"]] == [0, 1]
    assert result["per_seed"][0] == {k: v for k, v in saved.items() if k != "settings"}
    assert result["warnings"] == ["warning of seed 0", "warning of seed 1"]
    assert (out / "figure.png").is_file() and (out / "table.md").is_file()

    # the same as a benchmark never interrupted, whose seeds measure the same numbers
    whole = tmp_path / "whole"
    _fake_run_seed(monkeypatch, gvd, [], numbers={0: 10.0, 1: 11.0})
    assert _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", whole)[0] == 0
    uninterrupted = json.loads((whole / "gan-vs-diffusion.json").read_text())
    assert uninterrupted["per_seed"] == result["per_seed"] and uninterrupted["rows"] == result["rows"]
    assert (whole / "table.md").read_text() == (out / "table.md").read_text()

    # a finished benchmark has nothing to resume
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out, "--resume")
    assert code == 2 and "holds a finished benchmark" in err and err.count("\n") == 1, err


def test_resume_with_other_settings_is_refused_and_nothing_deleted(gvd, tmp_path, capsys, monkeypatch):
    out = tmp_path / "gvd"
    _interrupted_at_seed_1(capsys, monkeypatch, gvd, out)
    before = _listing(out)
    calls: list = []
    _fake_run_seed(monkeypatch, gvd, calls)
    for changed, said in ((["--n", 30], "--n 20, this call has 30"),
                          (["--diffusion-widths", "32,64"], "--diffusion-widths [32, 64, 96], this call has [32, 64]")):
        args = [*TINY, *changed] if changed[0] != "--n" else [*TINY[:2], *changed, *TINY[4:]]
        code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *args, "--seeds", "0,1", "--out", out, "--resume")
        assert code == 2 and err.count("\n") == 1, err
        assert f"--resume refused: {out / 'seed0.json'} was measured with {said}" in err, err
        assert "choose another --out, or pass --force to start over" in err
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out, "--resume",
                        "--force")
    assert code == 2 and "pass one of them" in err, err
    assert calls == [] and _listing(out) == before


def test_force_starts_over_deleting_the_finished_seeds(gvd, tmp_path, capsys, monkeypatch):
    """--force deletes every run and seed file of the benchmark, those of an older --seeds list
    included, and runs every seed again."""
    out = tmp_path / "gvd"
    _interrupted_at_seed_1(capsys, monkeypatch, gvd, out)
    (out / "gan-seed7" / "checkpoints").mkdir(parents=True)  # a seed of an earlier, other --seeds list
    (out / "gan-seed7" / "config.yaml").write_text("objective: gan\n")
    (out / "seed7-grids.pt").write_bytes(b"x")
    calls: list = []
    _fake_run_seed(monkeypatch, gvd, calls)

    def fresh(s, seed, out_dir, log):  # started over: nothing of the interrupted call is left
        if seed == 0:
            assert list(out_dir.iterdir()) == []
        return real(s, seed, out_dir, log)

    real = gvd.run_seed
    monkeypatch.setattr(gvd, "run_seed", fresh)
    code, stdout, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out, "--force")
    assert code == 0, err
    assert calls == [0, 1] and "reused" not in stdout
    assert not (out / "gan-seed7").exists() and not (out / "seed7-grids.pt").exists()
    result = json.loads((out / "gan-vs-diffusion.json").read_text())
    assert [r["gan"]["metrics"]["fid"] for r in result["per_seed"]] == [10.0, 21.0]  # measured anew


def test_force_and_resume_refuse_the_users_own_files(gvd, tmp_path, capsys, monkeypatch):
    out = tmp_path / "gvd"
    _interrupted_at_seed_1(capsys, monkeypatch, gvd, out)
    _fake_run_seed(monkeypatch, gvd, [])
    for mine, content in (("notes.txt", "mine"), ("seed3.json", '{"my": "numbers"}')):
        (out / mine).write_text(content)
        before = _listing(out)
        for flag in ("--resume", "--force"):
            code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out, flag)
            assert code == 2 and err.count("\n") == 1, err
            assert f"already exists and is not empty; choose another --out (it holds {mine}" in err, err
            assert _listing(out) == before
        (out / mine).unlink()
    # without a flag, the message names both ways on
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0,1", "--out", out)
    assert code == 2 and "pass --force to start over, or --resume to keep the seeds it finished" in err, err


def test_resume_leaves_seeds_of_another_list_alone(gvd, tmp_path, capsys, monkeypatch):
    """--resume with a shorter --seeds list: the seeds left out keep their runs and files, and do
    not enter the result; a longer list reuses the finished seeds too (a seed's numbers do not
    depend on the others)."""
    out = tmp_path / "gvd"
    _interrupted_at_seed_1(capsys, monkeypatch, gvd, out)
    kept = {name: (out / name).read_bytes() for name in ("seed0.json", "seed0-grids.pt")}
    calls: list = []
    _fake_run_seed(monkeypatch, gvd, calls)
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "1", "--out", out, "--resume")
    assert code == 0 and calls == [1], err
    assert {name: (out / name).read_bytes() for name in kept} == kept and (out / "gan-seed0").is_dir()
    assert [r["seed"] for r in json.loads((out / "gan-vs-diffusion.json").read_text())["per_seed"]] == [1]


def _stopped_before_the_table(capsys, monkeypatch, gvd, out: Path) -> None:
    _fake_run_seed(monkeypatch, gvd, [], numbers={0: 10.0})

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(gvd, "markdown", stop)  # the table's text: the stop comes after the figure
        code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0", "--out", out)
    assert code == 130, err
    assert (out / "figure.png").is_file() and not (out / "table.md").exists()


def test_a_stop_after_the_figure_and_before_the_table_is_resumed_or_replaced(gvd, tmp_path, capsys, monkeypatch):
    """A stop between OUT/figure.png and OUT/table.md (the summary's last writes) had left a folder
    that --resume and --force both refused ("already exists and is not empty ... it holds
    figure.png"). The benchmark's own figure (its provenance says so) is now part of what an
    interrupted call left; a figure.png of anyone else's is still refused and kept."""
    for flag, rerun in (("--resume", []), ("--force", [0])):
        out = tmp_path / flag[2:]
        _stopped_before_the_table(capsys, monkeypatch, gvd, out)
        calls: list = []
        _fake_run_seed(monkeypatch, gvd, calls, numbers={0: 10.0})
        code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0", "--out", out, flag)
        assert code == 0 and calls == rerun, err  # --resume reuses seed 0, --force measures it again
        assert (out / "table.md").is_file() and (out / "figure.png").is_file()

    mine = tmp_path / "mine"  # a figure.png the benchmark did not draw
    mine.mkdir()
    from PIL import Image

    Image.new("L", (4, 4)).save(mine / "figure.png")
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *TINY, "--seeds", "0", "--out", mine, "--force")
    assert code == 2 and "it holds figure.png" in err, err
    assert (mine / "figure.png").is_file()
