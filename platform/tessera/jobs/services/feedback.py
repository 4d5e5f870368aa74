"""A professional's verdict on a result: confirmed, corrected, or a suggestion judged; and the
teacher's loop on a suggestion: tried, then (at the learner's next session) whether it helped."""

from django.contrib.auth.models import AbstractBaseUser

from tessera.jobs.models import (
    AnalysisResult,
    Feedback,
)
from tessera.jobs.selectors import model_labels
from tessera.jobs.services.deliveries import ON_CONFIRM, ON_CORRECT, deliver_result_if_wanted
from tessera.refusals import RefusalCode, Refused

ABOUT_A_SUGGESTION = (
    Feedback.Kind.USEFUL,
    Feedback.Kind.NOT_USEFUL,
    Feedback.Kind.TRIED,
    Feedback.Kind.HELPED,
    Feedback.Kind.DID_NOT_HELP,
)
OUTCOMES = (Feedback.Kind.HELPED, Feedback.Kind.DID_NOT_HELP)


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
    if kind in ABOUT_A_SUGGESTION:
        offered = {item["id"] for item in result.tutoring}
        if intervention not in offered:
            raise Refused(
                "say which of the suggested interventions this is about",
                code=RefusalCode.UNKNOWN_INTERVENTION,
            )
        _check_the_loop(result=result, kind=kind, intervention=intervention)
    feedback = Feedback.objects.create(
        result=result,
        kind=kind,
        diagnosis=diagnosis,
        emotion_label=emotion_label,
        intervention=intervention,
        comment=comment,
        given_by=given_by,
    )
    if kind == Feedback.Kind.CONFIRM:
        deliver_result_if_wanted(result=result, moment=ON_CONFIRM)
    elif kind == Feedback.Kind.CORRECT:
        deliver_result_if_wanted(result=result, moment=ON_CORRECT)
    return feedback


def _check_the_loop(*, result: AnalysisResult, kind: str, intervention: str) -> None:
    """A suggestion is tried once, and said to have helped (or not) once, after it was tried."""
    said = set(result.feedback.filter(intervention=intervention).values_list("kind", flat=True))
    if kind == Feedback.Kind.TRIED and Feedback.Kind.TRIED in said:
        raise Refused("this suggestion is already marked as tried", code=RefusalCode.DUPLICATE)
    if kind in OUTCOMES:
        if Feedback.Kind.TRIED not in said:
            raise Refused(
                "mark the suggestion as tried before saying whether it helped",
                code=RefusalCode.NOT_TRIED,
            )
        if said & set(OUTCOMES):
            raise Refused(
                "whether this suggestion helped is already recorded", code=RefusalCode.DUPLICATE
            )
