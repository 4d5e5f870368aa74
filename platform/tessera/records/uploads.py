"""Upload validation: the one gate every entry point (admin, web forms, API) goes through.

A file is checked for size, sniffed by its magic bytes and really decoded (pydicom with the
pylibjpeg decoders for DICOM, libsndfile for audio, strict UTF-8 for text) *before* anything is
written. Every failure raises `UploadRejected` with a message a person understands.
"""

import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pydicom
import soundfile
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from pydicom.errors import InvalidDicomError

from tessera.records.models import MediaKind

TEXT_KINDS = frozenset({MediaKind.CLINICAL_NOTE, MediaKind.LEARNER_TEXT})
AUDIO_KINDS = frozenset({MediaKind.SPEECH, MediaKind.LEARNER_AUDIO})

_GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_DICOM_CONTENT_TYPES = frozenset({"application/dicom"})
_AUDIO_CONTENT_TYPES = frozenset(
    {
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/flac",
        "audio/x-flac",
        "audio/ogg",
        "application/ogg",
        "audio/vorbis",
        "audio/mpeg",
        "audio/mp3",
    }
)
_TEXT_CONTENT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})

# Magic bytes of what people upload by mistake, so a refusal can say what the file really is.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive (or a Word/Excel document)"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"OggS", "OGG audio"),
    (0, b"ID3", "MP3 audio"),
    (128, b"DICM", "a DICOM file"),
)

_AUDIO_FORMATS = {"FLAC audio": "FLAC", "OGG audio": "OGG", "MP3 audio": "MP3"}
_STORED_AUDIO_TYPE = {
    "WAV": "audio/wav",
    "FLAC": "audio/flac",
    "OGG": "audio/ogg",
    "MP3": "audio/mpeg",
}
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
# The content type each accepted file is stored (and downloaded) with.
STORED_CONTENT_TYPES = ("application/dicom", *_STORED_AUDIO_TYPE.values(), TEXT_CONTENT_TYPE)


