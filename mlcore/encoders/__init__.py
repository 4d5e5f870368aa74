"""Per-modality encoders, each mapping its input to a vector of the fusion width."""

from torch import nn

from mlcore.config import ModelConfig
from mlcore.encoders.audio import LogMelCNN
from mlcore.encoders.image import ImageEncoder
from mlcore.encoders.text import TextEncoder, mean_pool, resolve_text_source


def build_encoder(modality: str, config: ModelConfig) -> nn.Module:
    dim = config.fusion.dim
    if modality == "image":
        encoder = ImageEncoder(config.image, dim)
        trainable = config.image.trainable
    elif modality == "text":
        return TextEncoder(config.text, dim)  # freezes its own backbone, keeps its projection
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
