"""BigGAN networks (Brock, Donahue & Simonyan 2019, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis"), for class-conditional images at 8 to 256 px.

- Generator: a linear layer to 4x4, then one residual up-block per doubling (BN-ReLU-up-conv3x3-
  BN-ReLU-conv3x3, a 1x1 conv on the upsampled shortcut), BN-ReLU-conv3x3-tanh. Every block's
  BatchNorm is class-conditional through a *shared* embedding: with the hierarchical latent, z is
  split into one chunk per block plus one for the linear layer, and block k's gains and biases
  are linear in [shared(y), z_k] (gain = 1 + W_g c, bias = W_b c; sec. 3 and appendix B).
- Discriminator: residual down-blocks (pre-activation from the second on), one block at 4x4
  without downsampling, ReLU, global sum pooling, then projection (Miyato & Koyama 2018):
  D(x, y) = w . phi(x) + <embed(y), phi(x)>.
- A self-attention block (Zhang et al. 2019, SAGAN) after the block that outputs ``attn_res``, in
  G and D; its output is x + gamma * attention(x) with gamma = 0 at initialization.
- Spectral norm on every conv, linear and D's class embedding (G's shared embedding excepted, as
  in the authors' code); orthogonal initialization of all weights.

Channel widths follow the authors' 128 px layout written as a rule: the 4x4 stage has
16 x ``width`` channels (fewer below 128 px), halving per resolution doubling down to ``width``.
The paper's "standing statistics" for sampling in eval mode are ``layers.standing_stats_``.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import check_positive

# the config key behind each size the networks check (objective=biggan; width is G's or D's)
CONFIG_KEYS = {"channels": "data.channels", "shared_dim": "biggan.shared_dim",
               "num_classes": "data.name (a dataset with classes)"}

MAX_MULT = 16  # widest stage: 16 x width channels (the authors' ch * 16)


def n_blocks(resolution: int) -> int:
    """Up-blocks of G (= down-blocks of D) for ``resolution``: 4 x 2^n."""
    n = int(round(math.log2(max(resolution, 1) / 4)))
    if n < 1 or 4 * 2 ** n != resolution:
        raise ConfigError(f"objective=biggan needs data.resolution = 4 x a power of two (8, 16, 32, "
                          f"64, 128, 256), got {resolution}")
    return n


def attention_resolutions(resolution: int) -> list[int]:
    """Resolutions at which both G and D have a block output: 8 .. resolution / 2."""
    return [4 * 2 ** i for i in range(1, n_blocks(resolution))]


def _check_attn(resolution: int, attn_res: int) -> None:
    valid = attention_resolutions(resolution)
    if attn_res and attn_res not in valid:
        options = ", ".join(map(str, valid)) or "none at this size"
        raise ConfigError(f"biggan.attn_res={attn_res} is not a resolution of both G's and D's "
                          f"blocks at {resolution}x{resolution} ({options}); pick one or 0 for none")


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, k // 2, bias=bias)


def _ortho_init_(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
        nn.init.orthogonal_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def _spectral_norm_(net: nn.Module, skip: Iterable[nn.Module] = ()) -> None:
    from torch.nn.utils.parametrizations import spectral_norm

    skip = {id(m) for m in skip}
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)) and id(module) not in skip:
            spectral_norm(module)


class SelfAttention(nn.Module):
    """SAGAN self-attention [N, C, H, W] -> [N, C, H, W]: x + gamma * o, where o attends over
    2x2-max-pooled keys and values (as the BigGAN authors' code); gamma starts at 0."""

    def __init__(self, channels: int):
        super().__init__()
        c8, c2 = max(1, channels // 8), max(1, channels // 2)
        self.theta = _conv(channels, c8, 1, bias=False)
        self.phi = _conv(channels, c8, 1, bias=False)
        self.g = _conv(channels, c2, 1, bias=False)
        self.out = _conv(c2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        pool = h % 2 == 0 and w % 2 == 0
        theta = self.theta(x).flatten(2)  # [N, C/8, HW]
        phi, g = self.phi(x), self.g(x)
        if pool:
            phi, g = F.max_pool2d(phi, 2), F.max_pool2d(g, 2)
        attn = torch.softmax(theta.transpose(1, 2) @ phi.flatten(2), dim=-1)  # [N, HW, HW/4]
        o = (g.flatten(2) @ attn.transpose(1, 2)).reshape(n, -1, h, w)  # [N, C/2, H, W]
        return x + self.gamma * self.out(o)


class HierCondBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; gain 1 + W_g c and bias W_b c from the block's
    conditioning vector c [N, cond_dim] = [shared(y), z_k]."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)

    def affine(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """(gain, bias), each [N, channels]."""
        return 1 + self.gain(cond), self.bias(cond)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain, bias = self.affine(cond)
        h = self.bn(x)
        return h * gain[:, :, None, None].to(h) + bias[:, :, None, None].to(h)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.bn1, self.conv1 = HierCondBatchNorm2d(cin, cond_dim), _conv(cin, cout)
        self.bn2, self.conv2 = HierCondBatchNorm2d(cout, cond_dim), _conv(cout, cout)
        self.skip = _conv(cin, cout, 1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, down: bool, preact: bool):
        super().__init__()
        self.conv1, self.conv2 = _conv(cin, cout), _conv(cout, cout)
        self.skip = _conv(cin, cout, 1) if (cin != cout or down) else None
        self.down, self.preact = down, preact

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x) if self.preact else x)))
        s = x
        if self.preact:  # the shortcut convolves, then pools (cheaper); the first block the reverse
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        else:
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        return (F.avg_pool2d(h, 2) if self.down else h) + s


