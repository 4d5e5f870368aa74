"""A patient's or a student's page, and adding a visit to it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from tessera.accounts.permissions import (
    Capability,
    can,
)
from tessera.dashboards import selectors
from tessera.dashboards.access import form_errors, require, visible_or_404
from tessera.dashboards.forms import (
    EncounterForm,
    LearningSessionForm,
    ReportForm,
)
from tessera.dashboards.views.common import subject_url
from tessera.dashboards.views.dashboards import affect_labels
from tessera.dashboards.views.visits import visit_context
from tessera.jobs.models import AnalysisResult
from tessera.records.kinds import kind_of
from tessera.records.models import Patient, Student
from tessera.records.services import (
    create_encounter,
    create_learning_session,
)


@login_required
@require_GET
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.shown(Patient.objects.all(), user=request.user, pk=pk)
    return _subject_page(request, patient, new_visit=EncounterForm())


@login_required
@require_GET
def student_detail(request: HttpRequest, pk: int) -> HttpResponse:
    student = selectors.shown(Student.objects.all(), user=request.user, pk=pk)
    labels = affect_labels(student.organization)
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
    shown = [visit_context(card, can_write=can_write) for card in cards]
    said = request.GET.get("said", "").strip()[:200]
    return render(
        request,
        "dashboards/subject.html",
        {
            "subject": subject,
            "kind": kind,
            "identifier": kind.identifier_of(subject),
            "visits": shown,
            "said": said,
            "said_matches": selectors.said_matching(cards, query=said),
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
