"""The upload validator: each bad file gets its own clear message; valid files pass, with their
technical metadata; nothing is stored for a rejected upload."""

import hashlib
import io
import pathlib
import re
import struct
import warnings

import numpy as np
import pydicom
import pytest
import soundfile

from tessera.records.models import MediaKind
from tessera.records.uploads import UploadRejected, validate_upload
from tests.conftest import upload

PNG_HEADER = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 200


def rejection(kind: str, content: bytes, **kwargs) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        validate_upload(kind=kind, file=upload(content), **kwargs)
    return caught.value


# --- the acceptance list ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MediaKind))
def test_an_empty_file_is_rejected(kind):
    assert rejection(kind, b"").message == "file is empty"


def test_a_png_renamed_dcm_is_not_dicom():
    rejected = rejection(MediaKind.DICOM, PNG_HEADER, filename="scan.dcm")
    assert rejected.code == "not_dicom"
    assert rejected.message == "file is not a DICOM file (it looks like a PNG image)"
    assert "'DICM'" in rejected.technical_detail


def test_a_dicom_truncated_in_its_pixel_data_is_rejected(dicom_bytes):
    rejected = rejection(MediaKind.DICOM, dicom_bytes[:-1000])
    assert rejected.code == "dicom_truncated"
    expected = 64 * 64 * 2
    assert rejected.message == (
        f"the image data in this file is cut short: {expected - 1000} of {expected} bytes are "
        "there; upload the whole file"
    )


def test_a_wav_cut_mid_header_is_rejected(wav_audio):
    rejected = rejection(MediaKind.SPEECH, wav_audio[:30])
    assert rejected.code == "audio_truncated"
    assert "WAV header is truncated" in rejected.message


def test_a_wav_cut_in_its_audio_says_where(wav_audio):
    # 16 kHz, 16-bit mono: 32,000 bytes a second; keep the 44-byte header and 0.4 s.
    rejected = rejection(MediaKind.SPEECH, wav_audio[: 44 + 12_800])
    assert rejected.message == "audio is truncated after 0.4 s (the WAV header promises 2.0 s)"


def test_text_that_is_not_utf8_is_rejected():
    rejected = rejection(MediaKind.CLINICAL_NOTE, "Patient reports fièvre.".encode("latin-1"))
    assert rejected.code == "text_encoding"
    assert rejected.message.startswith("text is not UTF-8: byte 0xE8 at position 18 is invalid")


def test_a_file_over_the_size_limit_is_rejected_before_it_is_read(settings, dicom_bytes):
    settings.TESSERA_MAX_UPLOAD_BYTES = 1000

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("an oversized upload must be refused before it is read")

    file = Unreadable(dicom_bytes)
    with pytest.raises(UploadRejected) as caught:
        validate_upload(kind=MediaKind.DICOM, file=file)
    assert caught.value.code == "too_large"
    assert "over the 1000\xa0bytes limit" in caught.value.message


def test_a_two_gigabyte_upload_is_refused_from_its_declared_size():
    class HugeUpload(io.BytesIO):
        size = 2 * 1024**3

    with pytest.raises(UploadRejected) as caught:
        validate_upload(kind=MediaKind.SPEECH, file=HugeUpload(b"RIFF"))
    assert (
        caught.value.message
        == "file is 2.0\xa0GB, over the 256.0\xa0MB limit for a speech recording"
    )


# --- more bad input -----------------------------------------------------------------------


def test_a_wrong_declared_content_type_is_rejected(wav_audio):
    rejected = rejection(MediaKind.SPEECH, wav_audio, declared_content_type="image/png")
    assert rejected.code == "content_type"
    assert rejected.message == (
        "file was sent as image/png, but a speech recording must be audio (WAV, FLAC, OGG or MP3)"
    )


def test_generic_and_matching_content_types_are_accepted(wav_audio, dicom_bytes):
    validate_upload(
        kind=MediaKind.SPEECH, file=upload(wav_audio), declared_content_type="audio/x-wav"
    )
    validate_upload(
        kind=MediaKind.DICOM,
        file=upload(dicom_bytes),
        declared_content_type="application/octet-stream",
    )
    validate_upload(
        kind=MediaKind.LEARNER_TEXT,
        file=upload(b"ok"),
        declared_content_type="text/plain; charset=utf-8",
    )


def test_a_dicom_without_an_image_names_what_it_is():
    corpus = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
    rejected = rejection(MediaKind.DICOM, (corpus / "rtplan.dcm").read_bytes())
    assert rejected.code == "dicom_no_image"
    assert rejected.message == (
        "the DICOM file holds no image (it holds: RT Plan); Tessera analyses images such as CT, "
        "MR or X-ray"
    )
    assert rejected.technical_detail.startswith("SOP class RT Plan Storage (1.2.840.10008.")


def test_a_png_uploaded_as_speech_says_what_it_is():
    assert rejection(MediaKind.SPEECH, PNG_HEADER).message == (
        "file is not audio in a supported format (WAV, FLAC, OGG or MP3) "
        "(it looks like a PNG image)"
    )


