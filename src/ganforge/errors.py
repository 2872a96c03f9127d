"""Errors a user can cause. The CLI prints their one-line message and exits with code 2. And
ganforge's warnings, which the CLI prints as one line each."""
import sys
import warnings


class GanforgeError(Exception):
    """A problem the user can fix: the message names the problem and the fix, on one line."""


class ConfigError(GanforgeError):
    """A bad preset, YAML file, override key or value."""


class DataError(GanforgeError):
    """A dataset that cannot be found, fetched, verified or read."""


class CheckpointError(GanforgeError):
    """A run directory or checkpoint that is missing, corrupt or incompatible."""


class TrainingDiverged(GanforgeError):
    """Training produced non-finite values and could not recover within the allowed rollbacks."""


class StorageError(GanforgeError):
    """A path that cannot be written: read-only, full, missing, not a directory, no permission."""


class DistributedError(GanforgeError):
    """Another rank of a multi-process run stopped (killed, out of memory, an error of its own)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped ``ganforge.train``, which saved a checkpoint first: ``result`` (a
    FitResult) says where. A KeyboardInterrupt, so that the Ctrl-C stops a script or notebook cell
    as it stops any Python code (train had returned, and a sweep's next run had trained on)."""

    def __init__(self, result, resume_hint: str):
        self.result = result
        kept = f"checkpoint saved to {result.checkpoint}" if result.checkpoint else "no checkpoint saved"
        super().__init__(f"stopped by {result.interrupted} at step {result.step}; {kept}. {resume_hint}")


def shell_arg(value) -> str:
    """``value`` as one argument of a command a message tells the user to paste into a shell
    (a path with spaces or quotes quoted, a plain one unchanged; one that starts with a dash
    prefixed with ./, or the command had read it as an option: "--out -r3" had failed)."""
    import shlex

    text = str(value)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


class GanforgeWarning(UserWarning):
    """What ganforge warns of (skipped files, unbalanced classes, a resume on other data): the CLI
    prints these as one line each; ``warnings.filterwarnings("ignore", category=GanforgeWarning)``
    silences them in Python."""


def warn(message: str) -> None:
    """Warn with ``message``, attributed to the first line outside ganforge: the caller's
    ``ganforge.train(...)`` in a script or notebook (or a DataLoader's, when a streamed file is
    read), not a line of ganforge's own. Counted per call, as the depth differs by path, and
    ``skip_file_prefixes`` needs Python 3.12."""
    frame, level = sys._getframe(0), 1  # this function: stacklevel=1
    while frame is not None and _ours(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, GanforgeWarning, stacklevel=level)


def _ours(frame) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == "ganforge" or name.startswith("ganforge.")
