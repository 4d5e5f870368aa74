"""Per task, answer or say "needs a person", with the reason:

- *evidence missing*: the task needs a modality the case does not have (each task declares
  what it needs in `TaskConfig.requires`);
- *low confidence*: the task's confidence is below its threshold (the bundle proposes one per
  task from its calibration split, `TaskConfig.abstain_below`; an organization may set its own).

A task's confidence is that of its least sure answer: for the diagnosis, the lowest
max(p, 1 - p) over the findings; for the affect, the probability of the affect chosen.
"""

from dataclasses import asdict, dataclass

import numpy as np

EVIDENCE_MISSING = "evidence_missing"
LOW_CONFIDENCE = "low_confidence"
TASK_NAMES = {"diagnosis": "the findings", "emotion": "the affect"}
MODALITY_NOUNS = {"image": "an image", "text": "a text", "audio": "a recording"}
# Where a bundle proposes nothing, the threshold Moodle Analytics uses by default.
DEFAULT_THRESHOLD = 0.6
# The bundle proposes the confidence that this share of its calibration cases fall below.
PROPOSED_SHARE = 0.05


@dataclass(frozen=True)
class NeedsPerson:
    reason: str  # EVIDENCE_MISSING or LOW_CONFIDENCE
    detail: str  # a sentence for the professional

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def diagnosis_confidence(probabilities: np.ndarray) -> float:
    return float(np.min(np.maximum(probabilities, 1.0 - probabilities)))


def emotion_confidence(probabilities: np.ndarray) -> float:
    return float(np.max(probabilities))


def proposed_threshold(confidences: np.ndarray) -> float:
    """The confidence below which PROPOSED_SHARE of `confidences` (a calibration split's) fall:
    in cases like those, one in twenty goes to a person for want of confidence."""
    return round(float(np.quantile(confidences, PROPOSED_SHARE)), 4)


def needs_person(
    *,
    confidence: dict[str, float],
    used: list[str],
    requires: dict[str, list[str]],
    thresholds: dict[str, float],
) -> dict[str, NeedsPerson]:
    """Each task of `confidence` that must go to a person, with why; tasks not listed answer."""
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
        elif value < threshold:
            verdicts[task] = NeedsPerson(
                LOW_CONFIDENCE,
                f"The model is {value:.0%} sure of {TASK_NAMES.get(task, task)}, "
                f"below the {threshold:.0%} asked for.",
            )
    return verdicts


def proposed_thresholds(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Per task, the threshold proposed from a calibration split's outputs
    (`mlcore.engine.forward_in_batches` arrays)."""
    proposals = {}
    if "diagnosis" in arrays and len(arrays["diagnosis"]):
        confidences = np.array([diagnosis_confidence(row) for row in arrays["diagnosis"]])
        proposals["diagnosis"] = proposed_threshold(confidences)
    if "emotion" in arrays and len(arrays["emotion"]):
        confidences = np.array([emotion_confidence(row) for row in arrays["emotion"]])
        proposals["emotion"] = proposed_threshold(confidences)
    return proposals
