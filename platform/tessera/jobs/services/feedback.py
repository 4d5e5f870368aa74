"""A professional's verdict on a result: confirmed, corrected, or a suggestion judged."""

from django.contrib.auth.models import AbstractBaseUser

from tessera.jobs.models import (
    AnalysisResult,
    Feedback,
)
from tessera.jobs.selectors import model_labels
from tessera.refusals import RefusalCode, Refused


def record_feedback(
    *,
    result: AnalysisResult,
    kind: str,
    given_by: AbstractBaseUser | None,
    diagnosis: list[str] | None = None,
    emotion_label: str = "",
    intervention: str = "",
    comment: str = "",
) -> Feedback:
    kind = Feedback.Kind(kind)
    if kind == Feedback.Kind.CORRECT:
        if diagnosis is None and not emotion_label:
            raise Refused(
                "a correction needs the right findings or affect label", code=RefusalCode.EMPTY
            )
        known_findings, known_affects = model_labels(version=result.model_version)
        unknown = set(diagnosis or []) - set(known_findings)
        if unknown:
            raise Refused(
                f"unknown findings: {', '.join(sorted(unknown))}", code=RefusalCode.UNKNOWN_LABEL
            )
        if emotion_label and emotion_label not in known_affects:
            raise Refused(f"unknown affect label: {emotion_label}", code=RefusalCode.UNKNOWN_LABEL)
    if kind in (Feedback.Kind.USEFUL, Feedback.Kind.NOT_USEFUL):
        offered = {item["id"] for item in result.tutoring}
        if intervention not in offered:
            raise Refused(
                "say which of the suggested interventions this is about",
                code=RefusalCode.UNKNOWN_INTERVENTION,
            )
    return Feedback.objects.create(
        result=result,
        kind=kind,
        diagnosis=diagnosis,
        emotion_label=emotion_label,
        intervention=intervention,
        comment=comment,
        given_by=given_by,
    )
