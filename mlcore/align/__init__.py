"""Contrastive image-text alignment (CLIP-style, symmetric InfoNCE) on image-report pairs.

Gives an image encoder trained without labels, and a shared space for finding similar cases by
image or by text.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mlcore.config import ImageEncoderConfig, TextEncoderConfig
from mlcore.encoders import ImageEncoder, TextEncoder


class ContrastiveAligner(nn.Module):
    def __init__(self, image: ImageEncoderConfig, text: TextEncoderConfig, dim: int = 128) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(image, dim)
        self.text_encoder = TextEncoder(text, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(images), dim=-1)

    def embed_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_encoder(input_ids, attention_mask), dim=-1)

    def loss(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE: each image's report is its positive, the batch's others negatives."""
        logits = self.logit_scale.exp().clamp(max=100) * image_embeddings @ text_embeddings.T
        targets = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


@dataclass
class AlignmentResult:
    losses: list[float]


def train_alignment(
    aligner: ContrastiveAligner,
    images: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> AlignmentResult:
    torch.manual_seed(seed)
    parameters = [p for p in aligner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    text_encoder = aligner.text_encoder
    sentences = None
    if text_encoder.frozen:
        # A frozen encoder gives the same sentence vectors every epoch: compute them once.
        with torch.no_grad():
            sentences = text_encoder.embed(input_ids, attention_mask)
    losses = []
    for _ in range(epochs):
        aligner.train()
        order = torch.randperm(len(images))
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            if len(rows) < 2:
                continue  # a lone pair has no negatives
            if sentences is not None:
                texts = F.normalize(text_encoder.projection(sentences[rows]), dim=-1)
            else:
                texts = aligner.embed_texts(input_ids[rows], attention_mask[rows])
            loss = aligner.loss(aligner.embed_images(images[rows]), texts)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(images))
    aligner.eval()
    return AlignmentResult(losses=losses)


def recall_at_1(
    queries: torch.Tensor, gallery: torch.Tensor, query_groups: list, gallery_groups: list
) -> float:
    """Share of queries whose nearest gallery item belongs to the same group (the same finding)."""
    nearest = (queries @ gallery.T).argmax(dim=1).tolist()
    return sum(query_groups[i] == gallery_groups[j] for i, j in enumerate(nearest)) / len(nearest)


class CaseIndex:
    """Similar-case search over aligned embeddings: by an image or by a text query."""

    def __init__(self, embeddings: torch.Tensor, ids: list[str]) -> None:
        self.embeddings = F.normalize(embeddings, dim=-1)
        self.ids = list(ids)

    def search(self, query: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        similarity = self.embeddings @ F.normalize(query, dim=-1)
        scores, rows = similarity.topk(min(k, len(self.ids)))
        return [
            (self.ids[row], float(score))
            for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
        ]
