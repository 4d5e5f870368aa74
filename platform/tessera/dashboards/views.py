"""The pages. Thin: each view finds what it shows through `dashboards.selectors` (scoped by the
permission layer the API uses), asks `accounts.permissions.can` before it writes, and calls the
same services as the API. Parts of a page (a visit, a job, a result) are also answered alone,
for htmx to swap in without a reload."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from analytics.trends import mondays
from mlcore.errors import InputError
from tessera.accounts import two_factor
from tessera.accounts.models import ApiToken, Organization
from tessera.accounts.permissions import (
    Capability,
    can,
    may_promote,
    model_kinds_promotable_by,
    organizations_where,
)
from tessera.accounts.selectors import memberships_of, organization_of
from tessera.accounts.services import issue_api_token, revoke_api_token
from tessera.dashboards import selectors
from tessera.dashboards.access import form_errors, require, visible_or_404
from tessera.dashboards.context_processors import SESSION_ORGANIZATION, current_membership
from tessera.dashboards.forms import (
    CorrectionForm,
    EncounterForm,
    LearningSessionForm,
    PatientFilterForm,
    ReportForm,
    TokenForm,
    UploadForm,
)
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback, JobTask, ModelVersion
from tessera.jobs.selectors import (
    active_model_version,
    model_card,
    model_labels,
    model_versions_for,
)
from tessera.jobs.services import (
    promote_model_version,
    record_feedback,
    request_analysis,
    retry_job,
)
from tessera.jobs.statistics import affect_agreement, affect_by_week
from tessera.records.archives import is_zip
from tessera.records.kinds import (
    CLINIC,
    SCHOOL,
    kind_of,
    kind_with_slug,
    subject_of,
    visit_of,
)
from tessera.records.models import MediaAsset, MediaKind, Patient, Student
from tessera.records.services import (
    add_dicom_series,
    add_media,
    create_encounter,
    create_learning_session,
)
from tessera.records.storage import StoredContentCorrupted
from tessera.records.uploads import UploadRejected
from tessera.refusals import Refused

logger = logging.getLogger(__name__)

SUBJECTS_PER_PAGE = 50
ATTENTION_SHOWN = 20  # the newest concerns; the count says how many more there are


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- dashboards ----------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    current, _ = current_membership(request)
    if current is None:
        return render(request, "dashboards/no_organization.html")
    dashboard = DASHBOARDS[kind_of(current.organization)]
    return dashboard(request, current)


@login_required
@require_POST
def switch_organization(request: HttpRequest) -> HttpResponse:
    chosen = request.POST.get("organization", "")
    if not chosen.isdigit():
        raise Http404
    membership = get_object_or_404(memberships_of(user=request.user), organization_id=chosen)
    request.session[SESSION_ORGANIZATION] = membership.organization_id
    return redirect("home")


def _clinic_dashboard(request: HttpRequest, membership) -> HttpResponse:
    organization = membership.organization
    filters = PatientFilterForm(
        request.GET or None, cohorts=selectors.cohorts_of(organization=organization)
    )
    chosen = filters.cleaned_data if filters.is_valid() else {}
    patients = selectors.clinic_patients(
        organization=organization, cohort=chosen.get("cohort"), status=chosen.get("status", "")
    )
    page = selectors.page_of(patients, number=request.GET.get("page"), per_page=SUBJECTS_PER_PAGE)
    rows = selectors.patient_rows(list(page))
    return render(
        request,
        "dashboards/clinic.html",
        {
            "organization": organization,
            "filters": filters,
            "page": page,
            "rows": rows,
            "counts": selectors.job_counts(organization=organization),
            "query": _query_without_page(request),
        },
    )


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _school_dashboard(request: HttpRequest, membership) -> HttpResponse:
    organization = membership.organization
    labels = _affect_labels(organization)
    weeks = affect_by_week(
        results=selectors.school_results(organization=organization),
        labels=labels,
        weeks=mondays(weeks=8, until=timezone.localdate()),
    )
    attention_count, attention = selectors.students_needing_attention(
        organization=organization, limit=ATTENTION_SHOWN
    )
    page = selectors.page_of(
        selectors.students_of(organization=organization),
        number=request.GET.get("page"),
        per_page=SUBJECTS_PER_PAGE,
    )
    suggestions = selectors.latest_suggestions(organization=organization)
    return render(
        request,
        "dashboards/school.html",
        {
            "organization": organization,
            "chart": _stacked_bars(weeks, labels),
            "weeks": weeks,
            "labels": labels,
            "attention": attention,
            "attention_count": attention_count,
            "suggestions": suggestions,
            "students": page,
        },
    )


DASHBOARDS = {CLINIC: _clinic_dashboard, SCHOOL: _school_dashboard}


def _affect_labels(organization: Organization) -> list[str]:
    """The affect labels of the model serving the organization (none when its bundle is not
    on this host: the charts then show no rows)."""
    version = active_model_version(serves=organization.kind)
    if version is None:
        return []
    try:
        return model_labels(version=version)[1]
    except OSError:
        return []


# Colours a reader with red-green colour blindness can still tell apart (Okabe and Ito).
CHART_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def _stacked_bars(weeks, labels: list[str], *, height: int = 160, bar: int = 36) -> dict:
    """Geometry of an SVG stacked bar chart (one bar per week, one segment per label); the
    template draws it, so the chart needs no script and no external library."""
    tallest = max((week.total for week in weeks), default=0) or 1
    bars = []
    for index, week in enumerate(weeks):
        top = height
        segments = []
        for colour, (label, count) in zip(CHART_COLOURS, week.counts.items(), strict=False):
            size = round(height * count / tallest)
            top -= size
            if count:
                segments.append(
                    {"label": label, "count": count, "y": top, "height": size, "colour": colour}
                )
        bars.append({"x": 40 + index * (bar + 16), "week": week, "segments": segments})
    return {
        "bars": bars,
        "width": 40 + len(weeks) * (bar + 16),
        "height": height,
        "bar": bar,
        "empty": not any(week.total for week in weeks),
        "legend": list(zip(labels, CHART_COLOURS, strict=False)),
    }


# --- a patient's or a student's page -------------------------------------------------------


@login_required
@require_GET
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.shown(Patient.objects.all(), user=request.user, pk=pk)
    return _subject_page(request, patient, new_visit=EncounterForm())


@login_required
@require_GET
def student_detail(request: HttpRequest, pk: int) -> HttpResponse:
    student = selectors.shown(Student.objects.all(), user=request.user, pk=pk)
    labels = _affect_labels(student.organization)
    return _subject_page(
        request,
        student,
        new_visit=LearningSessionForm(),
        affect_timeline=_affect_timeline(selectors.affect_over_time(student=student), labels),
    )


def _subject_page(request: HttpRequest, subject, *, new_visit, **extra) -> HttpResponse:
    """A patient's or a student's page (`subject` read by `selectors.shown`): who they are,
    their visits, reports and requests."""
    kind = kind_of(subject)
    cards = selectors.visits_shown(list(selectors.visits_of(subject=subject)))
    can_write = can(
        user=request.user, capability=Capability.WRITE, organization=subject.organization
    )
    shown = [_visit_context(card, can_write=can_write) for card in cards]
    return render(
        request,
        "dashboards/subject.html",
        {
            "subject": subject,
            "kind": kind,
            "identifier": kind.identifier_of(subject),
            "visits": shown,
            "new_visit": new_visit,
            "report_form": ReportForm(),
            "can_write": can_write,
            "can_answer_requests": can(
                user=request.user,
                capability=Capability.EXPORT_SUBJECT,
                organization=subject.organization,
            ),
            **extra,
        },
    )


def _affect_timeline(results: list[AnalysisResult], labels: list[str]) -> dict:
    """Geometry of an SVG dot chart: one dot per analysis, its row the suggested affect."""
    step = 48
    points = [
        {
            "x": 120 + index * step,
            "y": 20 + labels.index(result.emotion_label) * 28,
            "label": result.emotion_label,
            "when": result.created_at,
        }
        for index, result in enumerate(results)
        if result.emotion_label in labels
    ]
    return {
        "points": points,
        "rows": [{"label": label, "y": 20 + index * 28} for index, label in enumerate(labels)],
        "width": 140 + max(len(points) - 1, 0) * step,
        "height": 20 + len(labels) * 28,
        "path": " ".join(f"{p['x']},{p['y']}" for p in points),
    }


@login_required
@require_POST
def new_encounter(request: HttpRequest, pk: int) -> HttpResponse:
    patient = visible_or_404(Patient, request, pk)
    return _add_visit(
        request,
        patient,
        EncounterForm(request.POST),
        lambda fields: create_encounter(patient=patient, clinician=request.user, **fields),
        done="Encounter added: upload what you observed, then analyse.",
    )


@login_required
@require_POST
def new_learning_session(request: HttpRequest, pk: int) -> HttpResponse:
    student = visible_or_404(Student, request, pk)
    return _add_visit(
        request,
        student,
        LearningSessionForm(request.POST),
        lambda fields: create_learning_session(student=student, teacher=request.user, **fields),
        done="Session added: upload the student's work, then analyse.",
    )


def _add_visit(request: HttpRequest, subject, form, create, *, done: str) -> HttpResponse:
    require(request, Capability.WRITE, subject.organization)
    if form.is_valid():
        create(form.cleaned_data)
        messages.success(request, done)
    else:
        messages.error(request, form_errors(form))
    return redirect(subject_url(subject))


def _visit_or_404(request: HttpRequest, visit_kind: str, pk: int):
    kind = kind_with_slug(visit_kind)
    if kind is None:
        raise Http404
    return visible_or_404(kind.visit_model, request, pk)


def _visit_context(
    card: selectors.VisitShown, *, can_write: bool, forms: dict | None = None, **extra
) -> dict:
    visit, texts = card.visit, card.texts
    kind = kind_of(visit)
    forms = forms or {}
    media = list(visit.media.all())
    return {
        "visit": visit,
        "visit_kind": kind.visit_slug,
        "media": [{"asset": asset, "text": texts.get(asset.pk)} for asset in media],
        "upload_forms": [
            forms.get(media_kind) or UploadForm(kind=media_kind) for media_kind in kind.media_kinds
        ],
        "jobs": [_job_context(job, can_write=can_write) for job in visit.jobs.all()],
        "can_write": can_write,
        **extra,
    }


def _render_visit(
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
    if not _is_htmx(request):
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
    card = _visit_context(
        shown, can_write=True, forms=forms, analysis_error=analysis_error, **context
    )
    return render(request, "dashboards/parts/visit.html", {"v": card}, status=status)


def subject_url(subject) -> str:
    return reverse(kind_of(subject).subject_page, args=[subject.pk])


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
            form.add_error("file", _sentence(str(rejection)))
            form.technical_detail = rejection.technical_detail
    if form.errors:
        return _render_visit(
            request,
            visit,
            status=422,
            forms={MediaKind(kind): form},
        )
    return _render_visit(request, visit, uploaded=MediaKind(kind).label)


def _sentence(message: str) -> str:
    message = message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


@login_required
@require_POST
def analyse(request: HttpRequest, visit_kind: str, pk: int) -> HttpResponse:
    visit = _visit_or_404(request, visit_kind, pk)
    require(request, Capability.WRITE, organization_of(visit))
    try:
        request_analysis(attached_to=visit, task=JobTask.ALL, requested_by=request.user)
    except Refused as refusal:
        return _render_visit(
            request,
            visit,
            status=422,
            analysis_error=_sentence(str(refusal)),
        )
    return _render_visit(request, visit)


# --- jobs and results ----------------------------------------------------------------------


def _job_context(job: AnalysisJob, *, can_write: bool) -> dict:
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
        "correction": _correction_form(result),
        "image": image if result.explanation else None,
        # The model drew no heatmap for findings on an image: its heatmaps failed, or never had,
        # the pointing game (mlcore.pointing).
        "heatmap_withheld": bool(image and result.diagnosis and not result.explanation),
        **extra,
    }


def _suggestions_with_verdicts(result: AnalysisResult, feedback: list[Feedback]) -> list[dict]:
    """The result's tutoring suggestions, each with the verdict already given on it, if any."""
    verdicts = {
        item.intervention: item.get_kind_display() for item in feedback if item.intervention
    }
    return [
        {**suggestion, "verdict": verdicts.get(suggestion["id"])} for suggestion in result.tutoring
    ]


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


