"""A visit's card: uploading to it, analysing it, running a failed analysis again."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tessera.accounts.permissions import Capability
from tessera.accounts.selectors import organization_of
from tessera.dashboards import selectors
from tessera.dashboards.access import require, visible_or_404
from tessera.dashboards.forms import UploadForm
from tessera.dashboards.views.common import is_htmx, sentence, subject_url
from tessera.dashboards.views.jobs import job_context
from tessera.jobs.models import AnalysisJob, JobTask
from tessera.jobs.services import (
    request_analysis,
    retry_job,
)
from tessera.records.archives import is_zip
from tessera.records.kinds import (
    kind_of,
    kind_with_slug,
    subject_of,
    visit_of,
)
from tessera.records.models import MediaKind
from tessera.records.services import (
    add_dicom_series,
    add_media,
)
from tessera.records.uploads import UploadRejected
from tessera.refusals import Refused


def _visit_or_404(request: HttpRequest, visit_kind: str, pk: int):
    kind = kind_with_slug(visit_kind)
    if kind is None:
        raise Http404
    return visible_or_404(kind.visit_model, request, pk)


def visit_context(
    card: selectors.VisitShown, *, can_write: bool, forms: dict | None = None, **extra
) -> dict:
    visit = card.visit
    kind = kind_of(visit)
    forms = forms or {}
    media = list(visit.media.all())
    return {
        "visit": visit,
        "visit_kind": kind.visit_slug,
        "media": [
            {
                "asset": asset,
                "text": card.texts.get(asset.pk),
                "transcript": card.transcripts.get(asset.pk),
            }
            for asset in media
        ],
        "upload_forms": [
            forms.get(media_kind) or UploadForm(kind=media_kind) for media_kind in kind.media_kinds
        ],
        "jobs": [job_context(job, can_write=can_write) for job in visit.visit_key.jobs.all()],
        "can_write": can_write,
        **extra,
    }


def render_visit(
    request: HttpRequest,
    visit,
    *,
    status: int = 200,
    forms: dict | None = None,
    analysis_error: str = "",
    **context,
) -> HttpResponse:
    """The visit's card for htmx to swap in; without htmx, back to the subject's page with the
    errors (of the upload `forms`, or why no analysis) as messages."""
    if not is_htmx(request):
        subject = subject_of(visit)
        upload_errors = [
            error
            for form in (forms or {}).values()
            for errors in form.errors.values()
            for error in errors
        ]
        for error in filter(None, [*upload_errors, analysis_error]):
            messages.error(request, error)
        return redirect(subject_url(subject))
    [shown] = selectors.visits_shown([selectors.visit_with_history(visit)])
    card = visit_context(
        shown, can_write=True, forms=forms, analysis_error=analysis_error, **context
    )
    return render(request, "dashboards/parts/visit.html", {"v": card}, status=status)


@login_required
@require_POST
def upload(request: HttpRequest, visit_kind: str, pk: int, kind: str) -> HttpResponse:
    visit = _visit_or_404(request, visit_kind, pk)
    require(request, Capability.WRITE, organization_of(visit))
    if kind not in MediaKind.values:
        raise Http404
    form = UploadForm(request.POST, request.FILES, kind=kind)
    if form.is_valid():
        file = form.cleaned_data["file"]
        try:
            if kind == MediaKind.DICOM and is_zip(file):
                add_dicom_series(encounter=visit, archive=file, uploaded_by=request.user)
            else:
                add_media(
                    attached_to=visit,
                    kind=kind,
                    file=file,
                    filename=file.name,
                    declared_content_type=file.content_type or "",
                    uploaded_by=request.user,
                )
        except UploadRejected as rejection:
            form.add_error("file", sentence(str(rejection)))
            form.technical_detail = rejection.technical_detail
    if form.errors:
        return render_visit(
            request,
            visit,
            status=422,
            forms={MediaKind(kind): form},
        )
    return render_visit(request, visit, uploaded=MediaKind(kind).label)


@login_required
@require_POST
def analyse(request: HttpRequest, visit_kind: str, pk: int) -> HttpResponse:
    visit = _visit_or_404(request, visit_kind, pk)
    require(request, Capability.WRITE, organization_of(visit))
    try:
        request_analysis(attached_to=visit, task=JobTask.ALL, requested_by=request.user)
    except Refused as refusal:
        return render_visit(
            request,
            visit,
            status=422,
            analysis_error=sentence(str(refusal)),
        )
    return render_visit(request, visit)


@login_required
@require_POST
def retry(request: HttpRequest, pk) -> HttpResponse:
    job = visible_or_404(AnalysisJob, request, pk)
    require(request, Capability.WRITE, job.organization)
    visit = visit_of(job)
    try:
        retry_job(job=job, requested_by=request.user)
    except Refused as refusal:
        reason = sentence(str(refusal))
        return render_visit(request, visit, status=422, analysis_error=reason)
    return render_visit(request, visit)
