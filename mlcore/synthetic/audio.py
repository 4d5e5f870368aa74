"""Synthetic recordings whose prosody carries arousal.

`spoken_voice` says a real sentence (a committed clip, mlcore.synthetic.speech) the way the
arousal makes it sound: high arousal faster, higher and louder; low arousal slower, lower and
quieter; an intensity in between sounds in between. `synthetic_voice` is speech-like babble
with the same prosody and no words (what a recogniser should call "no speech" or not English).
A `Microphone` records either: the home one cleanly, another site's with a narrower band, less
gain, hum and hiss.
"""

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile

from mlcore.synthetic.speech import Clip

SAMPLE_RATE = 16_000
_VOWEL_FORMANTS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720))


@dataclass(frozen=True)
class Microphone:
    gain: float = 1.0
    hiss: float = 0.002
    hum: float = 0.0  # amplitude of 50 Hz mains hum
    band: tuple[float, float] | None = None  # (low, high) Hz passed; None: everything


HOME_MICROPHONE = Microphone()
OTHER_MICROPHONE = Microphone(gain=0.8, hiss=0.012, hum=0.01, band=(300.0, 3400.0))


def _arousal_level(intensity: float) -> float:
    """An intensity (about -3 to 3: negative is low arousal, near 0 ambiguous) as 0 … 1."""
    return 1.0 / (1.0 + math.exp(-1.6 * intensity))


def spoken_voice(
    clip: Clip,
    *,
    intensity: float,
    rng: np.random.Generator,
    seconds: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    microphone: Microphone = HOME_MICROPHONE,
) -> np.ndarray:
    """Mono float32 samples in [-1, 1]: `clip` spoken at the arousal `intensity`, the first
    `seconds` of it (None: all of it)."""
    level = _arousal_level(intensity)

    def between(quiet: float, lively: float) -> float:
        return (quiet + level * (lively - quiet)) * rng.uniform(0.97, 1.03)

    # Played faster, a recording is also higher: one resampling moves pace and pitch together.
    pace = between(0.95, 1.06)
    loudness = between(0.2, 0.75)
    source = clip.samples.astype(np.float64)
    if seconds is not None:
        source = source[: int(np.ceil(seconds * pace * clip.sample_rate)) + 1]
    length = max(1, int(len(source) * sample_rate / (clip.sample_rate * pace)))
    positions = np.linspace(0.0, len(source) - 1, length)
    voice = np.interp(positions, np.arange(len(source)), source)
    voice *= loudness / (np.abs(voice).max() or 1.0)
    lead = np.zeros(int(rng.uniform(0.05, 0.25) * sample_rate))  # the speaker draws breath
    return _record(np.concatenate([lead, voice]), microphone, rng, sample_rate)


def synthetic_voice(
    *,
    high_arousal: bool | None = None,
    intensity: float | None = None,
    rng: np.random.Generator,
    seconds: float = 4.0,
    sample_rate: int = SAMPLE_RATE,
    microphone: Microphone = HOME_MICROPHONE,
) -> np.ndarray:
    """Mono float32 samples in [-1, 1]. Arousal is `high_arousal`, or an `intensity` on a
    continuous scale (about -3 to 3: negative is low arousal, near 0 ambiguous)."""
    if intensity is None:
        if high_arousal is None:
            raise ValueError("give high_arousal or intensity")
        level = 1.0 if high_arousal else 0.0
    else:
        level = _arousal_level(intensity)

    def between(quiet: float, lively: float) -> float:
        # The intensity sets the prosody, up to a little of the speaker's own manner.
        return (quiet + level * (lively - quiet)) * rng.uniform(0.94, 1.06)

    base_pitch = rng.uniform(100.0, 210.0)  # the speaker
    pitch = base_pitch * between(0.92, 1.4)
    pitch_swing = between(0.035, 0.23)
    syllables_per_second = between(2.7, 5.75)
    loudness = between(0.24, 0.65)

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
    return _record(out, microphone, rng, sample_rate)


def _record(
    voice: np.ndarray, microphone: Microphone, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    out = voice * microphone.gain
    if microphone.band is not None:
        from scipy.signal import butter, sosfilt

        out = sosfilt(butter(4, microphone.band, btype="band", fs=sample_rate, output="sos"), out)
    if microphone.hum:
        out += microphone.hum * np.sin(2 * np.pi * 50.0 * np.arange(len(out)) / sample_rate)
    out += rng.normal(0.0, microphone.hiss, len(out))  # room noise
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
