"""One configuration object per model: it round-trips to JSON, is saved beside the weights and
builds the model (`build_model(config)` in mlcore.model)."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcore.errors import ConfigError

# `text` is what was written (a note, an essay); `speech_text` what was said (a recording's
# transcript), read by the same text encoder through a projection of its own; `audio` is the
# sound of a recording (its prosody), never its words.
MODALITIES = ("image", "text", "audio", "speech_text")
DEFAULT_MODALITIES = ("image", "text", "audio")
FUSION_KINDS = ("concat", "attention", "late", "sum")  # mlcore.fusion
DEFAULT_TEXT_ENCODER = "builtin:all-MiniLM-L6-v2"


@dataclass
class ImageEncoderConfig:
    # densenet121 | densenet (custom sizes below) | resnet18 | resnet10 | detector (`channels`)
    arch: str = "densenet121"
    spatial_dims: int = 2
    size: int = 128
    init_features: int = 64
    growth_rate: int = 32
    block_config: tuple[int, ...] = (6, 12, 24, 16)
    # The detector's convolutions: the first halves the resolution, the others keep it.
    channels: tuple[int, ...] = (16, 32, 32, 32)
    # How the detector gathers its positions' answers into one: "mean" (bundles saved before
    # this existed) or "max", the strongest position's, which another scanner's noise moves
    # far less than it moves the mean of every position's rectified response to it.
    pooling: str = "mean"
    trainable: bool = True
    # How pixel values become the model's input. "fixed": CT through a fixed window in
    # Hounsfield units (`ct_window`: centre and width, the lung window by default), other images
    # clipped at robust percentiles, then one scale for every image, so a lesion changes only
    # the pixels where it is. "standardise": each image z-scored on its own, which spreads a
    # lesion's presence over every pixel (Grad-CAM cannot point at it); bundles saved before
    # `intensity` existed were trained so, and are served so.
    intensity: str = "fixed"
    ct_window: tuple[float, float] = (-600.0, 1500.0)


@dataclass
class TextEncoderConfig:
    source: str = DEFAULT_TEXT_ENCODER  # a local directory, or the MiniLM that ships with pip
    max_length: int = 128
    trainable: bool = False
    # A transformers config (dict) to build a small random-initialised encoder instead of loading
    # weights: tests and experiments only; the tokenizer still comes from `source`.
    random_init: dict[str, Any] | None = None


@dataclass
class AudioEncoderConfig:
    sample_rate: int = 16_000
    seconds: float = 6.0
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    trainable: bool = True


@dataclass
class FusionConfig:
    kind: str = "attention"  # one of FUSION_KINDS
    dim: int = 128
    layers: int = 1
    heads: int = 4
    dropout: float = 0.1
    # Chance of hiding each present modality during training, so the model learns to answer
    # without it.
    modality_dropout: float = 0.15


@dataclass
class TaskConfig:
    diagnosis_labels: list[str] = field(default_factory=list)
    emotion_labels: list[str] = field(default_factory=list)
    # Task (diagnosis, emotion) → the modalities it cannot answer without ("needs a person:
    # evidence missing" when the case lacks one); a task not listed needs none in particular.
    requires: dict[str, list[str]] = field(default_factory=dict)
    # Task (diagnosis, emotion) → the only modalities its head reads: the others never move its
    # answer (a voice says nothing about a nodule, and a head that may read it learns the noise
    # of its training split, which then counts among its reasons). A task not listed reads all.
    reads: dict[str, list[str]] = field(default_factory=dict)
    # Task → the confidence below which it says "needs a person": proposed by training from the
    # validation and calibration splits (mlcore.abstention); an organization may set its own.
    abstain_below: dict[str, float] = field(default_factory=dict)


@dataclass
class InputProfile:
    """What the training inputs were, as the input checks compare a case against it (filled in
    by training; empty lists check nothing, as in bundles saved before there were checks)."""

    image_modalities: list[str] = field(default_factory=list)  # DICOM Modality, or PNG, NIfTI…
    body_parts: list[str] = field(default_factory=list)  # DICOM BodyPartExamined, when given
    # The smallest and largest rows and columns of the training images: [low, high] each.
    rows: list[int] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)
    text_languages: list[str] = field(default_factory=list)  # ISO 639-1 codes, e.g. "en"


@dataclass
class PrefixConfig:
    """Frozen-style generation; off unless `language_model` names a local directory."""

    language_model: str | None = None
    prefix_length: int = 4
    max_new_tokens: int = 32


@dataclass
class ModelConfig:
    name: str = "tessera-model"
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    prefix: PrefixConfig = field(default_factory=PrefixConfig)
    inputs: InputProfile = field(default_factory=InputProfile)
    # Filled in by training: what the model was trained on and with which mlcore.
    mlcore_version: str = ""
    training_data_hash: str = ""
    # What the training data was, in words, for the model card (e.g. that it was synthetic).
    training_data: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.modalities) - set(MODALITIES))
        if unknown or not self.modalities:
            raise ConfigError(
                f"modalities must be a non-empty subset of {MODALITIES}, not {unknown}"
            )
        if self.fusion.kind not in FUSION_KINDS:
            raise ConfigError(
                f"fusion.kind must be one of {', '.join(FUSION_KINDS)}, not {self.fusion.kind!r}"
            )
        if self.image.intensity not in ("fixed", "standardise"):
            raise ConfigError(
                f"image.intensity must be fixed or standardise, not {self.image.intensity!r}"
            )
        if self.image.pooling not in ("mean", "max"):
            raise ConfigError(f"image.pooling must be mean or max, not {self.image.pooling!r}")
        if len(self.image.ct_window) != 2 or self.image.ct_window[1] <= 0:
            raise ConfigError("image.ct_window is (centre, width) in HU, with a positive width")
        if not (self.tasks.diagnosis_labels or self.tasks.emotion_labels):
            raise ConfigError("a model needs diagnosis labels, emotion labels or both")
        for task, needed in self.tasks.requires.items():
            if task not in ("diagnosis", "emotion") or not set(needed) <= set(self.modalities):
                raise ConfigError(
                    f"tasks.requires: {task!r} must be diagnosis or emotion, needing some of "
                    f"{self.modalities}, not {needed}"
                )
        for task, read in self.tasks.reads.items():
            if task not in ("diagnosis", "emotion") or not set(read) <= set(self.modalities):
                raise ConfigError(
                    f"tasks.reads: {task!r} must be diagnosis or emotion, reading some of "
                    f"{self.modalities}, not {read}"
                )
            if not set(self.tasks.requires.get(task, ())) <= set(read):
                raise ConfigError(f"tasks.reads: {task!r} must read every modality it requires")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        sections = {
            "image": ImageEncoderConfig,
            "text": TextEncoderConfig,
            "audio": AudioEncoderConfig,
            "fusion": FusionConfig,
            "tasks": TaskConfig,
            "prefix": PrefixConfig,
            "inputs": InputProfile,
        }
        try:
            if "image" in data and "intensity" not in data["image"]:
                data = {**data, "image": {**data["image"], "intensity": "standardise"}}
            if "abstain_below" in data:  # one threshold for every task, before there were tasks'
                data = dict(data)
                threshold = data.pop("abstain_below")
                tasks = dict(data.get("tasks", {}))
                tasks.setdefault("abstain_below", {"diagnosis": threshold, "emotion": threshold})
                data["tasks"] = tasks
            if {"tutoring_library", "subjects"} & set(data.get("tasks", {})):
                # the tutoring head a model carried before tutoring learnt per school
                tasks = dict(data["tasks"])
                tasks.pop("tutoring_library", None)
                tasks.pop("subjects", None)
                data = {**data, "tasks": tasks}
            values = {
                key: _build(sections[key], value) if key in sections else value
                for key, value in data.items()
            }
            return cls(**values)
        except TypeError as error:
            raise ConfigError(f"invalid model configuration: {error}") from error

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise ConfigError(f"model configuration is not valid JSON: {error}") from error

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_json(Path(path).read_text())


def _build(section: type, values: dict[str, Any]):
    tuples = {f.name for f in dataclasses.fields(section) if "tuple" in str(f.type)}
    return section(
        **{k: tuple(v) if k in tuples and v is not None else v for k, v in values.items()}
    )
