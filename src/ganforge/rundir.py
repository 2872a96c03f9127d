"""Who may write a run directory, and what ``--force`` may delete.

- **One process per run directory.** ``train`` (fresh, ``--resume`` or ``--force``) holds an
  advisory ``fcntl.flock`` on ``RUN/.ganforge.lock`` for as long as it trains; a second process
  is refused with one line naming the PID that holds it. The kernel drops the lock when its
  process ends, however it ends (SIGKILL included), so a lock file left by a killed run never
  blocks the next one: only a lock that a live process holds does.
  We use fcntl directly rather than the ``filelock`` package because ``filelock`` opens the file
  with O_TRUNC on every attempt, so a refused process would erase the holder's PID that the
  refusal reports. Where fcntl does not exist (Windows) there is no lock.
- **``--force`` deletes only a ganforge run**: a directory holding ``config.yaml`` and
  ``checkpoints/`` or ``metrics.jsonl`` (or ganforge's own lock file, left by a start that
  failed before its first checkpoint), that no live process holds. Anything else is refused,
  except what an interrupted deletion left: a run is emptied with config.yaml (what says it is a
  run) last and the lock file kept, so a folder that still holds ganforge's own lock file is
  what is left of a run, which ``--force`` may finish deleting.
- **A default run directory is never shared**: ``runs/NAME-TIMESTAMP`` has one-second
  resolution, so a run started in the same second as another (a loop over seeds, several
  commands at once) takes ``-2``, ``-3``, ... claimed with an atomic ``mkdir``; a given
  ``--out`` that exists is refused as above.
- **Outputs of other commands** (``sample --out``, ``translate --out``, ...) are checked before
  any work: a path whose parent is a file, an existing directory where a file goes, a read-only
  or missing parent, each get one line.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from .atomic import broken_link
from .errors import CheckpointError, ConfigError, StorageError, shell_arg

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".ganforge.lock"
# In a run trained on a dataset passed from Python (api.train's dataset=): that dataset's name and
# size. The saved config keeps its data.name (the preset's), so this file is what says the run's
# data came from Python: a resume must pass it again, the report and the model card name it.
GIVEN_DATASET = "dataset.json"
GIVEN_HOOKS = "hooks.json"  # RUN/hooks.json: the hooks passed from Python that evaluate the run


def nproc_flag() -> str:
    """" --nproc N" in a process of a run on N processes of one machine (torchrun sets WORLD_SIZE
    and LOCAL_WORLD_SIZE; `ganforge train --nproc N` runs torchrun so), for the resume command it
    prints: without it, the pasted command had resumed on one process, which is not bit-exact
    with the run. "" otherwise (one process, or several machines, which are launched as they were)."""
    size, local = os.environ.get("WORLD_SIZE", ""), os.environ.get("LOCAL_WORLD_SIZE", "")
    return f" --nproc {size}" if size.isdigit() and int(size) > 1 and size == local else ""


def resume_command(run_dir: Path, overrides: str = "") -> str:
    """How to continue the run with ``overrides`` ("key=value ..."): the CLI's resume (with the run's
    --nproc, see nproc_flag), or, for a run given ``hooks=`` or ``dataset=`` from Python,
    api.train's (the CLI refuses those runs)."""
    run_dir = Path(run_dir)
    hooks, given = (run_dir / GIVEN_HOOKS).is_file(), (run_dir / GIVEN_DATASET).is_file()
    if not (hooks or given):
        return (f"ganforge train --resume --out {shell_arg(run_dir)}{nproc_flag()}"
                + (f" {overrides}" if overrides else ""))
    passed = (", hooks=..." if hooks else "") + (", dataset=..." if given else "")
    return (f"ganforge.train(cfg, {str(run_dir)!r}, resume=True{passed})"
            + (f" with {overrides} set in cfg" if overrides else ""))


# How train's messages name its options: the command's flag and the Python argument of
# ganforge.train, so that one line serves `ganforge train` and `api.train(cfg, run_dir, ...)`
RESUME, FORCE, OUT = ("--resume (Python: resume=True)", "--force (Python: force=True)",
                      "--out (Python: run_dir)")


