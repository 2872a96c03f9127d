"""Subcommands beyond the core ones in cli.py, one module per area.

Each module defines ``register(subparsers, parser_class)`` that adds its parsers with
``set_defaults(func=...)``; a func takes the parsed args and returns an exit code. Like cli.py,
a command only parses, calls the library and prints; user errors raise GanforgeError.
"""


def add_run_arguments(parser, *, checkpoint: bool = True, ema: bool = True,
                      out: dict | None = None, force: str | None = None,
                      run_help: str = "a training run directory (its --out)") -> None:
    """The arguments every command on a trained run repeats: RUN, --checkpoint, --no-ema,
    --out (``out``: add_argument keywords, e.g. {"required": True, "help": ...}) and --force
    (``force``: its help text)."""
    parser.add_argument("run_dir", metavar="RUN", help=run_help)
    if checkpoint:
        parser.add_argument("--checkpoint", default="latest", help="latest, best or step_XXXXXXX")
    if ema:
        parser.add_argument("--no-ema", action="store_true",
                            help="use the raw generator, not its EMA copy")
    if out is not None:
        parser.add_argument("--out", **out)
    if force is not None:
        parser.add_argument("--force", action="store_true", help=force)
