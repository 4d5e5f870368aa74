import torch
from torch import nn


class _CalibratedHead(nn.Module):
    def __init__(self, dim: int, labels: list[str]) -> None:
        super().__init__()
        self.labels = list(labels)
        self.linear = nn.Linear(dim, len(labels))
        # Fitted after training (mlcore.train.calibrate); part of the saved weights.
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)


class DiagnosisHead(_CalibratedHead):
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits / self.temperature)


class EmotionHead(_CalibratedHead):
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits / self.temperature, dim=-1)
