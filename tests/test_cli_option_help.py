"""Every option of every command says what it does in its --help (augment's --seed and export's
--format had said nothing, not even their defaults)."""
from __future__ import annotations

import argparse

from ganforge.cli import build_parser


def test_every_option_has_help_text():
    missing = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
            elif action.option_strings and not action.help and "--help" not in action.option_strings:
                missing.append(f"{prefix} {'/'.join(action.option_strings)}")

    walk(build_parser(), "ganforge")
    assert missing == [], missing
