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
from .detector import Detector, Recipe, check_network, evaluate, load, save, train
from .metrics import accuracy, average_precision
from .model import DetectorCNN, blur_jpeg

__all__ = ["Detector", "DetectorCNN", "Recipe", "accuracy", "average_precision", "blur_jpeg",
           "check_network", "evaluate", "load", "save", "train"]
