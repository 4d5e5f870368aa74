"""Image encoder: a MONAI network (DenseNet or ResNet, 2D or 3D) whose classifier outputs the
embedding, or a small lesion detector that keeps the image's layout (`LesionDetector`)."""

import torch
from monai.networks import nets
from torch import nn

from mlcore.config import ImageEncoderConfig
from mlcore.errors import ConfigError


class LesionDetector(nn.Module):
    """Small convolutions that keep half the image's resolution, averaged over the image at the
    end (a class activation map network: Zhou et al., 2016).

    A finding that is a small local thing, such as a nodule, is then read where it is. Each
    position of the last feature map sees 15 pixels of the input (the default four layers),
    about a large nodule's width, so the answer is a sum of local answers and the heatmap of
    that sum peaks on the nodule. A DenseNet's four halvings instead give each of its few
    positions the whole lung, borders and all. The padding repeats the edge: zeros would
    draw a bright frame around the air, which the network learns to answer to and Grad-CAM
    then points at.
    """

    def __init__(self, config: ImageEncoderConfig, dim: int) -> None:
        super().__init__()
        convolution = {2: nn.Conv2d, 3: nn.Conv3d}[config.spatial_dims]
        normalisation = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[config.spatial_dims]
        layers, channels_in = [], 1
        for index, channels in enumerate(config.channels):
            layers += [
                convolution(
                    channels_in,
                    channels,
                    kernel_size=3,
                    stride=2 if index == 0 else 1,
                    padding=1,
                    padding_mode="replicate",
                    bias=False,
                ),
                normalisation(channels),
                nn.ReLU(),
            ]
            channels_in = channels
        layers.append(convolution(channels_in, dim, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pooling = config.pooling

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        positions = self.features(images).flatten(start_dim=2)
        return positions.amax(dim=2) if self.pooling == "max" else positions.mean(dim=2)


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageEncoderConfig, dim: int) -> None:
        super().__init__()
        dims = config.spatial_dims
        if config.arch == "densenet121":
            self.network = nets.DenseNet121(spatial_dims=dims, in_channels=1, out_channels=dim)
        elif config.arch == "densenet":
            self.network = nets.DenseNet(
                spatial_dims=dims,
                in_channels=1,
                out_channels=dim,
                init_features=config.init_features,
                growth_rate=config.growth_rate,
                block_config=tuple(config.block_config),
            )
        elif config.arch in ("resnet10", "resnet18"):
            factory = getattr(nets, config.arch)
            self.network = factory(spatial_dims=dims, n_input_channels=1, num_classes=dim)
        elif config.arch == "detector":
            self.network = LesionDetector(config, dim)
        else:
            raise ConfigError(f"unknown image encoder {config.arch!r}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)
