"""Synthetic cases drawn from the generative model of `mlcore.synthetic.truth`: labels need
evidence from several modalities, cues overlap and are partly redundant, their strength varies
from case to case, and 7% of labels are wrong. Each case carries its true posterior given any
set of modalities, and where its lesion is.

`phrasing` chooses the note's phrasing families (seen: training's; unseen: the paraphrase
split) and `site` the scanner and microphone (home, or another site's: the site-shift split).
"""

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from mlcore.synthetic import truth
from mlcore.synthetic.audio import HOME_MICROPHONE, OTHER_MICROPHONE, spoken_voice
from mlcore.synthetic.images import HOME_SCANNER, OTHER_SCANNER, LesionSpot, synthetic_slice
from mlcore.synthetic.speech import draw_clip
from mlcore.synthetic.text import TOPICS, clinical_note, learner_text

CLINIC_FINDINGS = ("suspicious_mass",)
CLINIC_AFFECTS = ("neutral", "anxious", "depressed_mood", "pain")
SCHOOL_AFFECTS = ("engaged", "confused", "frustrated", "bored")
SITES = {"home": (HOME_SCANNER, HOME_MICROPHONE), "other": (OTHER_SCANNER, OTHER_MICROPHONE)}


def subset_name(modalities: tuple[str, ...]) -> str:
    return "+".join(modalities)


@dataclass(frozen=True)
class ClinicalCase:
    hounsfield: np.ndarray
    note: str
    voice: np.ndarray
    spoken: str  # what the recording says, as the shipped speech model hears it
    lesion: LesionSpot | None  # a lesion the image shows (malignant or benign), and where
    lesion_contrast: float | None  # its HU over the lung
    symptom: str  # strong, mild or none, as the note says
    voice_intensity: float  # the voice's arousal cue
    manner: str | None  # agitated, slowed, or not mentioned
    wording: str  # distressed, mixed or calm
    said: str  # what the recording says: distressed, mixed or calm
    findings: list[str]  # the label (7% noisy)
    affect: str  # the label (7% noisy)
    # P(label | cues of a set of modalities) for each set in truth.SUBSETS, by subset_name:
    # {"suspicious_mass": {name: p}, "affect": {name: {label: p}}}
    posterior: dict

    @property
    def rationale(self) -> str:
        """What the evidence shows, in the words a clinician would use."""
        image = "nodule on imaging" if self.lesion else "clear lungs"
        note = {
            "strong": "marked symptoms reported",
            "mild": "mild symptoms reported",
            "none": "no symptoms reported",
        }[self.symptom]
        voice = _voice_words(self.voice_intensity, high="tense voice", low="flat voice")
        wording = f"{self.wording} wording"
        return f"{image}, {note}; {voice}, {wording}, {self.said} words aloud."


@dataclass(frozen=True)
class LearnerCase:
    subject: str
    text: str
    voice: np.ndarray
    spoken: str  # what the recording says, as the shipped speech model hears it
    voice_intensity: float
    manner: str | None
    level: str  # struggling, unsure or confident, as the writing says
    said: str  # struggling, unsure or confident, as the recording says
    affect: str  # the label (7% noisy)
    posterior: dict  # {"affect": {subset name: {label: p}}}

    @property
    def rationale(self) -> str:
        voice = _voice_words(self.voice_intensity, high="animated voice", low="flat voice")
        return f"{voice}; writing sounds {self.level}, speaking sounds {self.said}."


def _voice_words(intensity: float, *, high: str, low: str) -> str:
    if abs(intensity) < 0.5:
        return "voice neither lively nor flat"
    return high if intensity > 0 else low


def _draw(rng: np.random.Generator, table: dict) -> str | None:
    options = list(table)
    return options[int(rng.choice(len(options), p=list(table.values())))]


def _voice_cue(rng: np.random.Generator, high: bool) -> float:
    return float(rng.normal(1.0 if high else -1.0, truth.VOICE_SPREAD))


def _noisy_affect(rng: np.random.Generator, affect: str, labels: tuple[str, ...]) -> str:
    if rng.random() < truth.LABEL_NOISE:
        return str(rng.choice([label for label in labels if label != affect]))
    return affect


