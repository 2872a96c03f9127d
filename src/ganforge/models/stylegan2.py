"""StyleGAN2 networks (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, "Analyzing and
Improving the Image Quality of StyleGAN"), in plain PyTorch: no compiled CUDA/C++ ops, so the
same code runs on CPU, CUDA and MPS.

Generator = mapping network z -> w (8 equalized fully connected layers at 0.01x learning rate
after pixel norm of z, a tracked average ``w_avg``) + synthesis network (a learned 4x4
constant, modulated 3x3 convolutions with weight demodulation batched as one grouped
convolution, per-layer noise with a learned strength, skip-connection toRGB outputs).
Discriminator = residual blocks with FIR downsampling, minibatch stddev and, for class
conditioning, a projection head (Miyato & Koyama 2018).

Layer (w) indices: the synthesis network takes ws [N, num_ws, w_dim]; conv layer i uses ws[:, i]
and the toRGB after it the next index, so num_ws = number of convs + 1 (8 at 32 px, 12 at 128 px).
Indices 0-3 are the coarse styles (4x4, 8x8), higher ones middle and fine.

Equalized learning rate (Karras et al. 2018, sec. 4.1): weights are stored N(0, 1) / lr_mul and
scaled at run time by lr_mul / sqrt(fan_in), so Adam's steps are the same size in every layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MinibatchStd

SQRT2 = math.sqrt(2.0)


def lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU (0.2) with gain sqrt(2), which keeps the signal's second moment at 1."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Pixel norm: x / sqrt(mean(x^2)) along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """Equalized 3x3 (or 1x1) convolution of the discriminator, optionally downsampling by 2
    with the paper's [1, 3, 3, 1] filter.

    Downsampling filters the input, then convolves at stride 2, as the reference implementation
    does: a quarter of the multiply-adds of convolving at full resolution and filtering after,
    which made a StyleGAN2 training step 1.2-1.3x faster on CPU. For a 1x1 convolution the two
    orders are the same function; for 3x3 they differ only at the border (here the filter sees
    zero padding of the input, there the convolution's output was zero-padded)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True,
                 activation: bool = True, down: bool = False):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"EqualConv2d takes an odd kernel size, got {kernel}")
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_ch * kernel * kernel)
        self.activation, self.down, self.padding = activation, down, kernel // 2

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        weight = self.weight * self.weight_gain
        if not self.down:
            x = F.conv2d(x, weight, padding=self.padding)
        elif self.padding == 0:  # 1x1: filter and stride first, on the fewer input channels
            x = F.conv2d(fir_downsample(x), weight)
        else:  # H -> H + 2p + 1 - 4 (filter) -> H / 2 (k x k at stride 2), with p = (k + 1) / 2
            x = F.conv2d(fir_filter(x, pad=self.padding + 1), weight, stride=2)
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        return (lrelu(x) if self.activation else x) * gain


def _fir_kernel(device, dtype) -> Tensor:
    """The normalized 4x4 [1, 3, 3, 1] outer product, built on ``device`` from ``arange``: a
    ``torch.tensor`` of literals there would be a host-to-device copy, which on CUDA synchronizes
    the stream at every down-sampling (18.7 synchronizations per training step were counted)."""
    i = torch.arange(4, device=device, dtype=dtype)
    k = 3 - 2 * ((i - 1.5).abs() > 1).to(dtype)  # [1, 3, 3, 1]
    return torch.outer(k, k) / 64


def fir_filter(x: Tensor, *, pad: int, stride: int = 1) -> Tensor:
    """The separable [1, 3, 3, 1] low-pass of every channel, after zero padding by ``pad``."""
    c = x.shape[1]
    k = _fir_kernel(x.device, x.dtype).expand(c, 1, 4, 4)
    return F.conv2d(F.pad(x, (pad, pad, pad, pad)), k, stride=stride, groups=c)


