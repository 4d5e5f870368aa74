"""Cases, manifests and batches.

A manifest is JSON Lines, one case per line: optional `image`, `text`, `audio` and
`speech_text` (what the recording says, as a text file: its transcript) paths (relative to the
manifest), optional `subject`, labels `diagnosis` (a list) and `emotion`, and
optional `subgroups` (name → value, for `validate`'s metrics per subgroup).
Preprocessing turns a case into numpy features (what a CPU worker computes and caches); `collate`
turns features into a padded batch for the model.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlcore.config import MODALITIES, ModelConfig
from mlcore.encoders.text import resolve_text_source
from mlcore.errors import InputError
from mlcore.input_checks import sound_level, text_language
from mlcore.io import (
    Tokenizer,
    fixed_length,
    image_facts,
    image_tensor,
    log_mel,
    read_audio,
    read_image,
    read_text,
)
from mlcore.io.audio import HOP_LENGTH


@dataclass
class Case:
    id: str = ""
    image: str | bytes | None = None  # a path, or a DICOM file's bytes
    text: str | None = None  # the text itself
    audio: str | bytes | None = None  # a path, or the file's bytes
    speech_text: str | None = None  # what the recording says: its transcript
    subject: str | None = None
    diagnosis: list[str] | None = None
    emotion: str | None = None
    rationale: str | None = None  # a reviewed explanation, to train rationale generation
    subgroups: dict[str, str] | None = None  # e.g. {"sex": "F", "site": "B"}: for validation


@dataclass
class Features:
    """What the model needs of one case, as arrays; None for a missing modality."""

    image: np.ndarray | None = None  # (1, *spatial)
    text_ids: np.ndarray | None = None  # (tokens,)
    audio: np.ndarray | None = None  # (1, n_mels, frames)
    speech_ids: np.ndarray | None = None  # (tokens,) of the transcript
    # What each input is, for the input checks (mlcore.input_checks): the image's modality,
    # body part and matrix, the text's language, the recording's level.
    facts: dict[str, str | int | float] = field(default_factory=dict)
    # The text's sentences with the [start, end) of their tokens in `text_ids`, for finding the
    # sentence that moved an answer most (mlcore.evidence).
    sentences: list[tuple[str, int, int]] = field(default_factory=list)
    # The same for the transcript's sentences in `speech_ids`.
    spoken_sentences: list[tuple[str, int, int]] = field(default_factory=list)
    # Task (diagnosis, emotion, tutoring) → inputs it may not read although the case has them
    # (an organization's policy: affect not inferred from transcripts). Set by the caller.
    withheld: dict[str, list[str]] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        return [name for name in MODALITIES if self.input(name) is not None]

    def input(self, modality: str) -> np.ndarray | None:
        return {
            "image": self.image,
            "text": self.text_ids,
            "audio": self.audio,
            "speech_text": self.speech_ids,
        }[modality]


@dataclass
class Batch:
    present: torch.Tensor  # (B, M) bool, in config.modalities order
    image: torch.Tensor | None = None
    text_ids: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    speech_ids: torch.Tensor | None = None
    speech_mask: torch.Tensor | None = None
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "Batch":
        return self.map(lambda value: value.to(device))

    def map(self, change: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        """A batch of `change` applied to each of this one's tensors."""

        def apply(value):
            return change(value) if isinstance(value, torch.Tensor) else value

        return Batch(
            present=apply(self.present),
            image=apply(self.image),
            text_ids=apply(self.text_ids),
            text_mask=apply(self.text_mask),
            audio=apply(self.audio),
            speech_ids=apply(self.speech_ids),
            speech_mask=apply(self.speech_mask),
            targets={key: apply(value) for key, value in self.targets.items()},
        )

    def __len__(self) -> int:
        return self.present.shape[0]


_FILE_FIELDS = ("image", "text", "audio", "speech_text")  # a manifest's paths


def read_manifest(path: str | Path) -> list[Case]:
    path = Path(path)
    base = path.parent
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path.name} line {number} is not JSON: {error}") from error
        unknown = set(entry) - {
            "id",
            "rationale",
            "image",
            "text",
            "audio",
            "speech_text",
            "subject",
            "diagnosis",
            "emotion",
            "subgroups",
        }
        if unknown:
            raise InputError(f"{path.name} line {number} has unknown fields: {sorted(unknown)}")
        subgroups = entry.get("subgroups")
        if subgroups is not None and not (
            isinstance(subgroups, dict)
            and all(isinstance(v, str | int | bool) for v in subgroups.values())
        ):
            raise InputError(
                f"{path.name} line {number}: subgroups must map names to words or numbers, "
                'such as {"sex": "F"}'
            )

        paths = {key: str(base / entry[key]) for key in _FILE_FIELDS if entry.get(key)}
        text_path, speech_path = paths.get("text"), paths.get("speech_text")
        cases.append(
            Case(
                id=str(entry.get("id", number)),
                image=paths.get("image"),
                text=read_text(text_path) if text_path else None,
                audio=paths.get("audio"),
                speech_text=read_text(speech_path) if speech_path else None,
                subject=entry.get("subject"),
                diagnosis=entry.get("diagnosis"),
                emotion=entry.get("emotion"),
                rationale=entry.get("rationale"),
                subgroups={k: str(v) for k, v in subgroups.items()} if subgroups else None,
            )
        )
    if not cases:
        raise InputError(f"{path.name} has no cases")
    return cases


