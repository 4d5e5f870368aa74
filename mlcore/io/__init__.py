"""Reading inputs: DICOM, NIfTI, PNG/JPEG images; audio; text. Bad input raises InputError.

The readers load on first use, so that a process which only shows images (the web platform
renders DICOM with `read_dicom`) never imports librosa, MONAI or transformers.
"""

from importlib import import_module

_HOMES = {
    "fixed_length": "audio",
    "log_mel": "audio",
    "mfcc": "audio",
    "read_audio": "audio",
    "warm_up": "audio",
    "read_dicom": "dicom",
    "image_facts": "images",
    "image_tensor": "images",
    "read_image": "images",
    "Tokenizer": "text",
    "read_text": "text",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
