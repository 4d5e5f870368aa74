"""DICOM → a float image in [0, 1] whose values mean the same in every file.

Applies the modality LUT (rescale slope/intercept). A CT is then seen through one fixed window
in Hounsfield units (the lung window unless the model's config says otherwise), whatever window
the file suggests, so air, lung, soft tissue and bone land on the same values on every scanner.
Other images (MR, X-ray, …) have no absolute unit: they are clipped at robust percentiles of
their own values, so one hot pixel does not squash the rest. Inverts MONOCHROME1, takes the
middle frame of a multi-frame image for 2D models (all frames for 3D), and turns colour into
luminance.
"""

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from mlcore.errors import InputError

_IMAGE_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
LUNG_WINDOW = (-600.0, 1500.0)  # centre and width in Hounsfield units
PERCENTILES = (0.5, 99.5)


def read_dicom(
    source: str | Path | bytes,
    *,
    volume: bool = False,
    ct_window: tuple[float, float] = LUNG_WINDOW,
) -> np.ndarray:
    """Return float32 pixels in [0, 1]: (H, W), or (frames, H, W) when `volume` is true. A CT
    is windowed at `ct_window` (centre, width in HU)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = pydicom.dcmread(stream)
        except Exception as error:  # pydicom raises many types on damaged files
            raise InputError(f"not a readable DICOM file: {_short(error)}") from error
        if not any(keyword in dataset for keyword in _IMAGE_KEYWORDS):
            uid = dataset.get("SOPClassUID")
            what = f"a '{uid.name}' object" if uid is not None else "an object without pixels"
            raise InputError(f"DICOM file has no image: it is {what}")
        try:
            pixels = dataset.pixel_array
            image = _to_display(dataset, pixels, ct_window=ct_window)
        except InputError:
            raise
        except Exception as error:  # decoder plugins raise many types
            raise InputError(f"DICOM pixel data could not be decoded: {_short(error)}") from error
    if image.size == 0 or not np.isfinite(image).all():
        raise InputError("DICOM image is empty or contains invalid (NaN or infinite) pixels")
    frames = image if image.ndim == 3 else image[np.newaxis]
    if volume:
        return frames
    return frames[len(frames) // 2]


def dicom_header(source: str | Path | bytes) -> dict[str, str | int]:
    """What a file says it is, without decoding its pixels: `image_modality` (the DICOM
    Modality, "" when it names none), `body_part` ("" when none) and the matrix (`rows`,
    `columns`). Raises InputError when it is not DICOM."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = pydicom.dcmread(stream, stop_before_pixels=True)
        except Exception as error:  # pydicom raises many types on damaged files
            raise InputError(f"not a readable DICOM file: {_short(error)}") from error
    return {
        "image_modality": str(dataset.get("Modality", "") or "").upper(),
        "body_part": str(dataset.get("BodyPartExamined", "") or "").upper(),
        "rows": int(dataset.get("Rows", 0) or 0),
        "columns": int(dataset.get("Columns", 0) or 0),
    }


def _to_display(
    dataset: pydicom.Dataset, pixels: np.ndarray, *, ct_window: tuple[float, float]
) -> np.ndarray:
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples == 3:
        # pydicom already converted YBR to RGB; luminance keeps what a grey model can use.
        image = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return robust_unit_range(image)
    if samples != 1:
        raise InputError(f"DICOM image has {samples} samples per pixel; 1 or 3 are supported")
    image = apply_modality_lut(pixels, dataset).astype(np.float64)
    if str(dataset.get("Modality", "")).upper() == "CT":
        image = window(image, *ct_window)
    else:
        image = robust_unit_range(image)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def window(hounsfield: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A fixed window: centre - width/2 → 0, centre + width/2 → 1, clipped."""
    if width <= 0:
        raise InputError(f"a CT window needs a positive width, not {width}")
    low = centre - width / 2
    return np.clip((hounsfield - low) / width, 0.0, 1.0).astype(np.float32)


def robust_unit_range(image: np.ndarray) -> np.ndarray:
    """[0, 1] between the image's 0.5th and 99.5th percentiles, clipped outside them."""
    low, high = (float(value) for value in np.percentile(image, PERCENTILES))
    if high <= low:
        low, high = float(np.min(image)), float(np.max(image))
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _short(error: Exception) -> str:
    return (" ".join(str(error).split()) or type(error).__name__)[:200]
