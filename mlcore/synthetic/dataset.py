"""Write a synthetic dataset to disk: DICOM images, UTF-8 notes or learner texts, WAV audio, what
each recording says (`speech/`: its transcript, as the shipped speech model hears it), and a
manifest (JSON Lines) that `python -m mlcore train` reads, with `truth.jsonl` beside it: per
case, the cues the generator drew, its posterior given each set of modalities and where its
lesion is (what benchmarks compare against; never an input).

A split is the kind of cases written: `standard` (seen phrasings, the home site), `paraphrase`
(phrasing families training never sees) or `site_shift` (another site's scanner and microphone).
"""

import json
from datetime import date
from pathlib import Path

import numpy as np

from mlcore.synthetic.audio import wav_bytes
from mlcore.synthetic.cases import clinical_case, learner_case
from mlcore.synthetic.images import ct_dicom_bytes

SPLITS = {
    "standard": {"phrasing": "seen", "site": "home"},
    "paraphrase": {"phrasing": "unseen", "site": "home"},
    "site_shift": {"phrasing": "seen", "site": "other"},
}
TRUTH_FILE = "truth.jsonl"


def write_dataset(
    directory: str | Path,
    *,
    kind: str = "clinic",
    cases: int = 200,
    seed: int = 0,
    image_size: int = 64,
    voice_seconds: float | None = 3.0,
    split: str = "standard",
    silent: tuple[str, ...] = (),
) -> Path:
    """Returns the manifest's path. `kind` is clinic (image, note, speech; finding and affect)
    or school (learner text and audio; affect and subject). A recording is its first
    `voice_seconds` (None: the whole sentence). `silent`: clinic cues that say nothing in
    every case (mlcore.synthetic.cases.clinical_case), for probes."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if kind not in ("clinic", "school"):
        raise ValueError(f"kind must be clinic or school, not {kind!r}")
    if silent and kind != "clinic":
        raise ValueError("only clinic cases have cues that can be made silent")
    directory = Path(directory)
    for folder in ("images", "texts", "audio", "speech"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines, truths = [], []
    for index in range(cases):
        name = f"case-{index:05d}"
        entry: dict = {
            "id": name,
            "text": f"texts/{name}.txt",
            "audio": f"audio/{name}.wav",
            "speech_text": f"speech/{name}.txt",
        }
        known: dict = {"id": name, "split": split}
        if kind == "clinic":
            case = clinical_case(
                rng,
                image_size=image_size,
                voice_seconds=voice_seconds,
                silent=silent,
                **SPLITS[split],
            )
            (directory / "images" / f"{name}.dcm").write_bytes(
                ct_dicom_bytes(
                    case.hounsfield,
                    patient_name=f"Synthetic^{index}",
                    patient_id=name,
                    birth_date=None,
                    sex="unknown",
                    study_date=date(2026, 1, 1),
                    uid_seed=f"{seed}-{split}-{name}",
                )
            )
            text = case.note
            entry.update(image=f"images/{name}.dcm", diagnosis=case.findings, emotion=case.affect)
            known["cues"] = {
                "lesion_contrast": case.lesion_contrast,
                "symptom": case.symptom,
                "wording": case.wording,
                "said": case.said,
                "manner": case.manner,
                "voice_intensity": case.voice_intensity,
            }
            known["lesion"] = (
                None
                if case.lesion is None
                else {
                    "row": case.lesion.row,
                    "column": case.lesion.column,
                    "radius": case.lesion.radius,
                    "size": image_size,
                }
            )
        else:
            case = learner_case(rng, voice_seconds=voice_seconds, **SPLITS[split])
            text = case.text
            entry.update(subject=case.subject, emotion=case.affect)
            known["cues"] = {
                "level": case.level,
                "said": case.said,
                "manner": case.manner,
                "voice_intensity": case.voice_intensity,
            }
        entry["rationale"] = case.rationale
        known["posterior"] = case.posterior
        (directory / "texts" / f"{name}.txt").write_text(text, encoding="utf-8")
        (directory / "audio" / f"{name}.wav").write_bytes(wav_bytes(case.voice))
        (directory / "speech" / f"{name}.txt").write_text(case.spoken, encoding="utf-8")
        lines.append(json.dumps(entry))
        truths.append(json.dumps(known))
    (directory / TRUTH_FILE).write_text("\n".join(truths) + "\n")
    manifest = directory / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def read_truth(manifest: str | Path) -> dict[str, dict]:
    """The generator's truth beside `manifest`, by case id."""
    path = Path(manifest).parent / TRUTH_FILE
    return {entry["id"]: entry for entry in map(json.loads, path.read_text().splitlines()) if entry}
