"""Subcommands beyond the core ones in cli.py, one module per area.

Each module defines ``register(subparsers, parser_class)`` that adds its parsers with
``set_defaults(func=...)``; a func takes the parsed args and returns an exit code. Like cli.py,
a command only parses, calls the library and prints; user errors raise GanforgeError.
"""
