"""Cases unlike any training data, to measure how often a model abstains on them: real DICOM
images from pydicom's test files (CT, MR, ultrasound, secondary captures…), notes in other
languages, English texts about neither health nor learning, and noise or silence as speech.

Each kind comes alone and, given in-distribution cases, in place of that modality in one of
them: a French note beside the patient's own image and voice should still give a person pause.
The texts are in `resources/unlike/`; the sounds are made here with a fixed seed.
"""

import io
import logging
import warnings
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcore.data import Case

RESOURCES = Path(__file__).parent / "resources" / "unlike"
SAMPLE_RATE = 16_000


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom logs a warning or an error for each oddity of its own test files, odd on
    purpose: reading them as probes is no news to anyone."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class Probe:
    kind: str  # dicom, other_language, unrelated_text, noise, silence
    alone: bool  # the probe is the case's only input
    case: Case


def _lines(name: str) -> list[str]:
    lines = (RESOURCES / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def pydicom_images() -> list[Path]:
    """pydicom's bundled test files that hold an image: those in its wheel (its own lookup
    would try to download the rest)."""
    import pydicom

    found = []
    for name in sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm")):
        try:
            with quiet_pydicom():
                header = pydicom.dcmread(name, stop_before_pixels=True)
        except Exception:  # several test files are damaged on purpose
            continue
        if "Rows" in header and "SOPClassUID" in header:
            found.append(Path(name))
    return found


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def sounds(seconds: float = 3.0, seed: int = 0) -> dict[str, list[bytes]]:
    """Noise (white, brown, a mains hum with hiss) and silence (digital and near), as WAV."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    time = np.arange(n) / SAMPLE_RATE
    brown = np.cumsum(rng.normal(0, 1, n))
    brown = 0.3 * (brown - brown.mean()) / (np.abs(brown).max() + 1e-9)
    return {
        "noise": [
            _wav(rng.normal(0, 0.3, n)),
            _wav(brown),
            _wav(0.3 * np.sin(2 * np.pi * 50 * time) + rng.normal(0, 0.05, n)),
        ],
        "silence": [_wav(np.zeros(n)), _wav(rng.normal(0, 1e-4, n))],
    }


def probes(modalities: list[str], in_distribution: list[Case] = ()) -> list[Probe]:
    """Every probe for a model of `modalities`; with `in_distribution` cases, each probe also
    in place of its modality in one of them (taken in turn)."""
    alone: list[tuple[str, str, object]] = []  # kind, modality, value
    if "image" in modalities:
        alone += [("dicom", "image", str(path)) for path in pydicom_images()]
    if "text" in modalities:
        alone += [("other_language", "text", line) for line in _lines("other_languages.txt")]
        alone += [("unrelated_text", "text", line) for line in _lines("unrelated.txt")]
    if "audio" in modalities:
        for kind, recordings in sounds().items():
            alone += [(kind, "audio", recording) for recording in recordings]
    found = [
        Probe(kind, True, Case(id=f"{kind}-{number}", **{modality: value}))
        for number, (kind, modality, value) in enumerate(alone)
    ]
    for number, (kind, modality, value) in enumerate(alone):
        if not in_distribution:
            break
        base = in_distribution[number % len(in_distribution)]
        if len([m for m in modalities if getattr(base, m)]) < 2:
            continue
        mixed = Case(
            id=f"{kind}-in-{base.id}",
            image=base.image,
            text=base.text,
            audio=base.audio,
            subject=base.subject,
        )
        setattr(mixed, modality, value)
        found.append(Probe(kind, False, mixed))
    return found
