"""Checks of a case's inputs against what the model was trained on: the image's DICOM modality,
body part and matrix size, the language of the text, and whether a recording holds any sound.

Preprocessing records each input's facts (`Features.facts`); training keeps the profile of its
training inputs (`ModelConfig.inputs`); `concerns` says, in a sentence each, where a case falls
outside that profile. A concern sends every task to a person as "unlike the training data"
(mlcore.abstention): a model has nothing to say about a kind of input it never saw.
"""

from collections import Counter
from collections.abc import Sequence

import numpy as np

from mlcore.config import InputProfile

# A recording whose level stays below this (dB relative to full scale) holds no speech.
SILENCE_DBFS = -50.0
# An image whose rows or columns are more than this factor outside the training range is of
# another kind (a 512-pixel CT for a model of 64-pixel slices).
MATRIX_FACTOR = 2
# Texts shorter than this (in words) are too short to tell their language reliably.
WORDS_FOR_LANGUAGE = 4
# A language is part of the profile when at least this share of the training texts have it.
LANGUAGE_SHARE = 0.05
LANGUAGE_NAMES = {
    "da": "Danish",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "it": "Italian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "sv": "Swedish",
}


def text_language(text: str) -> str:
    """The ISO 639-1 code of the language `text` is written in, "" when it is too short to
    tell (langdetect's profiles ship with the package; nothing is downloaded)."""
    if len(text.split()) < WORDS_FOR_LANGUAGE:
        return ""
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect samples; a fixed seed gives one answer per text
    try:
        return detect(text)
    except LangDetectException:  # no letters at all
        return ""


def sound_level(samples: np.ndarray) -> float:
    """The recording's RMS level in dB relative to full scale (-120 for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return round(20.0 * np.log10(max(rms, 1e-6)), 1)


def profile(facts: Sequence[dict], *, start: InputProfile | None = None) -> InputProfile:
    """The profile of a training set's inputs, from each case's facts, widened to cover
    `start` (a fine-tuned model still knows what its base learned from)."""
    start = start or InputProfile()
    images = [f for f in facts if "image_modality" in f]
    languages = Counter(f["text_language"] for f in facts if f.get("text_language"))
    texts = sum(languages.values())
    common = {language for language, count in languages.items() if count >= LANGUAGE_SHARE * texts}
    return InputProfile(
        image_modalities=sorted(
            {f["image_modality"] for f in images} | set(start.image_modalities)
        ),
        body_parts=sorted(
            {f["body_part"] for f in images if f["body_part"]} | set(start.body_parts)
        ),
        rows=_range([f["rows"] for f in images] + start.rows),
        columns=_range([f["columns"] for f in images] + start.columns),
        text_languages=sorted(common | set(start.text_languages)),
    )


def _range(values: list[int]) -> list[int]:
    return [min(values), max(values)] if values else []


def concerns(facts: dict, expected: InputProfile) -> list[str]:
    """Each way this case's inputs differ from the training inputs, as a sentence."""
    found = []
    if "image_modality" in facts:
        found += _image_concerns(facts, expected)
    language = facts.get("text_language")
    if language and expected.text_languages and language not in expected.text_languages:
        found.append(
            f"the text seems to be in {_language_name(language)}; the model learned from "
            + " and ".join(_language_name(code) for code in expected.text_languages)
        )
    level = facts.get("sound_level")
    if level is not None and level < SILENCE_DBFS:
        found.append(f"the recording is silent (its level is {level:.0f} dBFS)")
    return found


def _image_concerns(facts: dict, expected: InputProfile) -> list[str]:
    found = []
    modality = facts["image_modality"]
    if expected.image_modalities and modality not in expected.image_modalities:
        trained = " and ".join(expected.image_modalities)
        found.append(
            f"the image is of modality {modality}; the model learned from {trained} images"
            if modality
            else f"the image names no modality; the model learned from {trained} images"
        )
    part = facts.get("body_part", "")
    if part and expected.body_parts and part not in expected.body_parts:
        found.append(
            f"the image shows the {part.lower()}; the model learned from "
            + " and ".join(p.lower() for p in expected.body_parts)
            + " images"
        )
    rows, columns = facts.get("rows", 0), facts.get("columns", 0)
    if (
        expected.rows
        and expected.columns
        and not (_within(rows, expected.rows) and _within(columns, expected.columns))
    ):
        found.append(
            f"the image is {rows} by {columns} pixels; the model learned from "
            f"{span_words(expected.rows)} by {span_words(expected.columns)}"
        )
    return found


def _within(size: int, bounds: list[int]) -> bool:
    """Within a factor MATRIX_FACTOR of the training range: scanners differ in matrix that
    much for the same kind of image."""
    return bounds[0] / MATRIX_FACTOR <= size <= bounds[1] * MATRIX_FACTOR


def span_words(bounds: list[int]) -> str:
    """[low, high] in words: "64", or "64 to 128"."""
    low, high = bounds
    return str(low) if low == high else f"{low} to {high}"


def _language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, f"the language '{code}'")
