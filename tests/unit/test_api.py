"""The REST API attacked from every side: each role of two organizations on each endpoint,
ids from another organization, mass assignment, bad uploads, and the shape of every error."""

import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tessera.accounts.models import Role
from tessera.accounts.services import issue_api_token, revoke_api_token
from tessera.jobs.models import AnalysisJob
from tessera.jobs.services import promote_model_version, register_model_version
from tessera.records.models import Cohort, Encounter, MediaAsset, MediaKind, Patient
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.webhooks.services import create_subscription, send_ping
from tests.conftest import stored_files, upload
from tests.unit.api import assert_problem, client_for
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(clinic):
    return create_patient(organization=clinic, mrn="A-1", full_name="Ada Patient")


def test_without_a_valid_token_nothing_is_served(people, patient):
    assert_problem(client_for(None).get("/api/v1/patients/"), 401, "not_authenticated")
    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer tsr_made-up")
    body = assert_problem(anonymous.get("/api/v1/patients/"), 401, "authentication_failed")
    assert "unknown, revoked" in body["detail"]
    token, key = issue_api_token(user=people["clinician"], name="bridge")
    for scheme in ("Token", "Bearer"):
        anonymous.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
        assert anonymous.get("/api/v1/patients/").status_code == 200
    revoke_api_token(token=token)
    assert anonymous.get("/api/v1/patients/").status_code == 401


@pytest.mark.parametrize(
    ("who", "list_count", "read", "create", "update"),
    [
        ("admin", 1, 200, 201, 200),
        ("clinician", 1, 200, 201, 200),
        ("analyst", 1, 200, 403, 403),
        ("viewer", 1, 200, 403, 403),
        ("stranger", 0, 404, 400, 404),
    ],
)
def test_patients_by_role(people, clinic, patient, who, list_count, read, create, update):
    client = client_for(people[who])
    listed = client.get("/api/v1/patients/")
    assert listed.status_code == 200
    assert len(listed.json()["results"]) == list_count
    assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == read
    created = client.post(
        "/api/v1/patients/",
        {"organization": clinic.pk, "mrn": f"N-{who}", "full_name": "New Patient"},
    )
    assert created.status_code == create, created.content
    updated = client.patch(f"/api/v1/patients/{patient.pk}/", {"full_name": "Ada Renamed"})
    assert updated.status_code == update
    if create != 201:
        assert not Patient.objects.filter(mrn=f"N-{who}").exists()
    if read == 404:
        assert "Ada" not in client.get(f"/api/v1/patients/{patient.pk}/").content.decode()


def test_another_organizations_ids_are_refused_as_unknown(people, patient, other_clinic):
    theirs = create_patient(organization=other_clinic, mrn="O-1", full_name="Other Patient")
    client = client_for(people["clinician"])
    response = client.post(
        "/api/v1/encounters/", {"patient": theirs.pk, "occurred_at": WHEN.isoformat()}
    )
    body = assert_problem(response, 400, "validation")
    assert body["errors"]["patient"] == [
        f"no patient with id {theirs.pk} among the records you can see"
    ]
    assert not Encounter.objects.exists()
    moved = client.patch(f"/api/v1/patients/{patient.pk}/", {"organization": other_clinic.pk})
    assert_problem(moved, 400, "validation")
    patient.refresh_from_db()
    assert patient.organization_id != other_clinic.pk


def test_writable_fields_are_only_those_listed(people, clinic):
    client = client_for(people["clinician"])
    response = client.post(
        "/api/v1/patients/",
        {
            "organization": clinic.pk,
            "mrn": "M-1",
            "full_name": "Mass Assignment",
            "pseudonym": "00000000-0000-0000-0000-000000000000",
            "id": 999,
        },
    )
    assert response.status_code == 201
    created = Patient.objects.get(mrn="M-1")
    assert created.pk != 999
    assert str(created.pseudonym) != "00000000-0000-0000-0000-000000000000"
    school_patient = client.post(
        "/api/v1/students/",
        {"organization": clinic.pk, "student_number": "S-1", "full_name": "Wrong Place"},
    )
    assert "students belong to schools" in assert_problem(school_patient, 400)["detail"]


def test_a_duplicate_mrn_is_a_clear_validation_problem(people, clinic, patient):
    response = client_for(people["clinician"]).post(
        "/api/v1/patients/", {"organization": clinic.pk, "mrn": "A-1", "full_name": "Twin"}
    )
    body = assert_problem(response, 400, "validation")
    assert "already exists" in body["detail"]