def manifest_hash(path: str | Path) -> str:
    """sha256 over the manifest and every file it names: identifies the training data."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes())
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            for key in _FILE_FIELDS:
                if entry.get(key):
                    digest.update(hashlib.sha256((path.parent / entry[key]).read_bytes()).digest())
    return digest.hexdigest()


class Preprocessor:
    """Case → Features for one model configuration."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.tokenizer = (
            Tokenizer(resolve_text_source(config.text.source), max_length=config.text.max_length)
            if {"text", "speech_text"} & set(config.modalities)
            else None
        )

    def __call__(self, case: Case) -> Features:
        config = self.config
        features = Features()
        if case.image and "image" in config.modalities:
            pixels = read_image(
                case.image,
                volume=config.image.spatial_dims == 3,
                ct_window=tuple(config.image.ct_window),
            )
            tensor = image_tensor(
                pixels,
                size=config.image.size,
                spatial_dims=config.image.spatial_dims,
                intensity=config.image.intensity,
            )
            features.image = tensor.numpy()
            features.facts.update(image_facts(case.image, pixels))
        if case.text and case.text.strip() and "text" in config.modalities:
            features.text_ids = np.asarray(self.tokenizer.ids(case.text), dtype=np.int64)
            features.sentences = self.tokenizer.sentence_spans(case.text)
            features.facts["text_language"] = text_language(case.text)
        if case.speech_text and case.speech_text.strip() and "speech_text" in config.modalities:
            features.speech_ids = np.asarray(self.tokenizer.ids(case.speech_text), dtype=np.int64)
            features.spoken_sentences = self.tokenizer.sentence_spans(case.speech_text)
        if case.audio and "audio" in config.modalities:
            samples = read_audio(case.audio, sample_rate=config.audio.sample_rate)
            features.facts["sound_level"] = sound_level(samples)
            samples = fixed_length(
                samples, seconds=config.audio.seconds, sample_rate=config.audio.sample_rate
            )
            features.audio = log_mel(
                samples, n_mels=config.audio.n_mels, sample_rate=config.audio.sample_rate
            )[np.newaxis]
        if not features.modalities():
            wanted = ", ".join(config.modalities)
            raise InputError(f"case {case.id or '?'} has none of the model's inputs ({wanted})")
        return features

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id if self.tokenizer is not None else 0


def collate(
    items: list[Features],
    config: ModelConfig,
    *,
    pad_id: int = 0,
    cases: list[Case] | None = None,
) -> Batch:
    """Pad and stack features; with `cases`, also the training targets."""
    modalities = config.modalities
    present = torch.tensor([[item.input(m) is not None for m in modalities] for item in items])
    batch = Batch(present=present)
    if "image" in modalities:
        shape = (1,) + (config.image.size,) * config.image.spatial_dims
        batch.image = torch.stack(
            [
                torch.from_numpy(item.image) if item.image is not None else torch.zeros(shape)
                for item in items
            ]
        )
    if "text" in modalities:
        batch.text_ids, batch.text_mask = _padded([item.text_ids for item in items], pad_id)
    if "speech_text" in modalities:
        batch.speech_ids, batch.speech_mask = _padded([item.speech_ids for item in items], pad_id)
    if "audio" in modalities:
        frames = round(config.audio.seconds * config.audio.sample_rate) // HOP_LENGTH + 1
        shape = (1, config.audio.n_mels, frames)
        batch.audio = torch.stack(
            [
                torch.from_numpy(item.audio) if item.audio is not None else torch.zeros(shape)
                for item in items
            ]
        )
    if cases is not None:
        batch.targets = targets(cases, config)
    return batch


def _padded(sequences: list[np.ndarray | None], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded to the longest, and their attention mask (all zeros where None)."""
    longest = max([len(ids) for ids in sequences if ids is not None] or [1])
    padded = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), longest, dtype=torch.long)
    for row, ids in enumerate(sequences):
        if ids is not None:
            padded[row, : len(ids)] = torch.from_numpy(ids)
            mask[row, : len(ids)] = 1
    return padded, mask


def targets(cases: list[Case], config: ModelConfig) -> dict[str, torch.Tensor]:
    diagnosis_labels, emotion_labels = config.tasks.diagnosis_labels, config.tasks.emotion_labels
    result: dict[str, torch.Tensor] = {}
    if diagnosis_labels:
        result["diagnosis"] = torch.tensor(
            [
                [float(label in (case.diagnosis or [])) for label in diagnosis_labels]
                for case in cases
            ]
        )
        result["diagnosis_known"] = torch.tensor([case.diagnosis is not None for case in cases])
    if emotion_labels:
        for case in cases:
            if case.emotion is not None and case.emotion not in emotion_labels:
                raise InputError(f"case {case.id}: unknown emotion label {case.emotion!r}")
        result["emotion"] = torch.tensor(
            [
                emotion_labels.index(case.emotion) if case.emotion is not None else -100
                for case in cases
            ]
        )
    return result
