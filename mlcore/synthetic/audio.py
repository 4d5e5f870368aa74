"""Synthetic speech-like recordings whose prosody carries arousal.

A voiced source (harmonics of a moving pitch) shaped by vowel formants, cut into syllables and
words. High arousal speaks faster, louder and higher, with livelier pitch; low arousal is slow,
quiet and flat. No words are intelligible: what matters to the models is prosody.
"""

import io

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
_VOWEL_FORMANTS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720))


def synthetic_voice(
    *,
    high_arousal: bool,
    rng: np.random.Generator,
    seconds: float = 4.0,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Mono float32 samples in [-1, 1]."""
    base_pitch = rng.uniform(100.0, 210.0)  # the speaker
    pitch = base_pitch * (rng.uniform(1.3, 1.5) if high_arousal else rng.uniform(0.85, 1.0))
    pitch_swing = rng.uniform(0.18, 0.28) if high_arousal else rng.uniform(0.02, 0.05)
    syllables_per_second = rng.uniform(5.0, 6.5) if high_arousal else rng.uniform(2.2, 3.2)
    loudness = rng.uniform(0.55, 0.75) if high_arousal else rng.uniform(0.18, 0.3)

    total = int(seconds * sample_rate)
    out = np.zeros(total, dtype=np.float64)
    position = int(rng.uniform(0.1, 0.3) * sample_rate)
    while position < total:
        syllables_in_word = int(rng.integers(1, 4))
        for _ in range(syllables_in_word):
            length = int(sample_rate / syllables_per_second * rng.uniform(0.75, 1.25))
            if position + length > total:
                break
            out[position : position + length] += _syllable(
                length, pitch, pitch_swing, loudness, rng, sample_rate
            )
            position += length
        position += int(rng.uniform(0.08, 0.35) * sample_rate)  # pause between words
    out += rng.normal(0.0, 0.004, total)  # room noise
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _syllable(
    length: int,
    pitch: float,
    swing: float,
    loudness: float,
    rng: np.random.Generator,
    sample_rate: int,
) -> np.ndarray:
    t = np.arange(length) / sample_rate
    contour = pitch * (
        1 + swing * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t + rng.uniform(0, np.pi))
    )
    phase = 2 * np.pi * np.cumsum(contour) / sample_rate
    first, second = _VOWEL_FORMANTS[int(rng.integers(len(_VOWEL_FORMANTS)))]
    wave = np.zeros(length)
    for harmonic in range(1, int(4000 / pitch)):
        frequency = harmonic * pitch
        gain = np.exp(-(((frequency - first) / 120) ** 2)) + 0.6 * np.exp(
            -(((frequency - second) / 160) ** 2)
        )
        wave += (gain + 0.05 / harmonic) * np.sin(harmonic * phase)
    envelope = np.hanning(length) ** 0.7
    peak = np.abs(wave).max() or 1.0
    return loudness * rng.uniform(0.8, 1.0) * envelope * wave / peak


def wav_bytes(samples: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
