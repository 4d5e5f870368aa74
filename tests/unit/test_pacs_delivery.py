"""Results back to the PACS (jobs.pacs_delivery), against a real DIMSE storage SCP (pynetdicom)
standing in for the PACS over TCP: a confirmed result's SR and heatmap arrive under the
original study; a PACS that is down is tried again with backoff and given up on in the log; a
result that cannot be sent says why."""

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    Comprehensive3DSRStorage,
    SecondaryCaptureImageStorage,
)

from tessera.accounts.models import Organization, Role
from tessera.jobs.models import AnalysisJob, PacsDelivery
from tessera.jobs.services import complete_job, record_feedback, register_model_version
from tessera.records.services import create_patient
from tests.integration.processes import free_port
from tests.unit.api import client_for
from tests.unit.conftest import prediction
from tests.unit.test_dashboards import finished_result
from tests.unit.test_dicomweb import instance, stow

pytestmark = pytest.mark.django_db


@pytest.fixture
def pacs():
    """A storage SCP as the PACS: what it receives, and where it listens."""
    received = []

    def store(event):
        received.append(event.dataset)
        return 0x0000

    scp = AE(ae_title="TESTPACS")
    for sop_class in (Comprehensive3DSRStorage, SecondaryCaptureImageStorage):
        scp.add_supported_context(sop_class)
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)]
    )
    yield port, received
    server.shutdown()


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
    assert not PacsDelivery.objects.exists(), "not before the clinician confirms"
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    assert sorted(dataset.Modality for dataset in received) == ["OT", "SR"]
    assert {dataset.StudyInstanceUID for dataset in received} == {"1.2.826.0.1.3680043.9.7.8"}
    delivery = PacsDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert sorted(delivery.sent_objects) == sorted(str(d.SOPInstanceUID) for d in received)
    with django_capture_on_commit_callbacks(execute=True):
        record_feedback(result=result, kind="confirm", given_by=clinician)
    assert PacsDelivery.objects.count() == 1, "sent once"
    assert len(received) == 2


def test_a_pacs_that_is_down_is_tried_again_and_then_given_up_in_the_log(
    clinic, make_user, eager, settings, django_capture_on_commit_callbacks
):
    from tessera.jobs.pacs_delivery import attempt_pacs_delivery

    sending_clinic(clinic, free_port(), when=Organization.PacsSending.ON_ANALYSIS)
    settings.TESSERA_PACS_MAX_ATTEMPTS = 2
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
    delivery = PacsDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1), "on analysis, tried once"
    assert "did not accept an association" in delivery.last_error
    assert delivery.next_attempt_at > delivery.created_at, "backed off"
    PacsDelivery.objects.update(next_attempt_at=delivery.created_at)  # due again
    assert attempt_pacs_delivery(delivery_id=delivery.pk) is None
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
    delivery = PacsDelivery.objects.get()
    assert delivery.status == "failed"
    assert "no DICOM image that Tessera can point back to the PACS" in delivery.last_error
    assert received == []


def test_sending_needs_a_whole_destination(clinic):
    clinic.pacs_send = Organization.PacsSending.ON_CONFIRM
    with pytest.raises(Exception, match="AE title, host and port"):
        clinic.full_clean()


def test_the_sweeper_sends_a_delivery_whose_message_was_lost(clinic, make_user, pacs, eager):
    from datetime import timedelta

    from django.utils import timezone

    from tessera.jobs.tasks import sweep_pacs

    port, received = pacs
    sending_clinic(clinic, port)
    result, _ = analysed(clinic, make_user, study="10", heatmap=False)
    lost = PacsDelivery.objects.create(result=result)  # queued, its message never published
    assert sweep_pacs() == 0, "not overdue yet"
    PacsDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=11))
    assert sweep_pacs() == 1
    lost.refresh_from_db()
    assert lost.status == "sent"
    assert [dataset.Modality for dataset in received] == ["SR"]
