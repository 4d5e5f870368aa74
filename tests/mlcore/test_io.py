"""Inputs: every loader returns finite tensors or raises mlcore's InputError — never another
exception."""

import io
import pathlib
import warnings
from datetime import date

import nibabel
import numpy as np
import pydicom
import pytest
import soundfile
from PIL import Image

from mlcore.errors import InputError
from mlcore.io import (
    fixed_length,
    image_tensor,
    log_mel,
    mfcc,
    read_audio,
    read_dicom,
    read_image,
    read_text,
)
from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes
from tests.conftest import ct_bytes, slice_bytes

CORPUS = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CORPUS.rglob("*") if p.is_file()),
    ids=lambda p: str(p.relative_to(CORPUS)),
)
def test_every_pydicom_test_file_loads_finite_or_raises_input_error(path):
    try:
        pixels = read_dicom(path)
    except InputError:
        return  # a clear refusal is the other allowed outcome; any other exception fails
    tensor = image_tensor(pixels, size=32)
    assert tensor.shape == (1, 32, 32)
    assert tensor.isfinite().all()


def _ct(**kwargs) -> pydicom.Dataset:
    data = ct_dicom_bytes(
        chest_ct_slice(lesion=True, rng=np.random.default_rng(0), size=32),
        patient_name="A^B",
        patient_id="1",
        birth_date=date(1990, 1, 1),
        sex="male",
        study_date=date(2026, 1, 1),
        uid_seed="io",
    )
    return pydicom.dcmread(io.BytesIO(data))


def _bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_ct_is_seen_through_one_fixed_window_in_hounsfield_units():
    dataset = _ct()
    hu = dataset.pixel_array.astype(float) - 1024
    pixels = read_dicom(_bytes(dataset))
    # Lung window (centre -600, width 1500): air and bone clip to the ends, lung sits inside,
    # and a value means the same HU in every file.
    assert pixels[hu <= -1350].max(initial=0.0) == 0.0
    assert pixels[hu >= 150].min(initial=1.0) == 1.0
    np.testing.assert_allclose(pixels, np.clip((hu + 1350) / 1500, 0, 1), atol=1e-6)
    dataset.WindowCenter, dataset.WindowWidth = 40, 400  # what the file suggests is ignored
    np.testing.assert_array_equal(read_dicom(_bytes(dataset)), pixels)
    soft_tissue = read_dicom(_bytes(dataset), ct_window=(40.0, 400.0))
    np.testing.assert_allclose(soft_tissue, np.clip((hu + 160) / 400, 0, 1), atol=1e-6)


def test_a_lesion_changes_the_model_input_only_where_it_is():
    """No per-image standardisation: painting a nodule into a lung moves the pixels of the
    nodule and nothing else, so the model cannot read "present" from the air."""
    size = 64
    clear = chest_ct_slice(lesion=False, rng=np.random.default_rng(3), size=size)
    y, x = np.mgrid[0:size, 0:size]
    nodule = (x - 20) ** 2 + (y - 28) ** 2 <= 4**2
    with_nodule = clear + nodule * 850.0

    def model_input(hounsfield, intensity="fixed"):
        pixels = read_dicom(ct_bytes(hounsfield, uid_seed="lesion"))
        return image_tensor(pixels, size=size, intensity=intensity)[0].numpy()

    change = np.abs(model_input(with_nodule) - model_input(clear))
    assert change[nodule].min() > 0.5
    assert change[~nodule].max() < 1e-6
    standardised = np.abs(
        model_input(with_nodule, "standardise") - model_input(clear, "standardise")
    )
    assert standardised[~nodule].min() > 0.01, "a per-image z-score moves every pixel"


def test_an_mr_is_clipped_at_robust_percentiles():
    dataset = pydicom.dcmread(CORPUS / "MR_small.dcm")
    plain = read_dicom(_bytes(dataset))
    pixels = dataset.pixel_array.copy()
    pixels[0, 0] = np.iinfo(pixels.dtype).max  # one hot pixel, far above the rest
    dataset.PixelData = pixels.tobytes()
    hot = read_dicom(_bytes(dataset))
    assert hot[0, 0] == 1.0
    # the rest is not squashed towards 0 by the outlier
    np.testing.assert_allclose(hot[1:, 1:], plain[1:, 1:], atol=0.02)


def test_monochrome1_is_inverted():
    dataset = _ct()
    normal = read_dicom(_bytes(dataset))
    dataset.PhotometricInterpretation = "MONOCHROME1"
    inverted = read_dicom(_bytes(dataset))
    np.testing.assert_allclose(inverted, 1.0 - normal, atol=1e-6)