class RunBusy(CheckpointError):
    """Another live process holds the run directory."""


def storage_error(exc: OSError, what: str, fix: str) -> StorageError:
    """One line for an OSError met while writing ``what``."""
    return StorageError(f"cannot write {what}: {exc.strerror or type(exc).__name__}; {fix}")


# ----------------------------------------------------------------------------- what a run is


def is_run_dir(path: Path) -> bool:
    """True for a directory ganforge recognisably made: config.yaml and checkpoints/ or
    metrics.jsonl (or the lock file of a start that failed before its first checkpoint)."""
    path = Path(path)
    return ((path / "config.yaml").is_file()
            and ((path / "checkpoints").is_dir() or (path / "metrics.jsonl").is_file()
                 or (path / LOCK_NAME).is_file()))


def is_half_deleted(path: Path) -> bool:
    """What a ``--force`` or a failed start left when it was killed while deleting a run: no
    config.yaml but ganforge's own lock file, which no other folder holds (a run is emptied
    with the lock file kept to the end). Such a folder had been neither resumable nor deletable."""
    path = Path(path)
    return not (path / "config.yaml").is_file() and (path / LOCK_NAME).is_file()


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)


def _delete_contents(run_dir: Path, *, ignore_errors: bool = False) -> None:
    """Delete what ``run_dir`` holds but its lock file, config.yaml last: killed at any moment,
    it leaves a run (config.yaml with the lock file) or a half-deleted one (the lock file with
    or without other leftovers), both of which the next ``--force`` accepts."""
    for name in sorted(_entries(run_dir), key=lambda name: name == "config.yaml"):
        path = run_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            if not ignore_errors:
                raise


# ----------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive advisory lock on ``run_dir`` (which must exist), held until ``release``."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, f"the lock file {self.path}",
                                f"choose a writable {OUT}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise run_busy(self.run_dir) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (harmless, see above)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_busy(run_dir: Path, *, force: bool = False) -> RunBusy:
    """The one line for a run directory a live process holds (``force``: said as --force's refusal)."""
    holder = holder_pid(run_dir)
    who = f"process {holder}" if holder else "another process"
    return RunBusy(f"{f'{FORCE} refused: ' if force else ''}run directory {run_dir} is in use by "
                   f"{who} (a ganforge train still running); wait for it to end or stop it, or "
                   f"choose another {OUT}")


def holder_pid(run_dir: Path) -> int | None:
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir`` now. A read-only probe (a shared lock tried and
    let go): taking the lock itself would write this process's PID into the lock file, which a
    report must not do, and fail on a read-only copy of a run."""
    if fcntl is None:
        return False
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no lock file: no train ever held this run
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
    finally:
        os.close(fd)  # drops the shared lock, if it was taken
    return False


# ----------------------------------------------------------------------------- train's --out


def check_new_run_dir(run_dir: Path, *, force: bool, locked_by_us: bool = False) -> None:
    """Refuse, before any work, an ``--out`` that a new run may not use (nothing is changed)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a directory; choose another {OUT}")
    if not run_dir.exists():  # a parent that is a file (afile/sub): refused now, not at its mkdir
        problem = broken_link(run_dir)
        if problem is not None:  # "cannot write run directory dangling: File exists" had said
            raise StorageError(f"cannot write run directory {run_dir}: {problem}, or choose "
                               f"another {OUT}")
        parent = run_dir.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise StorageError(f"cannot write run directory {run_dir}: {parent} is a file, not a "
                               f"directory; choose another {OUT}")
        return
    # first: another train's run (or its start, the lock file alone) is not to be resumed or
    # deleted now, and "already exists; pass --resume ... --force" had sent the user into this line
    if not locked_by_us and is_locked(run_dir):
        raise run_busy(run_dir, force=force)
    if not _entries(run_dir):
        return
    half_deleted = is_half_deleted(run_dir)
    if not is_run_dir(run_dir) and not half_deleted:  # neither resumable nor ours to delete
        entries = _entries(run_dir)
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        what = (f"{FORCE} refused: {run_dir} is not a ganforge run" if force else
                f"{run_dir} is a folder but not a ganforge run")
        raise ConfigError(f"{what} (no config.yaml with checkpoints/ or metrics.jsonl; it holds "
                          f"{shown}), so nothing was {'deleted' if force else 'written'}; choose "
                          f"another {OUT}: a new or empty folder")
    if not force and half_deleted:
        raise ConfigError(f"{run_dir} is what is left of a ganforge run whose deletion was "
                          f"interrupted (it has no config.yaml, so it cannot be resumed); pass "
                          f"{FORCE} to finish deleting it, or choose another {OUT}")
    if not force:
        raise ConfigError(f"run directory {run_dir} already exists; pass {RESUME} to continue "
                          f"it, {FORCE} to start over (deletes it), or choose another {OUT}")