@pytest.fixture
def visit(patient):
    return create_encounter(patient=patient, occurred_at=WHEN)


@pytest.mark.parametrize(
    ("name", "content", "kind", "content_type", "status", "code"),
    [
        ("scan.dcm", b"DICM but not really", "dicom", "application/dicom", 400, "not_dicom"),
        ("note.txt", b"", "clinical_note", "text/plain", 400, "empty"),
        ("voice.wav", b"RIFF\x10\x00\x00\x00WAVEfmt ", "speech", "audio/wav", 400, None),
        ("note.txt", b"Cough for a week.", "clinical_note", "image/png", 415, "content_type"),
    ],
)
def test_bad_uploads_get_the_validators_message_and_store_nothing(
    people, visit, media_root, name, content, kind, content_type, status, code
):
    part = SimpleUploadedFile(name, content, content_type=content_type)
    response = client_for(people["clinician"]).post(
        "/api/v1/media/", {"kind": kind, "encounter": visit.pk, "file": part}, format="multipart"
    )
    body = assert_problem(response, status, code)
    assert len(body["detail"]) > 10, "a sentence a person understands"
    assert not MediaAsset.objects.exists()
    assert stored_files(media_root) == []


def test_an_oversized_request_is_refused_before_its_body_is_read(people, visit, media_root):
    client = client_for(people["clinician"])
    two_gigabytes = str(2 * 1024**3)
    refused = client.post(
        "/api/v1/media/",
        {"kind": MediaKind.CLINICAL_NOTE, "encounter": visit.pk, "file": upload(b"tiny")},
        format="multipart",
        CONTENT_LENGTH=two_gigabytes,
    )
    assert "larger than the 257.0\xa0MB" in assert_problem(refused, 413, "too_large")["detail"]
    assert MediaAsset.objects.count() == 0
    assert stored_files(media_root) == []
    huge_name = {
        "organization": visit.patient.organization_id,
        "mrn": "X",
        "full_name": "a" * 2**21,
    }
    assert_problem(client.post("/api/v1/patients/", huge_name), 413, "too_large")


def test_upload_and_download_a_note(people, visit):
    client = client_for(people["clinician"])
    file = io.BytesIO(b"Persistent cough, weight loss.")
    file.name = "note.txt"
    response = client.post(
        "/api/v1/media/",
        {"kind": "clinical_note", "encounter": visit.pk, "file": file},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    downloaded = client.get(response.json()["download"])
    assert downloaded.status_code == 200
    assert b"".join(downloaded.streaming_content) == b"Persistent cough, weight loss."
    asset_id = response.json()["id"]
    assert (
        client_for(people["stranger"]).get(f"/api/v1/media/{asset_id}/download/").status_code == 404
    )
    assert (
        client_for(people["viewer"])
        .post(
            "/api/v1/media/",
            {"kind": "clinical_note", "encounter": visit.pk, "file": io.BytesIO(b"x")},
            format="multipart",
        )
        .status_code
        == 403
    )


def test_an_analysis_is_accepted_with_a_location_and_can_be_cancelled(
    people, visit, clinic_model, django_capture_on_commit_callbacks
):
    add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Chest pain."))
    client = client_for(people["clinician"])
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/api/v1/jobs/", {"encounter": visit.pk, "task": "diagnosis"})
    assert response.status_code == 202, response.content
    job = AnalysisJob.objects.get()
    assert response["Location"] == f"/api/v1/jobs/{job.pk}/"
    polled = client.get(response["Location"]).json()
    assert (polled["status"], polled["progress"], polled["result"]) == ("queued", 0, None)
    assert client_for(people["viewer"]).post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 403
    assert client_for(people["stranger"]).post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 404
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"
    assert_problem(client.post(f"/api/v1/jobs/{job.pk}/cancel/"), 409, "finished")


def test_a_refused_analysis_says_why(people, visit, django_capture_on_commit_callbacks):
    response = client_for(people["clinician"]).post("/api/v1/jobs/", {"encounter": visit.pk})
    body = assert_problem(response, 400, "no_media")
    assert "upload a file first" in body["detail"]


def test_an_eu_school_analysis_over_the_api_runs_without_the_recording(
    school, make_user, trained_school_model, eager, wav_audio, django_capture_on_commit_callbacks
):
    from tessera.records.services import create_learning_session, create_student

    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    student = create_student(organization=school, student_number="S-1", full_name="Eu Pupil")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="English")
    add_media(attached_to=session, kind=MediaKind.LEARNER_AUDIO, file=upload(wav_audio))
    client = client_for(teacher)
    only_a_recording = client.post("/api/v1/jobs/", {"learning_session": session.pk})
    body = assert_problem(only_a_recording, 403, "policy")
    assert body["detail"].startswith(
        "Nothing in this learning session may be analysed: its recording may not be used."
    )
    add_media(
        attached_to=session, kind=MediaKind.LEARNER_TEXT, file=upload(b"I gave up on the poem.")
    )
    for task in ("all", "tutoring"):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/jobs/", {"learning_session": session.pk, "task": task})
        assert response.status_code == 202, response.content
        job = client.get(response["Location"]).json()
        assert job["status"] == "succeeded", job
        assert set(job["left_out"]) == {"audio"}
        assert "Art. 5(1)(f)" in job["left_out"]["audio"]
        result = client.get(f"/api/v1/results/{job['result']}/").json()
        assert result["left_out"] == job["left_out"]
        assert result["modalities_used"] == ["text"]
        assert result["tutoring"]