def test_multiframe_takes_the_middle_frame_or_the_volume():
    path = CORPUS / "SC_rgb_rle_2frame.dcm"
    assert read_dicom(path).shape == (100, 100)
    assert read_dicom(path, volume=True).shape == (2, 100, 100)


def test_colour_becomes_luminance():
    pixels = read_dicom(CORPUS / "SC_rgb_rle.dcm")
    assert pixels.ndim == 2
    assert pixels.min() >= 0.0
    assert pixels.max() <= 1.0


def test_nifti_png_and_jpeg_load(tmp_path):
    volume = np.random.default_rng(1).random((16, 16, 5)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "scan.nii.gz")
    assert read_image(tmp_path / "scan.nii.gz").shape == (16, 16)
    assert read_image(tmp_path / "scan.nii.gz", volume=True).shape == (5, 16, 16)
    grey = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    for name in ("image.png", "image.jpg"):
        Image.fromarray(grey).save(tmp_path / name)
        pixels = read_image(tmp_path / name)
        assert pixels.shape == (8, 8)
        assert pixels.min() >= 0.0
        assert pixels.max() <= 1.0
    assert image_tensor(
        read_image(tmp_path / "scan.nii.gz", volume=True), size=8, spatial_dims=3
    ).shape == (
        1,
        8,
        8,
        8,
    )


def test_bad_images_raise_input_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "broken.nii").write_bytes(b"nonsense" * 10)
    (tmp_path / "note.dcm").write_text("not a dicom")
    for name in ("broken.png", "broken.nii", "note.dcm", "missing.dcm"):
        with pytest.raises(InputError):
            read_image(tmp_path / name)


def test_audio_is_resampled_to_16k_mono_and_trimmed(tmp_path):
    rate = 44_100
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    silence = np.zeros(rate // 2)
    stereo = np.stack([np.concatenate([silence, tone, silence])] * 2, axis=1).astype(np.float32)
    soundfile.write(tmp_path / "clip.wav", stereo, rate)
    samples = read_audio(tmp_path / "clip.wav")
    assert samples.ndim == 1
    assert samples.dtype == np.float32
    # 2 s recorded, 1 s of tone: trimming keeps the tone and at most a frame of silence per end.
    assert 0.95 < len(samples) / 16_000 < 1.3


def test_files_read_from_bytes_as_from_disk(tmp_path):
    """Callers that keep files encrypted hand over bytes: the same pixels and samples."""
    scan = slice_bytes(1)
    (tmp_path / "scan.dcm").write_bytes(scan)
    assert np.array_equal(read_image(scan), read_image(tmp_path / "scan.dcm"))
    tone = (0.3 * np.sin(np.arange(16_000) / 5)).astype(np.float32)
    soundfile.write(tmp_path / "clip.wav", tone, 16_000)
    clip = (tmp_path / "clip.wav").read_bytes()
    assert np.array_equal(read_audio(clip), read_audio(tmp_path / "clip.wav"))
    with pytest.raises(InputError):
        read_audio(clip[:30])
    with pytest.raises(InputError):
        read_image(b"not a dicom at all")


def test_audio_features_have_fixed_shapes():
    samples = fixed_length(
        np.random.default_rng(0).normal(0, 0.1, 10_000).astype(np.float32), seconds=2.0
    )
    assert samples.shape == (32_000,)
    assert log_mel(samples, n_mels=40).shape == (40, 126)
    assert mfcc(samples).shape == (20, 126)
    assert np.isfinite(log_mel(np.zeros(32_000, dtype=np.float32))).all(), "silence stays finite"


def test_bad_audio_raises_input_error(tmp_path):
    (tmp_path / "cut.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name in ("cut.wav", "empty.wav", "missing.wav"):
        with pytest.raises(InputError):
            read_audio(tmp_path / name)


def test_text_must_be_utf8_and_not_empty(tmp_path):
    (tmp_path / "latin.txt").write_bytes("fièvre".encode("latin-1"))
    (tmp_path / "blank.txt").write_text("  \n")
    (tmp_path / "ok.txt").write_text("Cough for two weeks.")
    assert read_text(tmp_path / "ok.txt") == "Cough for two weeks."
    for name in ("latin.txt", "blank.txt", "missing.txt"):
        with pytest.raises(InputError):
            read_text(tmp_path / name)


def test_warnings_from_damaged_files_do_not_escape():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError):
            read_dicom(CORPUS / "badVR.dcm")
