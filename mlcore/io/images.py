"""Images of any supported format → the model's input tensor, through MONAI transforms.

DICOM (.dcm or no extension), NIfTI (.nii, .nii.gz), PNG and JPEG are read to a float array in
[0, 1] whose values mean the same in every image (a fixed CT window, robust percentiles
otherwise: see `mlcore.io.dicom`); MONAI then adds the channel, resizes to the configured size
and maps [0, 1] to [-2, 2] with one fixed scale (about unit spread for a windowed chest CT:
networks train as steadily as on z-scores). Nothing is standardised per image: a z-score of
each image on its own spreads a lesion's presence over every pixel (bundles trained that way ask
for it with `intensity="standardise"`).
"""

from pathlib import Path

import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirst,
    NormalizeIntensity,
    Resize,
    ScaleIntensityRange,
)

from mlcore.errors import InputError
from mlcore.io.dicom import LUNG_WINDOW, dicom_header, read_dicom, robust_unit_range

_PLAIN_IMAGES = {".png", ".jpg", ".jpeg"}


def read_image(
    source: str | Path | bytes,
    *,
    volume: bool = False,
    ct_window: tuple[float, float] = LUNG_WINDOW,
) -> np.ndarray:
    """Float32 pixels in [0, 1]: (H, W), or (D, H, W) for volumes. `source` is a path, or a
    DICOM file's bytes (for callers that keep files elsewhere than on disk in the clear); a CT
    is windowed at `ct_window` (centre, width in HU)."""
    if isinstance(source, bytes):
        return read_dicom(source, volume=volume, ct_window=ct_window)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path, volume=volume)
    if path.suffix.lower() in _PLAIN_IMAGES:
        return _read_plain(path)
    return read_dicom(path, volume=volume, ct_window=ct_window)


def image_facts(source: str | Path | bytes, pixels: np.ndarray) -> dict[str, str | int]:
    """What kind of image `source` is, for the input checks: a DICOM file's header
    (`mlcore.io.dicom.dicom_header`); for other formats the format's name as `image_modality`
    and the matrix of the pixels read."""
    if isinstance(source, bytes):
        return dicom_header(source)
    name = Path(source).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        kind = "NIFTI"
    elif Path(source).suffix.lower() in _PLAIN_IMAGES:
        kind = "JPEG" if name.endswith((".jpg", ".jpeg")) else "PNG"
    else:
        return dicom_header(source)
    return {
        "image_modality": kind,
        "body_part": "",
        "rows": int(pixels.shape[-2]),
        "columns": int(pixels.shape[-1]),
    }


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
    return robust_unit_range(data)


def _read_plain(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"not a readable PNG/JPEG image: {error}") from error
    return grey / 255.0


INTENSITIES = ("fixed", "standardise")


def image_transform(size: int, *, spatial_dims: int = 2, intensity: str = "fixed") -> Compose:
    """MONAI pipeline from a [0, 1] array to a (1, *spatial) tensor in [-2, 2] ("fixed"), or
    z-scored per image ("standardise", for bundles trained so)."""
    if intensity not in INTENSITIES:
        raise InputError(f"image intensity must be one of {', '.join(INTENSITIES)}")
    scale = (
        ScaleIntensityRange(a_min=0.0, a_max=1.0, b_min=-2.0, b_max=2.0)
        if intensity == "fixed"
        else NormalizeIntensity()
    )
    return Compose(
        [
            EnsureChannelFirst(channel_dim="no_channel"),
            Resize(
                spatial_size=(size,) * spatial_dims,
                mode="area" if spatial_dims == 2 else "trilinear",
            ),
            scale,
        ]
    )


def image_tensor(
    pixels: np.ndarray, *, size: int, spatial_dims: int = 2, intensity: str = "fixed"
) -> torch.Tensor:
    if pixels.ndim != spatial_dims:
        raise InputError(f"expected a {spatial_dims}D image, got shape {pixels.shape}")
    tensor = image_transform(size, spatial_dims=spatial_dims, intensity=intensity)(pixels)
    return torch.as_tensor(tensor, dtype=torch.float32)