class BigGANGenerator(nn.Module):
    """(z [N, z_dim], labels [N]) -> images [N, C, H, W] in [-1, 1]."""

    def __init__(self, *, resolution: int, channels: int, z_dim: int, width: int, num_classes: int,
                 shared_dim: int = 128, hier: bool = True, attn_res: int = 0,
                 spectral_norm: bool = True, class_in_input: bool = False):
        super().__init__()
        check_positive("biggan", {**CONFIG_KEYS, "width": "model.g_width"}, channels=channels, z_dim=z_dim,
                       width=width, num_classes=num_classes, shared_dim=shared_dim)
        n = n_blocks(resolution)
        _check_attn(resolution, attn_res)
        self.resolution, self.channels, self.z_dim, self.num_classes = resolution, channels, z_dim, num_classes
        self.n_chunks = n + 1 if hier else 1
        if z_dim % self.n_chunks:
            fit = self.n_chunks * max(1, round(z_dim / self.n_chunks))
            raise ConfigError(f"model.z_dim={z_dim} does not split into {self.n_chunks} equal chunks "
                              f"(one per generator block and one for its first layer at "
                              f"{resolution}x{resolution}); use model.z_dim={fit}, or biggan.hier=false")
        self.chunk = z_dim // self.n_chunks
        cond_dim = shared_dim + (self.chunk if hier else 0)
        chans = [width * min(2 ** (n - i), MAX_MULT) for i in range(n + 1)]  # 4x4 .. full size
        self.shared = nn.Embedding(num_classes, shared_dim)
        # class_in_input: the shared embedding also joins the first layer's input, as in
        # BigGAN-deep (Brock et al. 2019, appendix B), not only the blocks' batch norms
        self.class_in_input = class_in_input
        self.linear = nn.Linear(self.chunk + (shared_dim if class_in_input else 0), chans[0] * 16)
        self.first_channels = chans[0]  # named, not -1: ONNX export cannot infer it with labels in
        self.blocks = nn.ModuleList(GBlock(chans[i], chans[i + 1], cond_dim) for i in range(n))
        # block i outputs 8 * 2^i px; the attention follows the block at attn_res
        self.attn_after = int(math.log2(attn_res // 8)) if attn_res else -1
        self.attention = SelfAttention(chans[self.attn_after + 1]) if attn_res else None
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out_conv = _conv(chans[-1], channels)
        self.apply(_ortho_init_)
        if spectral_norm:
            _spectral_norm_(self, skip=[self.shared])

    def conditions(self, z: Tensor, labels: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(the first layer's input [N, chunk], or [N, chunk + shared_dim] with class_in_input;
        each block's conditioning [N, cond_dim])."""
        y = self.shared(labels)
        z = z.reshape(z.shape[0], self.z_dim)
        if self.n_chunks == 1:
            first, conds = z, [y] * len(self.blocks)
        else:
            first, *rest = z.split(self.chunk, dim=1)
            conds = [torch.cat([y, c.to(y)], dim=1) for c in rest]
        if self.class_in_input:
            first = torch.cat([first, y.to(first)], dim=1)
        return first, conds

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        first, conds = self.conditions(z, labels)
        h = self.linear(first).reshape(z.shape[0], self.first_channels, 4, 4)
        for i, (block, cond) in enumerate(zip(self.blocks, conds)):
            h = block(h, cond)
            if i == self.attn_after:
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class Sampler(nn.Module):
    """G's sampling pass as one tensor function, what ONNX export writes and the server batches:
    z [N, z_dim] (drawn by the family, truncated where asked), labels int64 [N] -> images
    [N, C, H, W] clamped to [-1, 1]. The truncation is not an input: in eval mode G's BatchNorms
    use the standing statistics its family computed for one truncation (ganforge.objectives.
    biggan), so a traced graph is right for that truncation only (``truncation_state``)."""

    input_meaning = {"z": "float32 [N, z_dim], N(0, 1) with every value beyond the graph's truncation "
                          "resampled inside it (none: untruncated)",
                     "labels": "int64 [N], class indices"}
    # read by ganforge.serve.graph: what in this module's state belongs to one truncation
    truncation_state = "the generator's standing BatchNorm statistics are computed for one truncation"

    def __init__(self, G: BigGANGenerator):
        super().__init__()
        self.G = G

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.G(z, labels).float().clamp(-1, 1)


class BigGANDiscriminator(nn.Module):
    """(images [N, C, H, W], labels [N]) -> logits [N] (projection); with ``class_head`` also
    class logits [N, num_classes] from the same features (``scores``)."""

    def __init__(self, *, resolution: int, channels: int, width: int, num_classes: int,
                 attn_res: int = 0, spectral_norm: bool = True, class_head: bool = False):
        super().__init__()
        check_positive("biggan", {**CONFIG_KEYS, "width": "model.d_width"}, channels=channels, width=width,
                       num_classes=num_classes)
        n = n_blocks(resolution)
        _check_attn(resolution, attn_res)
        self.resolution, self.channels, self.num_classes = resolution, channels, num_classes
        chans = [channels] + [width * min(2 ** i, MAX_MULT) for i in range(n)]
        blocks = [DBlock(chans[i], chans[i + 1], down=True, preact=i > 0) for i in range(n)]
        blocks.append(DBlock(chans[-1], chans[-1], down=False, preact=True))  # at 4x4
        self.blocks = nn.ModuleList(blocks)
        # down-block i outputs resolution / 2^(i+1)
        self.attn_after = int(math.log2(resolution // attn_res)) - 1 if attn_res else -1
        self.attention = SelfAttention(chans[self.attn_after + 1]) if attn_res else None
        self.linear = nn.Linear(chans[-1], 1)
        self.embed = nn.Embedding(num_classes, chans[-1])
        self.classes = nn.Linear(chans[-1], num_classes) if class_head else None
        self.apply(_ortho_init_)
        if spectral_norm:
            _spectral_norm_(self)

    def phi(self, x: Tensor) -> Tensor:
        """Features [N, F]: ReLU then global sum pooling of the last block."""
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attention(h)
        return F.relu(h).sum(dim=(2, 3))

    def scores(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """(logits [N], class logits [N, num_classes] or None without a class head): the
        conditional objective's interface."""
        h = self.phi(x)
        logits = self.linear(h).squeeze(1) + (self.embed(labels).to(h) * h).sum(1)
        return logits, (self.classes(h) if self.classes is not None else None)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.scores(x, labels)[0]
