"""Each registry refuses, when a name is registered, an object that is not of the kind it holds:
a loss given as a bare function had been registered and ended training with a traceback
(``TypeError: 'function' object is not iterable``) from inside the loss check."""
import textwrap

import pytest
import torch
from conftest import random_dataset, run_cli

from ganforge.data.base import DATASETS, ImageDataset
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, LossPair, get_loss
from ganforge.metrics.evaluation import METRICS, Metric
from ganforge.metrics.features import EXTRACTORS, ModuleExtractor
from ganforge.models.layers import ARCHITECTURES, Architecture
from ganforge.models.sr_discriminators import SR_DISCRIMINATORS
from ganforge.models.srresnet import SR_GENERATORS, SRResNet
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.base import register_objective
from ganforge.registry import Registry, WrongKind
from ganforge.training.trainer import OPTIMIZERS


def d_plain(*, real, fake):
    return (fake - real).mean()


def g_plain(*, fake, real=None):
    return -fake.mean()


class _Source:
    def load(self, req):
        return random_dataset(8, resolution=8)


def _refused(registry: Registry, name: str, obj) -> str:
    """The one-line WrongKind for registering ``obj``; the registry is left without ``name``."""
    with pytest.raises(WrongKind) as info:
        registry.register(name)(obj)
    assert name not in registry and name not in registry.origins
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TypeError)
    return message


def test_a_loss_given_as_a_function_is_refused_naming_the_loss_pair():
    message = _refused(LOSSES, "rt-fn", d_plain)
    assert message == ("loss 'rt-fn': got a function; register a ganforge.losses.LossPair(d=..., g=...) of two "
                       "functions (CONTRIBUTING.md, 'Other extension points')")
    assert "got a tuple of (function, str)" in _refused(LOSSES, "rt-str", (d_plain, "hinge"))
    assert "got a LossPair of (function, NoneType)" in _refused(LOSSES, "rt-none", LossPair(d=d_plain, g=None))


def test_a_valid_loss_registers_and_one_failing_later_fails_as_before():
    try:
        LOSSES.register("rt-ok")(LossPair(d=d_plain, g=g_plain))
        assert LOSSES["rt-ok"].d is d_plain

        def g_float(*, fake, real=None):  # passes the registration check, not the first-use one
            return 0.5

        LOSSES.register("rt-float")(LossPair(d=d_plain, g=g_float))
        with pytest.raises(ConfigError, match=r"^loss 'rt-float' \(module .*\): its g returns float for 2 scores"):
            get_loss("rt-float")
    finally:
        LOSSES.pop("rt-ok", None)
        LOSSES.pop("rt-float", None)


def test_an_optimizer_that_is_not_callable_is_refused():
    model = torch.nn.Linear(2, 2)
    message = _refused(OPTIMIZERS, "rt-opt", torch.optim.SGD(model.parameters(), lr=0.1))
    assert message.startswith("optimizer 'rt-opt': got an instance of SGD; register a function (params, *, lr, betas, "
                              "device) -> torch.optim.Optimizer")
    assert "got a str" in _refused(OPTIMIZERS, "rt-opt", "sgd")


def test_a_metric_that_is_not_a_metric_is_refused():
    def fid_like(ctx):
        return {"rt": 0.0}

    message = _refused(METRICS, "rt-metric", fid_like)
    assert message.startswith("metric 'rt-metric': got a function; register a "
                              "ganforge.metrics.evaluation.Metric(keys, needs, compute, better)")
    try:
        METRICS.register("rt-metric")(Metric(("rt-metric",), (), fid_like, {"rt-metric": "lower"}))
    finally:
        METRICS.pop("rt-metric", None)