def _visible_job(request: HttpRequest, pk) -> AnalysisJob:
    jobs = AnalysisJob.objects.select_related("model_version", "organization").prefetch_related(
        "media", "results__model_version", "results__feedback__given_by"
    )
    return get_object_or_404(selectors.visible(jobs, user=request.user), pk=pk)


@login_required
@require_GET
def job_status(request: HttpRequest, pk) -> HttpResponse:
    """The job's card: progress while it runs (the card asks again each second), the result
    when it is done."""
    job = selectors.job_shown(user=request.user, pk=pk)
    can_write = can(user=request.user, capability=Capability.WRITE, organization=job.organization)
    card = _job_context(job, can_write=can_write)
    return render(request, "dashboards/parts/job.html", {"j": card})


@login_required
@require_POST
def retry(request: HttpRequest, pk) -> HttpResponse:
    job = _visible_job(request, pk)
    require(request, Capability.WRITE, job.organization)
    visit = visit_of(job)
    try:
        retry_job(job=job, requested_by=request.user)
    except Refused as refusal:
        reason = _sentence(str(refusal))
        return _render_visit(request, visit, status=422, analysis_error=reason)
    return _render_visit(request, visit)


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
            error = _sentence(str(refusal))
    if not _is_htmx(request):
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


# --- files and pictures --------------------------------------------------------------------


