"""Errors a user can cause. The CLI prints their one-line message and exits with code 2."""


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
    (a path with spaces or quotes quoted, a plain one unchanged)."""
    import shlex

    return shlex.quote(str(value))