def claim_run_dir(run_dir: Path, *, force: bool) -> tuple[RunLock, bool]:
    """Create (or, with ``force``, empty) ``run_dir`` for a new run and lock it.
    Returns (the held lock, whether this call created the directory)."""
    check_new_run_dir(run_dir, force=force)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"run directory {run_dir}", f"choose a writable {OUT}") from None
    lock = RunLock(run_dir).acquire()
    try:
        # Checked again under the lock: another process may have started here meanwhile.
        check_new_run_dir(run_dir, force=force, locked_by_us=True)
        if force:
            _delete_contents(run_dir)  # the lock file stays: we hold it
    except BaseException:
        lock.release()
        raise
    return lock, created


def claim_default_run_dir(run_dir: Path) -> tuple[Path, RunLock]:
    """A new, locked run directory named ``run_dir``, or ``run_dir-2``, ``-3``, ... where that
    exists: a default name (one-second timestamp) had been refused as "already exists" for the
    second run of a loop, and for one of two commands started together. mkdir either creates the
    directory or fails, so of two processes after one name only one gets it."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"run directory {run_dir}", f"choose a writable {OUT}") from None
    suffix = 1
    while True:
        path = run_dir if suffix == 1 else run_dir.with_name(f"{run_dir.name}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            suffix += 1
            continue
        except OSError as exc:
            raise storage_error(exc, f"run directory {path}", f"choose a writable {OUT}") from None
        try:
            return path, RunLock(path).acquire()
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise


def lock_existing_run(run_dir: Path) -> RunLock:
    """Lock the run directory of a ``--resume``."""
    check_resumable(run_dir)
    return RunLock(run_dir).acquire()


def check_resumable(run_dir: Path) -> None:
    """Refuse a ``--resume`` of a folder that has no config.yaml, in one line saying what to do."""
    kept = _complete_steps(run_dir)
    if not (run_dir / "config.yaml").is_file() and kept:
        # config.yaml deleted by hand: --force, which the half-deleted message offers, had deleted
        # the trained checkpoints with it. Each checkpoint's state.pt holds the config.
        state = run_dir / "checkpoints" / kept[-1] / "state.pt"
        raise CheckpointError(
            f"cannot resume: {run_dir / 'config.yaml'} is gone, but {run_dir / 'checkpoints'} still holds "
            f"{kept[-1]} (--force would delete it); restore config.yaml from a copy, or from that "
            f"checkpoint: python -c \"import torch, yaml; s = torch.load('{state}', weights_only=True); "
            f"open('{run_dir / 'config.yaml'}', 'w').write(yaml.safe_dump(s['config'], sort_keys=False))\"")
    if is_half_deleted(run_dir):
        raise CheckpointError(f"cannot resume: {run_dir} is what is left of a ganforge run whose "
                              f"deletion was interrupted (its config.yaml is gone); start a new run "
                              f"there with {FORCE}, or choose another {OUT}")
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"cannot resume: {run_dir / 'config.yaml'} not found; is {run_dir} "
                              f"a ganforge run directory? Start a new run without --resume "
                              f"(Python: resume=False)")


def check_checkpoints_left(run_dir: Path) -> None:
    """Refuse a ``--resume`` of a run that has trained but holds no checkpoint any more (deleted
    to save space, say): it had started again from step 0 without a word, and appended to the
    old run's metrics.jsonl. A run killed before its first checkpoint has no training records
    and starts from step 0 as before."""
    if _complete_steps(run_dir):
        return
    trained = _last_logged_step(run_dir / "metrics.jsonl")
    if trained:
        config = run_dir / "config.yaml"
        raise CheckpointError(
            f"cannot resume: {run_dir / 'checkpoints'} holds no checkpoint, but metrics.jsonl records "
            f"training to step {trained} (were the checkpoints deleted?); restore them, or train again "
            f"from step 0: ganforge train {shell_arg(config)} --out {shell_arg(run_dir)} --force "
            f"(deletes the rest of the run)")


def _last_logged_step(metrics: Path) -> int:
    """The highest training step metrics.jsonl records (0 for none, or no file)."""
    last = 0
    try:
        text = metrics.read_text(errors="replace")
    except OSError:
        return 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, int) and "event" not in record:
            last = max(last, step)
    return last


def _complete_steps(run_dir: Path) -> list[str]:
    """The names of the run's checkpoint folders that hold weights and state, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.glob("step_*")
                  if (p / "weights.safetensors").is_file() and (p / "state.pt").is_file())


