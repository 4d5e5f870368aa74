"""Results back to the PACS (interop.pacs_delivery), against a real DIMSE storage SCP (pynetdicom)
standing in for the PACS over TCP, and a DICOMweb server over HTTP: a confirmed result's SR and
heatmap arrive under the original study, by C-STORE or STOW-RS; a PACS that takes no Parametric
Map gets the Secondary Capture; a PACS that is down is tried again with backoff and given up on
in the log; a result that cannot be sent says why. (Against Orthanc: tests/integration.)"""

import io
import json
import re
from email.parser import BytesParser
from email.policy import HTTP

import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    Comprehensive3DSRStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
)

from tessera.accounts.models import Organization, Role
from tessera.accounts.services import set_outgoing_authorization
from tessera.jobs.models import AnalysisJob, ResultDelivery
from tessera.jobs.services import complete_job, record_feedback, register_model_version
from tessera.records.services import create_patient
from tests.integration.processes import QuietHandler, free_port, http_server
from tests.unit.api import client_for
from tests.unit.conftest import prediction
from tests.unit.test_dashboards import finished_result
from tests.unit.test_dicomweb import instance, stow

pytestmark = pytest.mark.django_db


def storage_scp(*sop_classes):
    """A storage SCP as the PACS, taking `sop_classes`: where it listens, what it receives."""
    received = []

    def store(event):
        received.append(event.dataset)
        return 0x0000

    scp = AE(ae_title="TESTPACS")
    for sop_class in sop_classes:
        scp.add_supported_context(sop_class)
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)]
    )
    return server, port, received


@pytest.fixture
def pacs():
    server, port, received = storage_scp(
        Comprehensive3DSRStorage, ParametricMapStorage, SecondaryCaptureImageStorage
    )
    yield port, received
    server.shutdown()


