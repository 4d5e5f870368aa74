"""FHIR R4 reads of a clinic's analysis results (tessera.api.fhir), for an EHR:
`GET /fhir/DiagnosticReport?patient=<id>` (a searchset Bundle) and
`GET /fhir/DiagnosticReport/<id>`. The same tokens, scoping and audit as the REST API: a report
of another organization is not found, and a search over a patient one cannot see finds
nothing. Answers are application/fhir+json; errors are OperationOutcomes."""

from django.http import HttpResponse, JsonResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from tessera.accounts.selectors import organizations_of, scoped_to
from tessera.api.fhir import diagnostic_report, searchset
from tessera.audit import services as audit
from tessera.jobs.models import AnalysisResult

FHIR_JSON = "application/fhir+json"
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
        results = results.select_related("model_version", "job").prefetch_related("feedback")
        return scoped_to(results, organizations=organizations_of(user=self.request.user))


class DiagnosticReportSearch(_FhirView):
    def get(self, request):
        patient = request.query_params.get("patient", "").removeprefix("Patient/")
        if not patient.isdigit():
            return outcome(400, "invalid", "search by patient: ?patient=<the patient's id>")
        results = list(self.reports().filter(**{PATIENT: patient}).order_by("-created_at"))
        audit.record_each(results, action=audit.Action.LIST)
        bundle = searchset(
            [diagnostic_report(result) for result in results],
            base_url=request.build_absolute_uri("/fhir/"),
        )
        return fhir_response(bundle.model_dump_json(exclude_none=True))


class DiagnosticReportRead(_FhirView):
    def get(self, request, pk: int):
        result = self.reports().filter(pk=pk).first()
        if result is None:
            return outcome(404, "not-found", f"no DiagnosticReport/{pk} of yours")
        audit.record(result, action=audit.Action.VIEW)
        return fhir_response(diagnostic_report(result).model_dump_json(exclude_none=True))


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
