"""DICOM is de-identified on ingest: what is stored holds none of the identifying originals,
dates move by one offset per patient, UIDs map consistently and the pixels stay exactly as sent."""

import io
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from cryptography.fernet import Fernet
from pydicom.uid import SecondaryCaptureImageStorage

from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes
from tessera.accounts.models import Role
from tessera.audit.models import AuditEvent
from tessera.records.deidentify import date_shift_days, deidentify_dicom
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.selectors import pacs_origin
from tessera.records.services import (
    add_media,
    create_encounter,
    create_patient,
    sync_media_encryption,
)
from tessera.records.storage import StoredContentCorrupted, content_store
from tessera.records.uploads import UploadRejected, validate_upload
from tests.conftest import upload
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db

# The files pydicom ships (read from disk: pydicom's own lookup would try to download more).
CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"

ORIGINALS = {
    "PatientName": "Whitmore^Eleanor^Jane",
    "PatientID": "MRN-0048213",
    "OtherPatientIDs": "NHS-943-476-5919",
    "InstitutionName": "St Bartholomew Riverside Hospital",
    "InstitutionAddress": "12 Harbour Lane, Bristol",
    "ReferringPhysicianName": "Okafor^Chidi",
    "PerformingPhysicianName": "Lindqvist^Astrid",
    "AccessionNumber": "ACC77120",
    "StudyDescription": "CT chest for Eleanor Whitmore",
    "PatientAddress": "4 Orchard Row, Bath",
    "StationName": "RIVERSIDE-CT2",
}
PRIVATE_SECRET = "Eleanor Whitmore, ward 7B, bed 3"


