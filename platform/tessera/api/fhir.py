"""A clinic's analysis result as FHIR R4 (fhir.resources' R4B models, whose DiagnosticReport,
Observation and Device are R4's): a DiagnosticReport per result, holding (contained) one
Observation per finding, one for the affect estimate where the result has one (only where the
law and the organization allowed it), and a Device for the model version that made it.

The report's status follows the clinician: `preliminary` as the model wrote it, `final` once
confirmed, `amended` once corrected. Every part says it is an AI suggestion, not a diagnosis.
"""

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.patient import Patient as PatientResource

from tessera.jobs.models import AnalysisResult, Feedback
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import Patient, Sex
from tessera.text import family_and_given

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


def diagnostic_report(result: AnalysisResult) -> DiagnosticReport:
    """`result` (of a clinic: a patient's encounter) as a DiagnosticReport."""
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
