"""Conditional GANs: the conditioning paths of the networks, the projection and AC-GAN formulas
against hand computation, requested classes reaching the generator and the saved samples, and
the class errors users meet."""
import math

import numpy as np
import pytest
import torch

from conftest import random_dataset, run_cli, tiny_config

from ganforge import api
from ganforge.errors import ConfigError
from ganforge.models.conditional import (CondBatchNorm2d, ConditionalDiscriminator,
                                         ConditionalGenerator)
from ganforge.labels import ClassError, grid_labels, resolve_class
from ganforge.latents import normal

K = 3


def _labels(n=6):
    return torch.arange(n) % K


def _cond_config(**overrides):
    return tiny_config(objective="conditional", **overrides)


def _labeled(n=48, classes=("shirt", "bag", "boot")):
    """A 16x16 dataset with len(classes) classes (labels cycling)."""
    ds = random_dataset(n=n, labels=True)
    ds.labels = torch.arange(n) % len(classes)
    ds.class_names = list(classes)
    return ds


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("cond", ["concat", "cbn"])
def test_generator_shapes_and_label_dependence(cond):
    torch.manual_seed(0)
    G = ConditionalGenerator(resolution=16, channels=3, z_dim=8, width=8, num_classes=K, cond=cond).eval()
    z = torch.randn(6, 8)
    out = G(z, _labels())
    assert out.shape == (6, 3, 16, 16)
    assert out.abs().max() <= 1
    # Same z, other labels: other images (the label reaches the output).
    with torch.no_grad():
        for p in G.parameters():  # move the per-class parameters off their init
            p.add_(0.1 * torch.randn_like(p))
        a, b = G(z, torch.zeros(6, dtype=torch.long)), G(z, torch.ones(6, dtype=torch.long))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("cond", ["concat", "projection", "acgan"])
def test_discriminator_shapes(cond):
    D = ConditionalDiscriminator(resolution=16, channels=1, width=8, num_classes=K, cond=cond)
    x = torch.randn(6, 1, 16, 16)
    adv, cls = D.scores(x, _labels())
    assert adv.shape == (6,)
    assert torch.equal(D(x, _labels()), adv)
    if cond == "acgan":
        assert cls.shape == (6, K)
    else:
        assert cls is None


@pytest.mark.parametrize("cond", ["concat", "projection"])
def test_discriminator_score_depends_on_label(cond):
    torch.manual_seed(0)
    D = ConditionalDiscriminator(resolution=16, channels=1, width=8, num_classes=K, cond=cond).eval()
    with torch.no_grad():
        for p in D.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(4, 1, 16, 16)
    s0, s1 = D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.ones(4, dtype=torch.long))
    assert (s0 - s1).abs().min() > 1e-4


def test_acgan_score_ignores_label():
    D = ConditionalDiscriminator(resolution=16, channels=1, width=8, num_classes=K, cond="acgan").eval()
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.full((4,), 2)))


