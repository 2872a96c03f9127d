"""The report names the panels of a translation / super-resolution / voice-conversion run's sample
tiles (``Objective.preview_legend``): a CycleGAN strip's four panels had no names, so input and
output could not be told apart. Tiny runs of the families' example configs."""
import html
import re

import pytest
import torch

from conftest import family_run
from ganforge import api
from ganforge.config import from_dict
from ganforge.objectives import OBJECTIVES
from ganforge.report import write_report

LEGENDS = {  # what each family's preview draws, panel by panel (objectives' ``preview``)
    "pix2pix": ["input", "output", "target"],
    "superres": ["bicubic", "super-resolved", "original high-resolution"],
    "cyclegan": ["an A image", "translated to B", "a B image", "translated to A"],
    "cyclegan-vc": ["mel-spectrogram", "its conversion"],
}


def _section(page: str, section_id: str) -> str:
    """The text of <section id=section_id>, tags dropped and entities decoded."""
    body = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', page, re.S).group(1)
    body = re.sub(r'data:[^"]+', "", body)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def report_of(tmp_path_factory):
    """objective -> the HTML report of a tiny run of its example config (each trained once)."""
    pages = {}

    def page(objective: str) -> str:
        if objective not in pages:
            run = family_run(tmp_path_factory.mktemp(objective), objective, "train.steps=2")
            pages[objective] = write_report(run).read_text()
        return pages[objective]
    return page


@pytest.mark.parametrize("objective", sorted(LEGENDS))
def test_report_names_the_panels_of_each_tile(report_of, objective):
    page = report_of(objective)
    for section_id in ("samples", "final"):
        text = _section(page, section_id)
        legend = re.search(r"In each tile, (.*?)\.(?: |$)", text)
        assert legend, f"no legend in #{section_id}: {text[:300]}"
        panels = legend.group(1).split(" | ")
        assert len(panels) == len(LEGENDS[objective]), panels
        for panel, word in zip(panels, LEGENDS[objective]):
            assert word in panel, (panel, word)


def test_only_runs_with_strips_get_a_legend(report_of):
    """An unconditional run's tile is one sample: its report is as before, with no legend; a
    pix2pix run's (strips) has one under both sample sections."""
    plain, strips = report_of("unconditional"), report_of("pix2pix")
    assert 'class="legend"' not in plain and "In each tile" not in plain
    assert "Final samples" in plain and "samples at step 2" in plain  # the grids are there
    assert strips.count('<p class="legend">In each tile, left to right: input | ') == 2


@pytest.mark.parametrize("objective", ["pix2pix", "superres", "cyclegan"])
def test_legend_counts_the_panels_the_preview_draws(tmp_path, objective):
    """A left-to-right legend of k panels: the preview's tiles are k square panels wide, and the
    panels named as the data's (input, target, A, B, original) are those images."""
    fam = OBJECTIVES[objective]
    obj, _ = api.build(from_dict(fam.example_config(tmp_path)))
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    strips = obj.preview(2, generator=torch.Generator().manual_seed(0)).cpu()  # [n, C, H, k H]
    panels = fam.preview_legend.split(": ", 1)[1].split(" | ")
    assert fam.preview_legend.startswith("left to right: ")
    height = strips.shape[-2]
    assert strips.shape[-1] == len(panels) * height
    cut = strips.split(height, dim=-1)
    if objective == "superres":
        hr = obj.preview_hr[:2].float() / 127.5 - 1
        assert torch.allclose(cut[2], hr, atol=1e-5)  # the original crop, last
        assert not torch.allclose(cut[0], hr, atol=1e-2)  # the bicubic one, blurred
    else:
        a = obj.info["preview_a"][:2].float() / 127.5 - 1
        b = obj.info["preview_b"][:2].float() / 127.5 - 1
        assert torch.equal(cut[0], a) and torch.equal(cut[2], b)


def test_step_axes_tick_whole_steps():
    """A 20-step run's plots had ticks at 2.5, 7.5, 12.5 (review of the report's pictures)."""
    from ganforge.report.plots import _figure, _step_axis

    fig = _figure(4, 3)
    ax = fig.add_subplot()
    ax.plot([0, 5, 10, 15, 20], [1, 2, 3, 2, 1])
    _step_axis(ax)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert ax.get_xlabel() == "step"


@pytest.mark.parametrize("objective, unused, used", [
    ("pix2pix", ["model.z_dim", "model.name", "reg.*", "augment.*", "translate.lambda_cycle", "translate.n_blocks"],
     ["translate.lambda_l1", "model.g_width"]),
    ("cyclegan", ["model.z_dim", "translate.lambda_l1", "translate.depth"], ["translate.lambda_cycle"]),
    ("stylegan2", ["model.init", "model.d_norm", "model.pac"], ["model.z_dim", "model.mbstd_group"]),
    ("biggan", ["model.init", "model.mbstd_group"], ["model.z_dim", "model.g_spectral_norm"]),
])
def test_reports_show_the_model_settings_their_family_never_reads_apart(report_of, objective, unused, used):
    """A pix2pix report's configuration had listed model: dcgan, z_dim 100 and CycleGAN's
    n_blocks 9 as if the run used them (review of the report's pictures)."""
    config = _section(report_of(objective), "config")
    apart = re.search(rf"Not used by objective={objective}: ([^(]*)\(", config)
    assert apart, config[:500]
    listed = apart.group(1)
    for key in unused:
        assert key in listed, (key, listed)
    for key in used:
        assert key not in listed, (key, listed)


def test_d_and_g_curves_keep_their_colours_whatever_the_order_of_the_records(tmp_path, monkeypatch):
    """pix2pix logs g_loss before d_loss: its G loss was drawn blue and D's orange, the reverse of
    a DCGAN report's (review of the report's pictures)."""
    import json

    from ganforge.report import plots
    from ganforge.report.run import load_run

    colours = {}
    real_plot = plots._curve_figure
    for name, first in (("gd", "g"), ("dg", "d")):
        run_dir = tmp_path / name
        run_dir.mkdir()
        other = "d" if first == "g" else "g"
        rows = [{"step": s, f"{first}_loss": 1.0 + s, f"{other}_loss": 2.0 + s, f"{first}_grad_norm": 1.0 + s,
                 f"{other}_grad_norm": 3.0 + s} for s in range(1, 4)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        seen = {}

        def spying_figure(seen=seen):
            fig, ax = real_plot()
            plot = ax.plot

            def record(*args, label=None, color=None, **kwargs):
                lines = plot(*args, label=label, color=color, **kwargs)
                seen[label] = lines[0].get_color()
                return lines
            ax.plot = record
            return fig, ax

        monkeypatch.setattr(plots, "_curve_figure", spying_figure)
        plots.curve_figures(load_run(run_dir))
        colours[name] = dict(seen)
    assert colours["gd"] == colours["dg"], colours
