"""Where in the image a diagnosis came from: a Grad-CAM heatmap (MONAI's `GradCAM`) of one
finding's logit, taken at the image encoder's last feature maps with the case's other
modalities held as they are; and, to cross-check it, MONAI's occlusion sensitivity (how much
hiding each region lowers the finding's probability).

The heatmap covers the preprocessed image, which is the whole original image resized (not
cropped), so stretched over the original it lines up.
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from monai.visualize import GradCAM, OcclusionSensitivity
from torch import nn

from mlcore.data import Batch, Features, collate
from mlcore.model import MultimodalModel

# The last layer of each image network that still has a spatial layout.
_FEATURE_LAYERS = {
    "densenet": "encoders.image.network.features",
    "densenet121": "encoders.image.network.features",
    "resnet10": "encoders.image.network.layer4",
    "resnet18": "encoders.image.network.layer4",
    "detector": "encoders.image.network.features",
}


class _DiagnosisOfImage(nn.Module):
    """The model as a function of the image alone: what Grad-CAM differentiates.

    MONAI's GradCAM hooks its target layer for good, so the target is this wrapper's own
    `feature_maps` (gone with the wrapper), fed from the encoder's feature layer by a hook that
    is removed after each use. The clone lets the network's in-place ReLU run on the hooked
    output. With `columns` (one finding per case), the output is each case's own finding's
    logit alone, in column 0: one backward pass then gives every case the gradient of its own
    finding (the cases of a batch never touch each other in eval mode).
    """

    def __init__(
        self, model: MultimodalModel, batch: Batch, columns: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.batch = batch
        self.columns = columns
        self.feature_maps = nn.Identity()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.batch = _repeated(self.batch, len(image))  # occlusion sends many copies at once
        self.batch.image = image
        layer = self.model.get_submodule(_FEATURE_LAYERS[self.model.config.image.arch])
        handle = layer.register_forward_hook(
            lambda _module, _inputs, output: self.feature_maps(output).clone()
        )
        try:
            diagnosis = self.model(self.batch).diagnosis
        finally:
            handle.remove()
        if self.columns is None:
            return diagnosis
        return diagnosis.gather(1, self.columns.unsqueeze(1))


def _repeated(batch: Batch, count: int) -> Batch:
    """`batch` (one case) as `count` copies of it; `batch` itself when it has that many."""
    if len(batch) == count:
        return batch
    return batch.map(lambda value: value[:1].expand(count, *value.shape[1:]))


@contextmanager
def _evaluating(model: MultimodalModel) -> Iterator[None]:
    """The model in eval mode for the block, then as it was, with no gradients left on it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)


def _explained_batch(
    model: MultimodalModel,
    features: Sequence[Features],
    labels: Sequence[str],
    pad_id: int,
    device,
) -> tuple[Batch, list[int]]:
    """The cases as a batch, and the column of each one's label; ValueError when one cannot be
    explained."""
    config = model.config
    if model.diagnosis is None or config.image is None:
        raise ValueError("this model makes no diagnosis from images")
    if any(item.image is None for item in features):
        raise ValueError("the case has no image to explain")
    if config.image.spatial_dims != 2:
        raise ValueError("heatmaps are drawn for 2D images only")
    known = config.tasks.diagnosis_labels
    if unknown := [label for label in labels if label not in known]:
        raise ValueError(f"unknown finding {unknown[0]!r}")
    batch = collate(list(features), config, pad_id=pad_id).to(device)
    return batch, [known.index(label) for label in labels]


def occlusion_heatmap(
    model: MultimodalModel,
    features: Features,
    *,
    label: str,
    device: torch.device | str = "cpu",
    pad_id: int = 0,
    mask_size: int = 8,
) -> np.ndarray:
    """An (H, W) float32 map in [0, 1] of how much hiding each region of the image (MONAI's
    OcclusionSensitivity: a patch of `mask_size` pixels replaced by its mean) lowers the
    probability of `label`; 0 where hiding it does not lower it. Raises ValueError as
    `diagnosis_heatmap`."""
    batch, (column,) = _explained_batch(model, [features], [label], pad_id, device)
    with _evaluating(model):
        wrapper = _DiagnosisOfImage(model, batch)
        occlusion = OcclusionSensitivity(
            nn_module=wrapper,
            mask_size=mask_size,
            n_batch=16,
            verbose=False,
            # Each patch becomes its own mean: its structure hidden, its brightness kept. The
            # default pulls a patch towards 0, mid-window on a CT: a grey blob in the dark
            # lung, which reads as a new nodule rather than as nothing.
            mode="mean_patch",
            activate=torch.sigmoid,
        )
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's own indexing, deprecated in torch
            probability = torch.sigmoid(wrapper(batch.image))[0, column]
            occluded, _ = occlusion(batch.image)  # (1, findings, H, W)
    drop = (probability - occluded[0, column]).clamp(min=0.0)
    peak = float(drop.max())
    return (drop / peak if peak > 0 else drop).float().cpu().numpy()


def diagnosis_heatmap(
    model: MultimodalModel,
    features: Features,
    *,
    label: str,
    device: torch.device | str = "cpu",
    pad_id: int = 0,
) -> np.ndarray:
    """An (H, W) float32 map in [0, 1] of how much each region of the case's image raised the
    logit of `label`. Raises ValueError when the model makes no diagnoses, does not know `label`
    or the case has no image."""
    return diagnosis_heatmaps(model, [features], labels=[label], device=device, pad_id=pad_id)[0]


def diagnosis_heatmaps(
    model: MultimodalModel,
    features: Sequence[Features],
    *,
    labels: Sequence[str],
    device: torch.device | str = "cpu",
    pad_id: int = 0,
) -> list[np.ndarray]:
    """`diagnosis_heatmap` of each case for its own label (`labels[i]` for `features[i]`), all
    in one forward and one backward pass: the same maps as one case at a time."""
    if not features:
        return []
    batch, columns = _explained_batch(model, features, labels, pad_id, device)
    chosen = torch.tensor(columns, device=batch.image.device)
    with _evaluating(model), torch.enable_grad():
        cam = GradCAM(
            nn_module=_DiagnosisOfImage(model, batch, columns=chosen),
            target_layers="feature_maps",
            postprocessing=_scaled_to_peak,
        )
        heatmaps = cam(batch.image.clone(), class_idx=0)
    return [heatmap[0].detach().float().cpu().numpy() for heatmap in heatmaps]


def _scaled_to_peak(heatmap: torch.Tensor) -> torch.Tensor:
    """Each map divided by its peak, so 1 is where the finding came from most. (MONAI's default
    postprocessing maps the peak to 0 and the least to 1: every heatmap upside down.)"""
    peaks = heatmap.flatten(start_dim=1).amax(dim=1).clamp(min=1e-12)
    return heatmap / peaks.view(-1, *[1] * (heatmap.dim() - 1))


def coarsen(heatmap: np.ndarray, *, cells: int) -> list[list[float]]:
    """Block means of `heatmap` on a grid of at most `cells` by `cells`, rounded for storage."""
    rows, columns = heatmap.shape
    step_rows, step_columns = max(1, -(-rows // cells)), max(1, -(-columns // cells))
    padded = np.pad(
        heatmap,
        ((0, -rows % step_rows), (0, -columns % step_columns)),
        mode="edge",
    )
    blocks = padded.reshape(
        padded.shape[0] // step_rows, step_rows, padded.shape[1] // step_columns, step_columns
    ).mean(axis=(1, 3))
    return np.round(blocks, 3).tolist()
