"""Model bundles: a model version is a directory.

    config.json          the ModelConfig (architecture, labels, preprocessing, encoder sources,
                         fusion, mlcore version, training-data hash)
    model.safetensors    the weights
    metrics.json         metrics on the split they name (`split`: test when training had one),
                         and the calibration report (each head's fitted temperature)
    reliability.png      the reliability diagram of every probability head on that split
    MODEL_CARD.md        intended use, data, metrics, calibration, limits
    prefix_mapper.safetensors   the rationale mapper, when rationale generation was trained
                         (the frozen language model itself stays in its local directory)

A frozen pretrained text encoder is not copied into the bundle: config.json names its local
source, from which loading rebuilds it. Save → load gives bit-identical outputs.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mlcore.bundle_check import CONFIG_FILE, WEIGHTS_FILE
from mlcore.card import CARD_FILE, model_card
from mlcore.config import ModelConfig
from mlcore.errors import ConfigError
from mlcore.model import MultimodalModel, build_model
from mlcore.prefix import FrozenPrefixGenerator, load_language_model
from mlcore.reliability import reliability_diagram

METRICS_FILE = "metrics.json"
MAPPER_FILE = "prefix_mapper.safetensors"
RELIABILITY_FILE = "reliability.png"
_FROZEN_TEXT_BACKBONE = "encoders.text.backbone."
# What was said is read by the written text's backbone: the same weights, saved once.
_SHARED_SPEECH_BACKBONE = "encoders.speech_text.backbone."
_NOVELTY = "novelty."


@dataclass
class Bundle:
    directory: Path
    config: ModelConfig
    model: MultimodalModel
    metrics: dict
    rationale: FrozenPrefixGenerator | None = None


def _external_prefixes(config: ModelConfig) -> tuple[str, ...]:
    """Weights that live outside the bundle (a frozen, pretrained text encoder) or under
    another name (the backbone `speech_text` shares with `text`)."""
    text, modalities = config.text, config.modalities
    frozen = not text.trainable and text.random_init is None
    prefixes = []
    if frozen and "text" in modalities:
        prefixes.append(_FROZEN_TEXT_BACKBONE)
    if "speech_text" in modalities and ("text" in modalities or frozen):
        prefixes.append(_SHARED_SPEECH_BACKBONE)
    return tuple(prefixes)


def _is_external(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(prefix) for prefix in prefixes)


def save_bundle(
    directory: str | Path, model: MultimodalModel, *, metrics: dict, history: list | None = None
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = ModelConfig.from_dict(model.config.to_dict())
    external = _external_prefixes(config)
    weights = {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if not _is_external(name, external)
    }
    save_file(
        weights, str(directory / WEIGHTS_FILE), metadata={"mlcore_version": config.mlcore_version}
    )
    config.save(directory / CONFIG_FILE)
    (directory / METRICS_FILE).write_text(
        json.dumps({**metrics, "history": history or []}, indent=2) + "\n"
    )
    (directory / CARD_FILE).write_text(model_card(config, metrics))
    diagram = reliability_diagram(metrics, title=f"{config.name}: {metrics.get('split', '')} split")
    if diagram is not None:
        (directory / RELIABILITY_FILE).write_bytes(diagram)
    return directory


def load_bundle(directory: str | Path, *, device: torch.device | str = "cpu") -> Bundle:
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise ConfigError(
            f"{directory} is not a model bundle (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    config = ModelConfig.load(directory / CONFIG_FILE)
    model = build_model(config)
    weights = _upgraded(load_file(str(directory / WEIGHTS_FILE)), model)
    result = model.load_state_dict(weights, strict=False)
    external = _external_prefixes(config)
    missing = [
        name
        for name in result.missing_keys
        # Bundles saved before novelty detection load with the detector unfitted.
        if not _is_external(name, external) and not name.startswith(_NOVELTY)
    ]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{directory} does not match its config: "
            f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    metrics_path = directory / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    rationale = None
    if config.prefix.language_model and (directory / MAPPER_FILE).is_file():
        rationale = _load_rationale(directory, config).to(device).eval()
    return Bundle(
        directory=directory,
        config=config,
        model=model.to(device).eval(),
        metrics=metrics,
        rationale=rationale,
    )


def _upgraded(weights: dict[str, torch.Tensor], model: MultimodalModel) -> dict:
    """Weights saved by an older mlcore, in today's shapes: one diagnosis temperature for all
    labels (before each label had its own) becomes that temperature for each; the tutoring
    head that bundles carried before tutoring learnt per school (mlcore.learnt_ranking) is
    left out."""
    weights = {key: value for key, value in weights.items() if not key.startswith("tutoring.")}
    name = "diagnosis.temperature"
    if name in weights and model.diagnosis is not None and weights[name].ndim == 0:
        weights = {**weights, name: weights[name].expand_as(model.diagnosis.temperature).clone()}
    return weights


def _load_rationale(directory: Path, config: ModelConfig) -> FrozenPrefixGenerator:
    language_model, tokenizer = load_language_model(config.prefix.language_model)
    generator = FrozenPrefixGenerator(
        language_model, tokenizer, dim=config.fusion.dim, prefix_length=config.prefix.prefix_length
    )
    generator.mapper.load_state_dict(load_file(str(directory / MAPPER_FILE)))
    return generator


def save_rationale(
    directory: str | Path, generator: FrozenPrefixGenerator, *, language_model: str
) -> None:
    """Add a trained rationale mapper to a bundle; the bundle then names its language model."""
    directory = Path(directory)
    weights = {
        name: t.detach().cpu().contiguous() for name, t in generator.mapper.state_dict().items()
    }
    save_file(weights, str(directory / MAPPER_FILE))
    config = ModelConfig.load(directory / CONFIG_FILE)
    config.prefix.language_model = str(Path(language_model).resolve())
    config.prefix.prefix_length = generator.mapper.prefix_length
    config.save(directory / CONFIG_FILE)
