"""The multimodal model: per-modality encoders, a fusion, and task heads."""

from dataclasses import dataclass

import torch
from torch import nn

from mlcore.config import ModelConfig
from mlcore.data import Batch
from mlcore.encoders import build_encoder
from mlcore.fusion import build_fusion
from mlcore.heads import DiagnosisHead, EmotionHead
from mlcore.novelty import NoveltyDetector


@dataclass
class Output:
    embedding: torch.Tensor  # (B, D) fused case embedding
    weights: torch.Tensor  # (B, M) contribution of each modality
    present: torch.Tensor  # (B, M) modalities the model actually used
    diagnosis: torch.Tensor | None = None  # logits (B, labels)
    emotion: torch.Tensor | None = None  # logits (B, classes)


class MultimodalModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(config.modalities)
        encoders: dict[str, nn.Module] = {}
        for modality in sorted(self.modalities, key=lambda name: name != "text"):  # text first
            # what was said is read by the written text's language model, when there is one
            shared = encoders["text"].backbone if "text" in encoders else None
            encoders[modality] = build_encoder(modality, config, text_backbone=shared)
        self.encoders = nn.ModuleDict(
            {modality: encoders[modality] for modality in self.modalities}
        )
        self.fusion = build_fusion(config.fusion, len(self.modalities))
        dim, tasks = config.fusion.dim, config.tasks
        self.diagnosis = (
            DiagnosisHead(dim, tasks.diagnosis_labels) if tasks.diagnosis_labels else None
        )
        self.emotion = EmotionHead(dim, tasks.emotion_labels) if tasks.emotion_labels else None
        for task in ("diagnosis", "emotion"):
            read = self.reads(task)
            # a mask on the model's device for `decide`; not saved: the configuration says it
            self.register_buffer(
                f"{task}_reads",
                torch.tensor([modality in read for modality in self.modalities]),
                persistent=False,
            )
        # How unlike the training data a case is; fitted after training (mlcore.novelty).
        self.novelty = NoveltyDetector(dim, len(self.modalities), max(1, len(tasks.emotion_labels)))

    def reads(self, task: str) -> list[str]:
        """The modalities the head of `task` (diagnosis or emotion) reads."""
        read = self.config.tasks.reads.get(task, self.modalities)
        return [modality for modality in self.modalities if modality in read]

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, M, D) modality vectors (zeros where missing) and the (B, M) presence mask."""
        present = batch.present
        if self.training and self.config.fusion.modality_dropout > 0:
            present = _drop_modalities(present, self.config.fusion.modality_dropout)
        tokens = []
        for column, modality in enumerate(self.modalities):
            rows = present[:, column]
            token = torch.zeros(len(batch), self.config.fusion.dim, device=present.device)
            if rows.any():
                token[rows] = self._encode(modality, batch, rows).float()
            tokens.append(token)
        return torch.stack(tokens, dim=1), present

    def _encode(self, modality: str, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        encoder = self.encoders[modality]
        if modality == "image":
            return encoder(batch.image[rows])
        if modality == "audio":
            return encoder(batch.audio[rows])
        if modality == "speech_text":
            return encoder(batch.speech_ids[rows], batch.speech_mask[rows])
        return encoder(batch.text_ids[rows], batch.text_mask[rows])

    def forward(self, batch: Batch) -> Output:
        tokens, present = self.encode(batch)
        return self.decide(tokens, present)

    def decide(self, tokens: torch.Tensor, present: torch.Tensor) -> Output:
        """Fusion and heads over encoded modalities: `present` may hide some of them (none at
        all gives the model's answer with no evidence), which is how contributions are
        measured without encoding anything twice. A task's head sees only the modalities it
        reads (`TaskConfig.reads`)."""
        fused = self.fusion(tokens, present)
        output = Output(embedding=fused.embedding, weights=fused.weights, present=present)
        for name in ("diagnosis", "emotion"):
            head = getattr(self, name)
            if head is None:
                continue
            reads = getattr(self, f"{name}_reads")
            read = fused if reads.all() else self.fusion(tokens, present & reads)
            if self.fusion.combines_predictions:
                # Late fusion: each modality predicts; the gate weighs the predictions.
                per_modality = head(tokens)  # (B, M, classes)
                setattr(output, name, (per_modality * read.weights.unsqueeze(-1)).sum(dim=1))
            else:
                setattr(output, name, head(read.embedding))
        return output


def _drop_modalities(present: torch.Tensor, probability: float) -> torch.Tensor:
    """Hide each present modality with `probability`. Of the cases left with nothing, half get
    one of their modalities back; the others stay empty, so that the answer to no evidence
    (where contributions start from, mlcore.contributions) learns the base rates."""
    keep = present & (torch.rand(present.shape, device=present.device) >= probability)
    empty = ~keep.any(dim=1) & (torch.rand(len(present), device=present.device) < 0.5)
    if empty.any():
        # Give back one of the modalities the case really has, chosen at random.
        choice = torch.multinomial(present[empty].float(), 1).squeeze(1)
        keep[empty.nonzero().squeeze(1), choice] = True
    return keep


def build_model(config: ModelConfig) -> MultimodalModel:
    return MultimodalModel(config)
