"""DICOM → a float image in [0, 1], as a radiologist's viewer would show it.

Applies the modality LUT (rescale slope/intercept), then the VOI LUT or window from the file
(or the full range when none is given), inverts MONOCHROME1, takes the middle frame of a
multi-frame image for 2D models (all frames for 3D), and turns colour into luminance.
"""

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from mlcore.errors import InputError

_IMAGE_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dicom(source: str | Path | bytes, *, volume: bool = False) -> np.ndarray:
    """Return float32 pixels in [0, 1]: (H, W), or (frames, H, W) when `volume` is true."""
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
            image = _to_display(dataset, pixels)
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


def _to_display(dataset: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples == 3:
        # pydicom already converted YBR to RGB; luminance keeps what a grey model can use.
        image = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return _rescale(image)
    if samples != 1:
        raise InputError(f"DICOM image has {samples} samples per pixel; 1 or 3 are supported")
    image = apply_modality_lut(pixels, dataset).astype(np.float64)
    windowed = "WindowCenter" in dataset or "VOILUTSequence" in dataset
    if windowed:
        image = apply_voi_lut(image, dataset, prefer_lut=True).astype(np.float64)
    image = _rescale(image)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def _rescale(image: np.ndarray) -> np.ndarray:
    low, high = float(np.min(image)), float(np.max(image))
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return ((image - low) / (high - low)).astype(np.float32)


def _short(error: Exception) -> str:
    return (" ".join(str(error).split()) or type(error).__name__)[:200]