def test_projection_equals_psi_plus_inner_product():
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3), summed in float64."""
    torch.manual_seed(1)
    D = ConditionalDiscriminator(resolution=16, channels=1, width=8, num_classes=K,
                                 cond="projection").eval()
    with torch.no_grad():
        D.embed.weight.normal_(0, 0.5)
        D.psi.bias.fill_(0.25)
    x, y = torch.randn(5, 1, 16, 16), torch.tensor([0, 2, 1, 2, 0])
    phi = D.phi(x).double().detach().numpy()  # [5, F]
    w = D.psi.weight.double().detach().numpy()[0]
    b = float(D.psi.bias.detach())
    E = D.embed.weight.double().detach().numpy()
    expected = [sum(phi[i, j] * w[j] for j in range(phi.shape[1])) + b
                + sum(E[y[i], j] * phi[i, j] for j in range(phi.shape[1])) for i in range(5)]
    got = D(x, y).double().detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The label term is not negligible here: without it the scores differ.
    assert np.abs(got - (phi @ w + b)).max() > 0.1


def test_conditional_batch_norm_by_hand():
    cbn = CondBatchNorm2d(2, num_classes=3).train()
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.5, 0.5]]))
        cbn.bias.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.0, 2.0]]))
    x = torch.arange(2 * 2 * 2 * 2, dtype=torch.float32).reshape(2, 2, 2, 2)
    y = torch.tensor([1, 2])
    out = cbn(x, y)
    for c in range(2):
        vals = x[:, c].flatten().tolist()
        mean = sum(vals) / len(vals)
        var = sum((v - mean) ** 2 for v in vals) / len(vals)  # biased, as BN normalizes
        for n in range(2):
            g, b = cbn.gain.weight[y[n], c].item(), cbn.bias.weight[y[n], c].item()
            for i in range(2):
                for j in range(2):
                    want = (x[n, c, i, j].item() - mean) / math.sqrt(var + 1e-5) * g + b
                    assert out[n, c, i, j].item() == pytest.approx(want, abs=1e-5)


def test_bad_conditioning_names_are_config_errors():
    with pytest.raises(ConfigError, match="cond.d_cond must be one of concat, projection, acgan"):
        ConditionalDiscriminator(resolution=16, channels=1, width=8, num_classes=K, cond="proj")
    with pytest.raises(ConfigError, match="cond.g_cond must be one of concat, cbn"):
        ConditionalGenerator(resolution=16, channels=1, z_dim=4, width=8, num_classes=K, cond="bn")


# ----------------------------------------------------------------------------- objective


class _FixedD(torch.nn.Module):
    """A stand-in D with known adversarial and class logits, for the loss arithmetic."""

    def __init__(self, adv_real, adv_fake, cls_real, cls_fake):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.out = {"real": (adv_real, cls_real), "fake": (adv_fake, cls_fake)}
        self.calls = 0

    def scores(self, x, labels):
        adv, cls = self.out["real" if self.calls % 2 == 0 else "fake"]
        self.calls += 1
        return adv + 0 * self.w, cls + 0 * self.w

    def forward(self, x, labels):
        return self.scores(x, labels)[0]


def _log_softmax_ce(logits, labels):
    total = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        total += lse - row[y]
    return total / len(labels)


def _softplus(v):
    return math.log1p(math.exp(v))


def test_acgan_auxiliary_loss_by_hand():
    cfg = _cond_config(**{"cond.d_cond": "acgan", "cond.aux_weight": 0.5})
    obj, _ = api.build(cfg, _labeled())
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1])
    adv_real, adv_fake = torch.tensor([1.0, -0.5, 2.0, 0.0]), torch.tensor([-1.0, 0.5, 0.0, 3.0])
    cls_real = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, 0.0, 0.0]])
    cls_fake = torch.tensor([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0], [0.0, 1.0, 2.0], [-1.0, 2.0, 0.0]])
    obj.nets["D"] = _FixedD(adv_real, adv_fake, cls_real, cls_fake)
    batch = {"real": torch.zeros(4, 1, 16, 16), "labels": labels}
    out = obj.loss("D", batch)
    ce_real, ce_fake = _log_softmax_ce(cls_real, labels), _log_softmax_ce(cls_fake, labels)
    adv = (sum(_softplus(-v) for v in adv_real.tolist()) / 4
           + sum(_softplus(v) for v in adv_fake.tolist()) / 4)
    assert out["d_aux"].item() == pytest.approx(ce_real + ce_fake, rel=1e-5)
    assert out["loss"].item() == pytest.approx(adv + 0.5 * (ce_real + ce_fake), rel=1e-5)
    assert out["d_class_acc_real"].item() == pytest.approx(0.75)  # argmax 0, 1, 2, 0: the last is wrong
    # G: non-saturating on the fake scores plus the weighted fake cross-entropy.
    obj.nets["D"] = _FixedD(adv_fake, adv_fake, cls_fake, cls_fake)
    g = obj.loss("G", batch)
    g_adv = sum(_softplus(-v) for v in adv_fake.tolist()) / 4
    assert g["g_aux"].item() == pytest.approx(ce_fake, rel=1e-5)
    assert g["loss"].item() == pytest.approx(g_adv + 0.5 * ce_fake, rel=1e-5)


def test_no_auxiliary_loss_without_acgan():
    obj, _ = api.build(_cond_config(**{"cond.d_cond": "projection"}), _labeled())
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    out = obj.loss("D", {"real": torch.zeros(4, 1, 16, 16), "labels": torch.tensor([0, 1, 2, 0])})
    assert "d_aux" not in out and obj.aux_weight == 0


def test_conditional_needs_labels():
    with pytest.raises(ConfigError, match="needs a labeled dataset"):
        api.build(_cond_config(), random_dataset(n=32))


def test_grid_labels_one_row_per_class():
    assert grid_labels(100, 10).tolist() == [k for k in range(10) for _ in range(10)]
    # 16 images tile 4 per row; 3 classes: rows 0, 1, 2, 0.
    assert grid_labels(16, 3).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 4
    assert grid_labels(6, 3, per_row=2).tolist() == [0, 0, 1, 1, 2, 2]


def test_resolve_class():
    names = ["T-shirt/top", "Trouser", "Bag"]
    assert resolve_class("2", names) == 2 and resolve_class(1, names) == 1
    assert resolve_class("bag", names) == 2 and resolve_class("T-shirt/top", names) == 0
    with pytest.raises(ClassError, match=r"unknown class 'Bagg'; valid classes .*0=T-shirt/top, 1=Trouser, 2=Bag"):
        resolve_class("Bagg", names)
    with pytest.raises(ClassError, match=r"class index 3 is out of range; this run has classes 0..2"):
        resolve_class(3, names)


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cond") / "run"
    cfg = _cond_config(**{"cond.g_cond": "concat", "cond.d_cond": "projection", "train.n_sample_grid": 9})
    api.train(cfg, run_dir, progress=False, dataset=_labeled())
    return run_dir


def test_trained_run_rebuilds_with_class_names(cond_run):
    run = api.load(cond_run)
    assert run.class_names == ["shirt", "bag", "boot"]
    assert (cond_run / "samples" / "step_0000006.png").is_file()


def test_requested_class_reaches_the_generator(cond_run):
    run = api.load(cond_run)
    got = run.sample(5, seed=3, labels="boot")
    # Independently: the EMA generator on the same latents with label 2.
    z = normal((5, run.config.model.z_dim), torch.Generator().manual_seed(3))  # as every latent is drawn
    want = run.ema_nets["G"](z, torch.full((5,), 2)).clamp(-1, 1)
    torch.testing.assert_close(got, want)
    other = run.sample(5, seed=3, labels=0)
    assert (got - other).abs().max() > 1e-4
    mixed = run.sample(3, seed=3, labels=["bag", 0, "2"])
    assert run.sample_labels(3, ["bag", 0, "2"]).tolist() == [1, 0, 2]
    assert mixed.shape == (3, 1, 16, 16)


def test_cli_class_and_per_class_write_labels(cond_run, tmp_path):
    proc = run_cli("sample", cond_run, "--class", "bag", "--n", "7", "--out", tmp_path / "s.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "s.npz") as d:
        assert d["images"].shape == (7, 16, 16, 1) and d["labels"].dtype == np.int64
        assert d["labels"].tolist() == [1] * 7
    proc = run_cli("sample", cond_run, "--per-class", "2", "--out", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "p.npz") as d:
        assert d["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    proc = run_cli("sample", cond_run, "--per-class", "4", "--out", tmp_path / "g.png")
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    grid = Image.open(tmp_path / "g.png")
    assert grid.height == 3 * 18 + 2  # three rows (one per class) of 16 px + padding
    assert grid.width > 4 * 18 + 2  # the label margin on the left


def test_cli_unknown_class_lists_valid_names(cond_run, tmp_path):
    proc = run_cli("sample", cond_run, "--class", "hat", "--out", tmp_path / "x.npz")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "unknown class 'hat'" in err and "0=shirt, 1=bag, 2=boot" in err
    assert not (tmp_path / "x.npz").exists()


def test_cli_class_on_unconditional_run_is_an_error(tmp_path):
    api.train(tiny_config(), tmp_path / "u", progress=False, dataset=random_dataset(n=32))
    proc = run_cli("sample", tmp_path / "u", "--class", "1", "--out", tmp_path / "x.npz")
    assert proc.returncode == 2 and "is unconditional" in proc.stderr


def test_acgan_real_only_class_loss_for_d():
    cfg = _cond_config(**{"cond.d_cond": "acgan", "cond.aux_fake_in_d": False})
    obj, _ = api.build(cfg, _labeled())
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    labels = torch.tensor([2, 0])
    cls_real = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    cls_fake = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])  # confidently wrong: must not count
    obj.nets["D"] = _FixedD(torch.zeros(2), torch.zeros(2), cls_real, cls_fake)
    out = obj.loss("D", {"real": torch.zeros(2, 1, 16, 16), "labels": labels})
    ce_real = ((math.log(1 + math.e + math.e ** 2) - 2.0) + math.log(3.0)) / 2  # by hand
    assert out["d_aux"].item() == pytest.approx(ce_real, rel=1e-6)
    assert out["loss"].item() == pytest.approx(2 * math.log(2) + ce_real, rel=1e-6)


def test_training_grid_is_one_row_per_class(cond_run, tmp_path):
    """The Trainer's last sample grid (9 images, 3 per row) equals the EMA generator's images for
    labels 0,0,0 / 1,1,1 / 2,2,2 on the Trainer's fixed latents, right of the rows' class names."""
    from PIL import Image
    from torchvision.utils import save_image

    run = api.load(cond_run)
    gen = torch.Generator().manual_seed(run.config.train.seed + 12345)
    images = run.objective.sample(9, generator=gen, nets=run.ema_nets,
                                  labels=[0, 0, 0, 1, 1, 1, 2, 2, 2])
    save_image(images, tmp_path / "want.png", nrow=3, normalize=True, value_range=(-1, 1))
    want = np.asarray(Image.open(tmp_path / "want.png"))
    got = np.asarray(Image.open(cond_run / "samples" / "step_0000006.png"))
    assert got.shape[0] == want.shape[0] and got.shape[1] > want.shape[1]
    assert np.array_equal(got[:, -want.shape[1]:], want)
    assert got[:, :-want.shape[1]].max() > 128  # the names drawn in the margin



def test_cli_default_labels_are_balanced_in_an_array(cond_run, tmp_path):
    """A .npz holds image i of class i % K (its grid's rows had drawn 4 of 10 classes for --n 10)."""
    proc = run_cli("sample", cond_run, "--n", "9", "--out", tmp_path / "s.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "s.npz") as d:
        assert d["labels"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]


def test_trainer_grid_and_probe_ask_for_class_rows(tmp_path, monkeypatch):
    """The Trainer calls objective.sample(n, generator=..., nets=...) without labels for its grid,
    and the conditional objective fills in one class per row; its diversity probe and the EMA
    BatchNorm recompute ask for every class equally often."""
    from ganforge.objectives.conditional import ConditionalGAN

    seen = []
    original = ConditionalGAN.labels_for

    def spy(self, n, labels):
        out = original(self, n, labels)
        seen.append((n, labels, out.tolist()))
        return out

    monkeypatch.setattr(ConditionalGAN, "labels_for", spy)
    cfg = _cond_config(**{"train.n_sample_grid": 9, "monitor.probe_size": 16, "train.log_every": 3})
    api.train(cfg, tmp_path / "r", progress=False, dataset=_labeled())
    grids = [out for n, labels, out in seen if n == 9]
    probes = [out for n, labels, out in seen if n == 16]
    assert grids and all(g == [0, 0, 0, 1, 1, 1, 2, 2, 2] for g in grids)
    assert probes and all(p == [0, 1, 2] * 5 + [0] for p in probes)
    assert all(labels is None for n, labels, _ in seen if n == 9)
    # the EMA BatchNorm recompute asks for every class equally often (labels.interleaved_labels)
    recompute = [out for n, labels, out in seen if n not in (9, 16)]
    assert recompute and all(max(map(out.count, range(3))) - min(map(out.count, range(3))) <= 1
                             for out in recompute)


def test_eval_target_of_a_conditional_run_carries_labels(cond_run):
    """ganforge eval RUN draws every class in turn, image by image, and passes the labels on
    (label_accuracy, intra_fid)."""
    from ganforge.metrics.targets import run_samples

    images, labels, desc = run_samples(api.load(cond_run), n=9, seed=4)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    want = api.load(cond_run).sample_uint8(9, seed=4, labels=[0, 1, 2, 0, 1, 2, 0, 1, 2])
    assert torch.equal(images, torch.from_numpy(want).permute(0, 3, 1, 2))


def test_conditional_generator_takes_the_conv_head():
    from ganforge.models.conditional import ConditionalGenerator

    G = ConditionalGenerator(resolution=28, channels=1, z_dim=8, width=4, num_classes=3, head="conv")
    assert G(torch.randn(2, 8), torch.tensor([0, 2])).shape == (2, 1, 28, 28)
    assert type(G.out) is torch.nn.Conv2d and G.out.kernel_size == (3, 3)


def test_conditional_refuses_the_unconditional_dcgan_init_option():
    with pytest.raises(ConfigError, match="model.init is not supported with objective=conditional"):
        api.build(_cond_config(**{"model.init": "torch"}), _labeled())


@pytest.mark.parametrize("d_cond", ["concat", "projection", "acgan"])
def test_conditional_discriminator_takes_the_deep_head(d_cond):
    from ganforge.models.conditional import ConditionalDiscriminator

    D = ConditionalDiscriminator(resolution=28, channels=1, width=4, num_classes=3, cond=d_cond,
                                 head="deep", mbstd=2)
    convs = [m for m in D.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16]  # the third stage: 3x3 stride 2, 7x7 -> 4x4
    assert convs[2].kernel_size == (3, 3) and convs[2].stride == (2, 2)
    assert D.feature_dim == 17 * 4 * 4  # + the minibatch-stddev channel, after the deep stage
    adv, cls = D.scores(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 0]))
    assert adv.shape == (4,) and (cls is None) == (d_cond != "acgan")
    with pytest.raises(ConfigError, match="model.d_head must be one of conv, deep"):
        ConditionalDiscriminator(resolution=28, channels=1, width=4, num_classes=3, head="wide")


