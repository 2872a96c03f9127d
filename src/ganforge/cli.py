"""The ``ganforge`` command: parse, call the library, print. No training logic lives here."""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import pkgutil
import re
import sys
import time
import warnings
from pathlib import Path

from .commands import (DATA_DIR_HELP, add_device_argument, add_provenance_argument, add_run_arguments, seed,
                       whole_number)
from .errors import ConfigError, DataError, GanforgeError, GanforgeWarning, TrainingInterrupted, shell_arg
from .rundir import nproc_flag

EXIT_USAGE = 2
SAMPLE_N = 64  # ganforge sample's --n when neither --n nor --per-class is given


# argparse's message for a value outside an argument's choices (a command, --split, --format)
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<value>[^']*)' \(choose from (?P<choices>.*)\)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(EXIT_USAGE, f"ganforge: error: {_suggest_choice(message)} (see '{self.prog} --help')\n")


def _suggest_choice(message: str) -> str:
    """argparse's "invalid choice" with the closest choice named, as flags, presets and keys are
    ("did you mean 'train'?"): a mistyped command had listed all 24 commands in a 330-character
    line (Python 3.14's suggest_on_error is not there in 3.11)."""
    import difflib

    found = _INVALID_CHOICE.search(message)
    if found is None:
        return message
    choices = re.findall(r"'([^']*)'", found.group("choices"))
    close = difflib.get_close_matches(found.group("value"), choices, n=1, cutoff=0.6)
    if not close:
        return message
    return f"{message[:found.start()]}invalid choice: '{found.group('value')}'; did you mean '{close[0]}'?"


def _refuse_overwrite(path: Path, force: bool) -> None:
    from .rundir import check_output_file

    check_output_file(path, force=force)  # exists without --force, a directory, unwritable parent


def _one_line_warnings(original):
    """ganforge's own warnings (e.g. skipped image files) as one line each, without the
    source line Python's default format adds; other libraries' warnings keep their format.
    Ours by category (errors.warn attributes them to the first line outside ganforge, which
    for the CLI is its launcher) or, for a plain warnings.warn, by the file that warns."""
    package = str(Path(__file__).parent)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GanforgeWarning) or str(filename).startswith(package):
            if _quiet_rank():
                return  # under torchrun: said once per node, by its first rank
            print(f"ganforge: warning: {message}", file=sys.stderr, flush=True)
        else:
            original(message, category, filename, lineno, file, line)

    return show


# A config or data error of a torchrun rank other than its node's first waits this long before it
# is said: the first rank, which meets the same error, says it, and torchrun then stops the others
# (it looks every 0.1 s), so the line appears once per node; had the first rank not failed, the
# line still appears, late. 2 s had been too short on a loaded 2-core machine: the first rank,
# still importing torch, met the error after the wait, and the line appeared twice
QUIET_RANK_DELAY_S = 10.0