def clinical_case(
    rng: np.random.Generator,
    *,
    image_size: int = 128,
    voice_seconds: float | None = None,
    phrasing: str = "seen",
    site: str = "home",
    silent: Collection[str] = (),
) -> ClinicalCase:
    """A case drawn from the generative model (mlcore.synthetic.truth). The cues named in
    `silent` (of truth.SILENT) take the value that says least either way, whatever the hidden
    state: probe cases in which the other cues alone carry the evidence."""
    unknown = set(silent) - set(truth.SILENT)
    if unknown:
        raise ValueError(f"silent cues must be among {', '.join(truth.SILENT)}: {unknown}")
    scanner, microphone = SITES[site]
    disease = bool(rng.random() < truth.DISEASE_RATE)
    shows_lesion = bool(rng.random() < truth.LESION_GIVEN[disease])
    contrast = float(rng.uniform(*truth.CONTRAST_GIVEN[disease])) if shows_lesion else None
    symptom = _draw(rng, truth.SYMPTOM_GIVEN[disease])
    high = bool(rng.random() < truth.AROUSAL_RATE)
    intensity = _voice_cue(rng, high)
    manner = _draw(rng, truth.MANNER_GIVEN[high])
    distressed = bool(rng.random() < truth.DISTRESS_RATE)
    wording = _draw(rng, truth.WORDING_GIVEN[distressed])
    said = _draw(rng, truth.SAID_GIVEN["clinic"][distressed])
    quiet = {cue: truth.SILENT[cue] for cue in silent}
    symptom, manner = quiet.get("symptom", symptom), quiet.get("manner", manner)
    wording, said = quiet.get("wording", wording), quiet.get("said", said)
    intensity = quiet.get("voice", intensity)

    hounsfield, spot = synthetic_slice(
        lesion=shows_lesion,
        rng=rng,
        size=image_size,
        contrast=(contrast, contrast) if contrast is not None else (0.0, 0.0),
        scanner=scanner,
    )
    note = clinical_note(
        symptom=symptom, wording=wording, manner=manner, phrasing=phrasing, rng=rng
    )
    clip = draw_clip(rng, kind="clinic", said=said)
    voice = spoken_voice(
        clip, intensity=intensity, rng=rng, seconds=voice_seconds, microphone=microphone
    )
    labelled_disease = disease != bool(rng.random() < truth.LABEL_NOISE)
    affect = _noisy_affect(rng, truth.CLINIC_AFFECT[(high, distressed)], CLINIC_AFFECTS)
    posterior = {
        "suspicious_mass": {
            subset_name(subset): truth.finding_posterior(
                lesion_contrast=contrast, symptom=symptom, modalities=subset
            )
            for subset in truth.SUBSETS["clinic"]
        },
        "affect": {
            subset_name(subset): truth.affect_posterior(
                voice=intensity,
                manner=manner,
                distress_cue=wording,
                said=said,
                modalities=subset,
                kind="clinic",
            )
            for subset in truth.SUBSETS["clinic"]
        },
    }
    return ClinicalCase(
        hounsfield=hounsfield,
        note=note,
        voice=voice,
        spoken=clip.heard_at(intensity, rng),
        lesion=spot,
        lesion_contrast=contrast,
        symptom=symptom,
        voice_intensity=intensity,
        manner=manner,
        wording=wording,
        said=said,
        findings=["suspicious_mass"] if labelled_disease else [],
        affect=affect,
        posterior=posterior,
    )


def learner_case(
    rng: np.random.Generator,
    *,
    voice_seconds: float | None = None,
    phrasing: str = "seen",
    site: str = "home",
) -> LearnerCase:
    microphone = SITES[site][1]
    subject = tuple(TOPICS)[int(rng.integers(len(TOPICS)))]
    high = bool(rng.random() < truth.AROUSAL_RATE)
    intensity = _voice_cue(rng, high)
    manner = _draw(rng, truth.MANNER_GIVEN[high])
    struggling = bool(rng.random() < truth.DISTRESS_RATE)
    level = _draw(rng, truth.LEVEL_GIVEN[struggling])
    said = _draw(rng, truth.SAID_GIVEN["school"][struggling])
    text = learner_text(subject=subject, level=level, manner=manner, phrasing=phrasing, rng=rng)
    clip = draw_clip(rng, kind="school", said=said)
    voice = spoken_voice(
        clip, intensity=intensity, rng=rng, seconds=voice_seconds, microphone=microphone
    )
    affect = _noisy_affect(rng, truth.SCHOOL_AFFECT[(high, struggling)], SCHOOL_AFFECTS)
    posterior = {
        "affect": {
            subset_name(subset): truth.affect_posterior(
                voice=intensity,
                manner=manner,
                distress_cue=level,
                said=said,
                modalities=subset,
                kind="school",
            )
            for subset in truth.SUBSETS["school"]
        }
    }
    return LearnerCase(
        subject=subject,
        text=text,
        voice=voice,
        spoken=clip.heard_at(intensity, rng),
        voice_intensity=intensity,
        manner=manner,
        level=level,
        said=said,
        affect=affect,
        posterior=posterior,
    )
