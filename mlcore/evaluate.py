"""Metrics: accuracy, per-class precision/recall, macro-F1, AUROC, expected calibration error
and its reliability curve, confusion matrix; for the multi-class emotion task and for each
diagnosis label (present vs absent). `score` is the single number training and promotion
compare: the mean macro-F1 over the model's tasks."""

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """The reliability curve: per equal-width confidence bin that holds predictions, how
    confident the model was (mean) and how often it was right."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    curve = []
    for b in range(bins):
        members = which == b
        if members.any():
            curve.append(
                {
                    "lower": round(float(edges[b]), 3),
                    "upper": round(float(edges[b + 1]), 3),
                    "count": int(members.sum()),
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                }
            )
    return curve


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    curve = reliability_bins(confidence, correct, bins)
    total = sum(b["count"] for b in curve)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in curve))


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str]
) -> dict:
    """Metrics of a single-label task: `probabilities` is (N, classes), `y_true` class indices."""
    indices = list(range(len(labels)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=indices, zero_division=0
    )
    present = np.unique(y_true)
    try:
        if len(labels) == 2:
            auroc = float(roc_auc_score(y_true, probabilities[:, 1])) if len(present) == 2 else None
        else:
            auroc = (
                float(roc_auc_score(y_true, probabilities, multi_class="ovr", labels=indices))
                if len(present) == len(labels)
                else None
            )
    except ValueError:
        auroc = None
    confidence = probabilities.max(axis=1)
    correct = predicted == y_true
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "macro_f1": float(
            f1_score(y_true, predicted, labels=indices, average="macro", zero_division=0)
        ),
        "auroc": auroc,
        "ece": expected_calibration_error(confidence, correct),
        "reliability": reliability_bins(confidence, correct),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=indices).tolist(),
        "labels": list(labels),
    }


def diagnosis_metrics(y_true: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict:
    """Per label, a two-class task (absent, present); macro-F1 averages the labels."""
    per_label = {
        label: classification_metrics(
            y_true[:, i].astype(int),
            np.stack([1 - probabilities[:, i], probabilities[:, i]], axis=1),
            ["absent", "present"],
        )
        for i, label in enumerate(labels)
    }
    return {
        "macro_f1": float(np.mean([m["macro_f1"] for m in per_label.values()])),
        "per_label": per_label,
    }


def score(metrics: dict) -> float:
    """Mean macro-F1 over the tasks present in `metrics`."""
    values = [metrics[task]["macro_f1"] for task in ("diagnosis", "emotion") if task in metrics]
    return float(np.mean(values)) if values else 0.0


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], count: int, *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of `statistic(rows)` over `count` cases: the
    statistic on `resamples` draws of `count` rows with replacement."""
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, count, count)) for _ in range(resamples)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)