def _quiet_rank() -> bool:
    """Whether this process is a torchrun rank other than its node's first (LOCAL_RANK > 0):
    ganforge's warnings are the first rank's too and are said by it alone, and its config and
    data errors wait (QUIET_RANK_DELAY_S). Other errors (a failed peer, a device) are each
    rank's own and are said at once."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("LOCAL_RANK", "0")) > 0
    except ValueError:
        return False


# ----------------------------------------------------------------------------- commands


def cmd_presets(args) -> int:
    from .config import preset_dir, list_presets
    from .registry import closest

    presets = list_presets()
    if args.name is not None:  # its YAML as shipped: `ganforge presets NAME > my.yaml` starts a config
        if args.name not in presets:
            raise ConfigError(f"unknown preset '{args.name}'{closest(args.name, presets)}; run "
                              f"'ganforge presets' to list them")
        sys.stdout.write((preset_dir() / f"{args.name}.yaml").read_text())
        return 0
    width = max(map(len, presets))
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _launch_torchrun(args, cfg) -> int:
    """``ganforge train ... --nproc N``: the same command under torchrun on this machine, once
    ``cfg`` (the config it will train) has been checked here, so that a mistake is one line."""
    from .objectives.base import check_training
    from .rundir import RunLock, check_new_run_dir, is_locked
    from .training.distributed import CHECKED_BY_LAUNCHER, TORCHRUN_CODE, World, local_batch

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {args.nproc}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.nproc > cpus and not _on_gpus(cfg):
        print(f"ganforge: warning: --nproc {args.nproc} on {cpus} CPU cores: the processes share the cores "
              f"(slower than fewer), and each holds its own copy of the data and networks (memory "
              f"grows with N); --nproc {cpus} or less", file=sys.stderr, flush=True)
    local_batch(cfg.train.batch_size, World(0, args.nproc), cfg.model.pac)
    check_training(cfg, args.nproc, new=not args.resume)
    if args.out and not args.resume:  # once here, not once per rank under torchrun's traceback
        check_new_run_dir(Path(args.out), force=args.force)
    if args.out and args.resume and is_locked(Path(args.out)):  # each rank would say it
        RunLock(Path(args.out)).acquire().release()  # RunBusy, naming the process that holds it
    argv = [a for a in (args.config,) if a] + list(args.overrides)
    for flag, value in (("--out", args.out), ("--steps", args.steps), ("--data-dir", args.data_dir)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, on in (("--resume", args.resume), ("--force", args.force),
                                   ("--quiet", args.quiet), ("--no-provenance", args.no_provenance)) if on]
    cmd = [sys.executable, "-c", TORCHRUN_CODE, "--standalone",  # torch.distributed.run, quiet on a signal
           f"--nproc_per_node={args.nproc}", "-m", "ganforge", "train", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), CHECKED_BY_LAUNCHER: "1"}
    return _run_passing_signals_on(cmd, env, Path(args.out) if args.out else None)


def _on_gpus(cfg) -> bool:
    """Whether a --nproc launch trains on CUDA GPUs (one process per GPU), not on CPU cores."""
    import torch

    return cfg.train.device != "cpu" and not cfg.train.device.startswith("mps") and torch.cuda.is_available()


def _run_passing_signals_on(cmd: list[str], env: dict[str, str], out: Path | None = None) -> int:
    """Run torchrun (in a session of its own) and wait for it. The first SIGINT or SIGTERM that
    reaches this launcher is passed on to torchrun, which passes it to the ranks: they stop at the
    same step and save, and rank 0 says how to continue; this waits for them, then exits 130 or
    143 and says nothing itself. A second Ctrl-C goes to the ranks themselves, which stop at once
    and say what the run keeps, as a second Ctrl-C does in one process. A signal before torchrun
    started the ranks stops it at once, and as no rank has said anything, this says that nothing
    was written to ``out``. SIGHUP (the terminal closed) is passed on as SIGTERM: torchrun, in its
    own session, would not see it and would train on to the end without a terminal."""
    import signal
    import subprocess

    from .signals import REPEAT_SECONDS
    from .training.distributed import STOPPED_BEFORE_RANKS, child_pids

    def forwarded(signum: int) -> int:
        return signal.SIGTERM if signum == signal.SIGHUP else signum

    proc = None
    stop: list[int] = []  # the signals received, in order
    passed = at_once = False
    last = [float("-inf")]  # when the last signal came

    def pass_on(signum, frame) -> None:
        nonlocal passed, at_once
        now, before = time.monotonic(), last[0]
        last[0] = now
        if stop and signum == stop[-1] and now - before < REPEAT_SECONDS:
            return  # the same signal twice at once (GNU timeout sends it to the command, then to its
            # process group): one stop, not a second Ctrl-C
        stop.append(signum)
        if proc is None or proc.returncode is not None:
            return  # passed on once torchrun has started (below); nothing left to stop
        if not passed:
            passed = True
            os.kill(proc.pid, forwarded(stop[0]))
        elif signum == signal.SIGINT and not at_once:  # torchrun would pass it on as SIGTERM; where
            at_once = True                              # its ranks cannot be found (no /proc), it does
            for pid in child_pids(proc.pid) or [proc.pid]:
                with contextlib.suppress(ProcessLookupError):  # it has just ended
                    os.kill(pid, signal.SIGINT)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, pass_on)
    except ValueError:  # not the main thread: the signals stay the caller's to handle
        pass
    try:
        if stop:  # before torchrun started: there is nothing to stop
            return _stopped_before_ranks(stop[0], out, "--resume" in cmd)
        proc = subprocess.Popen(cmd, env=env)
        if stop and not passed:  # it came while torchrun was starting
            passed = True
            os.kill(proc.pid, forwarded(stop[0]))
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # not from our handler (a caller's, off the main thread): the
                continue               # ranks stop, save and say so; wait for them
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stop and code in (STOPPED_BEFORE_RANKS, -forwarded(stop[0])):  # the latter: as torchrun began
        return _stopped_before_ranks(stop[0], out, "--resume" in cmd)
    if stop and code != 0:  # 130 or 143, as a shell reports a process the signal stopped: the one
        return 128 + forwarded(stop[0])  # the ranks got (a SIGHUP had given 129 after "stopped by SIGTERM")
    return 128 - code if code < 0 else code


def _stopped_before_ranks(signum: int, out: Path | None, resume: bool = False) -> int:
    """Say that a stop signal ended a --nproc launch before torchrun started its ranks, which
    would have said what the run keeps: nothing was written (the launcher only checked --out);
    a resumed run is as it was (a bare "nothing was written to RUN" had read as a lost run)."""
    import signal

    where = f" to {out}" if out is not None else ""
    said = f"stopped by {signal.Signals(signum).name} before training started; nothing was written{where}"
    if resume and out is not None:
        said += f", which is as it was; continue with: ganforge train --resume --out {shell_arg(out)}"
    print(f"ganforge: {said}", file=sys.stderr, flush=True)
    return 128 + signum


def cmd_train(args) -> int:
    """Train; a --nproc launch starts torchrun. SIGINT and SIGTERM stop the start at once, from
    the first moment (importing torch takes seconds) until the trainer listens, and say so."""
    try:
        with _startup_signals() as starting:
            return _train(args, starting)
    except _BeforeTraining as exc:  # before api.train (which says its own): nothing was written
        return _stopped_before_training(exc.signum, Path(args.out) if args.out else None, args.resume)


# The exit code of a rank that torchrun stopped while the ranks started, after another one failed:
# it says nothing, and torchrun() names the failed rank (distributed.STOPPED_WITH_THE_OTHERS, not
# imported where torch may be half-imported, as the file distributed.STOPPED_AFTER_A_FAILURE names)
STOPPED_WITH_THE_OTHERS = 4


def _stopped_after_a_failure() -> bool:
    """Whether this torchrun rank's stop signal is torchrun's, after another rank failed."""
    marker = os.environ.get("GANFORGE_STOPPED_AFTER_A_FAILURE")
    return _under_torchrun() and bool(marker) and os.path.exists(marker)


def _stopped_before_training(signum: int, out: Path | None, resume: bool = False) -> int:
    """A stop signal before api.train began: one process, a --nproc launcher and rank 0 say that
    nothing was written; the other ranks say nothing, nor does a rank torchrun stopped because
    another failed (torchrun's wrapper says which)."""
    if _stopped_after_a_failure():
        return STOPPED_WITH_THE_OTHERS
    if _under_torchrun() and os.environ.get("RANK", "0") != "0":
        return 128 + signum
    return _stopped_before_ranks(signum, out, resume)


def _under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _same_value(text: str, value) -> bool:
    """Whether an override's text gives ``value`` (2e3 and 2000 for --steps 2000)."""
    if text == str(value):
        return True
    try:
        return isinstance(value, int) and whole_number(text) == value
    except argparse.ArgumentTypeError:
        return False


def _train(args, starting: _Starting) -> int:
    """``starting``: cmd_train's ``_startup_signals()``, ended once api.train returns."""
    from . import api, config
    from .training.distributed import world_from_env

    if args.resume and args.force:  # before a torchrun launch, so that it is said once
        raise ConfigError("--resume continues the run in --out and --force replaces it; pass one of them")
    launch = args.nproc is not None and not world_from_env().enabled
    main_rank = world_from_env().is_main and not launch
    overrides = list(args.overrides)
    for flag, key, value in (("--steps", "train.steps", args.steps), ("--data-dir", "data.data_dir", args.data_dir)):
        if value is None:
            continue
        # the shorthand had won over its key whatever the order, with no word of the other value
        given = [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].strip() == key]
        if given and any(not _same_value(v, value) for v in given):
            raise ConfigError(f"{flag} {value} and {key}={given[-1]} disagree; pass one of them")
        overrides.append(f"{key}={value}")
    if args.no_provenance:
        overrides.append("train.provenance=false")
    new_run = args.out is not None and (not Path(args.out).exists() or (
        Path(args.out).is_dir() and not any(Path(args.out).iterdir())))
    if args.resume and args.config is not None and new_run:
        # a restart-safe launch (a PyTorchJob, a requeued SLURM job) passes --resume every time:
        # with a preset and no run in --out yet, it starts the run
        args.resume = False
        if main_rank:
            print(f"ganforge: no run in {args.out} yet: starting one from {args.config} (--resume "
                  f"continues it after a restart)", flush=True)
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out DIR, the run directory to continue")
        cfg = api.resume_config(Path(args.out), overrides)
        if args.config is not None and main_rank:
            print(f"ganforge: --resume continues {args.out} with its saved config; {args.config} was not "
                  f"read (change settings with key=value overrides)", flush=True)
        name = Path(args.out).name
    else:
        if args.config is None:
            raise ConfigError("name a preset or a YAML file: ganforge train dcgan-fashion-mnist "
                              "(ganforge presets lists them)")
        name, cfg = config.load_config(args.config, overrides)
    if launch:
        return _launch_torchrun(args, cfg)
    run_dir = Path(args.out) if args.out else api.default_run_dir(name)
    world = world_from_env()
    on = (f" on {world.size} processes (batch {cfg.train.batch_size}, {cfg.train.batch_size // world.size} "
          f"per process)" if world.enabled else "")

    chosen = [run_dir]  # the run directory train() took (a default one may get a -2 suffix)

    def announce(run_dir: Path, data: str | None = None) -> None:  # once every check has passed:
        chosen[0] = run_dir  # a refusal is not preceded by it; data: "40 images" (api.train's on_start)
        of = f" ({data})" if data else ""
        print(f"ganforge: resuming {run_dir} up to step {cfg.train.steps}{on}{of}" if args.resume else
              f"ganforge: training {name} for {cfg.train.steps} step{'' if cfg.train.steps == 1 else 's'}{on} -> "
              f"{run_dir}{of}", flush=True)

    try:
        result = api.train(cfg, run_dir, name=name, resume=args.resume, force=args.force,
                           progress=not args.quiet, on_start=announce)
    except TrainingInterrupted as stop:  # saved: said below with the resume command
        starting.end()
        result = stop.result
    except KeyboardInterrupt as exc:  # a second Ctrl-C, or a signal before the trainer listened
        starting.end()
        started = isinstance(exc, _BeforeTraining)
        if started and _stopped_after_a_failure():  # torchrun's stop: its wrapper names the failed rank
            return STOPPED_WITH_THE_OTHERS
        if main_rank:
            _say_what_survived(chosen[0], before_training=exc.signum if started else None)
        return 128 + exc.signum if started else 130
    starting.end()
    run_dir = result.run_dir  # under torchrun: rank 0's choice
    if not main_rank:
        return {None: 0, "SIGINT": 130, "SIGPIPE": 141}.get(result.interrupted, 143)
    samples = sorted((run_dir / "samples").glob("step_*.png"))
    if result.interrupted == "SIGPIPE":  # the reader of our output went away: said where it can be read
        print(f"ganforge: stopped at step {result.step}: the program reading ganforge's output exited (a "
              f"closed pipe); checkpoint saved to {result.checkpoint}. Continue with: ganforge train "
              f"--resume --out {shell_arg(run_dir)}{nproc_flag()}", file=sys.stderr, flush=True)
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away
    if result.interrupted:
        print(f"ganforge: stopped by {result.interrupted} at step {result.step}; checkpoint saved "
              f"to {result.checkpoint}. Continue with: ganforge train --resume --out "
              f"{shell_arg(run_dir)}{nproc_flag()}")
        return 130 if result.interrupted == "SIGINT" else 143
    if args.resume and result.step == result.start:
        print(f"ganforge: {run_dir} is already at step {result.step} of train.steps={cfg.train.steps}: "
              f"nothing to train. To continue, raise it: ganforge train --resume --out "
              f"{shell_arg(run_dir)}{nproc_flag()} "
              f"train.steps={result.step + cfg.train.steps}")
    if result.stopped:  # eval.patience (or a hook, from Python): not an error, the run can go on
        from .rundir import resume_command

        go_on = resume_command(run_dir, "eval.patience=0" if result.stopped.get("metric") is not None else "")
        print(f"ganforge: stopped early at step {result.step} of {cfg.train.steps}: {result.stopped['reason']}. "
              f"To train on: {go_on}")
    else:
        print(f"ganforge: done at step {result.step}")
    print(f"  samples:    {samples[-1] if samples else '(none)'}")
    print(f"  checkpoint: {result.checkpoint}")
    best = _best_checkpoint(run_dir)
    if result.checkpoint is not None and best == result.checkpoint.name:
        best = None  # the evaluation's pick is the last step: nothing more to say
    if best is not None:
        print(f"  best:       {run_dir / 'checkpoints' / best} (by eval.best={cfg.eval.best}; "
              f"--checkpoint best)")
    print(f"  metrics:    {run_dir / 'metrics.jsonl'}")
    warned = _warnings_since(run_dir / "metrics.jsonl", result.start)
    explains = "it explains it" if warned.startswith("1 warning:") else "it explains them"
    print(f"  report:     ganforge report {shell_arg(run_dir)}" + (f"  ({warned}; {explains})" if warned else ""))
    if "sample" in api.capabilities(cfg):
        from .data.toy import toy_mixture

        more = ("--n 1000 --out points.png" if toy_mixture(cfg.data.name) is not None  # 2-D points
                else f"--n {SAMPLE_N} --out grid.png")
        if best is not None:
            more = f"--checkpoint best {more}"  # the evaluation's pick, not the last step
        print(f"  more samples: ganforge sample {shell_arg(run_dir)} {more}")
    return 0


