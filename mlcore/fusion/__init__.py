"""Fusion of per-modality vectors into one case embedding, for any subset of modalities.

Every fusion takes `tokens` (B, M, D) and `present` (B, M) and returns the fused embedding
(B, D) and each modality's weight (B, M): zero for a missing modality, summing to one over the
present ones. Late fusion also tells the model to combine per-modality predictions. A case with
no modality present gets all-zero weights and the fusion's answer to no evidence (what
contributions are measured from).
"""

from dataclasses import dataclass

import torch
from torch import nn

from mlcore.config import FusionConfig


@dataclass
class Fused:
    embedding: torch.Tensor  # (B, D)
    weights: torch.Tensor  # (B, M)


def _masked_softmax(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    weights = torch.softmax(scores.masked_fill(~present, float("-inf")), dim=-1)
    return weights.nan_to_num(0.0)  # nothing present: a softmax over nothing


class ConcatFusion(nn.Module):
    """Feature-level fusion: gated modality vectors, concatenated, then an MLP."""

    combines_predictions = False

    def __init__(self, config: FusionConfig, modalities: int) -> None:
        super().__init__()
        self.gate = nn.Linear(config.dim, 1)
        self.mlp = nn.Sequential(
            nn.Linear(modalities * (config.dim + 1), config.dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.dim, config.dim),
        )

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> Fused:
        weights = _masked_softmax(self.gate(tokens).squeeze(-1), present)
        gated = tokens * weights.unsqueeze(-1) * tokens.shape[1]
        flags = present.unsqueeze(-1).to(tokens.dtype)
        return Fused(self.mlp(torch.cat([gated, flags], dim=-1).flatten(1)), weights)


class _Block(nn.Module):
    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attention = nn.MultiheadAttention(
            config.dim, config.heads, dropout=config.dropout, batch_first=True
        )
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, 2 * config.dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(2 * config.dim, config.dim),
        )

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.norm1(x)
        attended, weights = self.attention(
            normed, normed, normed, key_padding_mask=padding, need_weights=True
        )
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class AttentionFusion(nn.Module):
    """A small transformer over a summary token and one token per modality, with learned
    modality embeddings; missing modalities are masked out of attention."""

    combines_predictions = False

    def __init__(self, config: FusionConfig, modalities: int) -> None:
        super().__init__()
        self.summary = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.modality_embedding = nn.Parameter(torch.randn(1, modalities, config.dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> Fused:
        batch = tokens.shape[0]
        x = torch.cat([self.summary.expand(batch, -1, -1), tokens + self.modality_embedding], dim=1)
        padding = torch.cat([present.new_zeros(batch, 1), ~present], dim=1)
        for block in self.blocks:
            x, attention = block(x, padding)
        from_summary = attention[:, 0, 1:] * present  # what the summary token read, per modality
        weights = from_summary / from_summary.sum(dim=-1, keepdim=True).clamp(min=1e-9)
        return Fused(self.norm(x[:, 0]), weights)


class LateFusion(nn.Module):
    """Decision-level fusion: each modality predicts on its own; a gate weighs the predictions."""

    combines_predictions = True

    def __init__(self, config: FusionConfig, modalities: int) -> None:
        super().__init__()
        self.gate = nn.Linear(config.dim, 1)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> Fused:
        weights = _masked_softmax(self.gate(tokens).squeeze(-1), present)
        return Fused((tokens * weights.unsqueeze(-1)).sum(dim=1), weights)


class SumFusion(nn.Module):
    """A product of experts: the case embedding is the sum of the present modalities' vectors.
    The heads are linear, so each task's logits are the no-evidence logits plus one term per
    modality: every modality adds its own log-odds, which is how independent evidence combines
    (naive Bayes), and masking a modality removes exactly its term. Weights are equal shares of
    the present modalities; the contributions (mlcore.contributions) say what each one did."""

    combines_predictions = False

    def __init__(self, config: FusionConfig, modalities: int) -> None:
        super().__init__()

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> Fused:
        mask = present.to(tokens.dtype)
        weights = mask / mask.sum(dim=-1, keepdim=True).clamp(min=1.0)
        return Fused((tokens * mask.unsqueeze(-1)).sum(dim=1), weights)


def build_fusion(config: FusionConfig, modalities: int) -> nn.Module:
    kinds = {
        "concat": ConcatFusion,
        "attention": AttentionFusion,
        "late": LateFusion,
        "sum": SumFusion,
    }
    return kinds[config.kind](config, modalities)


__all__ = ["AttentionFusion", "ConcatFusion", "Fused", "LateFusion", "SumFusion", "build_fusion"]
