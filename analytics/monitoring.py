"""How well the model is doing, from what professionals said and what it saw: pure functions over
aggregates that the database computes (counts per pair of labels, per confidence bin, per
histogram bin), so that they stay fast however many results there are."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float | None  # None: the model never predicted the label
    recall: float | None  # None: the label never truly occurred
    f1: float
    support: int  # how often the label truly occurred


def confusion_matrix(
    counts: Iterable[tuple[str, str, int]], *, labels: Sequence[str]
) -> list[list[int]]:
    """(true label, predicted label, count) aggregates → a square matrix, rows true and columns
    predicted, in the order of `labels`; pairs with a label outside `labels` are left out."""
    index = {label: position for position, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for true, predicted, count in counts:
        if true in index and predicted in index:
            matrix[index[true]][index[predicted]] += count
    return matrix


def per_class(matrix: Sequence[Sequence[int]], *, labels: Sequence[str]) -> list[ClassMetrics]:
    metrics = []
    for position, label in enumerate(labels):
        hits = matrix[position][position]
        predicted = sum(row[position] for row in matrix)
        actual = sum(matrix[position])
        precision = hits / predicted if predicted else None
        recall = hits / actual if actual else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        metrics.append(ClassMetrics(label, precision, recall, f1, actual))
    return metrics


def macro_f1(metrics: Sequence[ClassMetrics]) -> float:
    """Mean F1 over the labels that occurred or were predicted."""
    seen = [m for m in metrics if m.support or m.precision is not None]
    return sum(m.f1 for m in seen) / len(seen) if seen else 0.0


def accuracy(matrix: Sequence[Sequence[int]]) -> float | None:
    total = sum(map(sum, matrix))
    return sum(matrix[i][i] for i in range(len(matrix))) / total if total else None


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_curve(
    bins: Iterable[tuple[int, int, float, int]], *, bin_count: int = 10
) -> list[ReliabilityBin]:
    """(bin index, predictions, sum of their confidences, how many were right) aggregates →
    the reliability curve: per confidence bin, how confident the model was and how often it was
    right. Empty bins are left out; an index at `bin_count` (confidence exactly 1) joins the
    last bin."""
    gathered: dict[int, list[float]] = {}
    for index, count, confidence_sum, correct in bins:
        index = min(max(int(index), 0), bin_count - 1)
        totals = gathered.setdefault(index, [0, 0.0, 0])
        totals[0] += count
        totals[1] += confidence_sum
        totals[2] += correct
    return [
        ReliabilityBin(
            lower=index / bin_count,
            upper=(index + 1) / bin_count,
            count=count,
            mean_confidence=confidence_sum / count,
            accuracy=correct / count,
        )
        for index, (count, confidence_sum, correct) in sorted(gathered.items())
        if count
    ]


def expected_calibration_error(curve: Sequence[ReliabilityBin]) -> float:
    """The count-weighted mean gap between confidence and accuracy over the bins."""
    total = sum(b.count for b in curve)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.mean_confidence) for b in curve)


def population_stability_index(
    before: Sequence[int], after: Sequence[int], *, floor: float = 1e-4
) -> float:
    """How far a histogram moved between two periods (same bins): under 0.1 is stable, 0.1 to
    0.25 a shift worth a look, above 0.25 a real drift. Empty bins count as `floor` so that a
    bin appearing or vanishing does not divide by zero."""
    if len(before) != len(after):
        raise ValueError("both periods need the same bins")
    total_before, total_after = sum(before), sum(after)
    if not total_before or not total_after:
        return 0.0
    index = 0.0
    for old, new in zip(before, after, strict=True):
        p = max(old / total_before, floor)
        q = max(new / total_after, floor)
        index += (q - p) * math.log(q / p)
    return index


@dataclass(frozen=True)
class Summary:
    count: int
    mean: float
    std: float


def standardized_shift(before: Summary, after: Summary) -> float:
    """The change of the mean in pooled standard deviations (Cohen's d): 0.2 small, 0.8 large."""
    if before.count < 2 or after.count < 2:
        return 0.0
    pooled = math.sqrt(
        ((before.count - 1) * before.std**2 + (after.count - 1) * after.std**2)
        / (before.count + after.count - 2)
    )
    return (after.mean - before.mean) / pooled if pooled else 0.0


@dataclass(frozen=True)
class Gap:
    best: str
    worst: str
    size: float


def largest_gap(metric_by_group: Mapping[str, float | None]) -> Gap | None:
    """The subgroups (sex, age band, grade…) where a metric is highest and lowest, and how far
    apart: a large gap is a possible unfairness to look into. None with fewer than two groups
    that have a value."""
    known = {group: value for group, value in metric_by_group.items() if value is not None}
    if len(known) < 2:
        return None
    best = max(known, key=known.get)
    worst = min(known, key=known.get)
    return Gap(best, worst, known[best] - known[worst])
