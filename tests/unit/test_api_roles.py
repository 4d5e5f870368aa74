"""Every endpoint walked by every role of a clinic, by a clinician of another clinic and by a
teacher of a school: who gets 2xx, who 403 (a member whose role may not), who 404 (an object of
an organization they do not belong to), and who 400 (a create that names such an object)."""

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from tessera.accounts.models import Membership, Role
from tessera.jobs.models import AnalysisJob, AnalysisResult, JobStatus, ModelVersion
from tessera.jobs.services import promote_model_version, register_model_version
from tessera.records.models import MediaKind
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.storage import content_store
from tessera.reports.models import Report, ReportStatus
from tessera.tutoring.services import library_in_effect
from tessera.webhooks.models import WebhookDelivery, WebhookSubscription
from tessera.webhooks.services import create_subscription, send_ping
from tests.conftest import slice_bytes, upload
from tests.unit.api import client_for
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db
CLINIC_ROLES = ["admin", "clinician", "analyst", "viewer"]
OUTSIDERS = ["stranger", "teacher"]
SERIES_SLICE = slice_bytes(1)


def allowed(*, who: list[str], ok: int, denied: int, outsider: int) -> dict[str, int]:
    """`who` get `ok`; the clinic's other roles get `denied`; outsiders `outsider`."""
    expected = {role: ok if role in who else denied for role in CLINIC_ROLES}
    return expected | dict.fromkeys(OUTSIDERS, outsider)


def read() -> dict[str, int]:
    return allowed(who=CLINIC_ROLES, ok=200, denied=200, outsider=404)


def write(ok: int, *, creates: bool = False) -> dict[str, int]:
    return allowed(who=["admin", "clinician"], ok=ok, denied=403, outsider=400 if creates else 404)


def administer(ok: int, *, creates: bool = False, hidden: bool = False) -> dict[str, int]:
    """Webhooks are `hidden` from non-admins (404); members and models are visible (403)."""
    denied = 404 if hidden else 403
    return allowed(who=["admin"], ok=ok, denied=denied, outsider=400 if creates else 404)


@dataclass
class World:
    """One of everything in the clinic, and a student's session in the school."""

    clinic: int
    patient: int
    visit: int
    note: int
    queued_job: str
    failed_job: str
    result: int
    cohort: int
    viewer_membership: int
    version: int
    subscription: int
    delivery: str
    school: int
    student: int
    library: int
    session: int
    report: str


@pytest.fixture
def world(people, clinic, school, make_user) -> World:
    make_user("teacher", organization=school, role=Role.TEACHER)
    make_user("newcomer")
    patient = create_patient(organization=clinic, mrn="R-1", full_name="Role Patient")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Cough."))
    version = promote_model_version(
        version=register_model_version(name="c", serves="clinic", bundle_path="c", metrics={}),
        promoted_by=None,
    )

    def job(status: str) -> AnalysisJob:
        made = AnalysisJob.objects.create(
            organization=clinic,
            visit_key=visit.visit_key,
            task="all",
            model_version=version,
            status=status,
        )
        made.media.set([note])
        return made

    done = job(JobStatus.SUCCEEDED)
    result = AnalysisResult.objects.create(
        job=done, model_version=version, uncertainty=0.1, abstain=False
    )
    subscription = create_subscription(
        organization=clinic, url="https://his.example.org/", events=["job.failed"], created_by=None
    )
    student = create_student(organization=school, student_number="S-1", full_name="Role Student")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="maths")
    report = Report.objects.create(
        organization=clinic,
        kind="patient",
        subject_key=patient.subject_key,
        period_end=WHEN.date(),
        status=ReportStatus.READY,
        file_path=stored_pdf(b"%PDF-1.4 a report"),
    )
    return World(
        clinic=clinic.pk,
        patient=patient.pk,
        visit=visit.pk,
        note=note.pk,
        queued_job=str(job(JobStatus.QUEUED).pk),
        failed_job=str(job(JobStatus.FAILED).pk),
        result=result.pk,
        cohort=clinic.cohorts.create(name="Ward 1").pk,
        viewer_membership=Membership.objects.get(user=people["viewer"]).pk,
        version=version.pk,
        subscription=subscription.pk,
        delivery=str(send_ping(subscription=subscription).pk),
        school=school.pk,
        student=student.pk,
        library=library_in_effect(organization=school).pk,
        session=session.pk,
        report=str(report.pk),
    )


def note_upload(world: World) -> dict:
    return {
        "kind": MediaKind.CLINICAL_NOTE,
        "encounter": world.visit,
        "file": SimpleUploadedFile("n.txt", b"Fever since Monday.", content_type="text/plain"),
    }