def undo_failed_start(run_dir: Path, lock: RunLock, created: bool) -> None:
    """Remove what a new run wrote before it failed to start, so that the corrected command is
    not refused with "already exists". Only called while we hold the lock; in the order of
    ``--force`` (config.yaml, then the lock file), so that a kill meanwhile leaves a folder the
    next ``--force`` accepts."""
    _delete_contents(run_dir, ignore_errors=True)  # the error that ended the start is the one to show
    (run_dir / LOCK_NAME).unlink(missing_ok=True)
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)


def check_free_space(path: Path, need: int, what: str, *, resume: bool = False,
                     force: bool = False) -> None:
    """A write probe and a free-space check of ``path`` before a long job starts (before it is
    announced). A new run's ``path`` may not exist yet: the nearest existing folder above it is
    checked; what ``force`` will delete there counts as free. Another --out is no fix for a
    ``resume``: only freeing space is."""
    where = Path(path)
    while not where.is_dir() and where != where.parent:
        where = where.parent
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise storage_error(exc, f"{what} in {path}", "choose a writable --out") from None
    free = shutil.disk_usage(where).free
    if force and not resume and where == Path(path):
        free += _bytes_in(where)
    if free < need:
        fix = (f"free some space (the run needs {_size(need - free)} more)" if resume else
               "free some space or choose another --out")
        raise StorageError(f"not enough free space in {path}: {what} needs about {_size(need)}, "
                           f"{_size(free)} are free; {fix}")


def _bytes_in(path: Path) -> int:
    """The size of the files under ``path`` (what --force frees)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # gone meanwhile
                pass
    return total


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# ----------------------------------------------------------------------------- other outputs


def check_output_file(path: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse an output file path (given as ``flag``) that cannot or may not be written (before
    any work)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file name inside it, e.g. "
                          f"{path / 'out'}{path.suffix or '.png'}")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it or choose another "
                          f"{flag}")
    check_output_parent(path, flag=flag)


def check_output_parent(path: Path, *, flag: str = "--out") -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory (``flag``: the
    option that named ``path``, named in the advice)."""
    _check_writable_ancestor(Path(path), Path(path).parent, flag)


def check_output_dir(path: Path, *, flag: str = "--out") -> None:
    """An output folder (``flag``) that can be created, or written into where it exists: the
    nearest existing of it and its ancestors is a writable directory (before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder name")
    _check_writable_ancestor(path, path, flag)


def _check_writable_ancestor(path: Path, start: Path, flag: str) -> None:
    problem = broken_link(start)
    if problem is not None:
        raise StorageError(f"cannot write {path}: {problem}, or choose another {flag}")
    parent = start
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise StorageError(f"cannot write {path}: {parent} is a file, not a directory; choose "
                           f"another {flag}")
    if not os.access(parent, os.W_OK):
        raise StorageError(f"cannot write {path}: {parent} is not writable (read-only or no "
                           f"permission); choose another {flag}")
    try:  # os.access passes for root where no file can be made (/proc): make one and drop it
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise StorageError(f"cannot write {path}: no file can be made in {parent} "
                           f"({exc.strerror or type(exc).__name__}); choose another {flag}") from None
