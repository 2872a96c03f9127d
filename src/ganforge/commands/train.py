"""`ganforge train`: a preset or YAML config trained in this process, or under torchrun with
--nproc; what a stop (Ctrl-C, SIGTERM) before, during or after training leaves, and the command
that goes on. The parser is cli.py's; this is what the command does.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from ..errors import ConfigError, GanforgeError, TrainingInterrupted, shell_arg
from ..rundir import nproc_flag

from . import whole_number
from .sample import SAMPLE_N


def _launch_torchrun(args, cfg) -> int:
    """``ganforge train ... --nproc N``: the same command under torchrun on this machine, once
    ``cfg`` (the config it will train) has been checked here, so that a mistake is one line."""
    from ..objectives.base import check_training
    from ..rundir import RunLock, check_new_run_dir, is_locked
    from ..training.distributed import CHECKED_BY_LAUNCHER, TORCHRUN_CODE, World, local_batch

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

    from ..signals import REPEAT_SECONDS
    from ..training.distributed import STOPPED_BEFORE_RANKS, child_pids

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
    from .. import api, config
    from ..training.distributed import world_from_env

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

    def announce(run_dir: Path, data: str | None = None, step: int | None = None) -> None:
        # once every check has passed, so a refusal is not preceded by it; data: "40 images", step:
        # the checkpoint's a resume continues from (api.train's on_start)
        chosen[0] = run_dir
        of = f" ({data})" if data else ""
        at = f" from step {step:,}" if step is not None else ""
        print(f"ganforge: resuming {run_dir}{at} up to step {cfg.train.steps}{on}{of}" if args.resume else
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
        from ..rundir import resume_command

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
        from ..data.toy import toy_mixture

        more = ("--n 1000 --out points.png" if toy_mixture(cfg.data.name) is not None  # 2-D points
                else f"--n {SAMPLE_N} --out grid.png")
        if best is not None:
            more = f"--checkpoint best {more}"  # the evaluation's pick, not the last step
        print(f"  more samples: ganforge sample {shell_arg(run_dir)} {more}")
    return 0


def _best_checkpoint(run_dir: Path) -> str | None:
    """The name of the checkpoint ``--checkpoint best`` loads (step_XXXXXXX), or None without one."""
    from ..training import checkpoint

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

    from ..training import checkpoint as ckpt

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