def series_upload(world: World) -> dict:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("slice-1.dcm", SERIES_SLICE)
    return {
        "encounter": world.visit,
        "file": SimpleUploadedFile("s.zip", archive.getvalue(), content_type="application/zip"),
    }


# (method, path, body from the world, expected status by role)
ENDPOINTS = [
    ("get", "/api/v1/organizations/{clinic}/", None, read()),
    ("get", "/api/v1/organizations/{clinic}/members/", None, read()),
    ("get", "/api/v1/members/{viewer_membership}/", None, read()),
    (
        "post",
        "/api/v1/members/",
        lambda w: {"organization": w.clinic, "username": "newcomer", "role": "viewer"},
        administer(201, creates=True),
    ),
    (
        "patch",
        "/api/v1/members/{viewer_membership}/",
        lambda w: {"role": "analyst"},
        administer(200),
    ),
    ("delete", "/api/v1/members/{viewer_membership}/", None, administer(204)),
    ("get", "/api/v1/cohorts/{cohort}/", None, read()),
    (
        "post",
        "/api/v1/cohorts/",
        lambda w: {"organization": w.clinic, "name": "Ward 2"},
        write(201, creates=True),
    ),
    ("patch", "/api/v1/cohorts/{cohort}/", lambda w: {"description": "east wing"}, write(200)),
    ("get", "/api/v1/patients/{patient}/", None, read()),
    (
        "post",
        "/api/v1/patients/",
        lambda w: {"organization": w.clinic, "mrn": "R-2", "full_name": "New Patient"},
        write(201, creates=True),
    ),
    ("patch", "/api/v1/patients/{patient}/", lambda w: {"full_name": "Renamed"}, write(200)),
    ("get", "/api/v1/encounters/{visit}/", None, read()),
    (
        "post",
        "/api/v1/encounters/",
        lambda w: {"patient": w.patient, "occurred_at": WHEN.isoformat()},
        write(201, creates=True),
    ),
    ("patch", "/api/v1/encounters/{visit}/", lambda w: {"reason": "follow-up"}, write(200)),
    ("get", "/api/v1/media/{note}/", None, read()),
    ("get", "/api/v1/media/{note}/download/", None, read()),
    ("get", "/api/v1/media/{note}/original/", None, administer(404)),  # none kept for a note
    ("get", "/api/v1/media/{note}/origin/", None, administer(404)),  # a note has no PACS origin
    # FHIR, beside the REST API: the same scoping
    ("get", "/fhir/DiagnosticReport/{result}", None, read()),
    ("get", "/fhir/Patient/{patient}", None, read()),
    ("post", "/api/v1/media/", note_upload, write(201, creates=True)),
    ("post", "/api/v1/media/series/", series_upload, write(201, creates=True)),
    ("get", "/api/v1/jobs/{queued_job}/", None, read()),
    (
        "post",
        "/api/v1/jobs/",
        lambda w: {"encounter": w.visit, "task": "diagnosis"},
        write(202, creates=True),
    ),
    ("post", "/api/v1/jobs/{queued_job}/cancel/", None, write(200)),
    ("post", "/api/v1/jobs/{failed_job}/retry/", None, write(202)),
    ("get", "/api/v1/results/{result}/", None, read()),
    ("post", "/api/v1/patients/{patient}/reports/", lambda w: {}, write(202)),
    ("get", "/api/v1/patients/{patient}/export/", None, administer(200)),
    ("post", "/api/v1/patients/{patient}/erase/", lambda w: {"confirm": "R-1"}, administer(200)),
    ("post", "/api/v1/cohorts/{cohort}/reports/", lambda w: {}, write(202)),
    ("post", "/api/v1/organizations/{clinic}/reports/", lambda w: {}, write(202)),
    ("get", "/api/v1/reports/{report}/", None, read()),
    ("get", "/api/v1/reports/{report}/download/", None, read()),
    ("post", "/api/v1/results/{result}/feedback/", lambda w: {"kind": "confirm"}, write(201)),
    # A model version serves every clinic: another clinic's members see it, and may not promote.
    ("get", "/api/v1/model-versions/{version}/", None, read() | {"stranger": 200}),
    (
        "post",
        "/api/v1/model-versions/{version}/promote/",
        None,
        administer(200) | {"stranger": 403},
    ),
    ("get", "/api/v1/webhooks/{subscription}/", None, administer(200, hidden=True)),
    (
        "post",
        "/api/v1/webhooks/",
        lambda w: {"organization": w.clinic, "url": "https://x.example/", "events": ["job.failed"]},
        administer(201, creates=True),
    ),
    (
        "patch",
        "/api/v1/webhooks/{subscription}/",
        lambda w: {"is_active": False},
        administer(200, hidden=True),
    ),
    ("post", "/api/v1/webhooks/{subscription}/ping/", None, administer(202, hidden=True)),
    ("post", "/api/v1/webhooks/{subscription}/rotate-secret/", None, administer(200, hidden=True)),
    ("delete", "/api/v1/webhooks/{subscription}/", None, administer(204, hidden=True)),
    ("get", "/api/v1/webhook-deliveries/{delivery}/", None, administer(200, hidden=True)),
]