def test_a_pdf_uploaded_as_a_note_is_not_text():
    assert rejection(MediaKind.CLINICAL_NOTE, b"%PDF-1.7\n...").message == (
        "file is not plain text: it looks like a PDF document"
    )


def test_whitespace_only_text_is_empty():
    rejected = rejection(MediaKind.LEARNER_TEXT, b"  \n\t \n")
    assert rejected.message == "learner text is empty: it contains only whitespace"


def test_utf16_text_gets_advice():
    assert "UTF-16" in rejection(MediaKind.CLINICAL_NOTE, "hello".encode("utf-16")).message


def test_text_over_its_own_limit(settings):
    settings.TESSERA_MAX_TEXT_BYTES = 10
    assert rejection(MediaKind.CLINICAL_NOTE, b"a" * 11).code == "too_large"


def _audio(format: str, subtype: str, seconds: float = 1.0) -> bytes:
    samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * seconds)) / 16000)).astype(
        "float32"
    )
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, format=format, subtype=subtype)
    return buffer.getvalue()


def test_a_truncated_flac_is_rejected():
    flac = _audio("FLAC", "PCM_16", seconds=2.0)
    rejected = rejection(MediaKind.LEARNER_AUDIO, flac[: len(flac) // 2])
    assert rejected.code in {"audio_damaged", "audio_truncated"}
    assert rejected.message.startswith(
        ("the FLAC audio in this file is damaged and cannot be played", "audio is truncated")
    )


def test_a_truncated_mp3_is_rejected():
    mp3 = _audio("MP3", "MPEG_LAYER_III", seconds=2.0)
    rejected = rejection(MediaKind.SPEECH, mp3[: len(mp3) // 3])
    assert rejected.code == "audio_truncated"
    assert rejected.message.startswith("audio is truncated after ")


def test_audio_longer_than_the_limit(settings):
    settings.TESSERA_MAX_AUDIO_SECONDS = 0.5
    assert rejection(MediaKind.SPEECH, _audio("WAV", "PCM_16")).code == "audio_too_long"


def test_wav_with_nan_samples_is_rejected():
    samples = np.zeros(1600, dtype="float32")
    samples[100] = np.nan
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, format="WAV", subtype="FLOAT")
    assert rejection(MediaKind.SPEECH, buffer.getvalue()).message == (
        "audio contains invalid (NaN or infinite) samples"
    )


def test_wav_data_before_format_is_damaged(wav_audio):
    fmt_chunk, data_chunk = wav_audio[12:36], wav_audio[36:]
    reordered = wav_audio[:12] + data_chunk + fmt_chunk
    assert rejection(MediaKind.SPEECH, reordered).code == "audio_damaged"


# --- valid files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("format", "subtype", "content_type"),
    [
        ("WAV", "PCM_16", "audio/wav"),
        ("FLAC", "PCM_16", "audio/flac"),
        ("OGG", "VORBIS", "audio/ogg"),
        ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    ],
)
def test_supported_audio_formats_are_accepted_with_metadata(format, subtype, content_type):
    accepted = validate_upload(
        kind=MediaKind.SPEECH, file=upload(_audio(format, subtype, seconds=1.5))
    )
    assert accepted.content_type == content_type
    assert accepted.metadata["format"] == format
    assert accepted.metadata["sample_rate"] == 16000
    assert accepted.metadata["duration_seconds"] == pytest.approx(1.5, abs=0.06)


def test_a_valid_dicom_is_accepted_with_its_technical_metadata_only(dicom_bytes):
    accepted = validate_upload(kind=MediaKind.DICOM, file=upload(dicom_bytes), filename="ct.dcm")
    assert accepted.content_type == "application/dicom"
    assert accepted.size_bytes == len(dicom_bytes)
    assert accepted.metadata["modality"] == "CT"
    assert accepted.metadata["rows"] == accepted.metadata["columns"] == 64
    assert accepted.metadata["rescale_intercept"] == -1024.0
    assert accepted.metadata["pixel_spacing_mm"] == [0.7, 0.7]
    assert "Test^Patient" not in repr(accepted.metadata)
    assert "T-1" not in repr(accepted.metadata)


def test_text_is_accepted_with_counts_and_its_hash():
    content = "Fièvre légère.\nToux.".encode()
    accepted = validate_upload(kind=MediaKind.CLINICAL_NOTE, file=upload(content))
    assert accepted.metadata == {"characters": 20, "words": 3, "lines": 2}
    assert accepted.sha256 == hashlib.sha256(content).hexdigest()
    assert accepted.content_type == "text/plain; charset=utf-8"


# --- pydicom's own test corpus ------------------------------------------------------------

PYDICOM_CORPUS = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
COMPRESSED = [
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS
    "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPGExtended.dcm",  # JPEG extended
    "MR_small_RLE.dcm",  # RLE
    "image_dfl.dcm",  # deflated explicit VR
]


def _decodes(path: pathlib.Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pixels = pydicom.dcmread(path).pixel_array
        except Exception:
            return False
    return pixels.dtype.kind != "f" or bool(np.isfinite(pixels).all())


def _corpus():
    return sorted(path for path in PYDICOM_CORPUS.iterdir() if path.is_file())


@pytest.mark.parametrize("path", _corpus(), ids=lambda path: path.name)
def test_each_pydicom_test_file_is_accepted_exactly_when_it_decodes(path):
    content = path.read_bytes()
    if _decodes(path) and content[128:132] == b"DICM":
        accepted = validate_upload(kind=MediaKind.DICOM, file=upload(content), filename=path.name)
        assert accepted.metadata["rows"] > 0
    else:
        with pytest.raises(UploadRejected) as caught:
            validate_upload(kind=MediaKind.DICOM, file=upload(content), filename=path.name)
        assert caught.value.message
        assert caught.value.code in {
            "not_dicom",
            "dicom_no_image",
            "dicom_damaged",
            "dicom_truncated",
        }


def test_the_valid_compressed_pydicom_files_are_accepted():
    for name in COMPRESSED:
        accepted = validate_upload(
            kind=MediaKind.DICOM, file=upload((PYDICOM_CORPUS / name).read_bytes())
        )
        assert accepted.metadata["rows"] > 0, name


def test_the_corpus_count_matches_what_the_decoders_can_read():
    accepted = 0
    for path in _corpus():
        try:
            validate_upload(kind=MediaKind.DICOM, file=upload(path.read_bytes()))
            accepted += 1
        except UploadRejected:
            pass
    # pydicom 3 with the pylibjpeg decoders reads 58 of its 85 files; the rest are not images,
    # not DICOM Part 10 files, or broken on purpose.
    assert accepted == 58


def test_pixel_truncation_in_the_corpus_gets_the_truncation_message():
    rejected = rejection(MediaKind.DICOM, (PYDICOM_CORPUS / "MR_truncated.dcm").read_bytes())
    assert rejected.message == (
        "the image data in this file is cut short: 8130 of 8192 bytes are there; upload the "
        "whole file"
    )


def test_struct_packing_helper_matches_header_layout(wav_audio):
    # The WAV walk reads the fmt chunk at offset 20: keep the fixture honest about that layout.
    assert wav_audio[12:16] == b"fmt "
    assert struct.unpack("<I", wav_audio[24:28])[0] == 16000


# Each message leads with what is wrong in plain words; what the decoder said goes apart.
PLAIN_WORDS = {
    "badVR.dcm": (
        "dicom_damaged",
        "the image data in this file is damaged and cannot be read",
        "invalid literal for int() with base 10: '1A'",
    ),
    "JPEG-lossy.dcm": (
        "dicom_damaged",
        "the image data in this file is damaged and cannot be read",
        "libjpeg error code '-1038'",
    ),
    "meta_missing_tsyntax.dcm": (
        "dicom_damaged",
        "the DICOM file does not say how its image is encoded, so the image cannot be read",
        "'Transfer Syntax UID'",
    ),
    "nested_priv_SQ.dcm": (
        "dicom_damaged",
        "the image in this DICOM file cannot be read: facts the image needs (such as its bit "
        "depth) are missing from the file",
        "'Bits Allocated'",
    ),
}


@pytest.mark.parametrize("name", sorted(PLAIN_WORDS))
def test_decoder_internals_stay_out_of_the_message(name):
    code, message, technical = PLAIN_WORDS[name]
    rejected = rejection(MediaKind.DICOM, (PYDICOM_CORPUS / name).read_bytes())
    assert (rejected.code, rejected.message) == (code, message)
    assert technical in rejected.technical_detail
    assert not rejected.technical_detail.endswith(("…", " …")), "whole, not cut mid-word"


def test_an_image_object_without_its_pixels_does_not_contradict_itself(dicom_bytes):
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes))
    del dataset.PixelData
    stripped = io.BytesIO()
    dataset.save_as(stripped)
    rejected = rejection(MediaKind.DICOM, stripped.getvalue())
    assert rejected.code == "dicom_no_image"
    assert rejected.message == (
        "the file says it is an image (CT Image), but the image data is missing from it; "
        "upload the complete file"
    )


def _refused_corpus():
    return [
        path for path in _corpus() if not (_decodes(path) and path.read_bytes()[128:132] == b"DICM")
    ]


@pytest.mark.parametrize("path", _refused_corpus(), ids=lambda path: path.name)
def test_no_refusal_leads_with_a_library_or_is_cut_off(path):
    with pytest.raises(UploadRejected) as caught:
        validate_upload(kind=MediaKind.DICOM, file=upload(path.read_bytes()), filename=path.name)
    message = caught.value.message
    assert not re.search(r"pylibjpeg|pillow|libjpeg|invalid literal|Error|\(\d{4},", message)
    assert message[-1].isalnum() or message[-1] == ")", message