def _best_checkpoint(run_dir: Path) -> str | None:
    """The name of the checkpoint ``--checkpoint best`` loads (step_XXXXXXX), or None without one."""
    from .training import checkpoint

    try:
        return checkpoint.find(run_dir, "best").name
    except GanforgeError:
        return None


NOT_WARNINGS = ("end", "config_change", "stage")  # events of metrics.jsonl that are no trouble


def _warnings_since(metrics: Path, start: int) -> str:
    """'2 warnings: vanishing_gradients, rollback' for the monitor's events and rollbacks logged
    after step ``start`` (this call's training), '' for none: "done at step N" had been all a run
    with three rollbacks ended with."""
    import json

    kinds: list[str] = []
    try:
        with open(metrics) as f:
            for line in f:
                if '"event"' not in line:
                    continue
                record = json.loads(line)
                kind = record.get("event")
                if kind not in NOT_WARNINGS and isinstance(record.get("step"), int) and record["step"] > start:
                    kinds.append(kind)
    except (OSError, ValueError):
        return ""
    if not kinds:
        return ""
    return f"{len(kinds)} warning{'s' if len(kinds) > 1 else ''}: {', '.join(dict.fromkeys(kinds))}"


class _BeforeTraining(KeyboardInterrupt):
    """SIGINT or SIGTERM before the trainer installed its own handlers (which save and stop)."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum


class _Starting:
    """What ``_startup_signals()`` yields: ``end()`` gives the previous handlers back at once (a
    signal after training is no longer "before training"); leaving the block does it too."""

    def __init__(self, previous: dict):
        self.previous = previous

    def end(self) -> None:
        import signal

        previous, self.previous = self.previous, {}
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _startup_signals():
    """While the run starts (importing torch, the config, data, networks, run directory), SIGINT
    and SIGTERM stop it at once as _BeforeTraining: api.train removes what a new run had written,
    and the CLI says so, not "a second Ctrl-C" or a bare "interrupted". The trainer's handlers
    replace these while it trains."""
    import signal

    def stop(signum, frame):
        raise _BeforeTraining(signum)

    starting = _Starting({})
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            starting.previous[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread: the signals stay the caller's to handle
        pass
    try:
        yield starting
    finally:
        starting.end()


def _say_what_survived(run_dir: Path, before_training: int | None = None) -> None:
    """After a second Ctrl-C, or a signal (``before_training``) while the run was starting: the
    checkpoint the run keeps and how to continue, or that none is left."""
    import signal

    from .training import checkpoint as ckpt

    try:
        kept = ckpt.find(run_dir)
    except GanforgeError:
        kept = None
    if before_training is not None:
        how = f"stopped by {signal.Signals(before_training).name} before training started"
        said = (f"{how}; {run_dir} keeps nothing of this start, so start again" if kept is None else
                f"{how}; the run keeps {kept}. Continue with: ganforge train --resume --out "
                f"{shell_arg(run_dir)}{nproc_flag()}")
    elif kept is None:
        said = f"stopped at once by a second Ctrl-C; {run_dir} keeps no checkpoint, so start again"
    else:
        said = (f"stopped at once by a second Ctrl-C; the run keeps {kept} (steps trained after it, "
                f"if any, are lost). Continue with: ganforge train --resume --out {shell_arg(run_dir)}{nproc_flag()}")
    if before_training is None:
        _correct_end_record(run_dir, kept)
    print(f"ganforge: {said}", file=sys.stderr, flush=True)


def _correct_end_record(run_dir: Path, kept: Path | None) -> None:
    """The trainer writes its end record just before the checkpoint the record names (so that the
    checkpoint's metrics_bytes hold it); a second Ctrl-C in that save left metrics.jsonl, and the
    report, naming a step and checkpoint that were never written. A second end record says what
    the run keeps; a resume drops both, as it drops every line after the kept checkpoint."""
    import json

    path = run_dir / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            last = json.loads(f.read().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return
    if not isinstance(last, dict) or last.get("event") != "end" or last.get("checkpoint") == (kept and kept.name):
        return
    record = {**last, "step": int(kept.name.split("_")[-1]) if kept else 0, "how": "interrupted",
              "signal": "a second Ctrl-C", "checkpoint": kept.name if kept else None,
              "stopped_at": last.get("step")}  # the steps after the kept checkpoint are lost
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError:
        pass  # the line said on the terminal stays true


def _save_points(run, points, path: Path, suffix: str, meta) -> None:
    """Samples of a point run: ``points`` float32 [N, D] in a .npz, else a scatter plot over
    the mixture's modes."""
    import io
    import json

    import numpy as np
    from PIL import Image

    from . import provenance
    from .report.plots import points_png

    if suffix == ".npz":
        extra = {} if meta is None else {"provenance": np.array(json.dumps(meta, sort_keys=True))}
        with open(path, "wb") as f:  # a path: numpy adds ".npz" to a name that ends ".NPZ"
            np.savez_compressed(f, points=points.numpy().astype(np.float32), **extra)
        return
    png = points_png(points, data=run.config.data.name, step=run.step)
    provenance.save(Image.open(io.BytesIO(png)).convert("RGB"), path, meta)


def cmd_sample(args) -> int:
    import json

    import numpy as np

    from . import api, provenance
    from .atomic import atomic_path

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".npz"):
        sound = ("; sound comes from an audio run's ganforge vocode or ganforge convert"
                 if suffix in (".wav", ".flac", ".mp3", ".ogg") else "")
        raise ConfigError(f"--out {out}: use a .png/.jpg name for a grid or .npz for an array{sound}")
    if args.n is not None and args.n <= 0:
        raise ConfigError(f"--n must be positive, got {args.n}")
    if args.per_class is not None and args.per_class <= 0:
        raise ConfigError(f"--per-class must be positive, got {args.per_class}")
    if args.per_class is not None and args.class_ is not None:
        raise ConfigError("--per-class draws every class and --class one; pass one of them")
    if args.per_class is not None and args.n is not None:  # --per-class sets the count itself
        raise ConfigError(f"--n and --per-class cannot be combined (--per-class {args.per_class} draws "
                          f"{args.per_class} of every class); drop one of them")
    args.n = SAMPLE_N if args.n is None else args.n
    if args.pyramid and suffix == ".npz":
        raise ConfigError("--pyramid draws an image with one row per sample; use a .png/.jpg --out")
    # the run first: a mistyped run next to an earlier grid is the error to name, not the grid
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="sample")
    count = args.n if args.per_class is None else args.per_class * len(run.class_names or [1])
    api.check_sample_memory(run, count, f"--n {count}" if args.per_class is None else f"--per-class {args.per_class}")
    # the options the run refuses before an earlier grid: --force had been needed to learn of them
    if args.class_ is not None:
        run.sample_labels(1, args.class_)
    if args.truncation is not None or args.truncation_cutoff is not None:
        run.sample(0, truncation=args.truncation, truncation_cutoff=args.truncation_cutoff)
    _refuse_overwrite(out, args.force)
    if args.pyramid:
        return _sample_pyramid(run, args, out)
    from .labels import grid_columns, grid_labels

    n, labels, per_row = args.n, args.class_, grid_columns(args.n)
    if args.per_class is not None:  # conditional runs: one labeled row per class
        from .synthetic import balanced_labels, require_conditional

        labels = balanced_labels(args.per_class, len(require_conditional(run)))
        n, per_row = len(labels), args.per_class
    elif labels is None and run.class_names and suffix != ".npz":  # a grid: one class per row
        labels = grid_labels(n, len(run.class_names), per_row)  # (an array: balanced classes)
    y = run.sample_labels(n, labels)  # None for unconditional runs; a bad class fails here
    images = run.sample(n, seed=args.seed, ema=not args.no_ema, labels=y,
                        truncation=args.truncation, truncation_cutoff=args.truncation_cutoff)
    drawn = {k: v for k, v in (("truncation", args.truncation), ("truncation_cutoff", args.truncation_cutoff))
             if v is not None}  # what the grid needs to be drawn again
    meta = None if args.no_provenance else provenance.for_run(run, operation="sample", seed=args.seed,
                                                               labels=y, ema=not args.no_ema, **drawn)
    with atomic_path(out) as tmp:
        if run.point_dim is not None:  # 2-D points (toy mixtures): the array, or a scatter plot
            _save_points(run, images, tmp, suffix, meta)
        elif suffix == ".npz":
            extra = {} if y is None else {"labels": y.numpy(), "class_names": np.array(run.class_names)}
            if meta is not None:  # arrays have no metadata slot: the record rides along as JSON
                extra["provenance"] = np.array(json.dumps(meta, sort_keys=True))
            with open(tmp, "wb") as f:  # a path: numpy adds ".npz" to a.NPZ's temporary name, and
                np.savez_compressed(f, images=api.to_uint8_hwc(images), **extra)  # the rename failed
        elif args.per_class is not None or (args.class_ is None and run.class_names):  # a class per row
            from .labels import labeled_grid

            provenance.save(labeled_grid(images, y, run.class_names, per_row), tmp, meta)
        else:
            provenance.save_grid(images, tmp, meta, nrow=per_row)
    stage = run.objective.preview_caption()  # a growing run: which stage drew them (upsampled)
    print(f"ganforge: wrote {n} samples{_of_classes(y, run.class_names)} from {run.checkpoint} (step "
          f"{run.step}{f'; {stage}' if stage else ''}) to {out}")
    return 0


