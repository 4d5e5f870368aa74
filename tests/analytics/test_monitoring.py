"""Model monitoring functions against numbers worked out by hand."""

import itertools
import math
from datetime import datetime, timedelta

import pytest

from analytics.attention import concern_since, persistently_concerning
from analytics.monitoring import (
    ClassMetrics,
    Summary,
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    largest_gap,
    macro_f1,
    per_class,
    population_stability_index,
    reliability_curve,
    standardized_shift,
)
from analytics.trends import weekly_distribution

LABELS = ["engaged", "confused", "bored"]


def test_a_confusion_matrix_puts_true_labels_in_rows():
    counts = [
        ("engaged", "engaged", 5),
        ("engaged", "bored", 1),
        ("confused", "engaged", 2),
        ("confused", "confused", 3),
        ("bored", "bored", 4),
        ("engaged", "engaged", 1),  # aggregates may repeat a pair
        ("elated", "engaged", 9),  # a label the model does not know is left out
    ]
    assert confusion_matrix(counts, labels=LABELS) == [[6, 0, 1], [2, 3, 0], [0, 0, 4]]


def test_precision_recall_and_f1_per_class():
    matrix = [[6, 0, 1], [2, 3, 0], [0, 0, 4]]
    engaged, confused, bored = per_class(matrix, labels=LABELS)
    # engaged: 6 right of 8 predicted, of 7 true
    assert engaged.precision == pytest.approx(6 / 8)
    assert engaged.recall == pytest.approx(6 / 7)
    assert engaged.f1 == pytest.approx(2 * (6 / 8) * (6 / 7) / (6 / 8 + 6 / 7))
    assert (confused.precision, confused.recall, confused.support) == (1.0, 3 / 5, 5)
    assert bored.precision == pytest.approx(4 / 5)
    assert accuracy(matrix) == pytest.approx(13 / 16)
    assert macro_f1([engaged, confused, bored]) == pytest.approx(
        (engaged.f1 + confused.f1 + bored.f1) / 3
    )


def test_a_label_never_predicted_or_never_seen_has_no_precision_or_recall():
    never_predicted, never_seen = per_class([[0, 2], [0, 0]], labels=["a", "b"])
    assert never_predicted == ClassMetrics("a", None, 0.0, 0.0, 2)
    assert never_seen == ClassMetrics("b", 0.0, None, 0.0, 0)
    assert accuracy([[0, 0], [0, 0]]) is None


def test_the_reliability_curve_and_its_calibration_error():
    # bin 9: 10 predictions at mean confidence 0.95, 8 right; bin 5: 4 at 0.55, 3 right;
    # a confidence of exactly 1.0 (index 10) joins bin 9.
    curve = reliability_curve([(9, 9, 8.55, 7), (5, 4, 2.2, 3), (10, 1, 1.0, 1)], bin_count=10)
    assert [(b.lower, b.upper, b.count) for b in curve] == [(0.5, 0.6, 4), (0.9, 1.0, 10)]
    assert curve[0].mean_confidence == pytest.approx(0.55)
    assert curve[0].accuracy == pytest.approx(0.75)
    assert curve[1].mean_confidence == pytest.approx(0.955)
    assert curve[1].accuracy == pytest.approx(0.8)
    # ECE = 4/14 * |0.75 - 0.55| + 10/14 * |0.8 - 0.955|
    assert expected_calibration_error(curve) == pytest.approx(4 / 14 * 0.2 + 10 / 14 * 0.155)
    assert expected_calibration_error([]) == 0.0


def test_a_stable_histogram_has_no_drift_and_a_moved_one_has():
    assert population_stability_index([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)
    # (0.5 - 0.25) ln 2 + (0.25 - 0.5) ln 0.5 = 0.5 ln 2
    assert population_stability_index([25, 50, 25], [50, 25, 25]) == pytest.approx(
        0.5 * math.log(2)
    )
    assert population_stability_index([5, 0], [0, 5]) > 0.25
    with pytest.raises(ValueError, match="same bins"):
        population_stability_index([1, 2], [1, 2, 3])


def test_a_shift_of_the_mean_in_pooled_standard_deviations():
    before, after = Summary(count=11, mean=10.0, std=2.0), Summary(count=11, mean=13.0, std=4.0)
    # pooled sd = sqrt((10 * 4 + 10 * 16) / 20) = sqrt(10)
    assert standardized_shift(before, after) == pytest.approx(3 / math.sqrt(10))
    assert standardized_shift(Summary(1, 0.0, 0.0), after) == 0.0


def test_the_largest_gap_between_subgroups():
    gap = largest_gap({"female": 0.81, "male": 0.74, "other": None, "unknown": 0.79})
    assert (gap.best, gap.worst) == ("female", "male")
    assert gap.size == pytest.approx(0.07)
    assert largest_gap({"female": 0.8, "male": None}) is None


def test_two_of_the_last_three_is_a_pattern_one_is_not():
    assert persistently_concerning(["frustrated", "engaged", "confused", "confused"])
    assert not persistently_concerning(["frustrated", "engaged", "engaged", "confused"])
    assert not persistently_concerning(["confused"])


def test_concern_begins_at_the_second_concerning_label_of_the_last_three():
    day = datetime(2026, 11, 2)
    history = [
        ("confused", day),
        ("engaged", day - timedelta(1)),
        ("frustrated", day - timedelta(2)),
    ]
    assert concern_since(history) == day - timedelta(2)
    assert concern_since(history[:2]) is None
    # the fourth label is older than the last three: it no longer counts
    assert concern_since([*history[:2], ("bored", day - timedelta(2)), ("confused", day)]) is None


def test_a_cutoff_compared_with_concern_since_agrees_with_counting_the_labels_after_it():
    """What lets the database answer "needs attention since a cutoff" with one comparison:
    checked for every history of up to five labels and every cutoff."""
    labels = ["confused", "frustrated", "engaged", "bored"]
    day = datetime(2026, 11, 2)
    for length in range(6):
        for chosen in itertools.product(labels, repeat=length):
            history = [(label, day - timedelta(days=age)) for age, label in enumerate(chosen)]
            since = concern_since(history)
            for cutoff in (day - timedelta(days=age) for age in range(-1, length + 1)):
                counted = persistently_concerning([label for label, at in history if at >= cutoff])
                assert counted == (since is not None and since >= cutoff), (history, cutoff)


def test_weeks_without_results_are_kept_and_unknown_labels_dropped():
    from datetime import date

    weeks = [date(2026, 11, 9), date(2026, 11, 16)]
    table = weekly_distribution(
        [
            (date(2026, 11, 16), "bored", 2),
            (date(2026, 11, 16), "elated", 7),
            (date(2026, 10, 5), "bored", 4),
        ],
        labels=["engaged", "bored"],
        weeks=weeks,
    )
    assert [(w.week, w.counts, w.total) for w in table] == [
        (weeks[0], {"engaged": 0, "bored": 0}, 0),
        (weeks[1], {"engaged": 0, "bored": 2}, 2),
    ]
