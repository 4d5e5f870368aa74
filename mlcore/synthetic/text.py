"""Synthetic clinical notes and learner writing.

A clinical note may or may not report the symptom that, together with a lesion on the image,
makes a finding; its wording is either calm or distressed. A learner's text is either confident
or struggling. Phrases are drawn at random so no single sentence gives a label away.
"""

import numpy as np

_SYMPTOM_REPORTED = (
    "Reports a persistent cough for {weeks} weeks with unintended weight loss.",
    "Describes coughing up blood-streaked sputum and night sweats over {weeks} weeks.",
    "Notes worsening shortness of breath and {kilos} kg weight loss in {weeks} weeks.",
)
_SYMPTOM_ABSENT = (
    "Denies cough, haemoptysis or weight loss.",
    "No respiratory complaints; weight stable over the last {weeks} weeks.",
    "Attends for routine review; breathing unchanged, appetite normal.",
)
_CALM = (
    "Patient is calm and in good spirits.",
    "Speaks about plans for the coming weeks and has no particular worries.",
    "Relaxed during the consultation; engages well.",
)
_DISTRESSED = (
    "Patient says things have been very hard lately and feels overwhelmed.",
    "Tearful at times; worries constantly about what the results will show.",
    "Describes feeling hopeless and unable to cope at home.",
)
_PLANS = (
    "Plan: review imaging and follow up in {weeks} weeks.",
    "Plan: bloods today; discuss results at next visit.",
    "Plan: continue current medication; safety-netting advice given.",
)

_CONFIDENT = (
    "I worked out the {topic} problems step by step and checked each answer.",
    "This time I understood why the method works, so I tried a harder example too.",
    "I explained {topic} to my partner and we both got the last question right.",
)
_STRUGGLING = (
    "I don't get why the {topic} method works and I kept getting it wrong.",
    "I tried the {topic} questions three times but I still can't see where I go wrong.",
    "I'm not sure what the question wants and I gave up on the last part.",
)
_CONTEXT = (
    "Today we practised {topic} in {subject}.",
    "In {subject} we looked at {topic}.",
    "Our {subject} task was about {topic}.",
)
TOPICS = {
    "Mathematics": ("fractions", "linear equations", "percentages", "area and perimeter"),
    "English": ("persuasive writing", "poetry analysis", "reported speech", "paragraph structure"),
    "Science": ("photosynthesis", "electric circuits", "states of matter", "forces"),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def clinical_note(*, symptom_reported: bool, distressed: bool, rng: np.random.Generator) -> str:
    values = {"weeks": int(rng.integers(2, 12)), "kilos": int(rng.integers(3, 9))}
    sentences = [
        _pick(rng, _SYMPTOM_REPORTED if symptom_reported else _SYMPTOM_ABSENT),
        _pick(rng, _DISTRESSED if distressed else _CALM),
        _pick(rng, _PLANS),
    ]
    return " ".join(sentence.format(**values) for sentence in sentences) + "\n"


def learner_text(*, subject: str, struggling: bool, rng: np.random.Generator) -> str:
    values = {"subject": subject, "topic": _pick(rng, TOPICS[subject])}
    sentences = [_pick(rng, _CONTEXT), _pick(rng, _STRUGGLING if struggling else _CONFIDENT)]
    return " ".join(sentence.format(**values) for sentence in sentences) + "\n"


_REPORT_OPENINGS = ("Axial chest CT.", "CT chest, single slice.", "Chest CT reviewed.")


def radiology_report(lesion, *, rng: np.random.Generator) -> str:
    """A short report of what the slice shows; `lesion` is a Lesion or None."""
    opening = _pick(rng, _REPORT_OPENINGS)
    if lesion is None:
        return f"{opening} Lungs are clear. No focal lesion."
    size = "large" if lesion.large else "small"
    return f"{opening} A {size} nodule in the {lesion.side} {lesion.level} lobe."
