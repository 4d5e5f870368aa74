"""Write a synthetic dataset to disk: DICOM images, UTF-8 notes or learner texts, WAV audio and
a manifest (JSON Lines) that `python -m mlcore train` reads."""

import json
from datetime import date
from pathlib import Path

import numpy as np

from mlcore.synthetic.audio import wav_bytes
from mlcore.synthetic.cases import clinical_case, learner_case
from mlcore.synthetic.images import ct_dicom_bytes


def write_dataset(
    directory: str | Path,
    *,
    kind: str = "clinic",
    cases: int = 200,
    seed: int = 0,
    image_size: int = 64,
    voice_seconds: float = 3.0,
) -> Path:
    """Returns the manifest's path. `kind` is clinic (image, note, speech; finding and affect)
    or school (learner text and audio; affect and subject)."""
    directory = Path(directory)
    for folder in ("images", "texts", "audio"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(cases):
        name = f"case-{index:05d}"
        entry: dict = {"id": name, "text": f"texts/{name}.txt", "audio": f"audio/{name}.wav"}
        if kind == "clinic":
            case = clinical_case(rng, image_size=image_size, voice_seconds=voice_seconds)
            (directory / "images" / f"{name}.dcm").write_bytes(
                ct_dicom_bytes(
                    case.hounsfield,
                    patient_name=f"Synthetic^{index}",
                    patient_id=name,
                    birth_date=None,
                    sex="unknown",
                    study_date=date(2026, 1, 1),
                    uid_seed=f"{seed}-{name}",
                )
            )
            text, voice = case.note, case.voice
            entry.update(image=f"images/{name}.dcm", diagnosis=case.findings, emotion=case.affect)
        elif kind == "school":
            case = learner_case(rng, voice_seconds=voice_seconds)
            text, voice = case.text, case.voice
            entry.update(subject=case.subject, emotion=case.affect)
        else:
            raise ValueError(f"kind must be clinic or school, not {kind!r}")
        entry["rationale"] = case.rationale
        (directory / "texts" / f"{name}.txt").write_text(text, encoding="utf-8")
        (directory / "audio" / f"{name}.wav").write_bytes(wav_bytes(voice))
        lines.append(json.dumps(entry))
    manifest = directory / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