def _of_classes(y, names) -> str:
    """' of class Dress' (the one class asked for: the grid has no caption), ' of 10 classes', or ''
    for an unconditional run."""
    if y is None:
        return ""
    drawn = sorted(set(y.tolist()))
    return f" of class {names[drawn[0]]}" if len(drawn) == 1 else f" of {len(drawn)} classes"


def _sample_pyramid(run, args, out: Path) -> int:
    """Each sample's levels, coarse to fine, side by side (nearest-upsampled to the last size)."""
    import torch
    import torch.nn.functional as F

    from . import provenance
    from .atomic import atomic_path
    from .labels import interleaved_labels, labeled_grid
    from .synthetic import balanced_labels, require_conditional

    run.require("levels")
    n, labels = args.n, args.class_
    if args.per_class is not None:  # a row per sample: per_class rows of each class
        labels = balanced_labels(args.per_class, len(require_conditional(run)))
        n = len(labels)
    elif labels is None and run.class_names:  # one row per sample: the classes in turn
        labels = interleaved_labels(n, len(run.class_names))
    y = run.sample_labels(n, labels)
    levels = run.sample(n, seed=args.seed, ema=not args.no_ema, labels=y, return_levels=True)
    size = levels[-1].shape[-1]
    tiles = torch.stack([F.interpolate(x, size=(size, size), mode="nearest") for x in levels], 1)
    meta = None if args.no_provenance else provenance.for_run(run, operation="sample --pyramid", seed=args.seed,
                                                               labels=y, ema=not args.no_ema)
    with atomic_path(out) as tmp:  # [n, levels, C, H, W] -> one row of levels per sample
        if y is not None and args.class_ is None:  # rows of several classes: each row named
            picture = labeled_grid(tiles.flatten(0, 1), y.repeat_interleave(len(levels)), run.class_names,
                                   len(levels))
            provenance.save(picture, tmp, meta)
        else:
            provenance.save_grid(tiles.flatten(0, 1), tmp, meta, nrow=len(levels))
    sizes = " -> ".join(f"{x.shape[-1]}" for x in levels)
    print(f"ganforge: wrote {n} pyramids{_of_classes(y, run.class_names)} ({sizes} px) from "
          f"{run.checkpoint} (step {run.step}) to {out}")
    return 0


