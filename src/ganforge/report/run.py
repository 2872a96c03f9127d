"""Reading a run directory for the report: config.yaml, metrics.jsonl (scalar records and
events) and the sample grids under samples/."""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import CheckpointError, shell_arg
from ..rundir import GIVEN_DATASET, holder_pid, is_locked, resume_command

SAMPLE_NAME = re.compile(r"step_(\d+)\.png$")
SOUND_NAME = re.compile(r"step_(\d+)_(.+)\.wav$")  # the WAVs of an audio family's preview
# Bookkeeping keys that are not worth a curve of their own.
NOT_PLOTTED = {"step", "time", "nonfinite", "epoch"}


@dataclass
class Run:
    run_dir: Path
    config: dict[str, Any] | None  # None when config.yaml is missing or unreadable
    records: list[dict[str, Any]]  # scalar records in step order, without events
    events: list[dict[str, Any]]  # records with an "event" key, in file order
    samples: list[tuple[int, Path]] = field(default_factory=list)  # (step, png), by step
    notes: list[str] = field(default_factory=list)  # problems worth a line in the report
    sounds: dict[int, list[tuple[str, Path]]] = field(default_factory=dict)  # step -> (name, wav)
    # how training ended: the trainer's {"event": "end", "how": "done" | "interrupted" |
    # "stopped" (eval.patience, a hook) | "diverged", ...} when it is the file's last record (a
    # resume logs on after an old one)
    end: dict[str, Any] | None = None
    live: bool = False  # a train process holds the run's lock now: still training, not ended
    # the data it trained on when passed from Python ("mine, passed from Python": given_dataset),
    # not config.yaml's data.name; None for a run on data.name's data
    given: str | None = None
    # where its latest checkpoint was trained (torch, device, precision, CPU threads:
    # trained_environment); None without a checkpoint or for one of a version before 2026-12-07
    environment: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    def discarded(self) -> set[int]:
        """id()s of the events a later rollback discarded: logged before it, at a step after the
        checkpoint it restored (the plots draw them faded, as history the final weights do not
        come from)."""
        out: set[int] = set()
        for i, e in enumerate(self.events):
            if e.get("event") != "rollback":
                continue
            to = (e.get("evidence") or {}).get("to_step")
            if isinstance(to, (int, float)):
                out.update(id(x) for x in self.events[:i] if x["step"] > to)
        return out

    @property
    def last_step(self) -> int:
        return max(int(r["step"]) for r in self.records)

    def series(self) -> dict[str, tuple[list[int], list[float]]]:
        """key -> (steps, values) for every numeric key; non-finite (None) values become NaN so
        plots show a gap. Where the evaluation protocol changes (a resume with another eval.n or
        eval.extractor) a NaN comes first too: a line joining numbers measured differently had
        shown a jump that was only the change of settings."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        previous = None  # the protocol of the last evaluation record that named one
        for r in self.records:
            protocol = r.get("protocol")
            changed = isinstance(protocol, dict) and previous is not None and protocol != previous
            previous = protocol if isinstance(protocol, dict) else previous
            for key, value in r.items():
                if key in NOT_PLOTTED:
                    continue
                if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                    steps, values = out.setdefault(key, ([], []))
                    if changed and steps:
                        steps.append(int(r["step"]))
                        values.append(math.nan)
                    steps.append(int(r["step"]))
                    values.append(math.nan if value is None else float(value))
        return {k: v for k, v in out.items() if any(math.isfinite(x) for x in v[1])}

    def protocols(self) -> list[tuple[dict[str, Any], int, int]]:
        """(protocol, first step, last step) of each stretch of evaluation records measured
        alike, in step order (the report names each one; the newest alone had been named)."""
        out: list[tuple[dict[str, Any], int, int]] = []
        for r in self.records:
            protocol, step = r.get("protocol"), int(r["step"])
            if not isinstance(protocol, dict):
                continue
            if out and out[-1][0] == protocol:
                out[-1] = (protocol, out[-1][1], step)
            else:
                out.append((protocol, step, step))
        return out




def given_record(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN/dataset.json's record ({"name": ...}) of a run trained on a dataset passed from Python,
    or a model folder's copy of it (config.json's "dataset"); None for a run without one, which
    trained on its config's data.name. A record that cannot be read is {}: it still says Python,
    as a resume's refusal does."""
    run_dir = Path(run_dir)
    path = run_dir / GIVEN_DATASET
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}
    try:  # a model folder (api.MODEL_CONFIG): what its export copied, if anything
        record = json.loads((run_dir / "config.json").read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def given_dataset(run_dir: str | Path) -> str | None:
    """The data a run trained on when it was passed from Python, in words ("mine, passed from
    Python", with its image count where the record holds one); None otherwise (given_record)."""
    record = given_record(run_dir)
    if record is None:
        return None
    name = " ".join(str(record.get("name") or "").split())  # one line, whatever it holds
    n = record.get("images")
    count = f" ({n:,} images)" if isinstance(n, int) and not isinstance(n, bool) else ""
    return f"{name or 'a dataset'}, passed from Python{count}"


def latest_checkpoint(run_dir: Path) -> str | None:
    """The name of the checkpoint a ``--resume`` of ``run_dir`` starts from (step_XXXXXXX), or
    None when it has none."""
    from ..training.checkpoint import find  # torch: only for a run that stopped short

    try:
        with warnings.catch_warnings():  # an incomplete folder: find skips it, as a resume does
            warnings.simplefilter("ignore")
            return find(run_dir).name
    except (CheckpointError, OSError):
        return None


def read_metrics(path: Path, notes: list[str]) -> tuple[list[dict], list[dict], dict | None]:
    records, events, bad, end = [], [], 0, None
    last: dict[bool, float] = {}  # newest step per kind of record (training or evaluation)
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad += 1  # a process killed mid-write leaves a partial last line
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("step"), (int, float)):
            bad += 1
            continue
        end = None  # an end record holds only while nothing follows it
        if obj.get("event") == "end":
            end = obj
            continue
        if "event" in obj:
            events.append(obj)
            continue
        # A resume or a rollback logs steps again: the later records replace everything from
        # that step on, so the curves show the history the final weights came from. Training
        # records carry "time"; evaluation records (from hooks) do not and may share steps.
        kind = "time" in obj
        if kind in last and obj["step"] <= last[kind]:
            records = [r for r in records if r["step"] < obj["step"]]
            last = {}
            for r in records:
                last["time" in r] = max(last.get("time" in r, r["step"]), r["step"])
        records.append(obj)
        last[kind] = obj["step"]
    if bad:
        notes.append(f"{bad} unreadable line{'s' if bad > 1 else ''} in metrics.jsonl skipped")
    records.sort(key=lambda r: r["step"])
    return records, events, end


