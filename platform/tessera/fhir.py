"""A clinic's analysis result as FHIR R4 (fhir.resources' R4B models, whose DiagnosticReport,
Observation and Device are R4's): a DiagnosticReport per result, holding (contained) one
Observation per finding, one for the affect estimate where the result has one (only where the
law and the organization allowed it), and a Device for the model version that made it; its
presentedForm is the patient's PDF report of that day, where one was made for it.

An EHR reads them (api.views.fhir), or Tessera pushes them to its FHIR server as a transaction
Bundle (interop.fhir_delivery): the patient created only if no patient has their MRN, the report
created or updated by its identifier, so sending again changes nothing but the status.

The report's status follows the clinician: `preliminary` as the model wrote it, `final` once
confirmed, `amended` once corrected. Every part says it is an AI suggestion, not a diagnosis.
"""

import base64
import hashlib
from datetime import datetime
from uuid import NAMESPACE_URL, uuid5

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.patient import Patient as PatientResource

from tessera.jobs.models import AnalysisResult, Feedback
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import Patient, Sex
from tessera.text import family_and_given

FHIR_JSON = "application/fhir+json"  # the media type of FHIR's JSON, asked for and answered
SYSTEM = "urn:tessera"
# HL7 v2 table 0203: the identifier type of a medical record number
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
MEDICAL_RECORD_NUMBER = "MR"
GENDERS = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.OTHER: "other", Sex.UNKNOWN: "unknown"}
UCUM = "http://unitsofmeasure.org"
NOT_A_DIAGNOSIS = "AI suggestion from Tessera, for a clinician to review: not a diagnosis."


def report_status(result: AnalysisResult) -> str:
    kinds = {feedback.kind for feedback in result.feedback.all()}
    if Feedback.Kind.CORRECT in kinds:
        return "amended"
    return "final" if Feedback.Kind.CONFIRM in kinds else "preliminary"


def presented_form(
    *, title: str, created: datetime, pdf: bytes | None = None, url: str | None = None
) -> dict:
    """A PDF report as an Attachment: its bytes inline (`pdf`), or where to fetch it (`url`)."""
    attachment = {"contentType": "application/pdf", "title": title, "creation": created.isoformat()}
    if pdf is not None:
        attachment["data"] = base64.b64encode(pdf).decode("ascii")
        attachment["size"] = len(pdf)
        attachment["hash"] = base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii")
    if url is not None:
        attachment["url"] = url
    return attachment


def diagnostic_report(
    result: AnalysisResult, *, presented: list[dict] | None = None
) -> DiagnosticReport:
    """`result` (of a clinic: a patient's encounter) as a DiagnosticReport; `presented`: its
    PDF reports (`presented_form`)."""
    status = report_status(result)
    patient, encounter = subject_of(result.job), visit_of(result.job)
    version = result.model_version
    device = {
        "resourceType": "Device",
        "id": "model",
        "deviceName": [{"name": version.name, "type": "model-name"}],
        "version": [{"value": version.name}],
        "type": {"text": "Multimodal analysis model (Tessera)"},
        "note": [{"text": NOT_A_DIAGNOSIS}],
    }
    observations = [
        _observation(
            f"finding-{number}",
            status=status,
            code=label,
            probability=probability,
            needs_person=result.needs_person.get("diagnosis"),
        )
        for number, (label, probability) in enumerate(sorted(result.diagnosis.items()), start=1)
    ]
    if result.emotion_label:
        observations.append(
            _observation(
                "affect",
                status=status,
                code=f"affect: {result.emotion_label}",
                probability=result.emotion.get(result.emotion_label, 0.0),
                needs_person=result.needs_person.get("emotion"),
            )
        )
    conclusion = " ".join(
        [NOT_A_DIAGNOSIS, *(result.rationales.get(task, "") for task in ("diagnosis", "emotion"))]
    ).strip()
    return DiagnosticReport.model_validate(
        {
            "resourceType": "DiagnosticReport",
            "id": str(result.pk),
            "contained": [device, *observations],
            "identifier": [{"system": f"{SYSTEM}:result", "value": str(result.pk)}],
            "status": status,
            "code": {
                "coding": [{"system": f"{SYSTEM}:analysis", "code": "multimodal-analysis"}],
                "text": "Tessera multimodal analysis (AI suggestion)",
            },
            "subject": {
                "reference": f"Patient/{patient.pk}",
                "identifier": {"system": f"{SYSTEM}:mrn", "value": patient.mrn},
                "display": patient.full_name,
            },
            "effectiveDateTime": encounter.occurred_at.isoformat(),
            "issued": result.created_at.isoformat(),
            "performer": [{"reference": "#model", "display": version.name}],
            "result": [{"reference": f"#{item['id']}"} for item in observations],
            "conclusion": conclusion,
            **({"presentedForm": presented} if presented else {}),
        }
    )