def cmd_data_fetch(args) -> int:
    from . import data

    print(data.fetch(args.name, data_dir=args.data_dir))
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    p = _Parser(prog="ganforge", description="Train, evaluate and diagnose GANs.",
                epilog="Families, losses, architectures, datasets or metrics registered outside ganforge: "
                       "name their modules in GANFORGE_PLUGINS (comma-separated, importable), which every "
                       "command imports first; README, 'A new GAN family'.")
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("presets", help="list the named configurations, or print one's YAML",
                       description="List the presets, or print the YAML of one (NAME) to start your own "
                                   "config: ganforge presets dcgan-fashion-mnist > my.yaml; ganforge "
                                   "train my.yaml")
    s.add_argument("name", nargs="?", metavar="NAME", help="print this preset's YAML")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("train", help="train a preset or a YAML config",
                       description="Train a GAN. Overrides are dotted key=value pairs, e.g. "
                                   "train.steps=2000 optim.d_lr=1e-4.")
    s.add_argument("config", nargs="?", metavar="PRESET|FILE.yaml")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--out", help="run directory (default runs/<preset>-<timestamp>)")
    s.add_argument("--steps", type=whole_number, help="shorthand for train.steps=N (1e4 reads as 10000)")
    s.add_argument("--data-dir", help=f"{DATA_DIR_HELP} (data.data_dir)")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out (with a preset or YAML and no run there yet: start it)")
    s.add_argument("--force", action="store_true", help="start over in an existing --out (deletes it)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine (starts torchrun; one per GPU)")
    s.add_argument("--no-provenance", action="store_true",
                   help="sample grids without the 'generated by ganforge' metadata "
                        "(train.provenance=false)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    add_run_arguments(s, out={"default": "samples.png", "help": "grid .png/.jpg or array .npz (default samples.png)"},
                      force="overwrite --out if it exists")
    s.add_argument("--n", type=int, help=f"number of samples (default {SAMPLE_N}; not with --per-class)")
    s.add_argument("--seed", type=seed, default=0,
                   help="noise seed: the same seed draws the same samples (default 0)")
    s.add_argument("--class", dest="class_", metavar="K",
                   help="conditional runs: generate class K (index or name; a class named K, such as a "
                        "class folder named 2, comes before index K) only")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="runs that support it: trade diversity for quality (StyleGAN psi in "
                        "[0, 1], BigGAN threshold > 0)")
    s.add_argument("--truncation-cutoff", type=int, metavar="L",
                   help="style-based runs: truncate only the layers below L (e.g. 4: coarse styles)")
    add_device_argument(s)
    s.add_argument("--per-class", type=int, metavar="N",
                   help="conditional runs: N samples of every class, a grid with one labeled row "
                        "per class (not with --n)")
    s.add_argument("--pyramid", action="store_true",
                   help="multi-resolution runs (LAPGAN): one row per sample showing each level, "
                        "coarse to fine (conditional: the classes in turn, each row named; with "
                        "--per-class N, N rows of every class)")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("data", help="prepare datasets")
    data_sub = s.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    s.actions = data_sub  # command modules add `ganforge data ACTION`s here (commands/audio.py)
    f = data_sub.add_parser("fetch", help="find or download a dataset and say where it came from")
    f.add_argument("name", help="fashion-mnist, mnist, cifar10, folder:PATH, toy:ring8, ...; photos, "
                                "photos:SPLIT and audio:PATH are read directly by training (checked, "
                                "nothing to fetch)")
    f.add_argument("--data-dir", help="the folder (or its NAME subfolder) that holds the dataset; an error "
                                      "if it does not (also: GANFORGE_DATA)")
    f.set_defaults(func=cmd_data_fetch)

    # Commands of other areas live in ganforge/commands/<area>.py (every module there, in name
    # order), each with register(subparsers, parser_class); they import heavy modules inside
    # their functions, so `ganforge --help` stays fast.
    from . import commands

    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")):
        register = getattr(importlib.import_module(f"ganforge.commands.{module}"), "register", None)
        if register is not None:  # a module without one is a helper of the others
            register(sub, _Parser)
    return p