@pytest.fixture
def dicomweb_pacs():
    """A DICOMweb server as the PACS: it parses each STOW-RS body as multipart/related DICOM,
    stores every instance but a Parametric Map (refused as an unsupported SOP class, 0x0122)
    and answers the standard STOW response. Yields its root URL and what it stored."""
    stored: list[pydicom.Dataset] = []

    class Stow(QuietHandler):
        def do_POST(self):
            assert self.path == "/dicom-web/studies"
            if self.headers.get("Authorization") != "Basic dGVzc2VyYTpwYWNz":
                self.send_response(401)
                self.end_headers()
                return
            content_type = self.headers["Content-Type"]
            assert re.match(r'multipart/related; type="application/dicom"; boundary=', content_type)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            answer: dict = {"00081199": {"vr": "SQ", "Value": []}}
            for part in message.iter_parts():
                assert part.get_content_type() == "application/dicom"
                dataset = pydicom.dcmread(io.BytesIO(part.get_payload(decode=True)))
                reference = {"00081155": {"vr": "UI", "Value": [str(dataset.SOPInstanceUID)]}}
                if dataset.SOPClassUID == ParametricMapStorage:
                    failed = answer.setdefault("00081198", {"vr": "SQ", "Value": []})
                    failed["Value"].append({**reference, "00081197": {"vr": "US", "Value": [290]}})
                    continue
                stored.append(dataset)
                answer["00081199"]["Value"].append(reference)
            self.send_response(202 if "00081198" in answer else 200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(json.dumps(answer).encode())

    with http_server(Stow) as url:
        yield f"{url}/dicom-web/", stored


def sending_clinic(clinic, port: int, *, when=Organization.PacsSending.ON_CONFIRM):
    clinic.pacs_send, clinic.pacs_ae_title = when, "TESTPACS"
    clinic.pacs_host, clinic.pacs_port = "127.0.0.1", port
    clinic.full_clean()
    clinic.save()


def analysed(clinic, make_user, *, study: str, heatmap: bool = True):
    patient = create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")
    sender = make_user(f"pacs-{study}", organization=clinic, role=Role.CLINICIAN)
    assert stow(client_for(sender), instance(study=study)).status_code == 200
    encounter = patient.encounters.get()
    version = register_model_version(
        name="clinic-v7", serves="clinic", bundle_path="clinic-v7", metrics={}
    )
    explanation = {"finding": "suspicious_mass", "heatmap": [[0.0, 1.0], [0.0, 0.0]]}
    result = finished_result(
        encounter,
        version,
        diagnosis={"suspicious_mass": 0.9},
        findings=["suspicious_mass"],
        explanation=explanation if heatmap else {},
    )
    result.job.media.set(encounter.media.all())
    return result, sender


def test_a_confirmed_result_arrives_in_the_pacs_under_its_original_study(
    clinic, make_user, pacs, eager, django_capture_on_commit_callbacks
):
    port, received = pacs
    sending_clinic(clinic, port)
    result, clinician = analysed(clinic, make_user, study="8")
    assert not ResultDelivery.objects.exists(), "not before the clinician confirms"
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    assert sorted(dataset.SOPClassUID for dataset in received) == sorted(
        [Comprehensive3DSRStorage, ParametricMapStorage, SecondaryCaptureImageStorage]
    )
    assert {dataset.StudyInstanceUID for dataset in received} == {"1.2.826.0.1.3680043.9.7.8"}
    delivery = ResultDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert sorted(delivery.sent_objects) == sorted(str(d.SOPInstanceUID) for d in received)
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    assert ResultDelivery.objects.count() == 1, "sent once"
    assert len(received) == 3


def test_a_pacs_that_takes_no_parametric_map_gets_the_secondary_capture(
    clinic, make_user, eager, django_capture_on_commit_callbacks
):
    server, port, received = storage_scp(Comprehensive3DSRStorage, SecondaryCaptureImageStorage)
    try:
        sending_clinic(clinic, port)
        result, clinician = analysed(clinic, make_user, study="8")
        with django_capture_on_commit_callbacks(execute=True):
            record_feedback(result=result, kind="confirm", given_by=clinician)
    finally:
        server.shutdown()
    assert sorted(dataset.Modality for dataset in received) == ["OT", "SR"]
    assert received[-1].SOPClassUID == SecondaryCaptureImageStorage
    assert ResultDelivery.objects.get().status == "sent"


def test_a_result_goes_by_stow_rs_where_the_pacs_has_a_dicomweb_url(
    clinic, make_user, dicomweb_pacs, eager, django_capture_on_commit_callbacks
):
    root, stored = dicomweb_pacs
    clinic.pacs_send, clinic.pacs_dicomweb_url = Organization.PacsSending.ON_CONFIRM, root
    clinic.full_clean()
    clinic.save()
    set_outgoing_authorization(
        organization=clinic, destination="pacs", header="Basic dGVzc2VyYTpwYWNz"
    )  # the PACS's user and password
    result, clinician = analysed(clinic, make_user, study="11")
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    assert sorted(dataset.Modality for dataset in stored) == ["OT", "SR"], (
        "the SR and the Secondary Capture; this PACS refused the Parametric Map"
    )
    assert {dataset.StudyInstanceUID for dataset in stored} == {"1.2.826.0.1.3680043.9.7.11"}
    delivery = ResultDelivery.objects.get()
    assert (delivery.status, delivery.last_error) == ("sent", "")
    assert sorted(delivery.sent_objects) == sorted(str(d.SOPInstanceUID) for d in stored)


def test_a_stow_the_pacs_refuses_is_tried_again_saying_what_it_answered(
    clinic, make_user, eager, django_capture_on_commit_callbacks
):
    class Refusing(QuietHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.end_headers()

    with http_server(Refusing) as url:
        clinic.pacs_send = Organization.PacsSending.ON_CONFIRM
        clinic.pacs_dicomweb_url = f"{url}/dicom-web"
        clinic.save()
        result, clinician = analysed(clinic, make_user, study="12")
        with django_capture_on_commit_callbacks(execute=True):
            record_feedback(result=result, kind="confirm", given_by=clinician)
    delivery = ResultDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "answered STOW-RS with HTTP 503" in delivery.last_error


def test_a_pacs_that_is_down_is_tried_again_and_then_given_up_in_the_log(
    clinic, make_user, eager, settings, django_capture_on_commit_callbacks
):
    from tessera.interop.deliveries import attempt_delivery

    sending_clinic(clinic, free_port(), when=Organization.PacsSending.ON_ANALYSIS)
    settings.TESSERA_DELIVERY_MAX_ATTEMPTS = 2
    patient = create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")
    sender = make_user("pacs-down", organization=clinic, role=Role.CLINICIAN)
    assert stow(client_for(sender), instance(study="9")).status_code == 200
    encounter = patient.encounters.get()
    version = register_model_version(
        name="clinic-v7", serves="clinic", bundle_path="clinic-v7", metrics={}
    )
    job = AnalysisJob.objects.create(
        organization=clinic, visit_key=encounter.visit_key, task="all", model_version=version
    )
    job.media.set(encounter.media.all())
    with django_capture_on_commit_callbacks(execute=True):
        complete_job(job_id=job.pk, worker="gpu", prediction=prediction(mass=0.9))
    delivery = ResultDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1), "on analysis, tried once"
    assert "did not accept an association" in delivery.last_error
    assert delivery.next_attempt_at > delivery.created_at, "backed off"
    ResultDelivery.objects.update(next_attempt_at=delivery.created_at)  # due again
    assert attempt_delivery(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_error.endswith("(gave up after 2 attempts)")


def test_a_result_without_an_image_from_the_pacs_fails_saying_why(
    clinic, make_user, encounter, pacs, eager, django_capture_on_commit_callbacks
):
    port, received = pacs
    sending_clinic(clinic, port)
    clinician = make_user("no-pacs-doc", organization=clinic, role=Role.CLINICIAN)
    version = register_model_version(
        name="clinic-v8", serves="clinic", bundle_path="clinic-v8", metrics={}
    )
    result = finished_result(encounter, version, diagnosis={"effusion": 0.7}, findings=[])
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    delivery = ResultDelivery.objects.get()
    assert delivery.status == "failed"
    assert "no DICOM image that Tessera can point back to the PACS" in delivery.last_error
    assert received == []


def test_sending_needs_a_whole_destination(clinic):
    clinic.pacs_send = Organization.PacsSending.ON_CONFIRM
    with pytest.raises(Exception, match="DICOMweb URL, or its AE title, host and port"):
        clinic.full_clean()
    clinic.pacs_dicomweb_url = "https://pacs.example/dicom-web"
    clinic.full_clean()


def test_the_sweeper_sends_a_delivery_whose_message_was_lost(clinic, make_user, pacs, eager):
    from datetime import timedelta

    from django.utils import timezone

    from tessera.interop.tasks import sweep_deliveries

    port, received = pacs
    sending_clinic(clinic, port)
    result, _ = analysed(clinic, make_user, study="10", heatmap=False)
    lost = ResultDelivery.objects.create(result=result)  # queued, its message never published
    assert sweep_deliveries() == 0, "not overdue yet"
    ResultDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=11))
    assert sweep_deliveries() == 1
    lost.refresh_from_db()
    assert lost.status == "sent"
    assert [dataset.Modality for dataset in received] == ["SR"]