@pytest.mark.parametrize("concat_at", ["input", "every"])
def test_concat_every_gives_the_later_convolutions_the_label(concat_at):
    """With the first convolution blind to the label planes, only d_concat_at=every lets the
    label change D's score (through the later convolutions)."""
    torch.manual_seed(0)
    D = ConditionalDiscriminator(resolution=28, channels=1, width=4, num_classes=3, cond="concat",
                                 head="deep", concat_at=concat_at).eval()
    convs = [m for m in D.body if isinstance(m, torch.nn.Conv2d)]
    extra = 3 if concat_at == "every" else 0
    assert [c.in_channels for c in convs] == [1 + 3, 4 + extra, 8 + extra]
    with torch.no_grad():
        convs[0].weight[:, 1:].zero_()  # the label planes at the input are ignored
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        gap = (D(x, torch.zeros(4, dtype=torch.long)) - D(x, torch.full((4,), 2))).abs().min()
    assert (gap > 1e-4) == (concat_at == "every")


def test_concat_every_is_built_from_the_config_and_refused_without_concat():
    data = _labeled()
    objective, _ = api.build(_cond_config(**{"cond.d_cond": "concat", "cond.d_concat_at": "every"}), data)
    assert objective.nets["D"].every
    with pytest.raises(ConfigError, match="cond.d_concat_at=every needs cond.d_cond=concat"):
        api.build(_cond_config(**{"cond.d_cond": "projection", "cond.d_concat_at": "every"}), data)
    with pytest.raises(ConfigError, match="cond.d_concat_at must be one of input, every"):
        api.build(_cond_config(**{"cond.d_cond": "concat", "cond.d_concat_at": "all"}), data)


