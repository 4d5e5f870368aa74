"""The generative model behind the synthetic cases, and each case's true posterior.

Clinic. A hidden disease D (40% of cases) makes the finding `suspicious_mass`. Two modalities
hold evidence about it:
- the image shows a lesion in 85% of diseased cases, and a benign one in 25% of the others.
  A malignant lesion stands 400-900 HU over the lung, a benign one 300-650 HU: a dense lesion
  is enough on its own, a faint one rules the disease out, and in between the note decides;
- the note reports a strong symptom, a mild one or none, more often strong when diseased;
  without a lesion on the image, no symptom makes the finding likely.

Affect is arousal (high or low) crossed with distress (distressed or calm):

    arousal \\ distress   calm        distressed
    low                  neutral     depressed_mood
    high                 pain        anxious

- the voice carries arousal as a continuous intensity z ~ N(±1, 0.6): strong in some cases,
  ambiguous near 0;
- the note's wording carries distress (distressed, mixed or calm words) and, in some notes, the
  patient's manner (agitated or slowed) says something about arousal too;
- what the recording *says* (one of the committed spoken sentences, mlcore.synthetic.speech)
  carries distress too, less reliably than the note: the `speech_text` modality, read from its
  transcript. The transcript is what the shipped speech model heard, whose slips grow as the
  voice gets quieter and slower: a little about arousal that the posteriors below leave out.
  The recording's sound (the `audio` modality) holds the voice and the words both: a network
  that hears it can learn the committed sentences apart (an audio-only model scored above the
  ceiling of the voice alone, 0.533 against 0.484 in bench/fusion.py), so what a perfect
  reader of the sound believes is the posterior of `audio` and `speech_text` together.

School: the same for arousal (voice, and sometimes the writing); the writing, and less reliably
what the learner said aloud, say how the lesson went (struggling, unsure, confident):

    arousal \\ writing    confident   struggling
    low                  bored       confused
    high                 engaged     frustrated

The label a case carries is the truth with 7% label noise (a flipped finding, another affect).
Because the generator knows every cue, it knows each case's posterior given the evidence of any
set of modalities: what a perfect reader of those modalities would believe. Its accuracy is the
Bayes ceiling a model can approach but not beat.
"""

import math
from collections.abc import Iterable

LABEL_NOISE = 0.07
DISEASE_RATE = 0.4
LESION_GIVEN = {True: 0.85, False: 0.25}
# The lesion's contrast over the lung (HU), uniform over these ranges: malignant, benign.
CONTRAST_GIVEN = {True: (400.0, 900.0), False: (300.0, 650.0)}
SYMPTOM_GIVEN = {
    True: {"strong": 0.45, "mild": 0.35, "none": 0.2},
    False: {"strong": 0.08, "mild": 0.3, "none": 0.62},
}
AROUSAL_RATE = 0.5
VOICE_SPREAD = 0.6  # z ~ N(+1, spread) for high arousal, N(-1, spread) for low
MANNER_GIVEN = {
    True: {"agitated": 0.3, "slowed": 0.05, None: 0.65},
    False: {"agitated": 0.05, "slowed": 0.3, None: 0.65},
}
DISTRESS_RATE = 0.5
WORDING_GIVEN = {
    True: {"distressed": 0.82, "mixed": 0.12, "calm": 0.06},
    False: {"distressed": 0.06, "mixed": 0.12, "calm": 0.82},
}
# The learner's writing, by whether they struggled: the same shape as a patient's wording.
LEVEL_GIVEN = {
    True: {"struggling": 0.82, "unsure": 0.12, "confident": 0.06},
    False: {"struggling": 0.06, "unsure": 0.12, "confident": 0.82},
}

