"""Reading inputs: DICOM, NIfTI, PNG/JPEG images; audio; text. Bad input raises InputError."""

from mlcore.io.audio import fixed_length, log_mel, mfcc, read_audio, warm_up
from mlcore.io.dicom import read_dicom
from mlcore.io.images import image_tensor, read_image
from mlcore.io.text import Tokenizer, read_text

__all__ = [
    "Tokenizer",
    "fixed_length",
    "image_tensor",
    "log_mel",
    "mfcc",
    "read_audio",
    "read_dicom",
    "read_image",
    "read_text",
    "warm_up",
]
