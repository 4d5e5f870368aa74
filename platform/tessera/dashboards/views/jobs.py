"""A job's card and its results: progress, what the model suggested, a professional's verdict."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from tessera.accounts.permissions import (
    Capability,
    can,
)
from tessera.dashboards import selectors
from tessera.dashboards.access import form_errors, require
from tessera.dashboards.forms import CorrectionForm
from tessera.dashboards.views.common import is_htmx, sentence, subject_url
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback
from tessera.jobs.selectors import said_of_suggestions, tried_before
from tessera.jobs.services import record_feedback
from tessera.records.kinds import subject_of
from tessera.records.models import MediaKind
from tessera.refusals import Refused


def job_context(job: AnalysisJob, *, can_write: bool) -> dict:
    return {
        "job": job,
        "results": [_result_context(result, job=job) for result in job.results.all()],
        "can_write": can_write,
    }


def _result_context(result: AnalysisResult, *, job: AnalysisJob, **extra) -> dict:
    """What a result's card shows; `job` is the result's job with its media loaded."""
    feedback = list(result.feedback.all())
    image = next((asset for asset in job.media.all() if asset.kind == MediaKind.DICOM), None)
    return {
        "result": result,
        "diagnosis": sorted(result.diagnosis.items(), key=lambda item: -item[1]),
        "emotion": sorted(result.emotion.items(), key=lambda item: -item[1]),
        "feedback": feedback,
        "suggestions": _suggestions_with_verdicts(result, feedback),
        "follow_up": _follow_up(result),
        "correction": _correction_form(result),
        "image": image if result.explanation else None,
        # The model drew no heatmap for findings on an image: its heatmaps failed, or never had,
        # the pointing game (mlcore.pointing).
        "heatmap_withheld": bool(image and result.diagnosis and not result.explanation),
        **extra,
    }


def _suggestions_with_verdicts(result: AnalysisResult, feedback: list[Feedback]) -> list[dict]:
    """The result's tutoring suggestions, each with what teachers said of it: judged useful or
    not, tried, helped or not."""
    said = said_of_suggestions((item.intervention, item.kind) for item in feedback)

    def first_of(kinds: set[str], *choices: str) -> str | None:
        return next((Feedback.Kind(kind).label for kind in choices if kind in kinds), None)

    return [
        {
            **suggestion,
            "verdict": first_of(
                said.get(suggestion["id"], set()), Feedback.Kind.USEFUL, Feedback.Kind.NOT_USEFUL
            ),
            "tried": Feedback.Kind.TRIED in said.get(suggestion["id"], set()),
            "outcome": first_of(
                said.get(suggestion["id"], set()), Feedback.Kind.HELPED, Feedback.Kind.DID_NOT_HELP
            ),
        }
        for suggestion in result.tutoring
    ]


def _follow_up(result: AnalysisResult) -> dict | None:
    """At the learner's next session: what a teacher tried after the previous one, to say
    whether it helped."""
    earlier, tried = tried_before(result=result)
    return {"result": earlier, "suggestions": tried} if tried else None


def _correction_form(result: AnalysisResult, data=None) -> CorrectionForm:
    """The labels to choose from are the result's own: it holds a probability for every
    finding and affect label of its model (no need to read the bundle, which may live on the
    workers' hosts only)."""
    return CorrectionForm(
        data,
        findings=list(result.diagnosis),
        affects=list(result.emotion),
        initial={"findings": result.findings, "affect": ""},
        prefix=f"result-{result.pk}",
    )


@login_required
@require_GET
def job_status(request: HttpRequest, pk) -> HttpResponse:
    """The job's card: progress while it runs (the card asks again each second), the result
    when it is done."""
    job = selectors.job_shown(user=request.user, pk=pk)
    can_write = can(user=request.user, capability=Capability.WRITE, organization=job.organization)
    card = job_context(job, can_write=can_write)
    return render(request, "dashboards/parts/job.html", {"j": card})


@login_required
@require_POST
def feedback(request: HttpRequest, pk: int) -> HttpResponse:
    result = get_object_or_404(
        selectors.visible(
            AnalysisResult.objects.select_related("model_version", "job__organization"),
            user=request.user,
        ),
        pk=pk,
    )
    require(request, Capability.WRITE, result.job.organization)
    kind = request.POST.get("kind", "")
    if kind not in Feedback.Kind.values:
        return HttpResponse("Say whether you confirm, correct or judge a suggestion.", status=400)
    correction = _correction_form(result, request.POST)
    error = ""
    correcting = kind == Feedback.Kind.CORRECT
    if correcting and not correction.is_valid():
        error = form_errors(correction)
    else:
        # Only a correction carries labels: a confirmation or a verdict on a suggestion says
        # nothing about which findings are present.
        chosen = correction.cleaned_data if correcting else {}
        try:
            record_feedback(
                result=result,
                kind=kind,
                given_by=request.user,
                diagnosis=chosen.get("findings") if "findings" in chosen else None,
                emotion_label=chosen.get("affect", ""),
                intervention=request.POST.get("intervention", ""),
            )
        except Refused as refusal:
            error = sentence(str(refusal))
    if not is_htmx(request):
        messages.info(request, error or f"Recorded: {Feedback.Kind(kind).label}.")
        return redirect(subject_url(subject_of(result.job)))
    result = selectors.result_shown(result)
    context = _result_context(
        result,
        job=result.job,
        feedback_error=error,
        recorded="" if error else Feedback.Kind(kind).label,
    )
    return render(
        request,
        "dashboards/parts/result.html",
        {"r": context, "can_write": True},
        status=422 if error else 200,
    )
