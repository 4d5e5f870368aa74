"""Audio → 16 kHz mono → trimmed → fixed-length log-mel spectrogram (or MFCC), with librosa.

A fixed length (crop or pad to `seconds`) keeps batched and one-by-one inference identical.
librosa's first feature call in a process compiles numba kernels (seconds); call `warm_up()`
before a worker takes jobs.
"""

import io
from pathlib import Path

import librosa
import numpy as np
import soundfile

from mlcore.errors import InputError

SAMPLE_RATE = 16_000
HOP_LENGTH = 256
N_FFT = 1024


def read_audio(source: str | Path | bytes, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples at `sample_rate`, silence trimmed from both ends. `source` is a
    path or the file's bytes."""
    readable = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        samples, rate = soundfile.read(readable, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise InputError(f"audio could not be decoded: {error}") from error
    if samples.size == 0:
        raise InputError("audio contains no samples")
    if not np.isfinite(samples).all():
        raise InputError("audio contains invalid (NaN or infinite) samples")
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    trimmed, _ = librosa.effects.trim(mono, top_db=40)
    return (trimmed if trimmed.size else mono).astype(np.float32)


def fixed_length(
    samples: np.ndarray, *, seconds: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    target = round(seconds * sample_rate)
    if samples.size >= target:
        return samples[:target]
    return np.pad(samples, (0, target - samples.size))


def log_mel(samples: np.ndarray, *, n_mels: int = 64, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_mels, frames) log-mel power in dB, referenced to a fixed level (not the clip's peak,
    which would erase loudness, a cue of arousal)."""
    mel = librosa.feature.melspectrogram(
        y=samples, sr=sample_rate, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=n_mels
    )
    return (librosa.power_to_db(mel, ref=1.0, top_db=None).clip(min=-100.0) / 20.0).astype(
        np.float32
    )


def mfcc(samples: np.ndarray, *, n_mfcc: int = 20, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return librosa.feature.mfcc(
        y=samples, sr=sample_rate, n_mfcc=n_mfcc, n_fft=N_FFT, hop_length=HOP_LENGTH
    ).astype(np.float32)


def warm_up() -> None:
    """Compile librosa's numba kernels now rather than in the first job."""
    log_mel(np.zeros(SAMPLE_RATE, dtype=np.float32))
