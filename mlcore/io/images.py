"""Images of any supported format → the model's input tensor, through MONAI transforms.

DICOM (.dcm or no extension), NIfTI (.nii, .nii.gz), PNG and JPEG are read to a float array in
[0, 1]; MONAI then adds the channel, resizes to the configured size and standardises intensity.
"""

from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirst, NormalizeIntensity, Resize

from mlcore.errors import InputError
from mlcore.io.dicom import read_dicom

_PLAIN_IMAGES = {".png", ".jpg", ".jpeg"}


def read_image(source: str | Path | bytes, *, volume: bool = False) -> np.ndarray:
    """Float32 pixels in [0, 1]: (H, W), or (D, H, W) for volumes. `source` is a path, or a
    DICOM file's bytes (for callers that keep files elsewhere than on disk in the clear)."""
    if isinstance(source, bytes):
        return read_dicom(source, volume=volume)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path, volume=volume)
    if path.suffix.lower() in _PLAIN_IMAGES:
        return _read_plain(path)
    return read_dicom(path, volume=volume)


def _read_nifti(path: Path, *, volume: bool) -> np.ndarray:
    import nibabel

    try:
        data = np.asarray(nibabel.load(str(path)).get_fdata(), dtype=np.float32)
    except Exception as error:  # nibabel raises many types on damaged files
        raise InputError(f"not a readable NIfTI file: {error}") from error
    if data.ndim not in (2, 3) or not np.isfinite(data).all():
        raise InputError(f"NIfTI image must be 2D or 3D with finite values, not shape {data.shape}")
    data = np.moveaxis(data, -1, 0) if data.ndim == 3 else data  # slices first
    if data.ndim == 3 and not volume:
        data = data[len(data) // 2]
    low, high = float(data.min()), float(data.max())
    return (data - low) / (high - low) if high > low else np.zeros_like(data)


def _read_plain(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"not a readable PNG/JPEG image: {error}") from error
    return grey / 255.0


def image_transform(size: int, *, spatial_dims: int = 2) -> Compose:
    """MONAI pipeline from a [0, 1] array to a standardised (1, *spatial) tensor."""
    return Compose(
        [
            EnsureChannelFirst(channel_dim="no_channel"),
            Resize(
                spatial_size=(size,) * spatial_dims,
                mode="area" if spatial_dims == 2 else "trilinear",
            ),
            NormalizeIntensity(),
        ]
    )


def image_tensor(pixels: np.ndarray, *, size: int, spatial_dims: int = 2) -> torch.Tensor:
    if pixels.ndim != spatial_dims:
        raise InputError(f"expected a {spatial_dims}D image, got shape {pixels.shape}")
    tensor = image_transform(size, spatial_dims=spatial_dims)(pixels)
    return torch.as_tensor(tensor, dtype=torch.float32)