def parse_args(argv: list[str], parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The command line's arguments (a usage error exits with code 2, one line)."""
    parser = parser or build_parser()
    # Options may come after key=value overrides (`train P a=1 --steps 5 b=2`): collect the rest.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) == "train" and all("=" in e and not e.startswith("-")
                                                             for e in extra):
            args.overrides.extend(extra)
        else:
            _unrecognized(_deepest_parser(parser, argv), extra)
    if (getattr(args, "command", None) == "train" and args.config and "=" in args.config
            and not args.config.endswith((".yaml", ".yml")) and not Path(args.config).is_file()):
        # `ganforge train --resume --out DIR train.steps=100`: the first positional is an override
        # (a config file whose name holds '=' stays the config).
        args.overrides.insert(0, args.config)
        args.config = None
    _expand_home(args)
    return args


def _expand_home(args: argparse.Namespace) -> None:
    """A path argument that starts with ``~`` means the home folder, wherever the shell left it
    unexpanded (``--out=~/runs/x``, a quoted value from YAML or CI): ``--out=~/g.png`` had written
    ./~/g.png, a folder named ``~`` that ``rm -rf ~`` would confuse with home. Every string (and
    list of strings) the parser gave is a path, a name or a number, and only a path starts with
    ``~/`` (overrides are ``key=value``)."""
    def home(value):
        if isinstance(value, str) and (value == "~" or value.startswith("~/")):
            return os.path.expanduser(value)
        return value

    for key, value in vars(args).items():
        if isinstance(value, list):
            setattr(args, key, [home(v) for v in value])
        else:
            setattr(args, key, home(value))


