"""Metrics against hand-computed values."""

import numpy as np
import pytest

from mlcore.evaluate import (
    classification_metrics,
    diagnosis_metrics,
    expected_calibration_error,
    score,
)


def test_classification_metrics_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.4, 0.5, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.3, 0.3, 0.4],
        ]
    )
    metrics = classification_metrics(truth, probabilities, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    # class a: P=1, R=0.5, F1=2/3; class b: P=2/3, R=1, F1=0.8; class c: P=1, R=1, F1=1
    assert metrics["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1.0) / 3)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert metrics["auroc"] == 1.0  # in every one-vs-rest ranking, positives outrank negatives


def test_expected_calibration_error_by_hand():
    # Two bins used: 0.9 confidence with 50% right (gap 0.4), 0.55 with 100% right (gap 0.45).
    confidence = np.array([0.9, 0.9, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.4 + 0.5 * 0.45)


def test_diagnosis_metrics_per_label_and_the_overall_score():
    truth = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    probabilities = np.array([[0.8, 0.1], [0.3, 0.2], [0.9, 0.6], [0.6, 0.7]])
    metrics = diagnosis_metrics(truth, probabilities, ["x", "y"])
    # x: predicted [1,0,1,1] vs [1,0,1,0] -> absent F1 2/3, present F1 0.8; y: all right -> 1.
    assert metrics["per_label"]["x"]["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert metrics["per_label"]["y"]["macro_f1"] == 1.0
    assert metrics["macro_f1"] == pytest.approx(((2 / 3 + 0.8) / 2 + 1.0) / 2)
    assert score({"diagnosis": metrics, "emotion": {"macro_f1": 0.5}}) == pytest.approx(
        (metrics["macro_f1"] + 0.5) / 2
    )
