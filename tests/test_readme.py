"""The documentation names only commands that exist: every line that starts with ``ganforge ``
in a shell block of README.md and docs/*.md parses with the command line's own parser (its
command, its options), every preset it trains exists, and every `ganforge COMMAND` named in the
prose is a command. (Lines like ``python -m ganforge ...`` or ``VAR=1 ganforge ...`` are not
checked.)"""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from conftest import ROOT
from ganforge import cli
from ganforge.config import list_presets

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"", "bash", "sh", "shell", "console"}


def shell_lines(text: str) -> list[str]:
    """The ``ganforge ...`` lines of the fenced shell blocks (continuations joined, comments kept)."""
    lines, lang = [], None
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            lang = stripped[3:].strip() if lang is None else None
            continue
        if lang in SHELL and stripped.removeprefix("$ ").startswith("ganforge "):
            lines.append(stripped.removeprefix("$ "))
    return lines


COMMANDS = [(doc.name, line) for doc in DOCS for line in shell_lines(doc.read_text())]


def test_the_docs_have_commands_to_check():
    assert len(COMMANDS) >= 40  # the README's quick start, export/serve, audio, ... (a parser that finds none fails)


@pytest.mark.parametrize("doc, line", COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(COMMANDS)])
def test_documented_command_parses(doc, line):
    tokens = shlex.split(line, comments=True)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = cli.parse_args(tokens[1:])
    except SystemExit as exc:
        raise AssertionError(f"{doc}: `{line}` is not a valid command: {err.getvalue().strip()}") from exc
    assert getattr(args, "func", None), f"{doc}: `{line}` names no command"
    config = getattr(args, "config", None) if args.command == "train" else None
    if config and not config.endswith((".yaml", ".yml")) and "/" not in config:
        assert config in list_presets(), f"{doc}: `{line}` trains preset '{config}', which does not exist"


def test_commands_named_in_the_prose_exist():
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    for doc in DOCS:
        named = set(re.findall(r"`ganforge ([a-z][a-z-]*)", doc.read_text()))
        assert named, doc
        assert named <= commands, f"{doc.name} names commands that do not exist: {sorted(named - commands)}"
