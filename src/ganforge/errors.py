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


def shell_arg(value) -> str:
    """``value`` as one argument of a command a message tells the user to paste into a shell
    (a path with spaces or quotes quoted, a plain one unchanged)."""
    import shlex

    return shlex.quote(str(value))
