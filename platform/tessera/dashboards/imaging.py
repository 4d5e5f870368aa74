"""Pictures for the pages, drawn server-side so the browser needs no DICOM viewer: a DICOM image
windowed as the model saw it, and a Grad-CAM heatmap as a translucent overlay."""

import io

import numpy as np
from PIL import Image

from mlcore.io.dicom import read_dicom

PREVIEW_SIDE = 512  # pixels: sharp at the page's size, small enough to send at once


def dicom_png(content: bytes) -> bytes:
    """The image of a DICOM file (its window, or its full range) as a greyscale PNG."""
    pixels = read_dicom(content)
    image = Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L")
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return _png(image)


def heatmap_png(grid: list[list[float]]) -> bytes:
    """A heatmap grid (values in [0, 1]) as an RGBA overlay: transparent where the model did not
    look, through yellow to opaque red where it looked most; the browser stretches it over the
    image (smoothly, with CSS)."""
    values = np.clip(np.asarray(grid, dtype=np.float32), 0.0, 1.0)
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.round(255 * (1.0 - values)).astype(np.uint8)
    rgba[..., 3] = np.round(200 * np.clip((values - 0.2) / 0.8, 0.0, 1.0)).astype(np.uint8)
    return _png(Image.fromarray(rgba, mode="RGBA"))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
