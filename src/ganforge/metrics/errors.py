"""The evaluation layer's user error."""
from ..errors import GanforgeError


class EvalError(GanforgeError):
    """Evaluation cannot run as asked: missing weights, a bad target or reference, a metric that does not apply."""
