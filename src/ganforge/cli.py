"""The ``ganforge`` command: parse, call the library, print. No training logic lives here."""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import pkgutil
import re
import sys
import time
import warnings
from pathlib import Path

from .commands import (DATA_DIR_HELP, add_device_argument, add_provenance_argument, add_run_arguments, seed,
                       whole_number)
from .commands.sample import SAMPLE_N, cmd_sample
from .commands.train import cmd_train
from .errors import ConfigError, DataError, GanforgeError, GanforgeWarning

EXIT_USAGE = 2


# argparse's message for a value outside an argument's choices (a command, --split, --format)
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<value>[^']*)' \(choose from (?P<choices>.*)\)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(EXIT_USAGE, f"ganforge: error: {_suggest_choice(message)} (see '{self.prog} --help')\n")


def _suggest_choice(message: str) -> str:
    """argparse's "invalid choice" with the closest choice named, as flags, presets and keys are
    ("did you mean 'train'?"): a mistyped command had listed all 24 commands in a 330-character
    line (Python 3.14's suggest_on_error is not there in 3.11)."""
    import difflib

    found = _INVALID_CHOICE.search(message)
    if found is None:
        return message
    choices = re.findall(r"'([^']*)'", found.group("choices"))
    close = difflib.get_close_matches(found.group("value"), choices, n=1, cutoff=0.6)
    if not close:
        return message
    return f"{message[:found.start()]}invalid choice: '{found.group('value')}'; did you mean '{close[0]}'?"


def _one_line_warnings(original):
    """ganforge's own warnings (e.g. skipped image files) as one line each, without the
    source line Python's default format adds; other libraries' warnings keep their format.
    Ours by category (errors.warn attributes them to the first line outside ganforge, which
    for the CLI is its launcher) or, for a plain warnings.warn, by the file that warns."""
    package = str(Path(__file__).parent)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GanforgeWarning) or str(filename).startswith(package):
            if _quiet_rank():
                return  # under torchrun: said once per node, by its first rank
            print(f"ganforge: warning: {message}", file=sys.stderr, flush=True)
        else:
            original(message, category, filename, lineno, file, line)

    return show


# A config or data error of a torchrun rank other than its node's first waits this long before it
# is said: the first rank, which meets the same error, says it, and torchrun then stops the others
# (it looks every 0.1 s), so the line appears once per node; had the first rank not failed, the
# line still appears, late. 2 s had been too short on a loaded 2-core machine: the first rank,
# still importing torch, met the error after the wait, and the line appeared twice
QUIET_RANK_DELAY_S = 10.0