def _deepest_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``argv`` names (``ganforge bench modes``'s), whose --help
    lists the options it takes: the top-level help, which an unknown option had pointed to, does
    not."""
    for token in argv:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            break
        if token in sub.choices:
            parser = sub.choices[token]
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> None:
    """The usage error for arguments ``parser`` does not take, with the option meant when one
    is close (``--nn`` -> ``--n``)."""
    import difflib

    options = [o for a in parser._actions for o in a.option_strings]
    close = [m for e in extra if e.startswith("-")
             for m in difflib.get_close_matches(e.split("=")[0], options, n=1)]
    hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
    parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _parser_of(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``ganforge data``'s, listing its actions), or ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def _import_plugins() -> None:
    """Import the modules named in $GANFORGE_PLUGINS (comma-separated): what a module outside
    ganforge registers (a family, loss, architecture, dataset, ...) is unknown to the CLI until
    it is imported, and the CLI had no way to import one."""
    for module in filter(None, (m.strip() for m in os.environ.get("GANFORGE_PLUGINS", "").split(","))):
        try:
            importlib.import_module(module)
        except Exception as exc:  # any error of the plugin's own code: one line, not a traceback
            missing = isinstance(exc, ModuleNotFoundError) and f"{module}.".startswith(f"{exc.name}.")
            where = " (is its folder on PYTHONPATH?)" if missing else ""
            # ganforge's own refusal (a registration of the wrong kind) is a sentence already
            kind = "" if isinstance(exc, ConfigError) else f"{type(exc).__name__}: "
            raise ConfigError(f"GANFORGE_PLUGINS: cannot import module '{module}': {kind}"
                              f"{' '.join(str(exc).split())}{where}; fix it or remove it from "
                              f"GANFORGE_PLUGINS") from exc


def _printable_paths():
    """Let stdout print a path that is not valid UTF-8 (a folder named in Latin-1, which Python
    holds as surrogate escapes) as stderr does, ``\\udce9``: in a UTF-8 locale its strict
    encoder had raised at "wrote ... to PATH", after the work was done. Returns what puts the
    stream back."""
    stream = sys.stdout
    if getattr(stream, "errors", None) != "strict" or not hasattr(stream, "reconfigure"):
        return lambda: None
    try:
        stream.reconfigure(errors="backslashreplace")
    except (OSError, ValueError, AttributeError, TypeError):
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            stream.reconfigure(errors="strict")
    return restore


def _too_long(exc: OSError) -> str:
    """The one line for a path the system refused as too long (ENAMETOOLONG), wherever it was met
    (``--out``, ``data.name=folder:``, ``--ref``, a file argument): a name of more than 255 bytes
    had been a traceback."""
    from .atomic import NAME_MAX

    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    for path in paths:
        for part in Path(path).parts:
            size = len(os.fsencode(part))
            if size > NAME_MAX:
                shown = f"{part[:40]}..." if len(part) > 43 else part
                return (f"{shown}: file name too long ({size} bytes; {NAME_MAX} at most per name); "
                        f"choose a shorter name")
    if paths:
        shown = f"...{paths[0][-60:]}" if len(paths[0]) > 63 else paths[0]
        return f"{shown}: path too long ({len(os.fsencode(paths[0]))} bytes); choose a shorter path"
    return f"a file name is too long ({NAME_MAX} bytes at most per name); choose a shorter name"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _import_plugins()  # before parsing: a plugin's names are then valid everywhere
    except ConfigError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    args = parse_args(argv, parser)
    if not getattr(args, "func", None):  # `ganforge` alone, or a command of actions without one
        _parser_of(parser, getattr(args, "command", None)).print_help()
        return EXIT_USAGE
    original_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warnings(original_showwarning)
    restore_stdout = _printable_paths()
    try:
        return args.func(args)
    except GanforgeError as exc:
        if isinstance(exc, (ConfigError, DataError)) and _quiet_rank():
            time.sleep(QUIET_RANK_DELAY_S)
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if not _quiet_rank():  # under torchrun: said once per node
            print("ganforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganforge provenance FILE | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away
    except OSError as exc:  # after BrokenPipeError, an OSError too
        if exc.errno != errno.ENAMETOOLONG:
            raise
        print(f"ganforge: error: {_too_long(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = original_showwarning
        restore_stdout()


if __name__ == "__main__":
    sys.exit(main())