CLINIC_AFFECT = {
    (False, False): "neutral",
    (False, True): "depressed_mood",
    (True, False): "pain",
    (True, True): "anxious",
}
SCHOOL_AFFECT = {
    (False, False): "bored",
    (False, True): "confused",
    (True, False): "engaged",
    (True, True): "frustrated",
}
# What the recording says, by distress (clinic) or struggle (school): weaker than the writing.
SAID_GIVEN = {
    "clinic": {
        True: {"distressed": 0.7, "mixed": 0.2, "calm": 0.1},
        False: {"distressed": 0.1, "mixed": 0.2, "calm": 0.7},
    },
    "school": {
        True: {"struggling": 0.7, "unsure": 0.2, "confident": 0.1},
        False: {"struggling": 0.1, "unsure": 0.2, "confident": 0.7},
    },
}
# Each cue's value that says least either way, for probe cases in which some cues are silent
# (`clinical_case(silent=...)`): a likelihood ratio of 1, but the mild symptom (1.17, the
# least telling of the three).
SILENT = {
    "voice": 0.0,
    "manner": None,
    "wording": "mixed",
    "said": "mixed",
    "symptom": "mild",
}
# Which modality holds each cue.
CUE_MODALITY = {
    "lesion": "image",
    "symptom": "text",
    "wording": "text",
    "manner": "text",
    "level": "text",
    "voice": "audio",
    "said": "speech_text",
}
# The sets of modalities whose posterior each case carries: each alone, and all together.
# (With and without what was said: a model may not read transcripts, in an EU school the sound
# is never read, and whoever reads the sound may hear the words.)
SUBSETS = {
    "clinic": (
        ("image",),
        ("text",),
        ("audio",),
        ("speech_text",),
        ("audio", "speech_text"),
        ("image", "text", "audio"),
        ("image", "text", "audio", "speech_text"),
    ),
    "school": (
        ("text",),
        ("audio",),
        ("speech_text",),
        ("audio", "speech_text"),
        ("text", "audio"),
        ("text", "speech_text"),
        ("text", "audio", "speech_text"),
    ),
}


def _posterior(prior: float, likelihoods: Iterable[tuple[float, float]]) -> float:
    """P(yes | evidence) from a prior and (P(e | yes), P(e | no)) per independent cue."""
    yes, no = prior, 1.0 - prior
    for given_yes, given_no in likelihoods:
        yes, no = yes * given_yes, no * given_no
    return yes / (yes + no)


def _voice_likelihood(z: float) -> tuple[float, float]:
    def density(mean: float) -> float:
        return math.exp(-((z - mean) ** 2) / (2 * VOICE_SPREAD**2))

    return density(1.0), density(-1.0)


def _noisy(probabilities: dict[str, float]) -> dict[str, float]:
    """What the *label* will say: the truth, or with LABEL_NOISE another class at random."""
    others = len(probabilities) - 1
    return {
        label: (1 - LABEL_NOISE) * p + LABEL_NOISE * (1 - p) / others
        for label, p in probabilities.items()
    }


def _lesion_likelihood(contrast: float | None, disease: bool) -> float:
    """P(the image shows this | disease): no lesion, or one of `contrast` HU (a density)."""
    if contrast is None:
        return 1.0 - LESION_GIVEN[disease]
    low, high = CONTRAST_GIVEN[disease]
    return LESION_GIVEN[disease] / (high - low) if low <= contrast <= high else 0.0


def finding_posterior(
    *, lesion_contrast: float | None, symptom: str, modalities: Iterable[str]
) -> float:
    """P(the case is labelled with the finding | the cues of `modalities`); `lesion_contrast`
    is None when the image shows no lesion."""
    modalities = set(modalities)
    cues = []
    if "image" in modalities:
        cues.append(
            (_lesion_likelihood(lesion_contrast, True), _lesion_likelihood(lesion_contrast, False))
        )
    if "text" in modalities:
        cues.append((SYMPTOM_GIVEN[True][symptom], SYMPTOM_GIVEN[False][symptom]))
    disease = _posterior(DISEASE_RATE, cues)
    return _noisy({"present": disease, "absent": 1 - disease})["present"]


def affect_posterior(
    *,
    voice: float,
    manner: str | None,
    distress_cue: str,
    said: str,
    modalities: Iterable[str],
    kind: str,
) -> dict[str, float]:
    """P(the case is labelled with each affect | the cues of `modalities`); `distress_cue` is
    the patient's wording (clinic) or the learner's level (school), `said` what the recording
    says."""
    modalities = set(modalities)
    arousal_cues, distress_cues = [], []
    if "audio" in modalities:
        arousal_cues.append(_voice_likelihood(voice))
    if "text" in modalities:
        arousal_cues.append((MANNER_GIVEN[True][manner], MANNER_GIVEN[False][manner]))
        table = WORDING_GIVEN if kind == "clinic" else LEVEL_GIVEN
        distress_cues.append((table[True][distress_cue], table[False][distress_cue]))
    if "speech_text" in modalities:
        spoken = SAID_GIVEN[kind]
        distress_cues.append((spoken[True][said], spoken[False][said]))
    high = _posterior(AROUSAL_RATE, arousal_cues)
    distressed = _posterior(DISTRESS_RATE, distress_cues)
    names = CLINIC_AFFECT if kind == "clinic" else SCHOOL_AFFECT
    joint = {
        names[(a, d)]: (high if a else 1 - high) * (distressed if d else 1 - distressed)
        for a in (False, True)
        for d in (False, True)
    }
    return _noisy(joint)
