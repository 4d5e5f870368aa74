"""Rationales from evidence, for models with no language model configured: one sentence per
task, built only from what the model used for that case.

- Each input's contribution to the task's answer (the Shapley values of mlcore.contributions),
  largest first, in points of probability.
- For an image, where the Grad-CAM heatmap of the top finding peaks, as a zone of the image.
- For a text and for what a recording said (its transcript), the sentence that moved the
  answer most: the one whose removal lowers the answer's probability the most
  (leave-one-sentence-out, all of a batch's variants in one run). A transcript an answer may
  not read (withheld by policy) cannot move it, so it is never quoted for it.

An input the case lacks contributes nothing and is never named.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mlcore.config import TaskConfig
from mlcore.data import Features

if TYPE_CHECKING:  # the engine writes these rationales: a run-time import would go in a circle
    from mlcore.engine import Prediction

INPUT_NOUNS = {
    "image": "the image",
    "text": "the text",
    "audio": "the recording",
    "speech_text": "what was said",
}
# Below this change in probability a sentence "barely moved" the answer and is not quoted.
BARELY = 0.01


def heatmap_zone(heatmap: np.ndarray) -> str:
    """Where a heatmap peaks, as the zone of the image a radiologist would name: upper, middle
    or lower third, and the patient's right or left (on the image's left or right, as images
    are read facing the patient)."""
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    height, width = heatmap.shape
    vertical = ("upper", "middle", "lower")[min(2, int(3 * row / height))]
    side = "right" if column < width / 2 else "left"
    return f"{side} {vertical} zone"


def answers(prediction: "Prediction") -> dict[str, tuple[str, str, float, float]]:
    """Per task: (answer key in the contributions, words for the answer, the answer's
    probability, the sign that turns a contribution to that key into one to the answer)."""
    found = {}
    if prediction.diagnosis:
        label = max(prediction.diagnosis, key=prediction.diagnosis.get)
        p = prediction.diagnosis[label]
        words = label.replace("_", " ")
        found["diagnosis"] = (
            (label, words.capitalize(), p, 1.0)
            if p >= 0.5
            else (label, f"No {words}", 1.0 - p, -1.0)
        )
    if prediction.emotion_label:
        label = prediction.emotion_label
        found["emotion"] = (
            "emotion",
            label.replace("_", " ").capitalize(),
            prediction.emotion[label],
            1.0,
        )
    return found


# The inputs made of sentences: their token ids, and their sentences' token spans, in Features.
SENTENCE_INPUTS = {
    "text": ("text_ids", "sentences"),
    "speech_text": ("speech_ids", "spoken_sentences"),
}


def sentence_variants(
    features: Sequence[Features],
) -> tuple[list[Features], list[tuple[int, str, str]]]:
    """Each case's features with one sentence of its text, or of its transcript, left out
    (none of that input when it was the only sentence), and for each variant its (case row,
    input, sentence)."""
    variants, owners = [], []
    for row, item in enumerate(features):
        for name, (ids_field, spans_field) in SENTENCE_INPUTS.items():
            ids = getattr(item, ids_field)
            if ids is None:
                continue
            for sentence, start, end in getattr(item, spans_field):
                kept = np.concatenate([ids[:start], ids[end:]])
                variants.append(replace(item, **{ids_field: kept if len(kept) > 2 else None}))
                owners.append((row, name, sentence))
    return variants, owners


def moving_sentences(
    predictions: Sequence["Prediction"],
    owners: list[tuple[int, str, str]],
    arrays: dict[str, np.ndarray],
    tasks: TaskConfig,
) -> list[dict[str, dict[str, tuple[str, float]]]]:
    """Per case, per task, per input (text, speech_text): the sentence whose removal lowers
    the answer's probability the most, and by how much (a fraction: 0.12 is 12 points), from
    the variants' outputs (`arrays`, in `sentence_variants` order); {} for a case without
    sentences."""
    best: list[dict[str, dict[str, tuple[str, float]]]] = [{} for _ in predictions]
    for index, (row, name, sentence) in enumerate(owners):
        for task, (key, _words, probability, sign) in answers(predictions[row]).items():
            if task == "diagnosis":
                p = float(arrays["diagnosis"][index][tasks.diagnosis_labels.index(key)])
                without = p if sign > 0 else 1.0 - p
            else:
                chosen = tasks.emotion_labels.index(predictions[row].emotion_label)
                without = float(arrays["emotion"][index][chosen])
            drop = probability - without
            found = best[row].setdefault(task, {})
            if name not in found or drop > found[name][1]:
                found[name] = (sentence, drop)
    return best


def rationale(
    prediction: "Prediction",
    *,
    zone: str | None = None,
    sentences: dict[str, dict[str, tuple[str, float]]] | None = None,
) -> dict[str, str]:
    """One sentence per task of `prediction`, from its contributions, the heatmap's `zone`
    (for the findings) and each task's moving sentence."""
    quoted = quoted_sentences(prediction, sentences or {})
    result = {}
    for task, (key, words, probability, sign) in answers(prediction).items():
        shares = prediction.contributions.get(key, {})
        ordered = sorted(shares.items(), key=lambda item: -abs(item[1]))
        parts = []
        for place, (modality, value) in enumerate(ordered):
            points = round(100 * sign * value)
            noun = INPUT_NOUNS.get(modality, modality)
            if points == 0:  # as the card's bars say it: under half a point
                effect = "barely moved it"
            else:
                direction = "raised" if points > 0 else "lowered"
                effect = f"{direction} it by {abs(points)} point{'s' if abs(points) != 1 else ''}"
            detail = ""
            # The heatmap shows where the image raised the finding: said only where it did.
            if modality == "image" and zone and task == "diagnosis" and sign * points > 0:
                detail = f", its heatmap peaking in the {zone}"
            if modality in quoted.get(task, {}):
                detail = f', most of all "{quoted[task][modality]}"'
            lead = "" if place == 0 else "then "
            parts.append(f"{lead}{noun} {effect}{detail}")
        evidence = "; ".join(parts) if parts else "no input moved it"
        result[task] = f"{words} ({round(100 * probability)}%): {evidence}."
    return result


def quoted_sentences(
    prediction: "Prediction", sentences: dict[str, dict[str, tuple[str, float]]]
) -> dict[str, dict[str, str]]:
    """Per task, per input (text, speech_text), the sentence that held its answer up most
    (`sentences`, from `moving_sentences`), where that input raised the answer and the sentence
    moved it at least BARELY, the one that moved it most first: what a rationale may quote as
    the evidence."""
    quoted = {}
    for task, (key, _words, _probability, sign) in answers(prediction).items():
        moved = sorted(sentences.get(task, {}).items(), key=lambda item: -item[1][1])
        kept = {
            name: sentence
            for name, (sentence, drop) in moved
            if drop >= BARELY
            and round(100 * sign * prediction.contributions.get(key, {}).get(name, 0.0)) > 0
        }
        if kept:
            quoted[task] = kept
    return quoted