def _visible_media(request: HttpRequest, pk: int) -> MediaAsset:
    return visible_or_404(MediaAsset, request, pk)


@login_required
@require_GET
def media_file(request: HttpRequest, pk: int) -> FileResponse:
    """The uploaded file, to whoever may read its organization's records; audio and text play
    or show in the page, DICOM downloads."""
    asset = _visible_media(request, pk)
    try:
        content = selectors.media_opened(asset)
    except StoredContentCorrupted:
        return _damaged(asset)
    return FileResponse(
        content,
        as_attachment=asset.kind == MediaKind.DICOM,
        filename=asset.original_filename or f"{asset.kind}-{asset.pk}",
        content_type=asset.content_type,
    )


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def media_preview(request: HttpRequest, pk: int) -> HttpResponse:
    asset = _visible_media(request, pk)
    if asset.kind != MediaKind.DICOM:
        raise Http404
    try:
        picture = selectors.dicom_preview(asset)
    except StoredContentCorrupted:
        return _damaged(asset)
    except InputError as error:
        return HttpResponse(
            f"This image cannot be shown: {error}", status=422, content_type="text/plain"
        )
    return HttpResponse(picture, content_type="image/png")


def _damaged(asset: MediaAsset) -> HttpResponse:
    logger.error("stored media %s failed its integrity check", asset.pk)
    return HttpResponse(
        "This file is damaged: its content no longer matches the checksum taken at upload. "
        "It was not sent. Please tell your administrator.",
        status=500,
        content_type="text/plain",
    )


