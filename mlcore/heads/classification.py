import torch
from torch import nn


class _CalibratedHead(nn.Module):
    def __init__(self, dim: int, labels: list[str], temperature_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.labels = list(labels)
        self.linear = nn.Linear(dim, len(labels))
        # Fitted after training on the calibration split (mlcore.calibration); saved with the
        # weights.
        self.register_buffer("temperature", torch.ones(temperature_shape))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)


class DiagnosisHead(_CalibratedHead):
    """Multi-label: each finding is its own yes/no question, with its own temperature."""

    def __init__(self, dim: int, labels: list[str]) -> None:
        super().__init__(dim, labels, (len(labels),))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits / self.temperature)


class EmotionHead(_CalibratedHead):
    """Multi-class: one distribution over the labels, one temperature."""

    def __init__(self, dim: int, labels: list[str]) -> None:
        super().__init__(dim, labels, ())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits / self.temperature, dim=-1)
