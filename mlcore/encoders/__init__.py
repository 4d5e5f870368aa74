"""Per-modality encoders, each mapping its input to a vector of the fusion width."""

from torch import nn

from mlcore.config import ModelConfig
from mlcore.encoders.audio import LogMelCNN
from mlcore.encoders.image import ImageEncoder
from mlcore.encoders.text import TextEncoder, mean_pool, resolve_text_source


def build_encoder(
    modality: str, config: ModelConfig, *, text_backbone: nn.Module | None = None
) -> nn.Module:
    """`text_backbone`: the language model a text encoder already holds, for `speech_text` to
    share."""
    dim = config.fusion.dim
    if modality == "image":
        encoder = ImageEncoder(config.image, dim)
        trainable = config.image.trainable
    elif modality in ("text", "speech_text"):
        # freezes its own backbone, keeps its projection
        return TextEncoder(config.text, dim, backbone=text_backbone)
    else:
        encoder = LogMelCNN(config.audio, dim)
        trainable = config.audio.trainable
    if not trainable:
        encoder.requires_grad_(False)
    return encoder


__all__ = [
    "ImageEncoder",
    "LogMelCNN",
    "TextEncoder",
    "build_encoder",
    "mean_pool",
    "resolve_text_source",
]