LIST_ENDPOINTS = [
    "organizations",
    "patients",
    "students",
    "encounters",
    "learning-sessions",
    "media",
    "jobs",
    "results",
    "members",
    "cohorts",
    "model-versions",
    "webhooks",
    "webhook-deliveries",
]


def test_list_endpoints_query_the_database_a_fixed_number_of_times(
    people, clinic, visit, make_user
):
    client = client_for(people["admin"])

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    paths = [f"/api/v1/{endpoint}/" for endpoint in LIST_ENDPOINTS]
    client.get(paths[0])  # the token's first use is written; not again within the minute
    # one row in each audited list first: logging a page's reads costs two queries, however long
    add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"First note"))
    before = [queries(path) for path in paths]
    for number in range(10):
        patient = create_patient(organization=clinic, mrn=f"Q-{number}", full_name=f"Q {number}")
        add_media(
            attached_to=create_encounter(patient=patient, occurred_at=WHEN),
            kind=MediaKind.CLINICAL_NOTE,
            file=upload(f"Note {number}".encode()),
        )
        Cohort.objects.create(organization=clinic, name=f"Ward {number}")
        make_user(f"member-{number}", organization=clinic, role=Role.VIEWER)
        subscription = create_subscription(
            organization=clinic, url="https://his.example.org/", events=["job.failed"],
            created_by=people["admin"],
        )  # fmt: skip
        send_ping(subscription=subscription)
        version = register_model_version(
            name=f"clinic-{number}", serves="clinic", bundle_path="x", metrics={}
        )
        promote_model_version(version=version, promoted_by=people["admin"])
    assert [queries(path) for path in paths] == before


def test_lists_filter_strictly_and_only_when_asked(people, clinic, patient):
    """A filter narrows the list; one given twice, left empty, or of a choice that does not
    exist is refused by name; a list that asks for none is every row."""
    other = create_patient(organization=clinic, mrn="A-2", full_name="Bo Patient", sex="male")
    Patient.objects.filter(pk=patient.pk).update(sex="female")
    client = client_for(people["clinician"])

    def ids(path: str) -> set[int]:
        response = client.get(path)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("/api/v1/patients/") == {patient.pk, other.pk}
    assert ids("/api/v1/patients/?sex=male") == {other.pk}
    assert ids("/api/v1/patients/?sex=female&page_size=5") == {patient.pk}
    assert "once" in str(assert_problem(client.get("/api/v1/patients/?sex=female&sex=male"), 400))
    assert "a value" in str(assert_problem(client.get("/api/v1/patients/?sex="), 400))
    assert_problem(client.get("/api/v1/patients/?sex=unknown-choice"), 400)
    assert_problem(client.get("/api/v1/jobs/?status="), 400)


def test_errors_have_one_shape(people):
    client = client_for(people["clinician"])
    assert_problem(client.get("/api/v1/patients/999999/"), 404, "not_found")
    assert_problem(client.delete("/api/v1/patients/999999/"), 405, "method_not_allowed")
    assert_problem(client.get("/api/v1/patients/?cursor=garbage"), 404)
    assert_problem(client.get("/api/v1/no-such-endpoint/"), 404, "not_found")
    assert_problem(client.post("/api/v1/jobs/0.5/cancel/"), 404, "not_found")
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html"), "pages stay HTML"


