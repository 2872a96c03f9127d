"""2-D mixtures of Gaussians for studying mode collapse: the ring of 8 and the 5x5 grid
(as in Metz et al., 2017, "Unrolled GANs", and Srivastava et al., 2017, "VEEGAN").
Because the modes are known, coverage and sample quality can be measured exactly."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from .base import DATASETS, LoadRequest

# Samples the mode numbers are computed on: PacGAN's protocol (Lin et al. 2018, sec. 5.1), used by
# the mode benchmark (ganforge.bench.modes) and by the training monitor's coverage probe
N_SAMPLES = 2500


@dataclass
class ToyDataset:
    points: torch.Tensor  # float32 [N, 2]
    modes: torch.Tensor  # float32 [M, 2] mode centres
    sigma: float
    name: str
    source: str = "generated"
    labels: None = None  # so code can treat image and toy datasets alike
    class_names: None = None

    def __len__(self) -> int:
        return len(self.points)


def ring_modes(n: int = 8, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = [spacing * (i - (side - 1) / 2) for i in range(side)]  # {-4,-2,0,2,4} for 5, 2
    return torch.tensor(list(itertools.product(coords, coords)), dtype=torch.float32)


def sample(modes: torch.Tensor, sigma: float, n: int, seed: int) -> torch.Tensor:
    """n points: a uniformly chosen mode plus isotropic Gaussian noise; float32 [n, 2]."""
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(modes), (n,), generator=g)
    return modes[which] + sigma * torch.randn(n, 2, generator=g)


class ToySource:
    def __init__(self, name: str, modes: torch.Tensor, sigma: float):
        self.name, self.modes, self.sigma = name, modes, sigma

    def load(self, req: LoadRequest) -> ToyDataset:
        points = sample(self.modes, self.sigma, req.n_toy, req.seed)
        return ToyDataset(points=points, modes=self.modes.clone(), sigma=self.sigma, name=self.name)

    def fetch(self, arg, *, data_dir) -> str:
        return f"{self.name}: generated on the fly, nothing to fetch"

    def info(self, arg) -> dict:
        return {"resolution": None, "channels": None, "num_classes": None, "class_names": None,
                "num_modes": len(self.modes), "sigma": self.sigma}


def toy_mixture(name: str) -> ToySource | None:
    """The mixture behind ``data.name`` (its modes and sigma), None when it is not a toy one."""
    source = DATASETS.get(name) if name in DATASETS else None
    return source if isinstance(source, ToySource) else None


DATASETS.register("toy:ring8")(ToySource("toy:ring8", ring_modes(8, 1.0), 0.01))
DATASETS.register("toy:grid25")(ToySource("toy:grid25", grid_modes(5, 2.0), 0.05))


def scatter_png(points, *, data: str, step: int) -> bytes | None:
    """A scatter plot of a point run's samples (float [N, 2]) as PNG bytes; for a toy mixture
    (``data``: its data.name), each mode's 3-sigma circle in red (where high-quality samples
    fall). Drawn for `ganforge sample` (ganforge.report.plots.points_png) and for the training
    previews (the objective's preview_picture); None without matplotlib."""
    import io

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle
    except ImportError:
        return None
    toy = toy_mixture(data)
    fig = Figure(figsize=(4.2, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(points[:, 0].tolist(), points[:, 1].tolist(), s=4, alpha=0.6, color="tab:blue", lw=0)
    if toy is not None:
        for mx, my in toy.modes.tolist():
            ax.add_patch(Circle((mx, my), 3 * toy.sigma, fill=False, color="tab:red", lw=0.7))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{len(points)} samples, {data}, step {step}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def mode_metrics(samples: torch.Tensor, modes: torch.Tensor, sigma: float) -> dict[str, float]:
    """PacGAN's numbers for samples [N, 2] against mode centres [M, 2] of std sigma.

    Returns {"modes": captured modes, "hq": high-quality fraction, "rkl": KL(q || uniform)}.
    """
    samples, modes = samples.double(), modes.double()
    dist = torch.cdist(samples, modes)  # [N, M]
    nearest_d, nearest = dist.min(dim=1)
    hq = nearest_d <= 3 * sigma
    captured = torch.unique(nearest[hq]).numel()
    counts = torch.bincount(nearest, minlength=len(modes)).double()
    q = counts / counts.sum()
    p = 1.0 / len(modes)
    rkl = float(sum(qi * math.log(qi / p) for qi in q.tolist() if qi > 0))
    return {"modes": int(captured), "hq": float(hq.double().mean()), "rkl": rkl}
