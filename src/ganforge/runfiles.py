"""What a run directory or an exported model folder records beyond its checkpoints, read without
building anything: its saved config (config.yaml), the plugin modules it was trained with
(plugins.json, or a model folder's config.json) and whether a folder is a model folder. Both the
training side (``api``: resume) and the inference side (``inference``: load) read them.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import yaml

from . import config as config_mod
from . import registry, rundir
from .atomic import atomic_write_text
from .config import Config
from .errors import CheckpointError, ConfigError

# The modules outside ganforge (plugins) that had registered names when the run trained: a run of
# a plugin's family or architecture cannot be loaded without them, and its error names them.
PLUGINS_FILE = "plugins.json"


def record_plugins(run_dir: Path, cfg: Config) -> None:
    """RUN/plugins.json lists the plugin modules that registered a name its config uses (with
    those of its earlier starts; "modules", what training it needs) and, of those, the ones that
    registered its family or networks ("to_load", what loading it needs: a loss or dataset is
    not); no file when there were none. Only names are kept: loading a run never imports what
    it lists, as a run folder from elsewhere must not run code."""
    before = {key: recorded_plugins(run_dir, to_load=key == "to_load") for key in ("modules", "to_load")}
    # the modules whose names the config uses, not every one imported (its free text aside)
    used = {k: v for k, v in cfg.to_dict().items() if k != "description"}
    now = {"modules": sorted(set(registry.plugin_modules(used)) | set(before["modules"])),
           "to_load": sorted(set(registry.plugin_modules(used, to_load=True)) | set(before["to_load"]))}
    if now["modules"] and now != before:
        atomic_write_text(run_dir / PLUGINS_FILE, json.dumps(now) + "\n")


def recorded_plugins(path: Path, *, to_load: bool = False) -> list[str]:
    """The plugin modules a run directory (plugins.json) or model folder (config.json's
    "plugins", those loading it needs) recorded; ``to_load``: only those loading the run needs
    (a plugins.json written before the distinction: all); [] when none or unreadable."""
    try:
        if is_model_folder(path):
            modules = json.loads((path / MODEL_CONFIG).read_text()).get("plugins", [])
        else:
            record = json.loads((path / PLUGINS_FILE).read_text())
            modules = record.get("to_load", record["modules"]) if to_load else record["modules"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    if not isinstance(modules, list):
        return []
    return [m for m in modules if isinstance(m, str) and registry.is_plugin_module(m)]


@contextlib.contextmanager
def naming_plugins(path: Path, *, training: bool = False):
    """An error saying a name needs its plugin imported starts with the modules the run
    recorded that are not imported now (those loading it needs; ``training``: all it trained
    with), not "GANFORGE_PLUGINS=module" at the end of a "did you mean" for the section."""
    try:
        yield
    except ConfigError as exc:
        import sys

        missing = [m for m in recorded_plugins(Path(path), to_load=not training) if m not in sys.modules]
        if not missing or registry.PLUGIN_HINT not in str(exc):
            raise
        cause = str(exc).replace(f" ({registry.PLUGIN_HINT})", "").replace(registry.PLUGIN_HINT, "")
        many = len(missing) > 1
        raise type(exc)(f"{path} needs the module{'s' if many else ''} {', '.join(missing)}, which it was "
                        f"trained with and {'are' if many else 'is'} not imported now "
                        f"({registry.plugin_hint(missing)}); without {'them' if many else 'it'}: {cause}") from None


def saved_config(run_dir: Path) -> dict[str, Any]:
    """The plain data of ``run_dir/config.yaml``; a file that is not plain YAML is refused."""
    path = run_dir / "config.yaml"
    rundir.check_resumable(run_dir)
    try:
        # as a YAML passed to train: a key given twice (a second train: block appended by hand) had
        # resumed with that whole section at the library's defaults, and rewritten config.yaml so
        text = path.read_text()
        raw = yaml.load(text, Loader=config_mod._UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as exc:
        raise CheckpointError(f"cannot resume: {path} {exc} (edited by hand?), or start a new run") from None
    except yaml.YAMLError as exc:  # a !!python tag, broken syntax: never executed, refused
        problem, line, _ = config_mod.yaml_problem(exc, text)
        problem = " ".join(str(problem or "not valid YAML").split())[:120]
        where = f" at line {line + 1}" if line is not None else ""
        if "tag" in problem:
            raise CheckpointError(f"cannot resume: {path} is not a plain ganforge config ({problem}"
                                  f"{where}); ganforge writes no YAML tags, so restore the file or "
                                  f"start a new run") from None
        raise CheckpointError(f"cannot resume: {path} is not valid YAML ({problem}{where}); fix that line "
                              f"(edited by hand?) or start a new run") from None
    except OSError as exc:
        raise CheckpointError(f"cannot resume: cannot read {path} ({exc.strerror})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"cannot resume: {path} does not hold a config mapping; restore "
                              f"the file or start a new run")
    return raw


MODEL_CONFIG, MODEL_WEIGHTS = "config.json", "model.safetensors"  # a model folder's files


def is_model_folder(path: Path | str) -> bool:
    """A folder written by ``ganforge export --format folder`` (not a run directory)."""
    path = Path(path)
    return (path / MODEL_CONFIG).is_file() and (path / MODEL_WEIGHTS).is_file()


def damaged_model_folder(path: Path | str) -> str | None:
    """The file a damaged model folder lacks (it holds one of config.json and model.safetensors
    and is no run directory: no checkpoints/), else None."""
    path = Path(path)
    have = [(path / name).is_file() for name in (MODEL_CONFIG, MODEL_WEIGHTS)]
    if any(have) and not all(have) and not (path / "checkpoints").exists():
        return MODEL_WEIGHTS if have[0] else MODEL_CONFIG
    return None