def _live(run_dir: Path) -> tuple[bool, int | None]:
    """(whether a live process holds the run's lock, its PID if the lock file names it)."""
    live = is_locked(run_dir)
    return live, holder_pid(run_dir) if live else None


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; pass the run directory of a "
                              f"training run (the --out of ganforge train)")
    metrics = run_dir / "metrics.jsonl"
    notes: list[str] = []
    records, events, end = read_metrics(metrics, notes) if metrics.is_file() else ([], [], None)
    config = _read_config(run_dir / "config.yaml")
    live, pid = _live(run_dir)
    if not records:
        raise CheckpointError(_no_records(run_dir, config, live, pid))
    if config is None:
        notes.append("config.yaml is missing or unreadable")
    samples = sorted((int(m.group(1)), p) for p in (run_dir / "samples").glob("step_*.png")
                     if (m := SAMPLE_NAME.search(p.name)))
    sounds: dict[int, list[tuple[str, Path]]] = {}
    for p in sorted((run_dir / "samples").glob("step_*.wav"), key=_natural):
        if m := SOUND_NAME.search(p.name):
            sounds.setdefault(int(m.group(1)), []).append((m.group(2), p))
    return Run(run_dir, config, records, events, samples, notes, sounds, end, live,
               given=given_dataset(run_dir), environment=trained_environment(run_dir))