def test_resume_on_data_with_another_number_of_classes_is_one_line_and_renamed_classes_warn(tmp_path):
    """A class folder with 2 classes where the run had 3 resized the class embedding, and loading
    the checkpoint was a 20-line traceback; 3 classes of other names train on, with a warning."""
    from ganforge.errors import ConfigError

    run = tmp_path / "run"
    api.train(_cond_config(**{"train.steps": 2}), run, progress=False, dataset=_labeled())
    cfg = api.resume_config(run, ["train.steps=4"])
    with pytest.raises(ConfigError, match=r"cannot resume .* on this data: the networks it builds differ from the "
                                          r"checkpoint's \(.* against .*\) \(the run has 3 classes, shirt, bag, "
                                          r"boot; the data has 2, cat, dog\); train on the run's data"):
        api.train(cfg, run, resume=True, progress=False, dataset=_labeled(classes=("cat", "dog")))
    with pytest.warns(UserWarning, match=r"other class names \(the run has 3 classes, shirt, bag, boot; the data "
                                         r"has 3, a, b, c\)"):
        result = api.train(cfg, run, resume=True, progress=False, dataset=_labeled(classes=("a", "b", "c")))
    assert result.step == 4


class _Recorder:
    """A conditional objective's sampling surface that records the classes asked for."""

    capabilities = frozenset({"sample", "sample_labels"})
    num_classes = 10

    def __init__(self):
        self.asked, self.nets = [], {}

    def sample(self, n, *, generator, nets=None, labels=None):
        self.asked.append(labels)
        return torch.zeros(n, 1, 8, 8)