def transaction_bundle(result: AnalysisResult, *, presented: list[dict]) -> Bundle:
    """What a FHIR server is sent for `result`: its patient, created unless a patient with
    their MRN is there, and its DiagnosticReport, created or updated by its identifier."""
    patient = subject_of(result.job)
    patient_url = f"urn:uuid:{uuid5(NAMESPACE_URL, f'tessera:patient:{patient.pk}')}"
    patient_json = patient_resource(patient).model_dump(mode="json", exclude_none=True)
    del patient_json["id"]  # the server's own id, not Tessera's
    report = diagnostic_report(result, presented=presented).model_dump(
        mode="json", exclude_none=True
    )
    del report["id"]
    report["subject"]["reference"] = patient_url
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": patient_url,
                    "resource": patient_json,
                    "request": {
                        "method": "POST",
                        "url": "Patient",
                        "ifNoneExist": "identifier:of-type="
                        f"{IDENTIFIER_TYPES}|{MEDICAL_RECORD_NUMBER}|{patient.mrn}",
                    },
                },
                {
                    "fullUrl": f"urn:uuid:{result.pk}",
                    "resource": report,
                    "request": {
                        "method": "PUT",
                        "url": f"DiagnosticReport?identifier={SYSTEM}:result|{result.pk}",
                    },
                },
            ],
        }
    )


def _observation(
    identifier: str, *, status: str, code: str, probability: float, needs_person: dict | None
) -> dict:
    observation = {
        "resourceType": "Observation",
        "id": identifier,
        "status": status,
        "code": {
            "coding": [{"system": f"{SYSTEM}:label", "code": code}],
            "text": code.replace("_", " "),
        },
        "device": {"reference": "#model"},
        "valueQuantity": {
            "value": round(100 * probability, 1),
            "unit": "%",
            "system": UCUM,
            "code": "%",
        },
        "note": [{"text": NOT_A_DIAGNOSIS}],
    }
    if needs_person:
        observation["interpretation"] = [{"text": "Needs a person"}]
        observation["note"].append({"text": f"Needs a person: {needs_person['detail']}"})
    return observation


def searchset(reports: list[DiagnosticReport], *, base_url: str) -> Bundle:
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(reports),
            "entry": [
                {
                    "fullUrl": f"{base_url}DiagnosticReport/{report.id}",
                    "resource": report.model_dump(mode="json", exclude_none=True),
                    "search": {"mode": "match"},
                }
                for report in reports
            ],
        }
    )


def patient_resource(patient: Patient) -> PatientResource:
    family, given = family_and_given(patient.full_name)
    return PatientResource.model_validate(
        {
            "resourceType": "Patient",
            "id": str(patient.pk),
            "identifier": [
                {
                    "type": {
                        "coding": [{"system": IDENTIFIER_TYPES, "code": MEDICAL_RECORD_NUMBER}]
                    },
                    "value": patient.mrn,
                }
            ],
            "name": [{"text": patient.full_name, "family": family, "given": given.split()}],
            "gender": GENDERS[patient.sex],
            **({"birthDate": patient.birth_date.isoformat()} if patient.birth_date else {}),
        }
    )


def medical_record_number(resource: PatientResource) -> str | None:
    """The MRN among a Patient's identifiers: the one typed MR (HL7 v2 table 0203)."""
    for identifier in resource.identifier or []:
        codings = identifier.type.coding if identifier.type and identifier.type.coding else []
        if identifier.value and any(
            coding.system == IDENTIFIER_TYPES and coding.code == MEDICAL_RECORD_NUMBER
            for coding in codings
        ):
            return identifier.value
    return None


def patient_fields(resource: PatientResource) -> dict:
    """A Patient resource as a Tessera patient's fields (besides the MRN)."""
    name = (resource.name or [None])[0]
    full_name = ""
    if name is not None:
        full_name = name.text or " ".join([*(name.given or []), name.family or ""]).strip()
    sexes = {gender: sex for sex, gender in GENDERS.items()}
    return {
        "full_name": full_name,
        "birth_date": resource.birthDate,
        "sex": sexes.get(resource.gender or "unknown", Sex.UNKNOWN),
    }
