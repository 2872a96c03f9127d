"""A family evaluated after training declares its command once (Objective.evaluated_by): the
eval.every refusal, the report and the model card all name it (they had kept two tables of
their own, capability to command)."""
from __future__ import annotations

import pytest

from ganforge import api
from ganforge.config import from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.report.page import _evaluation_advice
from ganforge.report.run import Run

AFTER = sorted(name for name in OBJECTIVES if OBJECTIVES.get(name).evaluated_by)


def test_the_families_that_refuse_eval_every_declare_their_command():
    assert {OBJECTIVES.get(n).evaluated_by.split()[1] for n in AFTER} == {"eval-audio", "translate-eval", "eval-sr"}
    assert {"vocoder", "cyclegan-vc", "pix2pix", "cyclegan", "superres"} <= set(AFTER)
    assert OBJECTIVES.get("unconditional").evaluated_by is None


@pytest.mark.parametrize("name", AFTER)
def test_refusal_and_report_name_the_familys_command(tmp_path, name):
    fam = OBJECTIVES.get(name)
    raw = fam.example_config(tmp_path / "data")
    raw.setdefault("eval", {})["every"] = 5
    with pytest.raises(ConfigError, match="set eval.every=0") as info:
        api.train(from_dict(raw), tmp_path / "run", progress=False)
    assert fam.evaluated_by in str(info.value)
    assert f"<code>{fam.evaluated_by}</code>" in _evaluation_advice(Run(tmp_path, {"objective": name}, [], []))


@pytest.mark.parametrize("name", ["vocoder", "cyclegan-vc"])
def test_an_audio_model_card_names_the_familys_command(tmp_path, name, one_torch_thread):
    import ganforge
    from ganforge.serve.export import evaluation_advice

    raw = OBJECTIVES.get(name).example_config(tmp_path / "data")
    api.train(from_dict(raw), tmp_path / "run", progress=False)
    lines = evaluation_advice(ganforge.load(tmp_path / "run"), "model")
    assert len(lines) == 1 and "`ganforge eval-audio model --data DIR` measures" in lines[0]
