"""A run records the plugin modules it was trained with (RUN/plugins.json, a model folder's
config.json), and loading it without them names those modules, not "GANFORGE_PLUGINS=module"."""
import importlib
import json
import sys
import textwrap

import pytest

import ganforge
from ganforge import api
from ganforge.config import load_config
from ganforge.errors import ConfigError
from ganforge.models.layers import ARCHITECTURES
from ganforge.registry import plugin_modules

MODULE = "gf_recorded_arch"
CODE = """
    from ganforge.models.layers import ARCHITECTURES, Architecture
    from ganforge.models.mlp import MLPDiscriminator, MLPGenerator

    ARCHITECTURES.register("recordedmlp")(Architecture(generator=MLPGenerator, discriminator=MLPDiscriminator))
"""
HINT = (f"this run was trained with module {MODULE} imported: in Python: import {MODULE}; "
        f"for the CLI: GANFORGE_PLUGINS={MODULE}")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin imported (as GANFORGE_PLUGINS or an import would), and a function that
    forgets it again, as a later process that did not import it."""
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(CODE))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(MODULE)

    def forget():
        ARCHITECTURES.pop("recordedmlp", None)
        sys.modules.pop(MODULE, None)

    yield forget
    forget()


def _train(run_dir, *extra):
    _, cfg = load_config("toy-ring8", ["model.name=recordedmlp", "train.steps=2", "train.log_every=1",
                                    "train.sample_every=2", "train.checkpoint_every=2", *extra])
    return ganforge.train(cfg, run_dir, progress=False)


def test_registrations_know_their_module_and_a_run_records_its_plugins(tmp_path, plugin):
    assert MODULE in plugin_modules()  # an instance registered by a call in the plugin's own code
    assert ARCHITECTURES.origins["dcgan"] == "ganforge.models.dcgan"
    _train(tmp_path / "run")
    assert json.loads((tmp_path / "run" / api.PLUGINS_FILE).read_text())["modules"] == [MODULE]


def test_loading_or_resuming_without_the_plugin_names_it(tmp_path, plugin):
    run = tmp_path / "run"
    _train(run)
    from ganforge.serve.export import export_folder

    export_folder(ganforge.load(run), tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["plugins"] == [MODULE]
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"import {MODULE}\n" in card and f"GANFORGE_PLUGINS={MODULE} ganforge serve model" in card
    plugin()  # a later process, without the plugin
    for what in (run, tmp_path / "model", run / "checkpoints" / "step_0000002"):
        with pytest.raises(ConfigError, match="unknown architecture 'recordedmlp'") as err:
            ganforge.load(what)
        assert str(err.value).endswith(f"imported first ({HINT})"), str(err.value)
    with pytest.raises(ConfigError) as err:  # --resume
        ganforge.train(api.resume_config(run, ["train.steps=4"]), run, resume=True, progress=False)
    assert str(err.value).endswith(f"({HINT})"), str(err.value)


def test_a_run_without_plugins_records_none_and_keeps_the_general_hint(tmp_path, plugin):
    plugin()
    _, cfg = load_config("toy-ring8", ["train.steps=1", "train.log_every=1", "train.sample_every=1",
                                    "train.checkpoint_every=1"])
    ganforge.train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / api.PLUGINS_FILE).exists()
    with pytest.raises(ConfigError) as err:
        ganforge.train(api.resume_config(tmp_path / "run", ["model.name=recordedmlp", "train.steps=2"]),
                       tmp_path / "run", resume=True, progress=False)
    assert str(err.value).endswith("(in Python: import it; for the CLI: GANFORGE_PLUGINS=module)")