def test_an_extractor_instance_is_refused_where_a_factory_is_expected():
    net = torch.nn.Flatten()
    message = _refused(EXTRACTORS, "rt-ext", ModuleExtractor(net, name="rt", resolution=8, channels=1))
    assert message.startswith("extractor 'rt-ext': got an instance of ModuleExtractor; register a function "
                              "taking keyword arguments and returning an Extractor")
    try:
        EXTRACTORS.register("rt-ext")(lambda **_: ModuleExtractor(net, name="rt", resolution=8, channels=1))
    finally:
        EXTRACTORS.pop("rt-ext", None)


def test_a_dataset_source_class_or_object_without_load_is_refused():
    message = _refused(DATASETS, "rt-data", _Source)
    assert message.startswith("dataset 'rt-data': got the class _Source; register a source instance with "
                              "load(req), fetch(arg, *, data_dir) and info(arg)")
    assert "got a function" in _refused(DATASETS, "rt-data", _Source().load)

    class Static:  # a class whose load needs no instance works when called, so it registers
        @staticmethod
        def load(req):
            return random_dataset(8, resolution=8)

    try:
        for source in (_Source(), Static):
            DATASETS.register("rt-data")(source)
            assert isinstance(DATASETS["rt-data"].load(None), ImageDataset)
            DATASETS.pop("rt-data")
    finally:
        DATASETS.pop("rt-data", None)


def test_an_architecture_given_as_one_class_is_refused():
    message = _refused(ARCHITECTURES, "rt-arch", torch.nn.Linear)
    assert message.startswith("architecture 'rt-arch': got the class Linear; register a "
                              "ganforge.models.Architecture(generator=..., discriminator=...)")
    assert "got a tuple of (class Linear)" in _refused(ARCHITECTURES, "rt-arch", (torch.nn.Linear,))
    try:
        ARCHITECTURES.register("rt-arch")(Architecture(generator=torch.nn.Linear, discriminator=torch.nn.Linear))
    finally:
        ARCHITECTURES.pop("rt-arch", None)
        ARCHITECTURES.origins.pop("rt-arch", None)


def test_an_objective_that_is_not_an_objective_class_is_refused_before_its_sections():
    class NotAFamily:
        sections: dict = {}

    message = _refused(OBJECTIVES, "rt-fam", NotAFamily)
    assert message.startswith("objective 'rt-fam': got the class "
                              "test_an_objective_that_is_not_an_objective_class_is_refused_before_its_sections."
                              "<locals>.NotAFamily; register a class that subclasses ganforge.objectives.Objective")
    with pytest.raises(WrongKind, match=r"^objective 'rt-fam': got a function; "):
        register_objective("rt-fam")(lambda: None)  # refused before cls.name / cls.sections are touched
    assert "rt-fam" not in OBJECTIVES


def test_super_resolution_registries_refuse_a_built_network():
    message = _refused(SR_GENERATORS, "rt-sr", SRResNet(scale=2, channels=1, width=2, blocks=1))
    assert message.startswith("super-resolution generator 'rt-sr': got an instance of SRResNet; register a class")
    assert "got a str" in _refused(SR_DISCRIMINATORS, "rt-srd", "vgg")


def test_a_registry_without_a_check_takes_anything():
    reg = Registry("thing")
    reg.register("x")(3)
    assert reg["x"] == 3


def test_cli_plugin_registering_a_bare_loss_function_is_one_line_exit_2(tmp_path):
    (tmp_path / "gf_rt_plug.py").write_text(textwrap.dedent("""
        from ganforge.losses import LOSSES

        @LOSSES.register("myloss")
        def myloss(real, fake):
            return (fake - real).mean()
    """))
    out = tmp_path / "r1"
    result = run_cli("train", "toy-ring8", "loss.name=myloss", "train.steps=20", "--out", out, "--quiet",
                     env={"PYTHONPATH": str(tmp_path), "GANFORGE_PLUGINS": "gf_rt_plug"}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ganforge: error: GANFORGE_PLUGINS: cannot import module 'gf_rt_plug': "
                                    "loss 'myloss': got a function; register a "
                                    "ganforge.losses.LossPair(d=..., g=...) of two functions"), result.stderr
    assert not out.exists()
