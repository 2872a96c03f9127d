"""Evaluation: feature extractors, metrics and the real-data statistics they compare against.

    from ganforge import metrics
    result = metrics.evaluate(images, ref="fashion-mnist")       # uint8 [N, C, H, W]
    metrics.fid(features_a, features_b)                           # pure functions of features

Modules: features.py (extractor protocol and registry), classifier.py (the offline CNN and its
recipe), fid.py, kid.py, inception_score.py, prdc.py (precision/recall, density/coverage),
coverage.py (class coverage, label accuracy, intra-class FID), memorization.py, reference.py
(cached real features), evaluation.py (the metric registry and ``evaluate``), targets.py (what
``ganforge eval`` reads), hook.py (evaluation during training).
"""
from .coverage import class_coverage, class_histogram, intra_fid, label_accuracy
from .errors import EvalError
from .evaluation import METRICS, EvalResult, evaluate
from .features import (EXTRACTORS, ClassifierExtractor, Extractor, Features, InceptionExtractor,
                       ModuleExtractor, get_extractor, to_uint8)
from .fid import fid, frechet_distance, gaussian_stats
from .hook import training_hook
from .inception_score import inception_score
from .kid import kid, polynomial_mmd2
from .memorization import memorization, memorization_threshold
from .prdc import density_coverage, precision_recall
from .targets import load_target, run_samples

__all__ = ["EvalError", "EvalResult", "evaluate", "METRICS", "EXTRACTORS", "Extractor", "Features",
           "ClassifierExtractor", "InceptionExtractor", "ModuleExtractor", "get_extractor", "to_uint8",
           "fid", "frechet_distance", "gaussian_stats", "kid", "polynomial_mmd2", "inception_score",
           "precision_recall", "density_coverage", "class_coverage", "class_histogram", "intra_fid",
           "label_accuracy", "memorization", "memorization_threshold", "training_hook", "load_target",
           "run_samples"]
