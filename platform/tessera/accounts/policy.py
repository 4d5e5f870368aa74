"""Which analyses an organization may run, and which the law forbids outright.

An organization's policy lists the analyses it allows. Some analyses are prohibited for some
organizations whatever their policy says: the EU AI Act (Regulation (EU) 2024/1689,
Art. 5(1)(f), in force since 2 February 2025) forbids inferring emotions of natural persons in
education institutions from biometric data such as voice.

What a recording *says* is another input than how it sounds. Voice characteristics are biometric
data (Art. 3(34), 3(39)); the words a learner said, written down by the speech model, are not:
they are the learner's words, as an essay is. So in an EU school the sound of a recording never
enters a model, while its transcript may: for tutoring suggestions always, and for affect only
where the organization turns on "affect from transcripts". That setting starts off for EU
schools: the transcript was made from a recording the school's teachers may think of as voice
data, and the choice to read feelings from it is the school's to make knowingly
(docs/architecture.md, "What a recording says and how it sounds").
"""

from django.db import models


class Analysis(models.TextChoices):
    DIAGNOSIS = "diagnosis", "Diagnosis suggestions"
    EMOTION_FROM_TEXT = "emotion_text", "Emotion / affect from text"
    EMOTION_FROM_VOICE = "emotion_voice", "Emotion / affect from voice"
    EMOTION_FROM_TRANSCRIPT = (
        "emotion_transcript",
        "Emotion / affect from transcripts (the words a recording says)",
    )
    TUTORING = "tutoring", "Tutoring suggestions"


class OrganizationKind(models.TextChoices):
    CLINIC = "clinic", "Clinic"
    SCHOOL = "school", "School"


EU_JURISDICTIONS = frozenset({"EU"})

_AI_ACT_VOICE_EMOTION = (
    "Emotion inference from voice is prohibited for schools in the EU "
    "(EU AI Act, Art. 5(1)(f), since 2 February 2025)."
)
_NOT_FOR_KIND = "{analysis} is not offered to a {kind}."

_OFFERED = {
    OrganizationKind.CLINIC: (
        Analysis.DIAGNOSIS,
        Analysis.EMOTION_FROM_TEXT,
        Analysis.EMOTION_FROM_VOICE,
        Analysis.EMOTION_FROM_TRANSCRIPT,
    ),
    OrganizationKind.SCHOOL: (
        Analysis.TUTORING,
        Analysis.EMOTION_FROM_TEXT,
        Analysis.EMOTION_FROM_VOICE,
        Analysis.EMOTION_FROM_TRANSCRIPT,
    ),
}
# Where the law allows the transcript's affect but the organization should choose it knowingly.
TRANSCRIPT_AFFECT_HELP = (
    "Affect from transcripts reads feelings from the words a recording says (its transcript), "
    "never from how the voice sounds. The EU AI Act forbids inferring emotions from voice in "
    "schools; words are not biometric data, so this is allowed, but it starts off for EU "
    "schools: turn it on only if the school has decided that feelings may be read from what "
    "learners say aloud. Transcripts feed tutoring suggestions either way."
)


def prohibition(*, kind: str, jurisdiction: str, analysis: str) -> str | None:
    """Why `analysis` can never be allowed for such an organization, or None if it can be."""
    if analysis not in _OFFERED[OrganizationKind(kind)]:
        return _NOT_FOR_KIND.format(
            analysis=Analysis(analysis).label, kind=OrganizationKind(kind).label.lower()
        )
    if (
        kind == OrganizationKind.SCHOOL
        and jurisdiction in EU_JURISDICTIONS
        and analysis == Analysis.EMOTION_FROM_VOICE
    ):
        return _AI_ACT_VOICE_EMOTION
    return None


def _off_by_default(*, kind: str, jurisdiction: str, analysis: str) -> bool:
    """Whether a lawful analysis starts off, for the organization to turn on knowingly."""
    return (
        kind == OrganizationKind.SCHOOL
        and jurisdiction in EU_JURISDICTIONS
        and analysis == Analysis.EMOTION_FROM_TRANSCRIPT
    )


def default_policy(*, kind: str, jurisdiction: str) -> list[str]:
    """Every analysis the organization may lawfully run, less those that start off: the
    starting policy of a new one."""
    return [
        analysis.value
        for analysis in _OFFERED[OrganizationKind(kind)]
        if prohibition(kind=kind, jurisdiction=jurisdiction, analysis=analysis) is None
        and not _off_by_default(kind=kind, jurisdiction=jurisdiction, analysis=analysis)
    ]