def _quiet_rank() -> bool:
    """Whether this process is a torchrun rank other than its node's first (LOCAL_RANK > 0):
    ganforge's warnings are the first rank's too and are said by it alone, and its config and
    data errors wait (QUIET_RANK_DELAY_S). Other errors (a failed peer, a device) are each
    rank's own and are said at once."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("LOCAL_RANK", "0")) > 0
    except ValueError:
        return False


# ----------------------------------------------------------------------------- commands


def cmd_presets(args) -> int:
    from .config import preset_dir, list_presets
    from .registry import closest

    presets = list_presets()
    if args.name is not None:  # its YAML as shipped: `ganforge presets NAME > my.yaml` starts a config
        if args.name not in presets:
            raise ConfigError(f"unknown preset '{args.name}'{closest(args.name, presets)}; run "
                              f"'ganforge presets' to list them")
        sys.stdout.write((preset_dir() / f"{args.name}.yaml").read_text())
        return 0
    width = max(map(len, presets))
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_data_fetch(args) -> int:
    from . import data

    print(data.fetch(args.name, data_dir=args.data_dir))
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    p = _Parser(prog="ganforge", description="Train, evaluate and diagnose GANs.",
                epilog="Families, losses, architectures, datasets or metrics registered outside ganforge: "
                       "name their modules in GANFORGE_PLUGINS (comma-separated, importable), which every "
                       "command imports first; README, 'A new GAN family'.")
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("presets", help="list the named configurations, or print one's YAML",
                       description="List the presets, or print the YAML of one (NAME) to start your own "
                                   "config: ganforge presets dcgan-fashion-mnist > my.yaml; ganforge "
                                   "train my.yaml")
    s.add_argument("name", nargs="?", metavar="NAME", help="print this preset's YAML")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("train", help="train a preset or a YAML config",
                       description="Train a GAN. Overrides are dotted key=value pairs, e.g. "
                                   "train.steps=2000 optim.d_lr=1e-4.")
    s.add_argument("config", nargs="?", metavar="PRESET|FILE.yaml")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--out", help="run directory (default runs/<preset>-<timestamp>)")
    s.add_argument("--steps", type=whole_number, help="shorthand for train.steps=N (1e4 reads as 10000)")
    s.add_argument("--data-dir", help=f"{DATA_DIR_HELP} (data.data_dir)")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out (with a preset or YAML and no run there yet: start it)")
    s.add_argument("--force", action="store_true", help="start over in an existing --out (deletes it)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine (starts torchrun; one per GPU)")
    s.add_argument("--no-provenance", action="store_true",
                   help="sample grids without the 'generated by ganforge' metadata "
                        "(train.provenance=false)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    add_run_arguments(s, out={"default": "samples.png", "help": "grid .png/.jpg or array .npz (default samples.png)"},
                      force="overwrite --out if it exists")
    s.add_argument("--n", type=int, help=f"number of samples (default {SAMPLE_N}; not with --per-class)")
    s.add_argument("--seed", type=seed, default=0,
                   help="noise seed: the same seed draws the same samples (default 0)")
    s.add_argument("--class", dest="class_", metavar="K",
                   help="conditional runs: generate class K (index or name; a class named K, such as a "
                        "class folder named 2, comes before index K) only")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="runs that support it: trade diversity for quality (StyleGAN psi in "
                        "[0, 1], BigGAN threshold > 0)")
    s.add_argument("--truncation-cutoff", type=int, metavar="L",
                   help="style-based runs: truncate only the layers below L (e.g. 4: coarse styles)")
    add_device_argument(s)
    s.add_argument("--per-class", type=int, metavar="N",
                   help="conditional runs: N samples of every class, a grid with one labeled row "
                        "per class (not with --n)")
    s.add_argument("--pyramid", action="store_true",
                   help="multi-resolution runs (LAPGAN): one row per sample showing each level, "
                        "coarse to fine (conditional: the classes in turn, each row named; with "
                        "--per-class N, N rows of every class)")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("data", help="prepare datasets")
    data_sub = s.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    s.actions = data_sub  # command modules add `ganforge data ACTION`s here (commands/audio.py)
    f = data_sub.add_parser("fetch", help="find or download a dataset and say where it came from")
    f.add_argument("name", help="fashion-mnist, mnist, cifar10, folder:PATH, toy:ring8, ...; photos, "
                                "photos:SPLIT and audio:PATH are read directly by training (checked, "
                                "nothing to fetch)")
    f.add_argument("--data-dir", help="the folder (or its NAME subfolder) that holds the dataset; an error "
                                      "if it does not (also: GANFORGE_DATA)")
    f.set_defaults(func=cmd_data_fetch)

    # Commands of other areas live in ganforge/commands/<area>.py (every module there, in name
    # order), each with register(subparsers, parser_class); they import heavy modules inside
    # their functions, so `ganforge --help` stays fast.
    from . import commands

    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")):
        register = getattr(importlib.import_module(f"ganforge.commands.{module}"), "register", None)
        if register is not None:  # a module without one is a helper of the others
            register(sub, _Parser)
    return p


def parse_args(argv: list[str], parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The command line's arguments (a usage error exits with code 2, one line)."""
    parser = parser or build_parser()
    # Options may come after key=value overrides (`train P a=1 --steps 5 b=2`): collect the rest.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) == "train" and all("=" in e and not e.startswith("-")
                                                             for e in extra):
            args.overrides.extend(extra)
        else:
            _unrecognized(_deepest_parser(parser, argv), extra, parser)
    if (getattr(args, "command", None) == "train" and args.config and "=" in args.config
            and not args.config.endswith((".yaml", ".yml")) and not Path(args.config).is_file()):
        # `ganforge train --resume --out DIR train.steps=100`: the first positional is an override
        # (a config file whose name holds '=' stays the config).
        args.overrides.insert(0, args.config)
        args.config = None
    _expand_home(args)
    return args


def _expand_home(args: argparse.Namespace) -> None:
    """A path argument that starts with ``~`` means the home folder, wherever the shell left it
    unexpanded (``--out=~/runs/x``, a quoted value from YAML or CI): ``--out=~/g.png`` had written
    ./~/g.png, a folder named ``~`` that ``rm -rf ~`` would confuse with home. Every string (and
    list of strings) the parser gave is a path, a name or a number, and only a path starts with
    ``~/`` (overrides are ``key=value``)."""
    def home(value):
        if isinstance(value, str) and (value == "~" or value.startswith("~/")):
            return os.path.expanduser(value)
        return value

    for key, value in vars(args).items():
        if isinstance(value, list):
            setattr(args, key, [home(v) for v in value])
        else:
            setattr(args, key, home(value))


