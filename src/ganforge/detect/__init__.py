"""Real or generated? A small CNN detector trained with blur and JPEG augmentation, after Wang et
al. 2020, "CNN-generated images are surprisingly easy to spot... for now" (CVPR 2020).

    from ganforge import detect
    det = detect.train(real_uint8, fake_uint8, detect.Recipe(steps=1000))
    detect.save(det, Path("det"))
    detect.load("det").probabilities(images_uint8)      # P(generated) per image
    detect.evaluate(det, real_uint8, fake_uint8)        # {"ap", "acc", "real_acc", "fake_acc", ...}

Images are uint8 [N, C, H, W] at the detector's size; ``ganforge detect`` turns datasets, runs,
samples.npz files and folders into them.
"""
import importlib

# Where each name lives, imported at its first use: ``ganforge.detect.sources`` (the CLI's, at
# start) must not import torch, or every command's --help waits seconds for it
_HOMES = {"Detector": "detector", "Recipe": "detector", "check_network": "detector", "evaluate": "detector",
          "load": "detector", "save": "detector", "train": "detector", "accuracy": "metrics",
          "average_precision": "metrics", "DetectorCNN": "model", "blur_jpeg": "model"}

__all__ = sorted(_HOMES)


_SUBMODULES = ("detector", "metrics", "model", "sources")


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    if name in _SUBMODULES:  # `import ganforge.detect as d; d.model` (importing the names had bound them)
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_HOMES})