def identified_dicom(*, study_date: date, study: str, instance: str, preamble=b"\0" * 128):
    raw = ct_dicom_bytes(
        chest_ct_slice(lesion=True, rng=np.random.default_rng(5), size=32),
        patient_name=ORIGINALS["PatientName"],
        patient_id=ORIGINALS["PatientID"],
        birth_date=date(1961, 3, 14),
        sex="female",
        study_date=study_date,
        uid_seed=instance,
    )
    dataset = pydicom.dcmread(io.BytesIO(raw))
    for keyword, value in ORIGINALS.items():
        setattr(dataset, keyword, value)
    dataset.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7.{study}"
    dataset.AcquisitionDateTime = study_date.strftime("%Y%m%d") + "093015"
    dataset.StudyTime = "093015"
    block = dataset.private_block(0x0029, "ACME IMAGING 1.0", create=True)
    block.add_new(0x10, "LO", PRIVATE_SECRET)
    dataset.preamble = preamble
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def upload_dicom(client, visit, content: bytes) -> MediaAsset:
    file = io.BytesIO(content)
    file.name = "scan.dcm"
    response = client.post(
        "/api/v1/media/", {"kind": "dicom", "encounter": visit.pk, "file": file}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return MediaAsset.objects.get(pk=response.json()["id"])


def stored(asset: MediaAsset) -> bytes:
    return content_store().path(asset.sha256).read_bytes()


@pytest.fixture
def patient(clinic):
    return create_patient(organization=clinic, mrn="MRN-0048213", full_name="Eleanor Whitmore")


@pytest.fixture
def clinician(clinic, make_user):
    return make_user("deid-doc", organization=clinic)


def test_the_stored_file_holds_none_of_the_identifying_originals(patient, clinician):
    visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    sent = identified_dicom(study_date=date(2026, 9, 1), study="1", instance="a")
    asset = upload_dicom(client_for(clinician), visit, sent)

    kept = stored(asset)
    for original in [*ORIGINALS.values(), PRIVATE_SECRET, "19610314", "20260901"]:
        for spelling in {original, original.replace("^", " "), original.split("^")[0]}:
            assert spelling.encode() not in kept, f"{spelling!r} survived de-identification"
    original_dataset = pydicom.dcmread(io.BytesIO(sent))
    for uid in (original_dataset.StudyInstanceUID, original_dataset.SOPInstanceUID):
        assert uid.encode() not in kept

    dataset = pydicom.dcmread(io.BytesIO(kept))
    assert str(dataset.PatientName) == str(patient.pseudonym)
    assert dataset.PatientID == str(patient.pseudonym)
    assert dataset.PatientIdentityRemoved == "YES"
    assert "Annex E" in dataset.DeidentificationMethod
    assert [code.CodeValue for code in dataset.DeidentificationMethodCodeSequence] == [
        "113100",
        "113107",
    ]
    assert not any(element.tag.is_private for element in dataset)
    assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
    assert dataset.SOPClassUID == original_dataset.SOPClassUID, "standard UIDs are kept"
    assert np.array_equal(dataset.pixel_array, original_dataset.pixel_array)
    assert dataset.PixelData == original_dataset.PixelData
    assert asset.metadata["deidentification"]["review"] == []
    assert asset.size_bytes == len(kept)


def test_dates_move_by_one_offset_per_patient_and_uids_map_consistently(patient, clinician):
    client = client_for(clinician)
    first_visit = create_encounter(patient=patient, occurred_at=datetime(2026, 3, 2, tzinfo=UTC))
    second_visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    first = upload_dicom(
        client, first_visit, identified_dicom(study_date=date(2026, 3, 2), study="1", instance="a")
    )
    same_study = upload_dicom(
        client, first_visit, identified_dicom(study_date=date(2026, 3, 2), study="1", instance="b")
    )
    later = upload_dicom(
        client, second_visit, identified_dicom(study_date=date(2026, 9, 1), study="2", instance="c")
    )
    first, same_study, later = (
        pydicom.dcmread(io.BytesIO(stored(a))) for a in (first, same_study, later)
    )

    shift = date_shift_days(str(patient.pseudonym))
    assert 30 <= shift <= 730

    def day(value: str) -> date:
        return datetime.strptime(value[:8], "%Y%m%d").date()

    assert (date(2026, 3, 2) - day(first.StudyDate)).days == shift
    assert (date(2026, 9, 1) - day(later.StudyDate)).days == shift
    assert (date(1961, 3, 14) - day(first.PatientBirthDate)).days == shift
    assert (date(2026, 9, 1) - day(later.AcquisitionDateTime)).days == shift
    assert later.AcquisitionDateTime.endswith("093015"), "times of day stay"
    assert (day(later.StudyDate) - day(first.StudyDate)).days == 183, "intervals survive"

    assert first.StudyInstanceUID == same_study.StudyInstanceUID, "one study stays one study"
    assert first.SOPInstanceUID != same_study.SOPInstanceUID
    assert first.StudyInstanceUID != later.StudyInstanceUID
    assert first.StudyInstanceUID.startswith("2.25.")


def test_the_preamble_is_zeroed_so_the_file_cannot_double_as_an_executable(patient, clinician):
    visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    executable_header = b"MZ\x90\x00" + b"\xcc" * 124  # a PE header in the preamble
    sent = identified_dicom(
        study_date=date(2026, 9, 1), study="1", instance="a", preamble=executable_header
    )
    kept = stored(upload_dicom(client_for(clinician), visit, sent))
    assert kept[:128] == b"\0" * 128
    assert kept[128:132] == b"DICM"


def test_high_risk_images_are_flagged_for_review(patient, clinician):
    visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    ultrasound = (CORPUS / "examples_rgb_color.dcm").read_bytes()
    flagged = upload_dicom(client_for(clinician), visit, ultrasound)
    assert "ultrasound" in flagged.metadata["deidentification"]["review"][0]
    assert pydicom.dcmread(io.BytesIO(stored(flagged))).PatientIdentityRemoved == "NO"

    dataset = pydicom.dcmread(
        io.BytesIO(identified_dicom(study_date=date(2026, 9, 1), study="1", instance="a"))
    )
    dataset.BurnedInAnnotation = "YES"
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    burned_in = deidentify_dicom(io.BytesIO(_bytes(dataset)), pseudonym="p")
    assert len(burned_in.review_reasons) == 2
    assert "burned into its pixels" in burned_in.review_reasons[0]


def _bytes(dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_every_decodable_file_of_the_pydicom_corpus_deidentifies_with_its_pixels_intact():
    cleaned = 0
    for path in sorted(CORPUS.glob("*.dcm")):
        content = path.read_bytes()
        try:
            validate_upload(kind="dicom", file=io.BytesIO(content))
        except UploadRejected:
            continue  # refused on upload, never reaches de-identification
        result = deidentify_dicom(io.BytesIO(content), pseudonym="corpus")
        before = pydicom.dcmread(io.BytesIO(content))
        after = pydicom.dcmread(io.BytesIO(result.content))
        assert np.array_equal(before.pixel_array, after.pixel_array), path
        assert str(after.PatientName) == "corpus"
        assert not any(element.tag.is_private for element in after), path
        cleaned += 1
    assert cleaned >= 50


def test_the_way_back_to_the_pacs_is_kept_sealed_and_read_only_by_admins(
    patient, clinician, clinic, other_clinic, make_user
):
    visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    sent = pydicom.dcmread(
        io.BytesIO(identified_dicom(study_date=date(2026, 9, 1), study="1", instance="a"))
    )
    out = io.BytesIO()
    sent.save_as(out, enforce_file_format=True)
    asset = upload_dicom(client_for(clinician), visit, out.getvalue())
    kept = pydicom.dcmread(io.BytesIO(stored(asset)))
    origin = asset.origin
    assert (origin.study_uid, origin.series_uid, origin.sop_instance_uid) == (
        kept.StudyInstanceUID,
        kept.SeriesInstanceUID,
        kept.SOPInstanceUID,
    ), "found by the UIDs it is stored under"
    for secret in (sent.StudyInstanceUID, sent.SOPInstanceUID, "ACC77120"):
        assert secret not in origin.sealed, "sealed, not kept in the clear"

    admin = make_user("pacs-admin", organization=clinic, role=Role.ORG_ADMIN)
    response = client_for(admin).get(f"/api/v1/media/{asset.pk}/origin/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "study_instance_uid": sent.StudyInstanceUID,
        "series_instance_uid": sent.SeriesInstanceUID,
        "sop_instance_uid": sent.SOPInstanceUID,
        "accession_number": "ACC77120",
    }
    audited = AuditEvent.objects.filter(object_type="dicom_origin", object_id=str(origin.pk))
    assert set(audited.values_list("actor__username", "action")) == {
        ("deid-doc", "create"),
        ("pacs-admin", "view"),
    }
    read = audited.filter(action="view")

    assert_problem(client_for(clinician).get(f"/api/v1/media/{asset.pk}/origin/"), 403)
    elsewhere = make_user("other-admin", organization=other_clinic, role=Role.ORG_ADMIN)
    assert_problem(client_for(elsewhere).get(f"/api/v1/media/{asset.pk}/origin/"), 404)
    assert read.count() == 1, "a refused read reads nothing"
    note = add_media(
        attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"A note."), filename="n.txt"
    )
    answer = client_for(admin).get(f"/api/v1/media/{note.pk}/origin/")
    assert "only a DICOM image" in assert_problem(answer, 404, "no_origin")["detail"]


def test_the_way_back_turns_to_a_new_media_key_with_the_files(patient, clinician, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [old]
    visit = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
    sent = identified_dicom(study_date=date(2026, 9, 1), study="1", instance="a")
    asset = upload_dicom(client_for(clinician), visit, sent)
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new, old]
    sync_media_encryption(rotate=True)
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new]  # the old key retired
    identity = pacs_origin(media=MediaAsset.objects.get(pk=asset.pk))
    assert identity.accession_number == "ACC77120"
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [old]
    with pytest.raises(StoredContentCorrupted):
        pacs_origin(media=MediaAsset.objects.get(pk=asset.pk))