@login_required
@require_GET
@cache_control(private=True, max_age=3600)
def result_heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    result = visible_or_404(AnalysisResult, request, pk)
    if not result.explanation.get("heatmap"):
        raise Http404
    return HttpResponse(selectors.heatmap_shown(result), content_type="image/png")


# --- settings and models -------------------------------------------------------------------


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _, new_key = issue_api_token(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    return render(
        request,
        "dashboards/settings.html",
        {
            "form": form,
            "new_key": new_key,
            "tokens": ApiToken.objects.filter(user=request.user),
            "memberships": memberships_of(user=request.user).order_by("organization__name"),
            "two_factor": two_factor.standing(request.user),
        },
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    revoke_api_token(token=token)
    messages.success(request, f"Token “{token.name}” revoked: it no longer opens the API.")
    return redirect("settings")


@login_required
@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    """Every member reads the models that answer them; admins promote."""
    versions = list(model_versions_for(user=request.user).order_by("serves", "-created_at"))
    organizations = organizations_where(user=request.user, capability=Capability.READ)
    for version in versions:
        version.card = model_card(version=version)
        version.metric_tables = _metric_tables(version.metrics)
        version.agreement = _agreement(version, organizations)
    return render(
        request,
        "dashboards/models.html",
        {"versions": versions, "promotable": model_kinds_promotable_by(user=request.user)},
    )


def _agreement(version: ModelVersion, organizations) -> dict | None:
    """How the version's affect suggestions fared with the professionals of `organizations`;
    None before anyone confirmed or corrected one."""
    try:
        _, labels = model_labels(version=version)
    except OSError:  # the bundle is not on this host: nothing to name the labels by
        return None
    matrix, metrics, share_right = affect_agreement(
        version=version, organizations=organizations, labels=labels
    )
    if share_right is None:
        return None
    return {
        "accuracy": share_right,
        "verdicts": sum(map(sum, matrix)),
        "labels": labels,
        "rows": list(zip(labels, matrix, metrics, strict=True)),
    }


def _metric_tables(metrics: dict) -> list[dict]:
    """One table per task of `mlcore.evaluate`'s metrics: affect, and each finding."""
    tasks = []
    if "emotion" in metrics:
        tasks.append(("Affect", metrics["emotion"]))
    for finding, values in metrics.get("diagnosis", {}).get("per_label", {}).items():
        tasks.append((f"Finding: {finding.replace('_', ' ')}", values))
    return [
        {
            "title": title,
            "metrics": values,
            "rows": list(zip(values["labels"], values["confusion_matrix"], strict=True)),
        }
        for title, values in tasks
        if "confusion_matrix" in values
    ]


@login_required
@require_POST
def promote(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(model_versions_for(user=request.user), pk=pk)
    if not may_promote(user=request.user, serves=version.serves):
        raise PermissionDenied("Only organization admins promote models.")
    try:
        promote_model_version(version=version, promoted_by=request.user)
    except Refused as refusal:
        messages.error(request, f"{version.name}: {_sentence(str(refusal))}")
    else:
        messages.success(
            request, f"{version.name} now serves every {version.get_serves_display().lower()}."
        )
    return redirect("models")
