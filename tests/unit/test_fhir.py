"""FHIR R4 reads (`/fhir/DiagnosticReport`): a result as a DiagnosticReport with its findings,
affect and model as resources that validate with the R4 models and round-trip unchanged; its
status follows Confirm and Correct; scoped and audited as the REST API is."""

import json
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.patient import Patient as PatientResource

from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.jobs.services import record_feedback, register_model_version
from tessera.records.models import Patient
from tessera.records.services import create_encounter, create_patient
from tests.unit.api import client_for
from tests.unit.test_dashboards import finished_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def result(clinic):
    patient = create_patient(organization=clinic, mrn="MRN-F", full_name="Eleanor Whitmore")
    encounter = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    version = register_model_version(
        name="clinic-v7", serves="clinic", bundle_path="clinic-v7", metrics={}
    )
    return finished_result(
        encounter,
        version,
        diagnosis={"suspicious_mass": 0.83, "effusion": 0.12},
        findings=["suspicious_mass"],
        emotion={"anxious": 0.7, "neutral": 0.3},
        emotion_label="anxious",
        needs_person={"emotion": {"reason": "uncertain", "detail": "The estimate is unsure."}},
        rationales={"diagnosis": "Suspicious mass (83%): the image raised it by 40 points."},
    )


def read(client, result) -> tuple[dict, DiagnosticReport]:
    response = client.get(f"/fhir/DiagnosticReport/{result.pk}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    body = json.loads(response.content)
    return body, DiagnosticReport.model_validate(body)


def test_a_result_is_a_diagnostic_report_that_validates_and_round_trips(
    clinic, make_user, result, monkeypatch
):
    monkeypatch.setattr(  # the labels a correction may name, without a bundle on disk
        "tessera.jobs.services.feedback.model_labels",
        lambda *, version: (["suspicious_mass", "effusion"], ["anxious", "neutral"]),
    )
    clinician = make_user("fhir-doc", organization=clinic, role=Role.CLINICIAN)
    body, report = read(client_for(clinician), result)
    again = json.loads(report.model_dump_json(exclude_none=True))
    assert again == body, "round-trips unchanged through the R4 models"
    assert report.status == "preliminary"
    assert report.subject.identifier.value == "MRN-F"
    contained = {item.id: item for item in report.contained}
    assert contained["model"].get_resource_type() == "Device"
    assert contained["model"].deviceName[0].name == "clinic-v7"
    findings = {
        item.code.coding[0].code: item.valueQuantity.value
        for item in report.contained
        if item.get_resource_type() == "Observation"
    }
    assert findings == {"effusion": 12.0, "suspicious_mass": 83.0, "affect: anxious": 70.0}
    affect = contained["affect"]
    assert affect.interpretation[0].text == "Needs a person"
    assert [reference.reference for reference in report.result] == [
        "#finding-1",
        "#finding-2",
        "#affect",
    ]
    assert "not a diagnosis" in report.conclusion
    assert "raised it by 40 points" in report.conclusion

    record_feedback(result=result, kind="confirm", given_by=clinician)
    assert read(client_for(clinician), result)[1].status == "final"
    record_feedback(result=result, kind="correct", given_by=clinician, diagnosis=["effusion"])
    _, amended = read(client_for(clinician), result)
    assert amended.status == "amended"
    assert {item.status for item in amended.contained if item.id != "model"} == {"amended"}


def test_the_search_finds_a_patients_reports_and_nothing_of_another_clinic(
    clinic, other_clinic, make_user, result
):
    viewer = make_user("fhir-viewer", organization=clinic, role=Role.VIEWER)
    patient = result.job.visit_key.encounter.patient
    response = client_for(viewer).get("/fhir/DiagnosticReport", {"patient": patient.pk})
    assert response.status_code == 200, response.content
    bundle = Bundle.model_validate(json.loads(response.content))
    assert (bundle.type, bundle.total) == ("searchset", 1)
    assert bundle.entry[0].resource.id == str(result.pk)
    assert bundle.entry[0].fullUrl.endswith(f"/fhir/DiagnosticReport/{result.pk}")
    listed = AuditEvent.objects.filter(object_type="result", action="list", actor=viewer)
    assert listed.count() == 1

    stranger = make_user("fhir-stranger", organization=other_clinic, role=Role.CLINICIAN)
    outsider = client_for(stranger)
    found = outsider.get("/fhir/DiagnosticReport", {"patient": f"Patient/{patient.pk}"})
    assert json.loads(found.content)["total"] == 0
    missing = outsider.get(f"/fhir/DiagnosticReport/{result.pk}")
    assert missing.status_code == 404
    assert json.loads(missing.content)["resourceType"] == "OperationOutcome"
    unnamed = outsider.get("/fhir/DiagnosticReport")
    assert unnamed.status_code == 400
    assert "?patient=" in json.loads(unnamed.content)["issue"][0]["diagnostics"]
    assert client_for(None).get(f"/fhir/DiagnosticReport/{result.pk}").status_code == 401


def fhir_patient(mrn: str | None = "MRN-NEW", **extra) -> dict:
    identifiers = [{"system": "urn:oid:1.2.3", "value": "NHS-1"}]
    if mrn:
        identifiers.append(
            {"type": {"coding": [{"system": MR_SYSTEM, "code": "MR"}]}, "value": mrn}
        )
    return {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [{"family": "Okonkwo", "given": ["Ada", "N."]}],
        "birthDate": "1970-01-02",
        "gender": "female",
        **extra,
    }


MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"


def post(client, body, **query):
    path = "/fhir/Patient" + (f"?organization={query['organization']}" if query else "")
    return client.post(path, data=json.dumps(body), content_type="application/fhir+json")


def test_a_fhir_patient_is_matched_by_its_mrn_or_created(clinic, other_clinic, make_user):
    clinician = make_user("fhir-import", organization=clinic, role=Role.CLINICIAN)
    client = client_for(clinician)
    created = post(client, fhir_patient())
    assert created.status_code == 201, created.content
    patient = Patient.objects.get(organization=clinic, mrn="MRN-NEW")
    assert (patient.full_name, patient.birth_date, patient.sex) == (
        "Ada N. Okonkwo",
        date(1970, 1, 2),
        "female",
    )
    assert created["Location"].endswith(f"/fhir/Patient/{patient.pk}")
    body = json.loads(created.content)
    assert PatientResource.model_validate(body).id == str(patient.pk)

    matched = post(client, fhir_patient(name=[{"text": "Someone Else"}]))
    assert matched.status_code == 200, "matched by MRN, not created twice"
    assert Patient.objects.filter(mrn="MRN-NEW").count() == 1
    read = client.get(f"/fhir/Patient/{patient.pk}")
    assert json.loads(read.content)["identifier"][0]["value"] == "MRN-NEW"

    no_mrn = post(client, fhir_patient(mrn=None))
    assert no_mrn.status_code == 400
    assert "medical record number" in json.loads(no_mrn.content)["issue"][0]["diagnostics"]
    invalid = post(client, {**fhir_patient(), "gender": "sometimes"})
    assert invalid.status_code == 400
    assert "gender" in json.loads(invalid.content)["issue"][0]["diagnostics"]
    assert post(client, {"resourceType": "Observation"}).status_code == 400

    viewer = make_user("fhir-import-viewer", organization=clinic, role=Role.VIEWER)
    assert post(client_for(viewer), fhir_patient("MRN-V")).status_code == 403
    stranger = make_user("fhir-import-stranger", organization=other_clinic, role=Role.CLINICIAN)
    assert client_for(stranger).get(f"/fhir/Patient/{patient.pk}").status_code == 404
    foreign = post(client_for(stranger), fhir_patient("MRN-X"), organization=clinic.pk)
    assert foreign.status_code == 404
    assert not Patient.objects.filter(mrn__in=["MRN-V", "MRN-X"]).exists()
