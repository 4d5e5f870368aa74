"""Audio encoder: a small CNN over the log-mel spectrogram."""

import torch
from torch import nn

from mlcore.config import AudioEncoderConfig


class LogMelCNN(nn.Module):
    def __init__(self, config: AudioEncoderConfig, dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = 1
        for channels in config.channels:
            layers += [
                nn.Conv2d(channels_in, channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels_in = channels
        self.features = nn.Sequential(*layers)
        self.projection = nn.Linear(2 * channels_in, dim)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        maps = self.features(spectrograms)  # (B, C, mels', frames')
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        return self.projection(pooled)
