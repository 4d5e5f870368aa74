"""Results pushed to the organization's FHIR server (interop.fhir_delivery), a server over HTTP
that reads each body with the R4 models: a transaction Bundle of the patient (created unless
their MRN is there) and the DiagnosticReport (created or updated by its identifier), whose
presentedForm is the patient's PDF report; pushed again as the status goes preliminary, final,
amended; a server that refuses or cannot be reached is tried again, saying what it said."""

import hashlib
import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from tessera.accounts.models import Role
from tessera.accounts.services import set_outgoing_authorization
from tessera.jobs.models import ResultDelivery
from tessera.jobs.services import record_feedback
from tessera.jobs.services.deliveries import ON_ANALYSIS, deliver_result_if_wanted
from tessera.reports.models import Report
from tests.integration.processes import QuietHandler, free_port, http_server
from tests.unit.api import client_for
from tests.unit.test_fhir import read
from tests.unit.test_fhir import result as result  # a fixture

pytestmark = pytest.mark.django_db


class FhirServer:
    """Takes transaction Bundles at its base URL and answers a transaction-response, or the
    `refusal` (an HTTP status and an OperationOutcome) while one is set."""

    def __init__(self):
        self.bundles: list[Bundle] = []
        self.authorizations: list[str | None] = []
        self.refusal: tuple[int, dict] | None = None
        received = self

        class Handler(QuietHandler):
            def do_POST(self):
                assert self.path == "/fhir/R4"
                assert self.headers["Content-Type"] == "application/fhir+json"
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.authorizations.append(self.headers.get("Authorization"))
                if received.refusal is not None:
                    status, answer = received.refusal
                else:
                    bundle = Bundle.model_validate(json.loads(body))  # R4: or it raises
                    received.bundles.append(bundle)
                    status, answer = (
                        200,
                        {
                            "resourceType": "Bundle",
                            "type": "transaction-response",
                            "entry": [
                                {
                                    "response": {
                                        "status": "201 Created",
                                        "location": f"{kind}/1/_history/1",
                                    }
                                }
                                for kind in ("Patient", "DiagnosticReport")
                            ],
                        },
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())

        self.handler = Handler


@pytest.fixture
def fhir_server(clinic):
    server = FhirServer()
    with http_server(server.handler) as url:
        clinic.fhir_server_url = f"{url}/fhir/R4"
        clinic.full_clean()
        clinic.save()
        yield server


def entries(bundle: Bundle) -> dict:
    return {entry.resource.get_resource_type(): entry for entry in bundle.entry}


def test_each_status_of_a_result_goes_to_the_fhir_server_with_its_pdf(
    clinic, make_user, result, fhir_server, eager, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(  # the labels a correction may name, without a bundle on disk
        "tessera.jobs.services.feedback.model_labels",
        lambda *, version: (["suspicious_mass", "effusion"], ["anxious", "neutral"]),
    )
    clinician = make_user("fhir-push-doc", organization=clinic, role=Role.CLINICIAN)
    with django_capture_on_commit_callbacks(execute=True):
        deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)  # no new status
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="correct", diagnosis=["effusion"], given_by=clinician)

    statuses = [
        entries(bundle)["DiagnosticReport"].resource.status for bundle in fhir_server.bundles
    ]
    assert statuses == ["preliminary", "final", "amended"]
    first = fhir_server.bundles[0]
    assert first.type == "transaction"
    patient, report = entries(first)["Patient"], entries(first)["DiagnosticReport"]
    assert (patient.request.method, patient.request.url) == ("POST", "Patient")
    assert patient.request.ifNoneExist.endswith("|MR|MRN-F"), "created only if the MRN is new"
    assert report.request.method == "PUT"
    assert report.request.url == f"DiagnosticReport?identifier=urn:tessera:result|{result.pk}"
    assert report.resource.subject.reference == patient.fullUrl, "the patient in the Bundle"
    [pdf] = report.resource.presentedForm
    assert pdf.contentType == "application/pdf"
    assert pdf.data.startswith(b"%PDF-"), "the PDF (base64 on the wire, decoded by the model)"
    assert pdf.hash == hashlib.sha1(pdf.data).digest()
    assert pdf.size == len(pdf.data)
    deliveries = ResultDelivery.objects.filter(destination="fhir").order_by("created_at")
    assert [d.report_status for d in deliveries] == ["preliminary", "final", "amended"]
    assert {d.status for d in deliveries} == {"sent"}
    assert deliveries[0].sent_objects == ["Patient/1/_history/1", "DiagnosticReport/1/_history/1"]
    assert Report.objects.filter(kind="patient", status="ready").count() == 3, "one PDF each"

    body, read_back = read(client_for(clinician), result)  # the EHR reading it instead
    [linked] = read_back.presentedForm
    assert linked.url.endswith(f"/api/v1/reports/{deliveries.last().report_id}/download/")
    assert "data" not in body["presentedForm"][0], "a link to the PDF, not the PDF"


def test_a_refusing_fhir_server_is_tried_again_saying_what_it_said(
    result, fhir_server, eager, django_capture_on_commit_callbacks
):
    fhir_server.refusal = (
        422,
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": "No such MRN"}],
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
    delivery = ResultDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "refused the Bundle: HTTP 422 (No such MRN)" in delivery.last_error
    assert delivery.report is not None, "the PDF is kept for the next attempt"


def test_an_unreachable_fhir_server_is_given_up_in_the_log(
    clinic, result, eager, settings, django_capture_on_commit_callbacks
):
    from tessera.interop.deliveries import attempt_delivery

    settings.TESSERA_DELIVERY_MAX_ATTEMPTS = 1
    clinic.fhir_server_url = f"http://127.0.0.1:{free_port()}/fhir"
    clinic.save()
    with django_capture_on_commit_callbacks(execute=True):
        deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
    delivery = ResultDelivery.objects.get()
    assert delivery.status == "failed"
    assert "could not be reached" in delivery.last_error
    assert delivery.last_error.endswith("(gave up after 1 attempts)")
    assert attempt_delivery(delivery_id=delivery.pk) is None, "nothing more to do"


def test_without_a_fhir_server_nothing_is_queued(result, eager):
    assert deliver_result_if_wanted(result=result, moment=ON_ANALYSIS) == []


def test_the_fhir_server_gets_the_credentials_the_admin_kept(
    clinic, result, fhir_server, eager, django_capture_on_commit_callbacks
):
    set_outgoing_authorization(organization=clinic, destination="fhir", header="Bearer ehr-t0ken")
    with django_capture_on_commit_callbacks(execute=True):
        deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
    assert fhir_server.authorizations == ["Bearer ehr-t0ken"]
    assert ResultDelivery.objects.get().status == "sent"


def test_credentials_this_servers_keys_cannot_open_fail_the_delivery_in_words(
    clinic, result, fhir_server, eager, django_capture_on_commit_callbacks, settings
):
    set_outgoing_authorization(organization=clinic, destination="fhir", header="Bearer old")
    settings.TESSERA_DEIDENTIFICATION_KEY = "another server's key"
    with django_capture_on_commit_callbacks(execute=True):
        deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
    delivery = ResultDelivery.objects.get()
    assert delivery.status == "failed"
    assert "credentials cannot be decrypted" in delivery.last_error
    assert fhir_server.bundles == [], "nothing sent without them"
