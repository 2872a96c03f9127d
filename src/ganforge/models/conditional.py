"""Class-conditional DCGAN networks: G(z, y) and D(x, y) with labels y int64 [N] in 0..K-1.

Generator conditioning (``cond``):
- "concat": a learned label embedding is concatenated to z (Mirza & Osindero 2014,
  "Conditional Generative Adversarial Nets", with an embedding instead of a one-hot vector);
- "cbn": conditional batch norm, every BatchNorm's gain and bias are looked up per class
  (de Vries et al. 2017; the generator of Miyato & Koyama 2018).

Discriminator conditioning (``cond``):
- "concat": K one-hot label planes are concatenated to the image channels (Mirza & Osindero 2014);
  with ``concat_at="every"`` also to the input of every later convolution (the hidden-layer
  concatenation of Reed et al. 2016 and of Miyato & Koyama 2018, fig. 1c, at every stage), so the
  deeper layers see the label directly, not only through what the first layer kept of it;
- "projection": D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, "cGANs with
  Projection Discriminator", eq. 3);
- "acgan": D(x) ignores y for its real/fake score and an auxiliary head classifies phi(x) into
  the K classes (Odena, Olah & Shlens 2017, "Conditional Image Synthesis with Auxiliary Classifier
  GANs").

The layer stacks are those of ganforge.models.dcgan (same start sizes and widths); phi(x) is D's
last feature map flattened [N, F], and psi is a linear map F -> 1, which is exactly DCGAN's final
s x s convolution written as a matrix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .dcgan import G_HEADS, d_body, plan
from .layers import check_positive, dcgan_init_

G_CONDS = ("concat", "cbn")
D_CONDS = ("concat", "projection", "acgan")
D_CONCAT_AT = ("input", "every")


def _check(kind: str, value: str, valid: tuple[str, ...], key: str) -> None:
    if value not in valid:
        raise ConfigError(f"{kind}: {key} must be one of {', '.join(valid)}, got '{value}'")


def _init_(module: nn.Module) -> None:
    """DCGAN init for convs and affine batch norms (batch norms without affine have no weights)."""
    if isinstance(module, nn.BatchNorm2d) and not module.affine:
        return
    dcgan_init_(module)


class CondBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, then a gain and a bias per class: [N, C, H, W], [N]."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.gain.weight, 1.0, 0.02)  # DCGAN's BN init, once per class
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.bn(x)
        return h * self.gain(labels)[:, :, None, None].to(h) + self.bias(labels)[:, :, None, None].to(h)


class _BN(nn.BatchNorm2d):
    """Plain BatchNorm2d taking (and ignoring) labels, so both norms share one call."""

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return super().forward(x)


class ConditionalGenerator(nn.Module):
    """(z [N, z_dim], labels [N]) -> images [N, C, H, W] in [-1, 1]."""

    def __init__(self, *, resolution: int, channels: int, z_dim: int, width: int, num_classes: int,
                 cond: str = "concat", embed_dim: int = 0, head: str | None = None):
        super().__init__()
        check_positive("conditional dcgan", channels=channels, z_dim=z_dim, width=width,
                       num_classes=num_classes)
        _check("conditional generator", cond, G_CONDS, "cond.g_cond")
        _check("conditional generator", head or "convt", G_HEADS, "model.g_head")
        full = head == "conv"  # as ganforge.models.dcgan: a full-resolution stage, a 3x3 output conv
        s, n_up = plan(resolution)
        self.resolution, self.channels, self.z_dim = resolution, channels, z_dim
        self.num_classes, self.cond = num_classes, cond
        embed_dim = embed_dim or num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if cond == "concat" else None
        in_dim = z_dim + (embed_dim if cond == "concat" else 0)

        def norm(c: int) -> nn.Module:
            return CondBatchNorm2d(c, num_classes) if cond == "cbn" else _BN(c)

        c = width * 2 ** (n_up - 1 + full)
        convs = [nn.ConvTranspose2d(in_dim, c, s, 1, 0, bias=False)]
        norms = [norm(c)]
        for _ in range(n_up - 1 + full):
            convs.append(nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False))
            norms.append(norm(c // 2))
            c //= 2
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.out = nn.Conv2d(c, channels, 3, 1, 1) if full else nn.ConvTranspose2d(c, channels, 4, 2, 1)
        self.apply(_init_)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        h = z.reshape(z.shape[0], self.z_dim)
        if self.embed is not None:
            h = torch.cat([h, self.embed(labels).to(h)], dim=1)
        h = h[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h), labels))
        return torch.tanh(self.out(h))


def _widened(conv: nn.Conv2d, extra: int) -> nn.Conv2d:
    """A fresh convolution like ``conv`` with ``extra`` more input channels."""
    return nn.Conv2d(conv.in_channels + extra, conv.out_channels, conv.kernel_size, conv.stride,
                     conv.padding, bias=conv.bias is not None)


class ConditionalDiscriminator(nn.Module):
    """(images [N, C, H, W], labels [N]) -> logits [N]; ``scores`` also gives the AC-GAN class
    logits [N, K] (None for the other conditionings). ``head="deep"`` adds DCGAN's third stride-2
    stage (ganforge.models.dcgan.d_body) before phi(x)."""

    def __init__(self, *, resolution: int, channels: int, width: int, num_classes: int,
                 cond: str = "projection", norm: str | None = "batch", mbstd: int = 0,
                 head: str | None = None, concat_at: str = "input"):
        super().__init__()
        norm = norm or "batch"
        check_positive("conditional dcgan", channels=channels, width=width, num_classes=num_classes)
        _check("conditional discriminator", cond, D_CONDS, "cond.d_cond")
        _check("conditional discriminator", concat_at, D_CONCAT_AT, "cond.d_concat_at")
        if concat_at != "input" and cond != "concat":
            raise ConfigError(f"cond.d_concat_at={concat_at} needs cond.d_cond=concat (got '{cond}')")
        s, n_up = plan(resolution)
        self.resolution, self.channels, self.num_classes, self.cond = resolution, channels, num_classes, cond
        in_ch = channels + (num_classes if cond == "concat" else 0)
        layers, c, s = d_body(in_ch, width, n_up, s, norm=norm, head=head, mbstd=mbstd)
        self.every = concat_at == "every"
        if self.every:  # every convolution after the first also takes the K label planes
            layers = [layers[0]] + [_widened(m, num_classes) if isinstance(m, nn.Conv2d) else m
                                    for m in layers[1:]]
        self.body = nn.Sequential(*layers)
        self.feature_dim = c * s * s
        self.psi = nn.Linear(self.feature_dim, 1)
        self.embed = nn.Embedding(num_classes, self.feature_dim) if cond == "projection" else None
        self.classify = nn.Linear(self.feature_dim, num_classes) if cond == "acgan" else None
        self.apply(_init_)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def phi(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Features [N, F] (labels are needed only by the concat conditioning)."""
        if self.cond == "concat":
            if labels is None:
                raise ValueError("the concat discriminator needs labels")
            planes = F.one_hot(labels, self.num_classes).to(x)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
            if self.every:
                for i, layer in enumerate(self.body):
                    if i and isinstance(layer, nn.Conv2d):
                        x = torch.cat([x, planes.to(x).expand(-1, -1, *x.shape[2:])], dim=1)
                    x = layer(x)
                return x.flatten(1)
        return self.body(x).flatten(1)

    def scores(self, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(adversarial logits [N], class logits [N, K] or None)."""
        h = self.phi(x, labels)
        adv = self.psi(h).squeeze(1)
        if self.embed is not None:
            adv = adv + (self.embed(labels).to(h) * h).sum(1)
        return adv, (self.classify(h) if self.classify is not None else None)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.scores(x, labels)[0]
