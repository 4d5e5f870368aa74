"""The DICOM listener (records.dimse), driven by a real DIMSE peer (pynetdicom as the SCU) over
TCP: registered senders store images as STOW-RS deliveries do, each C-STORE answered with its
DICOM status; any other calling AE title is refused at association."""

import io

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tessera.records.dimse import handlers, listener
from tessera.records.models import DicomSender, Encounter, MediaAsset
from tessera.records.services import create_patient
from tests.integration.processes import free_port
from tests.unit.test_dicomweb import instance

pytestmark = pytest.mark.django_db(transaction=True)  # the listener's threads commit


@pytest.fixture
def port():
    port = free_port()
    server = listener("TESSERA").start_server(
        ("127.0.0.1", port), block=False, evt_handlers=handlers()
    )
    yield port
    server.shutdown()


def associate(port: int, calling: str):
    scu = AE(ae_title=calling)
    scu.add_requested_context(Verification)
    scu.add_requested_context(CTImageStorage)
    return scu.associate("127.0.0.1", port, ae_title="TESSERA")


def send(port: int, *contents: bytes, calling: str = "MODALITY1") -> list[tuple[int, str]]:
    association = associate(port, calling)
    assert association.is_established
    try:
        statuses = []
        for content in contents:
            status = association.send_c_store(pydicom.dcmread(io.BytesIO(content)))
            statuses.append((status.Status, str(status.get("ErrorComment", ""))))
        return statuses
    finally:
        association.release()


def test_a_registered_modality_echoes_and_stores_each_image_with_its_status(clinic, port):
    DicomSender.objects.create(organization=clinic, ae_title="MODALITY1")
    patient = create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")
    association = associate(port, "MODALITY1")
    assert association.is_established
    assert association.send_c_echo().Status == 0x0000
    association.release()

    statuses = send(
        port,
        instance(number=1),
        instance(number=2),
        instance(number=3, pixels=False),
        instance(number=4, patient_id="MRN-UNKNOWN"),
    )
    assert [code for code, _ in statuses] == [0x0000, 0x0000, 0x0122, 0x0124]
    assert statuses[2][1].startswith("the file says it is an image (CT Image), but"), "VR LO: 64"
    assert statuses[3][1].startswith("no patient of Test Clinic has the MRN")
    encounter = Encounter.objects.get(patient=patient)
    assert encounter.media.count() == 2, "one study, one encounter"
    assert MediaAsset.objects.count() == 2
    assert send(port, instance(number=1)) == [(0x0000, "")], "sent again: stored once"
    assert MediaAsset.objects.count() == 2


def test_an_unregistered_calling_ae_title_is_refused_at_association(clinic, port):
    create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")
    nobody_registered = associate(port, "MODALITY1")
    assert nobody_registered.is_rejected, "no sender registered: nobody may send"
    DicomSender.objects.create(organization=clinic, ae_title="MODALITY1")
    stranger = associate(port, "STRANGER")
    assert stranger.is_rejected
    assert not MediaAsset.objects.exists()
    assert send(port, instance()) == [(0x0000, "")], "the registered one, from its next association"