def fir_downsample(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C, H/2, W/2]: the separable [1, 3, 3, 1] low-pass, then stride 2
    (zero padding of 1, as the reference's upfirdn2d with its default padding)."""
    return fir_filter(x, pad=1, stride=2)


def upsample2x(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W], bilinear: the same as zero insertion followed by the
    [1, 3, 3, 1] FIR filter except at the border, where bilinear repeats the edge pixel."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True,
                     eps: float = 1e-8) -> Tensor:
    """StyleGAN2's modulated convolution (paper, sec. 2.2 and eq. 1-3).

    x [N, I, H, W], weight [O, I, k, k], styles [N, I] -> [N, O, H, W]. Each sample's weights
    are the shared weights scaled by its styles along the input channels and, when
    ``demodulate``, rescaled to unit L2 norm per output channel.

    Computed as scaling the input, one shared convolution and scaling the output (the paper's
    eq. 1-3 read as activation scaling), as the reference implementation trains: the graph does
    not depend on N (an ONNX Conv's groups is fixed at export), and on CPU a StyleGAN2 training
    step ran 1.3x faster than with the "fused" form, which builds every sample's weights and runs
    them as one grouped convolution (groups = N; removed, as nothing used it)."""
    i, o, k = x.shape[1], weight.shape[0], weight.shape[2]
    out = F.conv2d(x * styles.reshape(-1, i, 1, 1), weight, padding=k // 2)
    if demodulate:  # sum over I, k, k of (weight * style)^2 = styles^2 @ (sum over k, k of weight^2)
        d = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + eps).rsqrt()  # [N, O]
        out = out * d.reshape(-1, o, 1, 1)
    return out


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ labels [N]) -> w [N, w_dim]; ``w_avg`` is an EMA of w over training."""

    def __init__(self, *, z_dim: int, w_dim: int, num_layers: int, num_classes: int = 0,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes, self.w_avg_beta = z_dim, w_dim, num_classes, w_avg_beta
        # Class conditioning: a label embedding, normalized like z and joined to it.
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, labels: Tensor | None = None, *, update_w_avg: bool = False) -> Tensor:
        x = normalize_2nd_moment(z.float())
        if self.embed is not None:
            if labels is None:
                raise ValueError("a class-conditional mapping network needs labels")
            y = self.embed(F.one_hot(labels, self.num_classes).to(x.dtype))
            x = torch.cat([x, normalize_2nd_moment(y)], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return x

    def truncate(self, w: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
        """ws [N, L, w_dim] pulled toward w_avg: w_avg + psi (w - w_avg) on layers < cutoff
        (all when None). psi = 1 is the identity, psi = 0 gives w_avg."""
        if psi == 1:
            return w
        pulled = self.w_avg.to(w.dtype).lerp(w, psi)
        if cutoff is None:
            return pulled
        keep = (torch.arange(w.shape[1], device=w.device) < cutoff).view(1, -1, 1)
        return torch.where(keep, pulled, w)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x upsampling), noise, bias, leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, *, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.weight_gain = 1 / math.sqrt(in_ch * 9)
        self.up, self.resolution = up, resolution

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None) -> Tensor:
        if self.up:
            x = upsample2x(x)
        x = modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w))
        if noise is not None:  # [N, 1, H, W] (or [H, W]), scaled by the learned strength
            x = x + noise.to(x.dtype) * self.noise_strength
        return lrelu(x + self.bias.view(1, -1, 1, 1))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation (paper, fig. 7)."""

    def __init__(self, in_ch: int, out_ch: int, *, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1 / math.sqrt(in_ch)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.view(1, -1, 1, 1)


def channels_at(res: int, *, resolution: int, width: int, channel_max: int) -> int:
    """``width`` channels at the output resolution, doubling per halving, up to channel_max."""
    return min(width * (resolution // res), channel_max)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, C, R, R] (not clamped; about [-1, 1])."""

    def __init__(self, *, w_dim: int, resolution: int, channels: int, width: int, channel_max: int):
        super().__init__()
        ch = {r: channels_at(r, resolution=resolution, width=width, channel_max=channel_max)
              for r in (2 ** k for k in range(2, int(math.log2(resolution)) + 1))}
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.convs, self.torgbs = nn.ModuleList(), nn.ModuleList()
        self.convs.append(SynthesisLayer(ch[4], ch[4], w_dim=w_dim, resolution=4))
        self.torgbs.append(ToRGB(ch[4], channels, w_dim=w_dim))
        for r in list(ch)[1:]:
            self.convs.append(SynthesisLayer(ch[r // 2], ch[r], w_dim=w_dim, resolution=r, up=True))
            self.convs.append(SynthesisLayer(ch[r], ch[r], w_dim=w_dim, resolution=r))
            self.torgbs.append(ToRGB(ch[r], channels, w_dim=w_dim))
        self.num_ws = len(self.convs) + 1
        self.resolution, self.channels = resolution, channels

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """Shapes of the per-layer noise inputs for a batch of n: [n, 1, r, r] per conv."""
        return [(n, 1, c.resolution, c.resolution) for c in self.convs]

    def make_noise(self, n: int, mode: str = "random", *, generator: torch.Generator | None = None,
                   device=None) -> list[Tensor] | None:
        """Noise inputs: ``random`` (from ``generator``), ``const`` (the fixed buffers saved with
        the weights) or ``none``."""
        device = device or self.const.device
        if mode == "none":
            return None
        if mode == "const":
            return [c.noise_const.expand(n, 1, -1, -1) for c in self.convs]
        gen_device = generator.device if generator is not None else device
        return [torch.randn(s, generator=generator, device=gen_device).to(device)
                for s in self.noise_shapes(n)]

    def forward(self, ws: Tensor, noise: list[Tensor] | None = None) -> Tensor:
        if ws.shape[1] != self.num_ws:
            raise ValueError(f"synthesis takes {self.num_ws} ws per sample, got {ws.shape[1]}")
        n = ws.shape[0]
        x = self.const.unsqueeze(0).expand(n, -1, -1, -1)
        img = None
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], None if noise is None else noise[i])
            if i % 2 == 0:  # after the 4x4 conv and after the second conv of each block: toRGB
                y = self.torgbs[i // 2](x, ws[:, i + 1])
                img = y if img is None else upsample2x(img) + y
        return img


class Generator(nn.Module):
    """z [N, z_dim] (+ labels) -> images [N, C, R, R]: mapping, truncation, synthesis."""

    def __init__(self, *, z_dim: int, w_dim: int, resolution: int, channels: int, width: int,
                 channel_max: int, mapping_layers: int, num_classes: int = 0, lr_mul: float = 0.01):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 4, got {resolution}")
        self.mapping = MappingNetwork(z_dim=z_dim, w_dim=w_dim, num_layers=mapping_layers,
                                      num_classes=num_classes, lr_mul=lr_mul)
        self.synthesis = SynthesisNetwork(w_dim=w_dim, resolution=resolution, channels=channels,
                                          width=width, channel_max=channel_max)
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.num_ws = self.synthesis.num_ws

    def ws(self, z: Tensor, labels: Tensor | None = None, *, psi: float = 1.0, cutoff: int | None = None,
           update_w_avg: bool = False) -> Tensor:
        """z -> ws [N, num_ws, w_dim] (the same w on every layer), truncated by psi."""
        w = self.mapping(z, labels, update_w_avg=update_w_avg)
        return self.mapping.truncate(w.unsqueeze(1).repeat(1, self.num_ws, 1), psi, cutoff)

    def forward(self, z: Tensor, labels: Tensor | None = None, *, psi: float = 1.0,
                cutoff: int | None = None, noise: list[Tensor] | str = "random",
                generator: torch.Generator | None = None) -> Tensor:
        """``noise``: a list of per-layer tensors (exportable, reproducible), or a mode of
        ``SynthesisNetwork.make_noise`` (random noise comes from ``generator``)."""
        ws = self.ws(z, labels, psi=psi, cutoff=cutoff)
        if isinstance(noise, str):
            noise = self.synthesis.make_noise(z.shape[0], noise, generator=generator, device=z.device)
        return self.synthesis(ws, noise)


class Sampler(nn.Module):
    """A generator's whole sampling pass as one tensor function, what ONNX export writes and the
    server batches: z [N, z_dim], labels [N] (conditional generators, else None), truncation psi
    [N] (one per sample; 1: none) and the per-layer noise packed as [N, sum of r * r] (the planes
    of ``SynthesisNetwork.noise_shapes``, flattened and joined in layer order) -> images [N, C,
    R, R] clamped to [-1, 1]. Truncation is ``w_avg.lerp(w, psi)`` with psi a tensor: no branch
    on its value, and lerp's end-point form returns w exactly at psi = 1. ``cutoff`` (a
    constant of a graph): truncate only layers below it."""

    input_meaning = {"truncation": "float32 [N], psi per sample in [0, 1] (1: none)",
                     "noise": "float32 [N, sum r*r], each layer's noise plane [N, 1, r, r] flattened, "
                              "in layer order"}
    input_walk = False  # the family's interpolation walks W with fixed noise, not these inputs

    def __init__(self, G: Generator):
        super().__init__()
        self.G = G

    def pack_noise(self, planes: list[Tensor]) -> Tensor:
        return torch.cat([p.flatten(1) for p in planes], 1)

    def forward(self, z: Tensor, labels: Tensor | None, truncation: Tensor, noise: Tensor,
                cutoff: int | None = None) -> Tensor:
        G = self.G
        ws = G.mapping(z, labels).unsqueeze(1).repeat(1, G.num_ws, 1)
        pulled = G.mapping.w_avg.to(ws.dtype).lerp(ws, truncation.to(ws.dtype).view(-1, 1, 1))
        if cutoff:
            keep = (torch.arange(G.num_ws, device=ws.device) < cutoff).view(1, -1, 1)
            pulled = torch.where(keep, pulled, ws)
        sides = [s[-1] for s in G.synthesis.noise_shapes(1)]
        planes = [p.reshape(-1, 1, r, r) for p, r in zip(noise.split([r * r for r in sides], 1), sides)]
        return G.synthesis(pulled, planes).float().clamp(-1, 1)


def mix_styles(ws: Tensor, ws2: Tensor, crossover: int | Tensor) -> Tensor:
    """Style mixing: layers < crossover from ``ws``, layers >= crossover from ``ws2`` [N, L, D]."""
    layer = torch.arange(ws.shape[1], device=ws.device).view(1, -1, 1)
    return torch.where(layer < torch.as_tensor(crossover, device=ws.device), ws, ws2)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of latents a, b [N, D] at t [N, 1] (White 2016, "Sampling
    Generative Networks"): stays at the norm Gaussian z concentrate on; linear when a ~ b."""
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
    omega = torch.acos((an * bn).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-7)
    return torch.where(so < 1e-4, lin, sph)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs (the second downsamples) plus a 1x1 downsampled skip; sum / sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, activation=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class Discriminator(nn.Module):
    """images [N, C, R, R] (+ labels) -> scores [N] (logits; higher = more real)."""

    def __init__(self, *, resolution: int, channels: int, width: int, channel_max: int,
                 mbstd_group: int = 4, num_classes: int = 0, cmap_dim: int = 0):
        super().__init__()
        res = [2 ** k for k in range(int(math.log2(resolution)), 2, -1)]  # R, R/2, ..., 8
        ch = {r: channels_at(r, resolution=resolution, width=width, channel_max=channel_max)
              for r in res + [4]}
        self.from_rgb = EqualConv2d(channels, ch[resolution], 1)
        self.blocks = nn.Sequential(*(DiscriminatorBlock(ch[r], ch[r // 2]) for r in res))
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else None
        c4 = ch[4]
        self.conv = EqualConv2d(c4 + (1 if mbstd_group else 0), c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.num_classes = num_classes
        self.cmap_dim = (cmap_dim or c4) if num_classes else 1
        self.out = EqualLinear(c4, self.cmap_dim)
        # Projection discriminator: score = <out(x), embed(y)> / sqrt(cmap_dim).
        self.embed = EqualLinear(num_classes, self.cmap_dim) if num_classes else None

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.blocks(self.from_rgb(x))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.embed is None:
            return x.squeeze(1)
        if labels is None:
            raise ValueError("a class-conditional discriminator needs labels")
        cmap = self.embed(F.one_hot(labels, self.num_classes).to(x.dtype))
        return (x * cmap).sum(1) / math.sqrt(self.cmap_dim)