def _deepest_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``argv`` names (``ganforge bench modes``'s), whose --help
    lists the options it takes: the top-level help, which an unknown option had pointed to, does
    not."""
    for token in argv:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            break
        if token in sub.choices:
            parser = sub.choices[token]
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str],
                 root: argparse.ArgumentParser | None = None) -> None:
    """The usage error for arguments ``parser`` does not take, with the option meant when one
    is close (``--nn`` -> ``--n``), or else the commands that take it (``eval --per-class``:
    sample and augment do; a cutoff of 0.6 had suggested --metrics)."""
    import difflib

    options = [o for a in parser._actions for o in a.option_strings]
    close = [m for e in extra if e.startswith("-")
             for m in difflib.get_close_matches(e.split("=")[0], options, n=1, cutoff=0.7)]
    hint = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
    if not close and root is not None:
        unknown = next((e.split("=")[0] for e in extra if e.startswith("--")), None)
        takers = [name for name, sub in _commands(root) if unknown in
                  {o for a in sub._actions for o in a.option_strings}] if unknown else []
        if takers:
            hint = f"; {unknown} is an option of ganforge {', '.join(takers)}"
    parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """(\"bench modes\", its parser) for every command and subcommand under ``parser``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{prefix}{name}", sub), *_commands(sub, f"{prefix}{name} ")]
    return found


def _parser_of(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``ganforge data``'s, listing its actions), or ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def _import_plugins() -> None:
    """Import the modules named in $GANFORGE_PLUGINS (comma-separated): what a module outside
    ganforge registers (a family, loss, architecture, dataset, ...) is unknown to the CLI until
    it is imported, and the CLI had no way to import one."""
    for module in filter(None, (m.strip() for m in os.environ.get("GANFORGE_PLUGINS", "").split(","))):
        try:
            importlib.import_module(module)
        except Exception as exc:  # any error of the plugin's own code: one line, not a traceback
            missing = isinstance(exc, ModuleNotFoundError) and f"{module}.".startswith(f"{exc.name}.")
            where = " (is its folder on PYTHONPATH?)" if missing else ""
            # ganforge's own refusal (a registration of the wrong kind) is a sentence already
            kind = "" if isinstance(exc, ConfigError) else f"{type(exc).__name__}: "
            raise ConfigError(f"GANFORGE_PLUGINS: cannot import module '{module}': {kind}"
                              f"{' '.join(str(exc).split())}{where}; fix it or remove it from "
                              f"GANFORGE_PLUGINS") from exc


def _printable_paths():
    """Let stdout print a path that is not valid UTF-8 (a folder named in Latin-1, which Python
    holds as surrogate escapes) as stderr does, ``\\udce9``: in a UTF-8 locale its strict
    encoder had raised at "wrote ... to PATH", after the work was done. Returns what puts the
    stream back."""
    stream = sys.stdout
    if getattr(stream, "errors", None) != "strict" or not hasattr(stream, "reconfigure"):
        return lambda: None
    try:
        stream.reconfigure(errors="backslashreplace")
    except (OSError, ValueError, AttributeError, TypeError):
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            stream.reconfigure(errors="strict")
    return restore


def _too_long(exc: OSError) -> str:
    """The one line for a path the system refused as too long (ENAMETOOLONG), wherever it was met
    (``--out``, ``data.name=folder:``, ``--ref``, a file argument): a name of more than 255 bytes
    had been a traceback."""
    from .atomic import NAME_MAX

    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    for path in paths:
        for part in Path(path).parts:
            size = len(os.fsencode(part))
            if size > NAME_MAX:
                shown = f"{part[:40]}..." if len(part) > 43 else part
                return (f"{shown}: file name too long ({size} bytes; {NAME_MAX} at most per name); "
                        f"choose a shorter name")
    if paths:
        shown = f"...{paths[0][-60:]}" if len(paths[0]) > 63 else paths[0]
        return f"{shown}: path too long ({len(os.fsencode(paths[0]))} bytes); choose a shorter path"
    return f"a file name is too long ({NAME_MAX} bytes at most per name); choose a shorter name"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _import_plugins()  # before parsing: a plugin's names are then valid everywhere
    except ConfigError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    args = parse_args(argv, parser)
    if not getattr(args, "func", None):  # `ganforge` alone, or a command of actions without one
        _parser_of(parser, getattr(args, "command", None)).print_help()
        return EXIT_USAGE
    original_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warnings(original_showwarning)
    restore_stdout = _printable_paths()
    try:
        return args.func(args)
    except GanforgeError as exc:
        if isinstance(exc, (ConfigError, DataError)) and _quiet_rank():
            time.sleep(QUIET_RANK_DELAY_S)
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if not _quiet_rank():  # under torchrun: said once per node
            print("ganforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganforge provenance FILE | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away
    except OSError as exc:  # after BrokenPipeError, an OSError too
        if exc.errno != errno.ENAMETOOLONG:
            raise
        print(f"ganforge: error: {_too_long(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = original_showwarning
        restore_stdout()


if __name__ == "__main__":
    sys.exit(main())
