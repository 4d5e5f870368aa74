"""FHIR R4 for an EHR (tessera.fhir): a clinic's analysis results,
`GET /fhir/DiagnosticReport?patient=<id>` (a searchset Bundle) and
`GET /fhir/DiagnosticReport/<id>`; its patients, `POST /fhir/Patient` (a Patient resource,
matched by its MRN identifier or created) and `GET /fhir/Patient/<id>`. The same tokens,
scoping and audit as the REST API: another organization's record is not found, and a search
over a patient one cannot see finds nothing. Answers are application/fhir+json; errors are
OperationOutcomes."""

import json

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from pydantic import ValidationError as InvalidResource
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from tessera.accounts.selectors import organizations_of, scoped_to
from tessera.api.problems import Problem
from tessera.api.receiving import receiving_clinic
from tessera.audit import services as audit
from tessera.fhir import (
    FHIR_JSON,
    GENDERS,
    PatientResource,
    diagnostic_report,
    medical_record_number,
    patient_fields,
    patient_resource,
    presented_form,
    searchset,
)
from tessera.jobs.models import AnalysisResult, ResultDelivery
from tessera.records.models import Patient
from tessera.records.services import create_patient
from tessera.reports.models import ReportStatus

PATIENT = AnalysisResult.SUBJECT_LOOKUPS["patient"]


class FhirJsonRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir-json"


class _FhirView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [FhirJsonRenderer, JSONRenderer]
    schema = None  # FHIR, not the REST API: HL7 documents it

    def reports(self):
        results = AnalysisResult.objects.filter(**{f"{PATIENT}__isnull": False})
        results = results.select_related("model_version", "job").prefetch_related(
            "feedback",
            Prefetch(
                "deliveries",
                queryset=ResultDelivery.objects.filter(report__status=ReportStatus.READY)
                .select_related("report")
                .order_by("-created_at"),
                to_attr="rendered",
            ),
        )
        return scoped_to(results, organizations=organizations_of(user=self.request.user))

    def diagnostic_report(self, result: AnalysisResult):
        """`result` as a DiagnosticReport, presenting the newest PDF made for it (sent to the
        FHIR server) as a link to the report's download."""
        presented = [
            presented_form(
                title=delivery.report.filename,
                created=delivery.report.finished_at,
                url=self.request.build_absolute_uri(
                    reverse("api:report-download", kwargs={"pk": delivery.report.pk})
                ),
            )
            for delivery in result.rendered[:1]
        ]
        return diagnostic_report(result, presented=presented)


class DiagnosticReportSearch(_FhirView):
    def get(self, request):
        patient = request.query_params.get("patient", "").removeprefix("Patient/")
        if not patient.isdigit():
            return outcome(400, "invalid", "search by patient: ?patient=<the patient's id>")
        results = list(self.reports().filter(**{PATIENT: patient}).order_by("-created_at"))
        audit.record_each(results, action=audit.Action.LIST)
        bundle = searchset(
            [self.diagnostic_report(result) for result in results],
            base_url=request.build_absolute_uri("/fhir/"),
        )
        return fhir_response(bundle.model_dump_json(exclude_none=True))


class DiagnosticReportRead(_FhirView):
    def get(self, request, pk: int):
        result = self.reports().filter(pk=pk).first()
        if result is None:
            return outcome(404, "not-found", f"no DiagnosticReport/{pk} of yours")
        audit.record(result, action=audit.Action.VIEW)
        return fhir_response(self.diagnostic_report(result).model_dump_json(exclude_none=True))


class PatientImport(_FhirView):
    parser_classes: list = []  # a FHIR resource, read as it came

    def post(self, request):
        try:
            clinic = receiving_clinic(request)
        except Problem as problem:
            return outcome(problem.status_code, "forbidden", str(problem.detail))
        try:
            resource = PatientResource.model_validate(json.loads(request.body or b"null"))
        except (ValueError, InvalidResource) as error:
            return outcome(400, "invalid", f"the body is not a FHIR Patient: {_first(error)}")
        if resource.gender and resource.gender not in GENDERS.values():
            genders = ", ".join(GENDERS.values())
            return outcome(400, "invalid", f"gender: one of {genders} (administrative-gender)")
        mrn = medical_record_number(resource)
        if mrn is None:
            return outcome(
                400,
                "required",
                "the Patient has no medical record number: an identifier typed MR "
                "(http://terminology.hl7.org/CodeSystem/v2-0203)",
            )
        patient = Patient.objects.filter(organization=clinic, mrn=mrn).first()
        status = 200
        if patient is None:
            try:
                patient = create_patient(organization=clinic, mrn=mrn, **patient_fields(resource))
            except ValidationError as error:
                return outcome(400, "invalid", "; ".join(error.messages))
            status = 201
        else:
            audit.record(patient, action=audit.Action.VIEW)
        response = fhir_response(
            patient_resource(patient).model_dump_json(exclude_none=True), status=status
        )
        response["Location"] = request.build_absolute_uri(f"/fhir/Patient/{patient.pk}")
        return response


class PatientRead(_FhirView):
    def get(self, request, pk: int):
        patient = (
            scoped_to(Patient.objects.all(), organizations=organizations_of(user=request.user))
            .filter(pk=pk)
            .first()
        )
        if patient is None:
            return outcome(404, "not-found", f"no Patient/{pk} of yours")
        audit.record(patient, action=audit.Action.VIEW)
        return fhir_response(patient_resource(patient).model_dump_json(exclude_none=True))


def _first(error: Exception) -> str:
    if isinstance(error, InvalidResource):
        problem = error.errors()[0]
        return f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}"
    return str(error)


def fhir_response(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type=FHIR_JSON)


def outcome(status: int, code: str, diagnostics: str) -> JsonResponse:
    return JsonResponse(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
        },
        status=status,
        content_type=FHIR_JSON,
    )
