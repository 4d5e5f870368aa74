"""Which analyses an organization may run, and which the law forbids outright.

An organization's policy lists the analyses it allows. Some analyses are prohibited for some
organizations whatever their policy says: the EU AI Act (Regulation (EU) 2024/1689,
Art. 5(1)(f), in force since 2 February 2025) forbids inferring emotions of natural persons in
education institutions from biometric data such as voice.
"""

from django.db import models


class Analysis(models.TextChoices):
    DIAGNOSIS = "diagnosis", "Diagnosis suggestions"
    EMOTION_FROM_TEXT = "emotion_text", "Emotion / affect from text"
    EMOTION_FROM_VOICE = "emotion_voice", "Emotion / affect from voice"
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
    ),
    OrganizationKind.SCHOOL: (
        Analysis.TUTORING,
        Analysis.EMOTION_FROM_TEXT,
        Analysis.EMOTION_FROM_VOICE,
    ),
}


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


def default_policy(*, kind: str, jurisdiction: str) -> list[str]:
    """Every analysis the organization may lawfully run: the starting policy of a new one."""
    return [
        analysis.value
        for analysis in _OFFERED[OrganizationKind(kind)]
        if prohibition(kind=kind, jurisdiction=jurisdiction, analysis=analysis) is None
    ]