class UploadRejected(Exception):
    """An upload that cannot be accepted. `message` is written for the person who sent it, in
    plain words; `technical_detail` is what a decoder said, for the engineer who wires a system
    to Tessera (shown apart, folded away on a page)."""

    def __init__(self, message: str, *, code: str, technical_detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.technical_detail = technical_detail


@dataclass(frozen=True)
class ValidatedUpload:
    kind: str
    sha256: str
    size_bytes: int
    content_type: str
    original_filename: str
    metadata: dict = field(default_factory=dict)


def validate_upload(
    *, kind: str, file: BinaryIO, filename: str = "", declared_content_type: str = ""
) -> ValidatedUpload:
    """Check that `file` is an acceptable upload of `kind`; raise UploadRejected if not."""
    kind = MediaKind(kind)
    size = _size_of(file)
    _check_size(kind, size)
    _check_declared_content_type(kind, declared_content_type)
    file.seek(0)
    head = file.read(512)
    if kind == MediaKind.DICOM:
        content_type, metadata = _validate_dicom(file, head)
    elif kind in AUDIO_KINDS:
        content_type, metadata = _validate_audio(file, head, size)
    else:
        content_type, metadata = _validate_text(kind, file, head)
    file.seek(0)
    digest = hashlib.file_digest(file, "sha256").hexdigest()
    file.seek(0)
    return ValidatedUpload(
        kind=kind,
        sha256=digest,
        size_bytes=size,
        content_type=content_type,
        original_filename=filename[-255:],
        metadata=metadata,
    )


# --- size and declared type -------------------------------------------------------------------


def _size_of(file: BinaryIO) -> int:
    size = getattr(file, "size", None)
    if size is None:
        size = file.seek(0, io.SEEK_END)
    return int(size)


def _check_size(kind: MediaKind, size: int) -> None:
    if size == 0:
        raise UploadRejected("file is empty", code="empty")
    limit = settings.TESSERA_MAX_UPLOAD_BYTES
    if kind in TEXT_KINDS:
        limit = min(limit, settings.TESSERA_MAX_TEXT_BYTES)
    if size > limit:
        raise UploadRejected(
            f"file is {filesizeformat(size)}, over the {filesizeformat(limit)} limit "
            f"for a {MediaKind(kind).label.lower()}",
            code="too_large",
        )


def _check_declared_content_type(kind: MediaKind, declared: str) -> None:
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type in _GENERIC_CONTENT_TYPES:
        return
    if kind == MediaKind.DICOM:
        accepted, expected = _DICOM_CONTENT_TYPES, "application/dicom"
    elif kind in AUDIO_KINDS:
        accepted, expected = _AUDIO_CONTENT_TYPES, "audio (WAV, FLAC, OGG or MP3)"
    else:
        accepted, expected = _TEXT_CONTENT_TYPES, "plain text (text/plain)"
    if media_type not in accepted:
        raise UploadRejected(
            f"file was sent as {media_type}, but a {kind.label.lower()} must be {expected}",
            code="content_type",
        )


def _looks_like(head: bytes) -> str | None:
    for offset, magic, description in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return description
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV audio"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3 audio"
    return None


def _it_looks_like(head: bytes) -> str:
    description = _looks_like(head)
    return f" (it looks like {description})" if description else ""


# --- DICOM ---------------------------------------------------------------------------------


def _validate_dicom(file: BinaryIO, head: bytes) -> tuple[str, dict]:
    if head[128:132] != b"DICM":
        raise UploadRejected(
            "file is not a DICOM file" + _it_looks_like(head),
            code="not_dicom",
            technical_detail="no 'DICM' prefix after the 128-byte preamble (DICOM PS3.10)",
        )
    file.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = pydicom.dcmread(file)
        except InvalidDicomError as error:
            raise UploadRejected(
                "file is not a valid DICOM file",
                code="not_dicom",
                technical_detail=_technical(error),
            ) from error
        except Exception as error:  # pydicom raises many types on damaged headers
            raise UploadRejected(
                "the DICOM file is damaged: its header cannot be read",
                code="dicom_damaged",
                technical_detail=_technical(error),
            ) from error
        if not any(
            key in dataset for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
        ):
            raise _no_image(dataset)
        try:
            pixels = dataset.pixel_array
        except Exception as error:  # decoder plugins raise many types; each becomes a refusal
            raise _pixel_error(dataset, error) from error
    if pixels.size == 0:
        raise UploadRejected("DICOM image is empty: it has no pixels", code="dicom_damaged")
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise UploadRejected(
            "DICOM image contains invalid (NaN or infinite) pixels", code="dicom_damaged"
        )
    return "application/dicom", _dicom_metadata(dataset, pixels)


_TRUNCATED_PIXELS = re.compile(r"less than expected \((\d+) vs (\d+) bytes\)")


def _pixel_error(dataset: pydicom.Dataset, error: Exception) -> UploadRejected:
    technical = f"{_transfer_syntax_name(dataset)}: {_technical(error)}"
    truncated = _TRUNCATED_PIXELS.search(str(error))
    if truncated:
        present, expected = truncated.groups()
        return UploadRejected(
            f"the image data in this file is cut short: {present} of {expected} bytes are "
            "there; upload the whole file",
            code="dicom_truncated",
            technical_detail=technical,
        )
    if getattr(dataset.file_meta, "TransferSyntaxUID", None) is None:
        return UploadRejected(
            "the DICOM file does not say how its image is encoded, so the image cannot be read",
            code="dicom_damaged",
            technical_detail=technical,
        )
    if isinstance(error, AttributeError) and "Missing required element" in str(error):
        return UploadRejected(
            "the image in this DICOM file cannot be read: facts the image needs (such as its "
            "bit depth) are missing from the file",
            code="dicom_damaged",
            technical_detail=technical,
        )
    return UploadRejected(
        "the image data in this file is damaged and cannot be read",
        code="dicom_damaged",
        technical_detail=technical,
    )


def _technical(error: Exception, limit: int = 1000) -> str:
    """What the library said, on one line, whole up to `limit` characters, else cut between
    words with an ellipsis."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _no_image(dataset: pydicom.Dataset) -> UploadRejected:
    uid = dataset.get("SOPClassUID")
    if uid is None or uid.name == str(uid):  # none, or none that DICOM defines (cut short?)
        return UploadRejected(
            "the DICOM file holds no image: it may be cut short, or not be an image at all; "
            "Tessera analyses images such as CT, MR or X-ray",
            code="dicom_no_image",
            technical_detail=f"no Pixel Data (7FE0,0010); SOP Class UID (0008,0016): {uid}",
        )
    if "Image Storage" in uid.name:
        return UploadRejected(
            f"the file says it is an image ({uid.name.removesuffix(' Storage')}), but the "
            "image data is missing from it; upload the complete file",
            code="dicom_no_image",
            technical_detail=f"SOP class {uid.name} ({uid}) without Pixel Data (7FE0,0010)",
        )
    return UploadRejected(
        f"the DICOM file holds no image (it holds: {uid.name.removesuffix(' Storage')}); "
        "Tessera analyses images such as CT, MR or X-ray",
        code="dicom_no_image",
        technical_detail=f"SOP class {uid.name} ({uid}) without Pixel Data (7FE0,0010)",
    )


def _transfer_syntax_name(dataset: pydicom.Dataset) -> str:
    uid = getattr(dataset.file_meta, "TransferSyntaxUID", None)
    return uid.name if uid is not None else "no transfer syntax"


def _dicom_metadata(dataset: pydicom.Dataset, pixels: np.ndarray) -> dict:
    """Technical facts about the image; never identifying data."""

    def number(keyword: str) -> float | None:
        value = dataset.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, pydicom.multival.MultiValue):
            value = value[0]
        return float(value)

    spacing = dataset.get("PixelSpacing")
    return {
        "modality": str(dataset.get("Modality", "")),
        "sop_class": dataset.SOPClassUID.name if "SOPClassUID" in dataset else "",
        "transfer_syntax": _transfer_syntax_name(dataset),
        "rows": int(dataset.get("Rows", pixels.shape[0])),
        "columns": int(dataset.get("Columns", pixels.shape[1])),
        "frames": int(dataset.get("NumberOfFrames", 1) or 1),
        "samples_per_pixel": int(dataset.get("SamplesPerPixel", 1)),
        "photometric_interpretation": str(dataset.get("PhotometricInterpretation", "")),
        "bits_allocated": int(dataset.get("BitsAllocated", pixels.dtype.itemsize * 8)),
        "pixel_spacing_mm": [float(v) for v in spacing] if spacing else None,
        "rescale_slope": number("RescaleSlope"),
        "rescale_intercept": number("RescaleIntercept"),
        # stored pixel values, before rescaling: a change of scanner or protocol moves it
        "mean_intensity": round(float(np.mean(pixels)), 3),
    }


# --- audio ---------------------------------------------------------------------------------


def _validate_audio(file: BinaryIO, head: bytes, size: int) -> tuple[str, dict]:
    detected = _looks_like(head)
    if detected == "WAV audio":
        audio_format = "WAV"
        _check_wav_structure(file, size)
    elif detected in _AUDIO_FORMATS:
        audio_format = _AUDIO_FORMATS[detected]
    else:
        raise UploadRejected(
            "file is not audio in a supported format (WAV, FLAC, OGG or MP3)"
            + _it_looks_like(head),
            code="not_audio",
        )
    file.seek(0)
    try:
        with soundfile.SoundFile(file) as sound:
            sample_rate, channels, subtype = sound.samplerate, sound.channels, sound.subtype
            promised_frames = sound.frames
            frames = 0
            # Not SoundFile.blocks(): it pads to the declared length and would hide truncation.
            while len(block := sound.read(65536, dtype="float32")):
                if not np.isfinite(block).all():
                    raise UploadRejected(
                        "audio contains invalid (NaN or infinite) samples", code="audio_damaged"
                    )
                frames += len(block)
    except soundfile.LibsndfileError as error:
        raise UploadRejected(
            f"the {audio_format} audio in this file is damaged and cannot be played",
            code="audio_damaged",
            technical_detail=_libsndfile_reason(error),
        ) from error
    if frames == 0:
        raise UploadRejected("audio contains no samples", code="audio_empty")
    if promised_frames > 0 and frames < 0.98 * promised_frames:
        raise UploadRejected(
            f"audio is truncated after {frames / sample_rate:.1f} s "
            f"(the file promises {promised_frames / sample_rate:.1f} s)",
            code="audio_truncated",
        )
    duration = frames / sample_rate
    limit = settings.TESSERA_MAX_AUDIO_SECONDS
    if duration > limit:
        raise UploadRejected(
            f"audio is {duration / 60:.1f} min long, over the {limit / 60:.0f} min limit",
            code="audio_too_long",
        )
    metadata = {
        "format": audio_format,
        "encoding": subtype,
        "sample_rate": sample_rate,
        "channels": channels,
        "frames": frames,
        "duration_seconds": round(duration, 3),
    }
    return _STORED_AUDIO_TYPE[audio_format], metadata


def _libsndfile_reason(error: soundfile.LibsndfileError) -> str:
    reason = error.error_string or str(error)
    return reason.rstrip(".").lower()


def _check_wav_structure(file: BinaryIO, size: int) -> None:
    """Walk the RIFF chunks: libsndfile quietly reads a cut WAV as a shorter one, so compare
    the data chunk's declared length with what is really there."""
    file.seek(12)
    position = 12
    block_align = sample_rate = None
    while True:
        header = file.read(8)
        if len(header) < 8:
            raise UploadRejected(
                "WAV header is truncated: the file ends before its audio data begins",
                code="audio_truncated",
            )
        chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:])[0]
        body_start = position + 8
        if chunk_id == b"fmt ":
            body = file.read(16)
            if len(body) < 16:
                raise UploadRejected(
                    "WAV header is truncated inside its format description",
                    code="audio_truncated",
                )
            _, _, sample_rate, _, block_align = struct.unpack("<HHIIH", body[:14])
        elif chunk_id == b"data":
            if not block_align or not sample_rate:
                raise UploadRejected(
                    "WAV file is damaged: its audio data comes before its format description",
                    code="audio_damaged",
                )
            present = size - body_start
            # 0 and 0xFFFFFFFF mark a stream whose length was unknown when the header was written.
            if chunk_size not in (0, 0xFFFFFFFF) and present < chunk_size:
                per_second = block_align * sample_rate
                raise UploadRejected(
                    f"audio is truncated after {present / per_second:.1f} s "
                    f"(the WAV header promises {chunk_size / per_second:.1f} s)",
                    code="audio_truncated",
                )
            return
        position = body_start + chunk_size + (chunk_size & 1)
        file.seek(position)


# --- text ----------------------------------------------------------------------------------


def _validate_text(kind: MediaKind, file: BinaryIO, head: bytes) -> tuple[str, dict]:
    label = kind.label.lower()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UploadRejected(
            f"{label} is UTF-16 text; save it as UTF-8 and upload it again", code="text_encoding"
        )
    detected = _looks_like(head)
    if detected:
        raise UploadRejected(f"file is not plain text: it looks like {detected}", code="not_text")
    file.seek(0)
    raw = file.read()
    if b"\x00" in raw:
        raise UploadRejected(
            "file is not plain text: it contains binary data (NUL bytes)", code="not_text"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UploadRejected(
            f"text is not UTF-8: byte 0x{raw[error.start]:02X} "
            f"at position {error.start} is invalid "
            "(was it saved as Latin-1 or Windows-1252? Save it as UTF-8 and upload it again)",
            code="text_encoding",
        ) from error
    if not text.strip():
        raise UploadRejected(f"{label} is empty: it contains only whitespace", code="text_empty")
    metadata = {
        "characters": len(text),
        "words": len(text.split()),
        "lines": text.count("\n") + (not text.endswith("\n")),
    }
    return TEXT_CONTENT_TYPE, metadata