def trained_environment(run_dir: Path) -> dict[str, Any] | None:
    """The environment record (Trainer.environment) of the run's latest checkpoint, read from its
    state.pt memory-mapped (the optimizer states it also holds are not read); None when there is
    none or it cannot be read (the report does not fail on it)."""
    try:
        import torch

        from ..training import checkpoint as ckpt

        state = torch.load(ckpt.find(run_dir) / ckpt.STATE, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # no checkpoint yet, a damaged one: the report goes on without it
        return None
    return ckpt.environment(state)  # with the processes it trained on


def _natural(path: Path) -> list:
    """A sort key that orders numbers by value (step_10_AtoB_2 before step_10_AtoB_10): the order
    in which a preview wrote its WAVs, the order of the tiles in its grid."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def family(run: Run):
    """The run's family class (None when its config or family cannot be read)."""
    try:
        from ..objectives import OBJECTIVES

        return OBJECTIVES.get(str((run.config or {}).get("objective", "unconditional")))
    except Exception:  # the report must not fail on a config it cannot use
        return None


def is_audio(run: Run) -> bool:
    """Whether the run is an audio family's (vocoder, cyclegan-vc): its items are clips, not
    images, and its image settings are unused. Its preview WAVs say so (only audio families write
    them), or its family's capabilities (a run with no preview yet)."""
    from ..objectives import AUDIO_CAPABILITIES

    fam = family(run)
    return bool(run.sounds) or (fam is not None and bool(fam.capabilities & AUDIO_CAPABILITIES))


def _no_records(run_dir: Path, config: dict | None, live: bool, pid: int | None) -> str:
    """Why a run has no records yet, and what to do: wait for a run still training (its resume
    would be refused while it holds the run), resume one that stopped, or train one first."""
    arg = shell_arg(run_dir)
    if live:
        every = ((config or {}).get("train") or {}).get("log_every")
        at = f"{every:,} (train.log_every)" if isinstance(every, int) else "train.log_every"
        who = f"process {pid}" if pid else "another process"
        return (f"{run_dir} has no metrics yet: it is still training ({who}); its first record "
                f"comes at step {at}; run ganforge report {arg} again then")
    saved = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*") if p.name != "step_0000000")
    if (run_dir / "config.yaml").is_file() and saved and not (run_dir / "metrics.jsonl").exists():
        # it had been said to have stopped before its first log interval, with checkpoints to step 340
        return (f"{run_dir}/metrics.jsonl is missing, though the run has checkpoints up to {saved[-1]}: its "
                f"training history is gone; put the file back to report on it (a resume logs anew from its "
                f"last checkpoint, without the history before it)")
    if (run_dir / "config.yaml").is_file():
        how = f"it stopped before its first log interval; continue it: {resume_command(run_dir)}"
    elif run_dir.is_dir() and any(run_dir.iterdir()) and not any(
            (run_dir / name).exists() for name in ("metrics.jsonl", "checkpoints", "samples")):
        # a folder of the user's, none of a run's files in it: train would refuse it as --out
        return (f"{run_dir} is not a ganforge run directory (no config.yaml); pass the --out of a training "
                f"run (ganforge train PRESET --out DIR)")
    else:
        how = f"train it first: ganforge train PRESET --out {arg}"
    return f"{run_dir} has no metrics (metrics.jsonl is missing or holds no records); {how}"


def describe_protocol(p: Mapping[str, Any]) -> str:
    """One sentence on what the training hook's numbers were measured with (the ``protocol`` it
    logs beside them), for the report and the model card."""
    return f"Measured during training with {measured_with(p)}. {protocol_caveat([p])}"


def measured_with(p: Mapping[str, Any]) -> str:
    """The extractor, sample size, noise seed and reference split of a protocol, as a phrase."""
    sha = str(p.get("extractor_sha256") or "")[:12]
    return (f"the {p.get('extractor')} extractor{f' ({sha})' if sha else ''} on {p.get('n')} samples "
            f"(noise seed {p.get('seed')}) against the {p.get('split')} split of {p.get('reference')}")


def protocol_caveat(protocols: list[Mapping[str, Any]]) -> str:
    """What numbers measured with these protocols compare with."""
    papers = ("" if all(p.get("extractor") == "inception" for p in protocols)
              else ", and only the inception extractor's compare with papers")
    return f"Numbers from different extractors or sample sizes do not compare{papers}."


def environment_parts(env: Mapping[str, Any]) -> tuple[str, str, str]:
    """(precision, where, torch) of an environment record, as the report, the comparison and the
    model card say them: ("fp32", "CPU, 2 threads", "torch 2.14.1"); a run on several processes
    (``processes``, see trained_environment): ("fp32", "2 processes, each CPU, 1 thread", ...)."""
    where = (f"CPU, {env['threads']} thread{'' if env['threads'] == 1 else 's'}" if "threads" in env
             else str(env.get("device_name") or env.get("device") or "?"))
    if isinstance(env.get("processes"), int) and env["processes"] > 1:
        where = f"{env['processes']} processes, each {where}"
    return str(env.get("precision", "?")), where, f"torch {env.get('torch', '?')}"