# A school's records: its teacher reads and writes them; nobody of a clinic sees them.
SCHOOL_ENDPOINTS = [
    ("get", "/api/v1/students/{student}/", None, 200, 404),
    (
        "post",
        "/api/v1/students/",
        lambda w: {"organization": w.school, "student_number": "S-2", "full_name": "New"},
        201,
        400,
    ),
    ("patch", "/api/v1/students/{student}/", lambda w: {"grade": "7"}, 200, 404),
    ("patch", "/api/v1/learning-sessions/{session}/", lambda w: {"title": "Fractions"}, 200, 404),
    ("get", "/api/v1/learning-sessions/{session}/", None, 200, 404),
    ("post", "/api/v1/students/{student}/reports/", lambda w: {}, 202, 404),
    ("get", "/api/v1/students/{student}/export/", None, 403, 404),  # the admins' to answer
    ("post", "/api/v1/students/{student}/erase/", lambda w: {"confirm": "S-1"}, 403, 404),
    (
        "post",
        "/api/v1/learning-sessions/",
        lambda w: {"student": w.student, "occurred_at": WHEN.isoformat(), "subject_area": "art"},
        201,
        400,
    ),
    ("get", "/api/v1/library-versions/{library}/", None, 200, 404),
    (
        "post",
        "/api/v1/library-versions/",
        lambda w: {"organization": w.school, "interventions": [{"id": "new", "title": "New"}]},
        201,
        400,
    ),
]


def call(client, method: str, path: str, world: World, body):
    url = path.format(**vars(world))
    data = body(world) if body else None
    if method == "post" and data and "file" in data:
        return getattr(client, method)(url, data, format="multipart")
    return getattr(client, method)(url, data)


@pytest.fixture
def users(people, world):
    return {**people, "teacher": get_user_model().objects.get(username="teacher")}


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    ENDPOINTS,
    ids=[f"{method.upper()} {path}" for method, path, _, _ in ENDPOINTS],
)
@pytest.mark.parametrize("who", CLINIC_ROLES + OUTSIDERS)
def test_clinic_endpoints_by_role(users, world, who, method, path, body, expected):
    response = call(client_for(users[who]), method, path, world, body)
    assert response.status_code == expected[who], response.content[:300]


@pytest.mark.parametrize(
    ("method", "path", "body", "ok", "outsider"),
    SCHOOL_ENDPOINTS,
    ids=[f"{method.upper()} {path}" for method, path, *_ in SCHOOL_ENDPOINTS],
)
@pytest.mark.parametrize("who", ["teacher", "admin", "clinician"])
def test_school_endpoints_by_role(users, world, who, method, path, body, ok, outsider):
    response = call(client_for(users[who]), method, path, world, body)
    assert response.status_code == (ok if who == "teacher" else outsider), response.content[:300]


def test_the_walk_covers_every_operation_of_the_schema(people):
    """A new endpoint must join the walk above (lists are walked in test_api.py)."""
    schema = client_for(people["viewer"]).get("/api/v1/schema/?format=json").json()

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    walked = {(m, shape(p)) for m, p, *_ in ENDPOINTS + SCHOOL_ENDPOINTS}
    lists_and_own = ("/api/v1/tokens/", "/api/v1/schema/")
    missing = []
    for path, operations in schema["paths"].items():
        for method in operations:
            if method == "get" and "{" not in path:
                continue  # a list
            if path.startswith(lists_and_own):
                continue  # your own tokens (test_api_management.py), the schema itself
            if (method, shape(path)) not in walked:
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_outsiders_changed_nothing(users, world):
    for who in OUTSIDERS:
        client = client_for(users[who])
        for method, path, body, _ in ENDPOINTS:
            if method != "get":
                call(client, method, path, world, body)
    assert ModelVersion.objects.get(pk=world.version).promoted_by is None
    assert WebhookSubscription.objects.filter(pk=world.subscription, is_active=True).exists()
    assert WebhookDelivery.objects.count() == 1
    assert AnalysisJob.objects.get(pk=world.queued_job).status == JobStatus.QUEUED
    assert Membership.objects.filter(pk=world.viewer_membership).exists()
    assert Report.objects.count() == 1, "no report asked in an outsider's name"


def stored_pdf(pdf: bytes) -> str:
    """A PDF in the content store, as a rendered report's; returns its file_path."""
    sha256 = hashlib.sha256(pdf).hexdigest()
    content_store().save(io.BytesIO(pdf), sha256=sha256)
    return content_store().relative_path(sha256)
