"""Cases whose labels need evidence from more than one modality.

Clinic: the finding `suspicious_mass` is present only when the image shows a lesion *and* the
note reports the symptom. Affect comes from two sources: the voice's arousal (prosody) and the
note's wording (calm or distressed):

    voice \\ wording   calm        distressed
    low arousal        neutral     depressed_mood
    high arousal       pain        anxious

School: affect from voice arousal and the text's confidence:

    voice \\ text      confident   struggling
    low arousal        bored       confused
    high arousal       engaged     frustrated
"""

from dataclasses import dataclass

import numpy as np

from mlcore.synthetic.audio import synthetic_voice
from mlcore.synthetic.images import chest_ct_slice
from mlcore.synthetic.text import TOPICS, clinical_note, learner_text

CLINIC_FINDINGS = ("suspicious_mass",)
CLINIC_AFFECTS = ("neutral", "anxious", "depressed_mood", "pain")
SCHOOL_AFFECTS = ("engaged", "confused", "frustrated", "bored")

_CLINIC_AFFECT = {
    (False, False): "neutral",
    (False, True): "depressed_mood",
    (True, False): "pain",
    (True, True): "anxious",
}
_SCHOOL_AFFECT = {
    (False, False): "bored",
    (False, True): "confused",
    (True, False): "engaged",
    (True, True): "frustrated",
}


@dataclass(frozen=True)
class ClinicalCase:
    hounsfield: np.ndarray
    note: str
    voice: np.ndarray
    lesion: bool
    symptom_reported: bool
    high_arousal: bool
    distressed: bool

    @property
    def findings(self) -> list[str]:
        return ["suspicious_mass"] if self.lesion and self.symptom_reported else []

    @property
    def affect(self) -> str:
        return _CLINIC_AFFECT[(self.high_arousal, self.distressed)]

    @property
    def rationale(self) -> str:
        """Why the labels are what they are, in the words a clinician would use."""
        image = "nodule on imaging" if self.lesion else "clear lungs"
        note = "symptoms reported" if self.symptom_reported else "no symptoms reported"
        voice = "tense voice" if self.high_arousal else "flat voice"
        wording = "distressed wording" if self.distressed else "calm wording"
        return f"{image}, {note}; {voice}, {wording}."


@dataclass(frozen=True)
class LearnerCase:
    subject: str
    text: str
    voice: np.ndarray
    high_arousal: bool
    struggling: bool

    @property
    def affect(self) -> str:
        return _SCHOOL_AFFECT[(self.high_arousal, self.struggling)]

    @property
    def rationale(self) -> str:
        voice = "animated voice" if self.high_arousal else "flat voice"
        writing = "writing shows struggle" if self.struggling else "writing shows confidence"
        return f"{voice}; {writing}."


def clinical_case(
    rng: np.random.Generator, *, image_size: int = 128, voice_seconds: float = 4.0
) -> ClinicalCase:
    lesion, symptom, arousal, distressed = (bool(flag) for flag in rng.integers(0, 2, size=4))
    return ClinicalCase(
        hounsfield=chest_ct_slice(lesion=lesion, rng=rng, size=image_size),
        note=clinical_note(symptom_reported=symptom, distressed=distressed, rng=rng),
        voice=synthetic_voice(high_arousal=arousal, rng=rng, seconds=voice_seconds),
        lesion=lesion,
        symptom_reported=symptom,
        high_arousal=arousal,
        distressed=distressed,
    )


def learner_case(rng: np.random.Generator, *, voice_seconds: float = 4.0) -> LearnerCase:
    subject = tuple(TOPICS)[int(rng.integers(len(TOPICS)))]
    arousal, struggling = (bool(flag) for flag in rng.integers(0, 2, size=2))
    return LearnerCase(
        subject=subject,
        text=learner_text(subject=subject, struggling=struggling, rng=rng),
        voice=synthetic_voice(high_arousal=arousal, rng=rng, seconds=voice_seconds),
        high_arousal=arousal,
        struggling=struggling,
    )
