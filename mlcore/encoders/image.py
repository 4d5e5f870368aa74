"""Image encoder: a MONAI network (DenseNet or ResNet, 2D or 3D) whose classifier outputs the
embedding."""

import torch
from monai.networks import nets
from torch import nn

from mlcore.config import ImageEncoderConfig
from mlcore.errors import ConfigError


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
        else:
            raise ConfigError(f"unknown image encoder {config.arch!r}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)