@pytest.mark.parametrize("n", [1000, 2000, 5000])
def test_evaluation_draws_every_class_equally_often(n, monkeypatch):
    """The grid layout's rows are uneven for most n: the training hook's chunks of 500 each held
    66, 66, 60 and 44 of the other classes, and FID of real images drawn with that mix was 3.66
    against 0.53 balanced. Training-time eval (one process and shared among ranks), `ganforge
    eval RUN` and the EMA BatchNorm recompute now ask for class i % K."""
    from types import SimpleNamespace

    from ganforge.metrics import hook as hook_mod
    from ganforge.metrics.targets import run_samples

    rec = _Recorder()
    hook_mod.sample_blocks(rec, None, n, seed=0)  # the blocks ranks share
    shared = torch.cat(rec.asked)
    assert len(shared) == n and torch.bincount(shared).tolist() == [n // 10] * 10

    captured = {}
    monkeypatch.setattr(hook_mod, "get_extractor", lambda name: SimpleNamespace(name="x", weights_sha256=""))
    monkeypatch.setattr(hook_mod, "evaluate", lambda images, **kw: captured.setdefault("r", SimpleNamespace(
        values={"fid": float(len(images))})))
    rec = _Recorder()
    hook = hook_mod.training_hook(tiny_config(**{"objective": "conditional"}), metrics=["fid"], n=n, extractor="x")
    assert hook(SimpleNamespace(objective=rec, sample_nets=dict, world=None), 1) == {"fid": float(n)}
    one = torch.cat(rec.asked)
    assert torch.bincount(one).tolist() == [n // 10] * 10 and len(rec.asked) == -(-n // hook_mod.CHUNK)

    asked = {}

    def sample(k, *, seed, ema, labels, truncation):
        asked["labels"] = labels
        return torch.zeros(k, 1, 8, 8)

    run = SimpleNamespace(class_names=[f"c{i}" for i in range(10)], sample=sample, run_dir="r",
                          checkpoint=SimpleNamespace(name="step_1"), step=1, ema_nets={}, ema_weights=False,
                          objective=SimpleNamespace(preview_caption=lambda: None))  # no stage: not growing
    _, labels, _ = run_samples(run, n=n)
    assert np.bincount(labels).tolist() == [n // 10] * 10 and torch.equal(asked["labels"], torch.from_numpy(labels))
