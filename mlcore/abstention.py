"""Per task, answer or say "needs a person", with the reason:

- *evidence missing*: the task needs a modality the case does not have (each task declares
  what it needs in `TaskConfig.requires`);
- *unlike the training data*: an input falls outside what the model was trained on
  (mlcore.input_checks), or the case is far from the training cases in the model's own spaces
  (mlcore.novelty);
- *low confidence*: the task's confidence is below its threshold (the bundle proposes one per
  task from its held-out splits, `TaskConfig.abstain_below`; an organization may set its own).

The first that applies is the reason given, in that order.

A task's confidence is that of its least sure answer: for the diagnosis, the lowest
max(p, 1 - p) over the findings; for the affect, the probability of the affect chosen.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

EVIDENCE_MISSING = "evidence_missing"
UNLIKE_TRAINING = "unlike_training"
LOW_CONFIDENCE = "low_confidence"
TASK_NAMES = {"diagnosis": "the findings", "emotion": "the affect"}
MODALITY_NOUNS = {
    "image": "an image",
    "text": "a text",
    "audio": "a recording",
    "speech_text": "a transcript of what was said",
}
# Where a bundle proposes nothing, the threshold Moodle Analytics uses by default.
DEFAULT_THRESHOLD = 0.6
# The bundle proposes the confidence that this share of its held-out cases fall below.
PROPOSED_SHARE = 0.03


@dataclass(frozen=True)
class NeedsPerson:
    reason: str  # EVIDENCE_MISSING, UNLIKE_TRAINING or LOW_CONFIDENCE
    detail: str  # a sentence for the professional

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def diagnosis_confidence(probabilities: np.ndarray) -> float:
    return float(np.min(np.maximum(probabilities, 1.0 - probabilities)))


def emotion_confidence(probabilities: np.ndarray) -> float:
    return float(np.max(probabilities))


def proposed_threshold(confidences: np.ndarray) -> float:
    """The confidence below which PROPOSED_SHARE of `confidences` (held-out cases') fall:
    in cases like those, about one in thirty goes to a person for want of confidence."""
    return round(float(np.quantile(confidences, PROPOSED_SHARE)), 4)


def needs_person(
    *,
    confidence: dict[str, float],
    used: list[str],
    requires: dict[str, list[str]],
    thresholds: dict[str, float],
    unlike: Sequence[str] = (),
) -> dict[str, NeedsPerson]:
    """Each task of `confidence` that must go to a person, with why; tasks not listed answer.
    `unlike` holds each way the case is unlike the training data, as a phrase."""
    verdicts = {}
    for task, value in confidence.items():
        missing = [modality for modality in requires.get(task, []) if modality not in used]
        threshold = thresholds.get(task, DEFAULT_THRESHOLD)
        if missing:
            needed = " and ".join(MODALITY_NOUNS.get(m, m) for m in missing)
            verdicts[task] = NeedsPerson(
                EVIDENCE_MISSING,
                f"The model reads {TASK_NAMES.get(task, task)} from {needed}, "
                "which this case does not have.",
            )
        elif unlike:
            verdicts[task] = NeedsPerson(
                UNLIKE_TRAINING,
                f"This case is unlike the model's training data: {'; '.join(unlike)}.",
            )
        elif value < threshold:
            verdicts[task] = NeedsPerson(
                LOW_CONFIDENCE,
                f"The model is {value:.0%} sure of {TASK_NAMES.get(task, task)}, "
                f"below the {threshold:.0%} asked for.",
            )
    return verdicts


def proposed_thresholds(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Per task, the threshold proposed from held-out cases' outputs
    (`mlcore.engine.forward_in_batches` arrays)."""
    proposals = {}
    if "diagnosis" in arrays and len(arrays["diagnosis"]):
        confidences = np.array([diagnosis_confidence(row) for row in arrays["diagnosis"]])
        proposals["diagnosis"] = proposed_threshold(confidences)
    if "emotion" in arrays and len(arrays["emotion"]):
        confidences = np.array([emotion_confidence(row) for row in arrays["emotion"]])
        proposals["emotion"] = proposed_threshold(confidences)
    return proposals
