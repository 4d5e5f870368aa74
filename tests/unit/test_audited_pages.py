"""Audited reads by construction: every page that shows a person, a note or a result leaves an
access-log row for each one it shows. The reads the pages use log it (dashboards.selectors), so
the test looks at what each page shows — a person's name, a note's words, a result's card, a
file — and finds its row among those the request wrote."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import AnalysisJob, AnalysisResult, JobStatus
from tessera.jobs.services import promote_model_version, register_model_version
from tessera.records.kinds import subject_of, visit_fields, visit_of
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.reports.models import Report
from tests.conftest import upload
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
VIEWS = Path(__file__).resolve().parents[2] / "platform" / "tessera" / "dashboards" / "views"


@dataclass
class World:
    people: list  # every patient and student
    notes: list[MediaAsset]
    results: list[AnalysisResult]
    image: MediaAsset
    patient: object
    student: object
    job: AnalysisJob


def _result(visit, **fields) -> AnalysisResult:
    organization = subject_of(visit).organization
    job = AnalysisJob.objects.create(
        organization=organization,
        task="all",
        status=JobStatus.SUCCEEDED,
        model_version=promote_model_version(
            version=register_model_version(
                name=f"{organization.kind}-{AnalysisJob.objects.count()}",
                serves=organization.kind,
                bundle_path="none",
                metrics={},
            ),
            promoted_by=None,
        ),
        **visit_fields(visit),
    )
    job.media.set(visit.media.all())
    result = AnalysisResult.objects.create(
        job=job,
        model_version=job.model_version,
        modalities_used=["text"],
        uncertainty=0.2,
        abstain=False,
        **fields,
    )
    refresh_latest_analysis(subject=subject_of(visit))
    return result


@pytest.fixture
def world(clinic, school, dicom_bytes) -> World:
    patient = create_patient(organization=clinic, mrn="A-1", full_name="Audrey Audited")
    encounter = create_encounter(patient=patient, occurred_at=WHEN, reason="check-up")
    clinic_note = add_media(
        attached_to=encounter,
        kind=MediaKind.CLINICAL_NOTE,
        file=upload(b"Chest pain since Tuesday."),
    )
    image = add_media(attached_to=encounter, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    clinic_result = _result(
        encounter,
        diagnosis={"suspicious_mass": 0.7},
        findings=["suspicious_mass"],
        urgency=0.7,
        explanation={"method": "grad-cam", "heatmap": [[0.0, 1.0]]},
    )
    student = create_student(organization=school, student_number="S-9", full_name="Sam Shown")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="maths")
    learner_text = add_media(
        attached_to=session,
        kind=MediaKind.LEARNER_TEXT,
        file=upload(b"I felt lost in fractions today."),
    )
    suggestion = [
        {
            "rank": 1,
            "id": "worked-example",
            "title": "A worked example",
            "description": "",
            "matches": ["confused"],
            "reason": "matches: confused",
            "basis": "tags",
        }
    ]
    school_results = [
        _result(session, emotion={"confused": 0.9}, emotion_label="confused", tutoring=suggestion)
        for _ in range(2)  # two concerning analyses: the student needs attention
    ]
    Report.objects.create(
        organization=clinic, kind="patient", subject_key=patient.subject_key, period_end=WHEN.date()
    )
    return World(
        people=[patient, student],
        notes=[clinic_note, learner_text],
        results=[clinic_result, *school_results],
        image=image,
        patient=patient,
        student=student,
        job=clinic_result.job,
    )


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _logged(rows, obj) -> bool:
    kind = type(obj).AUDIT_TYPE
    return any(
        (row.object_type, row.object_id) == (kind, str(obj.pk)) or row.subject == f"{kind}:{obj.pk}"
        for row in rows
    )


def _pages(world: World, clinician, teacher) -> list[tuple[Client, str, dict]]:
    """(who, how, what): every page and part of a page that shows a person's data."""
    clinic, school = _signed_in(clinician), _signed_in(teacher)
    note_upload = reverse(
        "upload", args=["encounter", visit_of(world.notes[0]).pk, "clinical_note"]
    )
    return [
        (clinic, "get", {"path": reverse("home")}),
        (clinic, "get", {"path": reverse("patient", args=[world.patient.pk])}),
        (clinic, "get", {"path": reverse("job_status", args=[world.job.pk])}),
        (clinic, "get", {"path": reverse("reports")}),
        (clinic, "get", {"path": reverse("report_rows")}),
        (
            clinic,
            "post",
            {
                "path": note_upload,
                "data": {
                    "file": SimpleUploadedFile("note.txt", b"Follow-up: calmer.", "text/plain")
                },
                **HTMX,
            },
        ),
        (
            clinic,
            "post",
            {
                "path": reverse("feedback", args=[world.results[0].pk]),
                "data": {"kind": "confirm"},
                **HTMX,
            },
        ),
        (school, "get", {"path": reverse("home")}),
        (school, "get", {"path": reverse("student", args=[world.student.pk])}),
    ]


def test_every_page_logs_each_person_note_and_result_it_shows(world, make_user, clinic, school):
    clinician = make_user("audited-clinician", organization=clinic, role=Role.CLINICIAN)
    teacher = make_user("audited-teacher", organization=school, role=Role.TEACHER)
    for client, method, request in _pages(world, clinician, teacher):
        before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        response = getattr(client, method)(**request)
        assert response.status_code == 200, request["path"]
        html = response.content.decode()
        rows = list(AuditEvent.objects.filter(pk__gt=before))
        shown = [person for person in world.people if person.full_name in html]
        shown += [note for note in world.notes if _text(note) in html]
        shown += [result for result in world.results if f'id="result-{result.pk}"' in html]
        assert shown, f"{request['path']} shows none of the records it is walked for"
        missing = [f"{type(obj).AUDIT_TYPE} {obj.pk}" for obj in shown if not _logged(rows, obj)]
        assert missing == [], request["path"]


def _text(note: MediaAsset) -> str:
    from tessera.records.storage import content_store

    return content_store().read_media(note).decode()


def test_files_previews_and_heatmaps_are_logged_when_fetched(world, make_user, clinic):
    browser = _signed_in(make_user("fetcher", organization=clinic, role=Role.VIEWER))
    fetched = [
        (reverse("media_file", args=[world.notes[0].pk]), world.notes[0], "download"),
        (reverse("media_preview", args=[world.image.pk]), world.image, "view"),
        (reverse("result_heatmap", args=[world.results[0].pk]), world.results[0], "view"),
    ]
    for path, obj, action in fetched:
        before = AuditEvent.objects.count()
        response = browser.get(path)
        assert response.status_code == 200, path
        logged = AuditEvent.objects.order_by("pk")[before:]
        assert [(e.object_type, e.object_id, e.action) for e in logged] == [
            (type(obj).AUDIT_TYPE, str(obj.pk), action)
        ]


def test_the_page_views_call_no_audit_function():
    """The reads log; a view that logged by hand would be one that could forget."""
    modules = sorted(VIEWS.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        assert "audit.record" not in module.read_text(), module.name
