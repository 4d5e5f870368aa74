"""Data-subject requests: an org admin exports everything held about a person (record, files,
analyses, verdicts, reports, access log) and erases them — rows, stored files, cached features
and report PDFs gone, the access log's trail kept."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.jobs.models import AnalysisJob, AnalysisResult, LatestAnalysis
from tessera.records.models import Encounter, MediaAsset, MediaKind, Patient
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.reports.services import render_report, request_report
from tests.conftest import stored_files, upload
from tests.unit.api import assert_problem, client_for
from tests.unit.conftest import WHEN, finished

pytestmark = pytest.mark.django_db

NOTE = b"Night sweats for three weeks."


@pytest.fixture
def admin(clinic, make_user):
    return make_user("dsr-admin", organization=clinic, role=Role.ORG_ADMIN)


@pytest.fixture
def history(clinic, admin, dicom_bytes, clinic_model, settings):
    """A patient with a visit, a note, an image, an analysis with a verdict and a report."""
    patient = create_patient(organization=clinic, mrn="DSR-1", full_name="Rosalind Quaye")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    image = add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    result = finished(visit, clinic_model)
    settings.TESSERA_FEATURE_CACHE.mkdir(parents=True, exist_ok=True)
    from tessera.jobs.features import cache_name

    cached = settings.TESSERA_FEATURE_CACHE / cache_name(result.job)
    cached.write_bytes(b"features")
    report = request_report(organization=clinic, requested_by=admin, subject=patient)
    render_report(report_id=report.pk)
    report.refresh_from_db()
    return {"patient": patient, "note": note, "image": image, "cached": cached, "report": report}


def test_an_admin_exports_everything_held_about_a_person(admin, history):
    patient = history["patient"]
    response = client_for(admin).get(f"/api/v1/patients/{patient.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert str(patient.pseudonym) in response["Content-Disposition"]
    assert "Rosalind" not in response["Content-Disposition"], "no name in a file name"

    archive = zipfile.ZipFile(io.BytesIO(response.content))
    document = json.loads(archive.read("subject.json"))
    assert document["subject"]["full_name"] == "Rosalind Quaye"
    assert document["subject"]["mrn"] == "DSR-1"
    [visit] = document["visits"]
    files = {item["kind"]: item for item in visit["files"]}
    assert archive.read(files["clinical_note"]["in_this_export"]) == NOTE
    assert archive.read(files["dicom"]["in_this_export"])[128:132] == b"DICM"
    [analysis] = visit["analyses"]
    assert (
        analysis["results"][0]["model_version"] == AnalysisResult.objects.get().model_version.name
    )
    [report] = document["reports"]
    assert archive.read(report["in_this_export"]).startswith(b"%PDF")
    assert {"view", "create"} <= {entry["action"] for entry in document["access_log"]}
    assert AuditEvent.objects.filter(
        action="export", object_type="patient", object_id=str(patient.pk), actor=admin
    ).exists()


def test_only_the_organizations_admins_answer_requests(history, clinic, other_clinic, make_user):
    patient = history["patient"]
    clinician = client_for(make_user("dsr-doc", organization=clinic))
    outsider = client_for(make_user("dsr-out", organization=other_clinic, role=Role.ORG_ADMIN))
    assert_problem(clinician.get(f"/api/v1/patients/{patient.pk}/export/"), 403)
    assert_problem(
        clinician.post(f"/api/v1/patients/{patient.pk}/erase/", {"confirm": "DSR-1"}), 403
    )
    assert_problem(outsider.get(f"/api/v1/patients/{patient.pk}/export/"), 404)
    assert_problem(
        outsider.post(f"/api/v1/patients/{patient.pk}/erase/", {"confirm": "DSR-1"}), 404
    )
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_erasing_removes_rows_files_features_and_reports_but_keeps_the_trail(
    admin, history, media_root, django_capture_on_commit_callbacks
):
    patient = history["patient"]
    api = client_for(admin)
    unconfirmed = api.post(f"/api/v1/patients/{patient.pk}/erase/", {"confirm": "DSR-2"})
    assert "MRN" in assert_problem(unconfirmed, 400, "not_confirmed")["detail"]
    assert Patient.objects.filter(pk=patient.pk).exists()

    with_files = stored_files(media_root)
    assert len(with_files) == 3  # note, image, report
    with django_capture_on_commit_callbacks(execute=True):  # files go once the delete commits
        erased = api.post(f"/api/v1/patients/{patient.pk}/erase/", {"confirm": "DSR-1"})
    assert erased.status_code == 200
    assert erased.json()["erased"] == {"visits": 1, "files": 2, "analyses": 1, "reports": 1}

    assert not Patient.objects.filter(pk=patient.pk).exists()
    for model in (Encounter, MediaAsset, AnalysisJob, AnalysisResult, LatestAnalysis):
        assert not model.objects.exists(), model
    assert stored_files(media_root) == []
    assert not history["cached"].exists()

    trail = AuditEvent.objects.filter(subject=f"patient:{patient.pk}")
    deleted = set(trail.filter(action="delete").values_list("object_type", flat=True))
    assert {"patient", "encounter", "media", "result", "report"} <= deleted
    assert trail.filter(action="delete", object_type="patient", actor=admin).exists()
    assert trail.filter(action="create").exists(), "what came before survives too"


def test_the_page_erases_only_when_the_number_is_typed(client, admin, history):
    patient = history["patient"]
    client.force_login(admin)
    page = client.get(reverse("patient", args=[patient.pk])).content.decode()
    assert reverse("patient_export", args=[patient.pk]) in page
    assert client.get(reverse("patient_export", args=[patient.pk]))["Content-Type"] == (
        "application/zip"
    )
    wrong = client.post(reverse("patient_erase", args=[patient.pk]), {"confirm": "nope"})
    assert wrong.url == reverse("patient", args=[patient.pk])
    assert Patient.objects.filter(pk=patient.pk).exists()
    done = client.post(
        reverse("patient_erase", args=[patient.pk]), {"confirm": "DSR-1"}, follow=True
    )
    assert "Rosalind Quaye was erased: 1 visits, 2 files" in done.content.decode()
    assert not Patient.objects.filter(pk=patient.pk).exists()
