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
HINT = (f"needs the module {MODULE}, which it was trained with and is not imported now (in Python: import "
        f"{MODULE}; for the CLI: GANFORGE_PLUGINS={MODULE}); without it: ")


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
    assert json.loads((tmp_path / "run" / api.PLUGINS_FILE).read_text()) == {"modules": [MODULE], "to_load": [MODULE]}


def test_loading_or_resuming_without_the_plugin_names_it(tmp_path, plugin):
    run = tmp_path / "run"
    _train(run)
    from ganforge.serve.export import export_folder

    export_folder(ganforge.load(run), tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["plugins"] == [MODULE]
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"import {MODULE}\n" in card and f"GANFORGE_PLUGINS={MODULE} ganforge serve model" in card
    plugin()  # a later process, without the plugin
    for what, named in ((run, run), (tmp_path / "model", tmp_path / "model"),
                        (run / "checkpoints" / "step_0000002", run)):
        with pytest.raises(ConfigError) as err:
            ganforge.load(what)
        # the cause first, then the error without the general hint
        assert str(err.value).startswith(f"{named} {HINT}unknown architecture 'recordedmlp'"), str(err.value)
        assert str(err.value).endswith("needs the module that registers it imported first"), str(err.value)
    with pytest.raises(ConfigError) as err:  # --resume
        ganforge.train(api.resume_config(run, ["train.steps=4"]), run, resume=True, progress=False)
    assert str(err.value).startswith(f"{run} {HINT}"), str(err.value)


def test_a_run_without_plugins_records_none_and_keeps_the_general_hint(tmp_path, plugin):
    """A plugin imported but not used by the run (a test module that registered a family had been
    recorded in every later run of its process, and named in their model cards) is not its."""
    _, cfg = load_config("toy-ring8", ["train.steps=1", "train.log_every=1", "train.sample_every=1",
                                    "train.checkpoint_every=1"])
    ganforge.train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / api.PLUGINS_FILE).exists()
    plugin()
    with pytest.raises(ConfigError) as err:
        ganforge.train(api.resume_config(tmp_path / "run", ["model.name=recordedmlp", "train.steps=2"]),
                       tmp_path / "run", resume=True, progress=False)
    assert str(err.value).endswith("(in Python: import it; for the CLI: GANFORGE_PLUGINS=module)")


LOSS_MODULE = "gf_recorded_loss"
LOSS_CODE = """
    from ganforge.losses import LOSSES, LossPair, d_loss_hinge, g_loss_hinge

    LOSSES.register("recordedhinge")(LossPair(d=d_loss_hinge, g=g_loss_hinge))
"""


def test_a_loss_plugin_is_recorded_for_training_but_not_asked_for_to_load(tmp_path, monkeypatch):
    """A model card had said a run trained with a plugin loss needs it, though it loads without."""
    (tmp_path / f"{LOSS_MODULE}.py").write_text(textwrap.dedent(LOSS_CODE))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(LOSS_MODULE)
    from ganforge.losses import LOSSES

    try:
        _, cfg = load_config("toy-ring8", ["loss.name=recordedhinge", "train.steps=1", "train.log_every=1",
                                           "train.sample_every=1", "train.checkpoint_every=1"])
        ganforge.train(cfg, tmp_path / "run", progress=False)
        record = json.loads((tmp_path / "run" / api.PLUGINS_FILE).read_text())
        assert LOSS_MODULE in record["modules"] and LOSS_MODULE not in record["to_load"]
        from ganforge.serve.export import export_folder

        export_folder(ganforge.load(tmp_path / "run"), tmp_path / "model")
        assert LOSS_MODULE not in (tmp_path / "model" / "README.md").read_text()
        assert LOSS_MODULE not in json.loads((tmp_path / "model" / "config.json").read_text()).get("plugins", [])
    finally:
        LOSSES.pop("recordedhinge", None)
        sys.modules.pop(LOSS_MODULE, None)


FAMILY_MODULE = "gf_recorded_family"
FAMILY_CODE = """
    from dataclasses import dataclass

    from ganforge.objectives.base import register_objective
    from ganforge.objectives.unconditional import UnconditionalGAN

    @dataclass
    class RecCfg:
        k: int = 1

    @register_objective("recordedfam")
    class RecFam(UnconditionalGAN):
        sections = {"recsec": RecCfg}
"""


def test_a_plugin_familys_run_names_its_module_before_the_section_it_cannot_read(tmp_path, monkeypatch):
    """Loading it without the plugin had begun "unknown config key 'recsec' (did you mean ...)" and
    named the module last."""
    from ganforge.config import SECTIONS
    from ganforge.objectives import OBJECTIVES

    (tmp_path / f"{FAMILY_MODULE}.py").write_text(textwrap.dedent(FAMILY_CODE))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(FAMILY_MODULE)
    try:
        _, cfg = load_config("toy-ring8", ["objective=recordedfam", "recsec.k=2", "train.steps=1",
                                           "train.log_every=1", "train.sample_every=1", "train.checkpoint_every=1"])
        ganforge.train(cfg, tmp_path / "run", progress=False)
        assert json.loads((tmp_path / "run" / api.PLUGINS_FILE).read_text())["to_load"] == [FAMILY_MODULE]
    finally:
        OBJECTIVES.pop("recordedfam", None)
        SECTIONS.pop("recsec", None)
        sys.modules.pop(FAMILY_MODULE, None)
    with pytest.raises(ConfigError) as err:
        ganforge.load(tmp_path / "run")
    assert str(err.value).startswith(
        f"{tmp_path / 'run'} needs the module {FAMILY_MODULE}, which it was trained with and is not imported now "
        f"(in Python: import {FAMILY_MODULE}; for the CLI: GANFORGE_PLUGINS={FAMILY_MODULE}); without it: "
        f"unknown config key 'recsec'"), str(err.value)