def test_the_schema_and_self_hosted_docs(people):
    client = client_for(people["viewer"])
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {"/api/v1/jobs/", "/api/v1/jobs/{id}/cancel/", "/api/v1/media/"} <= set(paths)
    docs = APIClient()
    docs.force_login(people["viewer"])
    page = docs.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets, page
    assert all(asset.startswith("/") for asset in assets), "self-hosted: no CDN"


def test_feedback_on_a_result_by_role(
    people, visit, clinic_model, eager, django_capture_on_commit_callbacks
):
    add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Chest pain."))
    client = client_for(people["clinician"])
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post("/api/v1/jobs/", {"encounter": visit.pk, "task": "all"})
    job = client.get(accepted["Location"]).json()
    assert job["status"] == "succeeded"
    result = client.get(f"/api/v1/results/{job['result']}/").json()
    assert result["model_version"] == clinic_model.name
    path = f"/api/v1/results/{job['result']}/feedback/"
    assert client.post(path, {"kind": "confirm"}).status_code == 201
    assert client_for(people["viewer"]).post(path, {"kind": "confirm"}).status_code == 403
    assert client_for(people["stranger"]).post(path, {"kind": "confirm"}).status_code == 404
    wrong = client.post(path, {"kind": "correct", "emotion_label": "joy"})
    assert "unknown affect label: joy" in assert_problem(wrong, 400, "unknown_label")["detail"]
    assert_problem(client.post(path, {"kind": "applause"}), 400, "validation")


def test_a_retried_post_with_the_same_idempotency_key_creates_nothing_new(
    people, visit, clinic_model, django_capture_on_commit_callbacks
):
    add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Chest pain."))
    client = client_for(people["clinician"])
    body = {"encounter": visit.pk, "task": "diagnosis"}
    with django_capture_on_commit_callbacks(execute=False) as published:
        first = client.post("/api/v1/jobs/", body, HTTP_IDEMPOTENCY_KEY="visit-1-dx")
        again = client.post("/api/v1/jobs/", body, HTTP_IDEMPOTENCY_KEY="visit-1-dx")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert AnalysisJob.objects.count() == 1
    assert len(published) == 1, "one job, one message"
    other = client.post("/api/v1/jobs/", {**body, "task": "all"}, HTTP_IDEMPOTENCY_KEY="visit-1-dx")
    assert_problem(other, 422, "idempotency_key_reused")
    with django_capture_on_commit_callbacks(execute=False):
        theirs = client_for(people["admin"]).post(
            "/api/v1/jobs/", body, HTTP_IDEMPOTENCY_KEY="visit-1-dx"
        )
    assert theirs.status_code == 202, "keys belong to their user"
    assert AnalysisJob.objects.count() == 2


def test_a_retried_upload_with_the_same_key_stores_one_file(people, visit):
    client = client_for(people["clinician"])

    def send():
        part = SimpleUploadedFile("note.txt", b"Short of breath.", content_type="text/plain")
        return client.post(
            "/api/v1/media/",
            {"kind": "clinical_note", "encounter": visit.pk, "file": part},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="upload-7",
        )

    first, again = send(), send()
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert MediaAsset.objects.count() == 1


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
def test_every_list_answers_every_role_with_only_their_organizations(
    people, clinic, visit, endpoint
):
    add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Listed note."))
    for who, user in people.items():
        response = client_for(user).get(f"/api/v1/{endpoint}/")
        assert response.status_code == 200, (who, response.content[:300])
        ids = [item["id"] for item in response.json()["results"]]
        if who == "stranger" and endpoint == "members":
            assert ids == [people["stranger"].memberships.get().pk], "only their own organization"
        elif who == "stranger" and endpoint not in ("organizations", "model-versions"):
            assert ids == [], "nothing of another organization"
    organizations = client_for(people["stranger"]).get("/api/v1/organizations/").json()
    assert clinic.pk not in [item["id"] for item in organizations["results"]]
    members = client_for(people["viewer"]).get(f"/api/v1/organizations/{clinic.pk}/members/")
    assert [member["username"] for member in members.json()["results"]] == [
        "admin",
        "analyst",
        "clinician",
        "viewer",
    ], "in pages like every list, by username"
    assert (
        client_for(people["stranger"])
        .get(f"/api/v1/organizations/{clinic.pk}/members/")
        .status_code
        == 404
    )
