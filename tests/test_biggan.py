"""BigGAN (ganforge.models.biggan, ganforge.objectives.biggan): conditional batch norm through the
shared embedding and the hierarchical latent, orthogonal regularization against hand
computation, self-attention at initialization, truncation, standing statistics, labeled folders,
and each bad input's one-line error. Training, bit-exact resume, loading and every capability of
the family are covered by tests/test_families.py on its example config."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats

import ganforge
from conftest import run_cli
from ganforge import api, cli
from ganforge.config import apply_overrides, from_dict
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, DataError
from ganforge.models.biggan import BigGANDiscriminator, BigGANGenerator, SelfAttention
from ganforge.models.layers import standing_stats_
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.biggan import ortho_penalty, truncated_z

BigGAN = OBJECTIVES["biggan"]


def _G(**kw):
    args = dict(resolution=16, channels=1, z_dim=6, width=2, num_classes=3, shared_dim=4, attn_res=8)
    torch.manual_seed(0)
    return BigGANGenerator(**{**args, **kw})


def _raw(tmp_path, **overrides):
    raw = BigGAN.example_config(tmp_path)
    return apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()])


# ----------------------------------------------------------------------------- networks


def test_hierarchical_latent_and_shared_embedding_give_each_block_its_gains_and_biases():
    G = _G().eval()
    z, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 1])
    first, conds = G.conditions(z, y)
    assert G.n_chunks == 3 and G.chunk == 2 and len(conds) == 2  # 16 px: 2 blocks + the first layer
    assert torch.equal(first, z[:, :2])
    for k, cond in enumerate(conds):  # block k: [shared(y), z chunk k+1]
        assert torch.equal(cond, torch.cat([G.shared.weight[y], z[:, 2 * (k + 1):2 * (k + 2)]], 1))

    # a block's batch norm, by hand: (x - mean) / sqrt(var + eps) * (1 + W_g c) + W_b c
    bn = G.blocks[1].bn1
    x = torch.randn(4, bn.bn.num_features, 8, 8)
    bn.train()
    out = bn(x, conds[1])
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    gain = 1 + conds[1] @ bn.gain.weight.t()
    bias = conds[1] @ bn.bias.weight.t()
    expected = (x - mean) / torch.sqrt(var + bn.bn.eps) * gain[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    def gains(z, y):
        _, cs = G.conditions(z, y)
        return [blk.bn1.affine(c)[0] for blk, c in zip(G.blocks, cs)]

    base = gains(z, y)
    z2 = z.clone()
    z2[:, 4:6] += 1.0  # only the chunk of block 1
    moved = gains(z2, y)
    assert torch.equal(moved[0], base[0]) and not torch.allclose(moved[1], base[1])
    other = gains(z, torch.tensor([1, 2, 0, 0]))  # another class: every block changes
    assert all((o - b).abs().amax(1).gt(1e-4).all() for o, b in zip(other, base))
    # one embedding for all blocks: each block's gain has a gradient into the shared weights
    for k in range(len(G.blocks)):
        G.zero_grad()
        gains(z, y)[k].sum().backward()
        assert G.shared.weight.grad is not None and G.shared.weight.grad.abs().sum() > 0


def test_without_hierarchy_every_block_sees_only_the_class_and_z_feeds_the_first_layer():
    G = _G(hier=False)
    z, y = torch.randn(2, 6), torch.tensor([0, 2])
    first, conds = G.conditions(z, y)
    assert torch.equal(first, z) and G.linear.in_features == 6
    assert all(torch.equal(c, G.shared.weight[y]) for c in conds)


@pytest.mark.parametrize("hier", [True, False])
def test_class_in_input_joins_the_shared_embedding_to_the_first_layer(hier):
    G = _G(hier=hier, class_in_input=True)
    z, y = torch.randn(2, 6), torch.tensor([0, 2])
    first, conds = G.conditions(z, y)
    chunk = 2 if hier else 6
    assert G.linear.in_features == chunk + 4
    assert torch.equal(first, torch.cat([z[:, :chunk], G.shared.weight[y]], 1))
    assert torch.equal(conds[0][:, :4], G.shared.weight[y])  # the blocks keep their conditioning
    assert G(z, y).shape == (2, 1, 16, 16)


def test_class_in_input_is_read_from_the_config(tmp_path):
    cfg = from_dict(_raw(tmp_path, **{"biggan.class_in_input": "true"}))
    objective, _ = api.build(cfg)
    G = objective.nets["G"]
    assert G.class_in_input and G.linear.in_features == G.chunk + G.shared.embedding_dim
    off, _ = api.build(from_dict(_raw(tmp_path, **{"biggan.class_in_input": "false"})))
    assert not off.nets["G"].class_in_input and off.nets["G"].linear.in_features == G.chunk


def test_self_attention_is_the_identity_at_initialization():
    x = torch.randn(3, 16, 8, 8)
    attn = SelfAttention(16)
    assert attn.gamma.item() == 0.0 and torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.5)
    assert not torch.allclose(attn(x), x)  # the gate is what keeps it the identity
    G = _G()
    D = BigGANDiscriminator(resolution=16, channels=1, width=2, num_classes=3, attn_res=8)
    for net, block_out in ((G, G.blocks[0]), (D, D.blocks[0])):
        h = block_out.conv1.weight.new_ones(2, net.attention.theta.in_channels, 8, 8).normal_()
        assert torch.equal(net.attention(h), h)


def test_networks_shapes_spectral_norm_and_orthogonal_init():
    G = _G(resolution=32, z_dim=8, attn_res=16)
    D = BigGANDiscriminator(resolution=32, channels=1, width=2, num_classes=3, attn_res=16)
    z, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    x = G(z, y)
    assert x.shape == (5, 1, 32, 32) and x.abs().max() <= 1
    assert D(x, y).shape == (5,)
    # spectral norm everywhere but the shared embedding; raw weights start orthogonal
    assert hasattr(G.linear, "parametrizations") and hasattr(D.embed, "parametrizations")
    assert not hasattr(G.shared, "parametrizations")
    w = D.blocks[1].conv1.parametrizations.weight.original.reshape(4, -1)
    torch.testing.assert_close(w @ w.t(), torch.eye(4), atol=1e-5, rtol=0)
    # projection: D(x, y) = w . phi(x) + <embed(y), phi(x)>
    D.eval()
    phi = D.phi(x)
    torch.testing.assert_close(D(x, y), (phi @ D.linear.weight.t()).squeeze(1) + D.linear.bias
                               + (D.embed.weight[y] * phi).sum(1))


# ----------------------------------------------------------------------------- orthogonal regularization


def test_ortho_penalty_against_hand_computation():
    lin = torch.nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    # W W^T = [[14, 32], [32, 77]]: off-diagonal squares 2 * 32^2; the bias (1-D) is not a matrix
    assert float(ortho_penalty(lin).detach()) == 2 * 32.0 ** 2
    rng = np.random.default_rng(0)
    conv, emb = torch.nn.Conv2d(2, 3, 3), torch.nn.Embedding(4, 5)
    net = torch.nn.ModuleList([conv, emb])
    by_hand = []
    for w in (conv.weight, emb.weight):
        with torch.no_grad():
            w.copy_(torch.from_numpy(rng.normal(size=tuple(w.shape)).astype(np.float32)))
        m = w.detach().double().numpy().reshape(w.shape[0], -1)
        gram = m @ m.T
        by_hand.append(float(((gram * (1 - np.eye(len(gram)))) ** 2).sum()))
    assert float(ortho_penalty(net).detach()) == pytest.approx(sum(by_hand), rel=1e-5)
    assert float(ortho_penalty(net, skip=[emb.weight]).detach()) == pytest.approx(by_hand[0], rel=1e-5)
    # its gradient is 4 (W W^T * (1 - I)) W (the authors' code applies half of it)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    holder = torch.nn.Module()
    holder.w = torch.nn.Parameter(w.detach().clone())
    ortho_penalty(holder).backward()
    W = holder.w.detach()
    torch.testing.assert_close(holder.w.grad, 4 * ((W @ W.t()) * (1 - torch.eye(3, dtype=W.dtype))) @ W)


def test_generator_loss_adds_the_weighted_ortho_term_on_raw_weights(tmp_path):
    cfg = from_dict(_raw(tmp_path, **{"reg.ortho": 0.5}))
    objective, _ = api.build(cfg)
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(3))
    G = objective.nets["G"]
    batch = {"real": torch.zeros(4, 1, 16, 16), "labels": torch.tensor([0, 1, 0, 1])}
    out = objective.loss("G", batch)
    # every matrix of G is a weight before spectral normalization, or the shared embedding
    assert all(n.endswith(".original") or n == "shared.weight" for n, p in G.named_parameters() if p.ndim >= 2)
    raw = [p.detach().double().numpy() for n, p in G.named_parameters() if p.ndim >= 2 and n != "shared.weight"]
    expected = 0.0
    for w in raw:
        m = w.reshape(len(w), -1)
        expected += float((((m @ m.T) * (1 - np.eye(len(m)))) ** 2).sum())
    assert float(out["g_ortho"]) == pytest.approx(expected, rel=1e-4)
    objective.reg.ortho = 0.0
    objective.rng.manual_seed(3)
    without = objective.loss("G", batch)
    objective.rng.manual_seed(3)
    objective.reg.ortho = 0.5
    again = objective.loss("G", batch)
    assert float((again["loss"] - without["loss"]).detach()) == pytest.approx(0.5 * expected, rel=1e-4)
    assert "g_ortho" not in without


def test_aux_weight_adds_a_class_head_trained_on_reals_and_pushing_fakes(tmp_path):
    batch = {"real": torch.rand(4, 1, 16, 16) * 2 - 1, "labels": torch.tensor([0, 1, 0, 1])}
    plain, _ = api.build(from_dict(_raw(tmp_path)))
    assert plain.nets["D"].classes is None
    assert plain.nets["D"].scores(batch["real"], batch["labels"])[1] is None
    cfg = from_dict(_raw(tmp_path, **{"biggan.aux_weight": 0.5}))
    objective, _ = api.build(cfg)
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(3))
    G, D = objective.nets["G"], objective.nets["D"]
    logits, classes = D.scores(batch["real"], batch["labels"])
    assert logits.shape == (4,) and classes.shape == (4, 2)
    # D's class loss is the head's cross-entropy on the real images only (no fake term)
    objective.rng.manual_seed(3)
    out = objective.loss("D", batch)
    expected = F.cross_entropy(D.scores(batch["real"], batch["labels"])[1].float(), batch["labels"])
    assert float(out["d_aux"]) == pytest.approx(float(expected), rel=1e-5)
    # G's loss adds 0.5 x the cross-entropy of the head on its fakes of the batch's labels
    objective.rng.manual_seed(3)
    g_out = objective.loss("G", batch)
    objective.rng.manual_seed(3)
    z = objective._z(4, objective.rng)
    fake_classes = D.scores(G(z, batch["labels"]), batch["labels"])[1]
    ce = F.cross_entropy(fake_classes.float(), batch["labels"])
    assert float(g_out["g_aux"]) == pytest.approx(float(ce), rel=1e-5)
    assert float(g_out["loss"] - g_out["g_loss"]) == pytest.approx(
        0.5 * float(ce) + objective.reg.ortho * float(g_out["g_ortho"]), rel=1e-4)
    # the head's gradient reaches G through the fakes
    G.zero_grad()
    g_out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


# ----------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("threshold", [0.25, 0.5, 1.0, 2.0])
def test_truncation_resamples_every_value_beyond_the_threshold(threshold):
    plain = truncated_z((400, 50), None, torch.Generator().manual_seed(1))
    z = truncated_z((400, 50), threshold, torch.Generator().manual_seed(1))
    assert z.abs().max() <= threshold
    inside = plain.abs() <= threshold
    assert torch.equal(z[inside], plain[inside])  # values inside are kept
    assert (~inside).sum() > 0 and not torch.equal(z[~inside], plain[~inside].clamp(-threshold, threshold))
    # the result is the normal restricted to [-T, T] (scipy's truncnorm), not a clipped normal
    ks = stats.kstest(z.flatten().numpy(), stats.truncnorm(-threshold, threshold).cdf)
    assert ks.pvalue > 1e-3
    assert truncated_z((4, 3), 1e9, torch.Generator().manual_seed(1)).equal(
        truncated_z((4, 3), None, torch.Generator().manual_seed(1)))


# ----------------------------------------------------------------------------- standing statistics


def test_standing_statistics_change_only_batch_norm_buffers_and_average_the_batches():
    G = _G(spectral_norm=True)
    G.train()
    for _ in range(3):  # spectral norm's u, v move in training mode; BN statistics drift
        G(torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    G.eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    bn_keys = {f"{n}.{b}" for n, m in G.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for b in ("running_mean", "running_var", "num_batches_tracked")}
    seen = []
    hook = G.blocks[0].bn1.bn.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    gen = torch.Generator().manual_seed(0)
    inputs = [(torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for _ in range(3)]
    standing_stats_(G, inputs)
    hook.remove()
    after = G.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= bn_keys
    assert {k for k in bn_keys if "running" in k} <= changed
    assert not G.training and not any(m.training for m in G.modules())
    assert G.blocks[0].bn1.bn.momentum == 0.1
    bn = G.blocks[0].bn1.bn  # cumulative average of the 3 batches' means and unbiased variances
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var((0, 2, 3)) for x in seen]).mean(0))
    assert int(bn.num_batches_tracked) == 3


def test_sampling_in_eval_mode_uses_standing_statistics_once_per_weight_version(tmp_path):
    cfg = from_dict(_raw(tmp_path))
    objective, _ = api.build(cfg)
    objective.bind(device=torch.device("cpu"), rng=torch.Generator())
    G = objective.nets["G"].eval()
    calls = []
    hook = G.out_bn.register_forward_pre_hook(lambda m, args: calls.append(m.training))
    objective.sample(3, generator=torch.Generator().manual_seed(0))
    # 2 standing batches (biggan.standing_batches) in train mode, then the sample in eval mode
    assert calls == [True, True, False]
    objective.sample(3, generator=torch.Generator().manual_seed(0))
    assert calls[3:] == [False]  # same weights: not recomputed
    with torch.no_grad():
        G.out_conv.parametrizations.weight.original.mul_(1.01)
    objective.sample(3, generator=torch.Generator().manual_seed(0))
    assert calls[4:] == [True, True, False]
    untruncated = [b.clone() for b in G.buffers()]
    # truncated samples: statistics of truncated latents, computed once per threshold; going
    # back to a threshold these weights have seen copies its statistics back
    means = []
    for t in (0.5, 0.5, None, 0.5):
        objective.sample(3, generator=torch.Generator().manual_seed(0), truncation=t)
        means.append(G.out_bn.running_mean.clone())
    assert calls[7:] == [True, True, False, False, False, False]
    assert not torch.equal(means[0], means[2]) and torch.equal(means[0], means[3])
    objective.sample(3, generator=torch.Generator().manual_seed(0))
    assert calls[13:] == [False]
    assert all(torch.equal(a, b) for a, b in zip(untruncated, G.buffers()))
    with torch.no_grad():  # new weights: what was kept is stale
        G.out_conv.parametrizations.weight.original.mul_(1.01)
    objective.sample(3, generator=torch.Generator().manual_seed(0), truncation=0.5)
    assert calls[14:] == [True, True, False]
    hook.remove()


# ----------------------------------------------------------------------------- labeled folders


def _folder(root, classes, n=3, size=8):
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((size, size), 40 * k + i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_labeled_folder_classes_come_sorted_from_subfolder_names(tmp_path):
    root = _folder(tmp_path / "pets", ["dog", "cat", "bird"])
    ds = load_dataset(f"folder:{root}", resolution=8)
    assert ds.class_names == ["bird", "cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.images[3:6, 0, 0, 0].tolist() == [40, 41, 42]  # cat was written as class 1: values 40..


@pytest.mark.parametrize("problem", ["empty", "unreadable"])
def test_a_class_without_images_is_one_line_error(tmp_path, problem):
    root = _folder(tmp_path / "pets", ["cat", "dog"])
    (root / "fish").mkdir()
    if problem == "unreadable":
        (root / "fish" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"class folder 'fish' in {root} has no readable images") as info:
        load_dataset(f"folder:{root}", resolution=8)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("objective", ["biggan", "conditional"])
def test_a_folder_with_one_class_is_refused_by_conditional_families(tmp_path, objective):
    root = _folder(tmp_path / "one", ["cat"], n=4)
    raw = _raw(tmp_path, **{"data.name": f"folder:{root}"})
    if objective == "conditional":
        raw = {**raw, "objective": "conditional", "model": {"name": "dcgan", "z_dim": 4, "g_width": 4,
                                                            "d_width": 4}}
        raw.pop("biggan")
        raw["reg"] = {}
    with pytest.raises(DataError, match=r"has one class \('cat'\).*two or more") as info:
        api.build(from_dict(raw))
    assert "\n" not in str(info.value)
    uncond = {"objective": "unconditional", "data": raw["data"],
              "model": {"name": "dcgan", "z_dim": 4, "g_width": 4, "d_width": 4}}
    api.build(from_dict(uncond))  # an unconditional family takes the images, labels unused


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("override, message", [
    ({"model.z_dim": 7}, "model.z_dim=7 does not split into 3 equal chunks.*model.z_dim=6"),
    ({"biggan.attn_res": 16}, r"biggan.attn_res=16 is not a resolution .* \(8\)"),
    ({"data.resolution": 28}, "4 x a power of two"),
    ({"model.name": "dcgan"}, "set model.name=biggan"),
    ({"model.mbstd_group": 4}, "model.mbstd_group is not used by objective=biggan"),
    ({"biggan.standing_batch_size": 0}, "biggan.standing_batch_size"),
    ({"biggan.aux_weight": -1}, "biggan.aux_weight must be >= 0"),
])
def test_bad_biggan_config_is_one_line_config_error(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message) as info:
        api.build(from_dict(_raw(tmp_path, **override)))
    assert "\n" not in str(info.value)


def test_unlabeled_data_and_ortho_on_other_families_are_refused(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(flat / f"{i}.png")
    with pytest.raises(ConfigError, match="objective=biggan needs a labeled dataset"):
        api.build(from_dict(_raw(tmp_path, **{"data.name": f"folder:{flat}"})))
    dcgan = {"objective": "unconditional", "data": {"name": f"folder:{flat}", "resolution": 8},
             "model": {"name": "dcgan", "z_dim": 4, "g_width": 4, "d_width": 4}, "reg": {"ortho": 1e-4}}
    with pytest.raises(ConfigError, match="reg.ortho is applied by objective biggan only, not by "
                                          "objective=unconditional; set reg.ortho=0"):
        api.build(from_dict(dcgan))
    with pytest.raises(ConfigError, match="reg.ortho must be >= 0"):
        from_dict(_raw(tmp_path, **{"reg.ortho": -1}))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("biggan")
    run = tmp / "run"
    api.train(from_dict(BigGAN.example_config(tmp)), run, progress=False)
    return run


@pytest.mark.parametrize("value", [0, -0.5, float("nan")])
def test_bad_truncation_is_one_line_error(tiny_run, value):
    run = ganforge.load(tiny_run)
    with pytest.raises(ConfigError, match="truncation must be a threshold > 0"):
        run.sample(2, truncation=value)


def test_cli_samples_with_truncation_and_refuses_a_bad_one(tiny_run, tmp_path):
    out = tmp_path / "t.npz"
    proc = run_cli("sample", tiny_run, "--n", 4, "--truncation", 0.5, "--out", out)
    assert proc.returncode == 0, proc.stderr
    data = np.load(out)
    # an array holds balanced classes, image i of class i % K (a grid had rows of one class)
    assert data["images"].shape == (4, 16, 16, 1) and data["labels"].tolist() == [0, 1, 0, 1]
    run = ganforge.load(tiny_run)
    expected = api.to_uint8_hwc(run.sample(4, labels=[0, 1, 0, 1], truncation=0.5))
    np.testing.assert_array_equal(data["images"], expected)
    bad = run_cli("sample", tiny_run, "--truncation", "-1", "--out", tmp_path / "b.png")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "truncation must be a threshold > 0" in bad.stderr and not (tmp_path / "b.png").exists()


def test_cli_one_class_folder_exits_2(tmp_path):
    root = _folder(tmp_path / "one", ["cat"], n=4, size=128)
    proc = run_cli("train", "biggan-folder", f"data.name=folder:{root}", "data.channels=1", "--out", tmp_path / "r")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "has one class ('cat')" in proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_labels_follow_the_request_and_classes_differ(tiny_run):
    run = ganforge.load(tiny_run)
    a = run.sample(4, seed=1, labels="a")
    b = run.sample(4, seed=1, labels="b")
    assert a.shape == (4, 1, 16, 16) and not torch.equal(a, b)
    assert F.mse_loss(a, run.sample(4, seed=1, labels=[0, 0, 0, 0])) == 0


def test_two_threads_sampling_other_truncations_get_their_own_samples(tiny_run):
    """The standing statistics of a truncation live in G's BatchNorm buffers: a thread sampling
    with another truncation meanwhile had swapped them under the first (9 of 15 wrong)."""
    import threading

    run = ganforge.load(tiny_run)
    asks = {"a": {"seed": 1, "truncation": 0.5}, "b": {"seed": 2, "truncation": None}}
    want = {k: run.sample(16, **v) for k, v in asks.items()}
    wrong = {k: 0 for k in asks}
    start = threading.Barrier(2)

    def work(key):
        start.wait()
        for _ in range(12):
            wrong[key] += not torch.equal(run.sample(16, **asks[key]), want[key])

    threads = [threading.Thread(target=work, args=(k,)) for k in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == {"a": 0, "b": 0}


def test_bench_truncation_sweeps_the_familys_thresholds_by_default(tiny_run, tmp_path, monkeypatch):
    """BigGAN's T = 1 redraws a third of z's values: its default sweep reaches T = 3 (nearly none),
    where StyleGAN2's psi sweep ends at 1 (none); the truncation cutoff is StyleGAN2's alone."""
    from ganforge.bench import truncation as bench

    seen = []

    def fake(run, values, **kw):
        seen.append(values)
        raise ConfigError("stop here")

    monkeypatch.setattr(bench, "run_benchmark", fake)
    assert cli.main(["bench", "truncation", str(tiny_run), "--json", str(tmp_path / "t.json")]) == 2
    assert seen == [[0.5, 1.0, 1.5, 2.0, 3.0]]
    run = ganforge.load(tiny_run)
    with pytest.raises(ConfigError, match="has one latent for all its layers: a truncation cutoff needs a "
                                          "style-based run"):
        run.sample(2, truncation=0.5, truncation_cutoff=2)


def test_bench_truncation_draws_classes_as_eval_does(tiny_run, monkeypatch):
    """bench truncation drew the grid's uneven class mix (n=200: 28 of the first classes, 14 of
    the last), so its FID disagreed with ganforge eval --truncation on the same run and n; now both
    ask for class i % K. The sample-size warnings are printed too (they had only reached the JSON)."""
    from types import SimpleNamespace

    from ganforge.bench import truncation as bench
    from ganforge.metrics.targets import run_samples

    seen, logged = [], []
    monkeypatch.setattr(bench, "evaluate", lambda images, labels, **kw: seen.append(labels) or SimpleNamespace(
        values={"fid": 1.0}, protocol={"warnings": ["fid from 10 samples"], "extractor": "x"}))
    run = ganforge.load(tiny_run)
    bench.run_benchmark(run, [0.5, 1.0], ref="fashion-mnist", n=10, log=logged.append)
    assert [s.tolist() for s in seen] == [[0, 1] * 5] * 2
    assert np.array_equal(seen[0], run_samples(run, n=10, truncation=0.5)[1])
    assert logged.count("warning: fid from 10 samples") == 1


def test_a_threshold_no_value_reaches_gives_the_untruncated_samples(tiny_run):
    """The README: values inside T are those of the untruncated sample with the same seed, and
    bench truncation samples the same latents at each value. Only the first batch had: the
    resampling draw shifted the stream of every later batch and of the standing statistics."""
    run = ganforge.load(tiny_run)
    plain = run.sample(10, seed=1, batch_size=5)
    assert torch.equal(run.sample(10, seed=1, batch_size=5, truncation=100.0), plain)
