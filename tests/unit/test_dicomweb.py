"""STOW-RS (`POST /dicomweb/studies`): a PACS sends a study; it becomes de-identified media on
its patient's encounter, found by the organization's rules, whole or not at all."""

import io
import json
from datetime import date
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np
import pydicom
import pytest

from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes
from tessera.accounts.models import Organization, Role
from tessera.audit.models import AuditEvent
from tessera.records.models import DicomOrigin, Encounter, MediaAsset, Patient
from tessera.records.selectors import pacs_origin
from tessera.records.services import create_patient
from tessera.records.storage import content_store
from tests.unit.api import assert_problem, client_for

pytestmark = pytest.mark.django_db
STUDIES = "/dicomweb/studies"
STOW = 'multipart/related; type="application/dicom"; boundary={}'
CT = "1.2.840.10008.5.1.4.1.1.2"


def instance(
    *, patient_id="MRN-7", study="1", series="1", number=1, accession="ACC-1", pixels=True
) -> bytes:
    raw = ct_dicom_bytes(
        chest_ct_slice(lesion=True, rng=np.random.default_rng(number), size=32),
        patient_name="Whitmore^Eleanor",
        patient_id=patient_id,
        birth_date=date(1961, 3, 14),
        sex="female",
        study_date=date(2026, 9, 1),
        uid_seed=f"{study}.{number}",
    )
    dataset = pydicom.dcmread(io.BytesIO(raw))
    dataset.StudyInstanceUID = f"1.2.826.0.1.3680043.9.7.{study}"
    dataset.SeriesInstanceUID = f"1.2.826.0.1.3680043.9.7.{study}.{series}"
    dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7.{study}.{series}.{number}"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.AccessionNumber = accession
    if not pixels:
        del dataset.PixelData
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def stow(client, *parts: bytes, part_type="application/dicom", boundary="tessera-part", **query):
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    path = STUDIES + (f"?organization={query['organization']}" if query else "")
    return client.post(path, data=body, content_type=STOW.format(boundary))


def referenced(response) -> list[str]:
    assert response["Content-Type"] == "application/dicom+json"
    items = json.loads(response.content).get("00081199", {}).get("Value", [])
    return [item["00081155"]["Value"][0] for item in items]


def failed(response) -> list[tuple[str, int]]:
    assert response["Content-Type"] == "application/dicom+json"
    items = json.loads(response.content).get("00081198", {}).get("Value", [])
    return [
        (item.get("00081155", {}).get("Value", [""])[0], item["00081197"]["Value"][0])
        for item in items
    ]


@pytest.fixture
def clinician(clinic, make_user):
    return make_user("pacs", organization=clinic, role=Role.CLINICIAN)


@pytest.fixture
def patient(clinic):
    return create_patient(organization=clinic, mrn="MRN-7", full_name="Eleanor Whitmore")


def uid(number: int, study: str = "1") -> str:
    return f"1.2.826.0.1.3680043.9.7.{study}.1.{number}"


def test_a_study_sent_by_stow_becomes_deidentified_media_on_one_encounter(clinician, patient):
    client = client_for(clinician)
    response = stow(client, instance(number=1), instance(number=2))
    assert response.status_code == 200, response.content
    assert referenced(response) == [uid(1), uid(2)], "named as the sender knows them"
    encounter = Encounter.objects.get(patient=patient)
    assert encounter.reason == "CT study from the PACS"
    assert encounter.occurred_at.date() == date(2026, 9, 1)
    media = MediaAsset.objects.filter(visit_key__encounter=encounter)
    assert media.count() == 2
    for asset in media:
        kept = pydicom.dcmread(content_store().open_media(asset))
        assert kept.PatientID == str(patient.pseudonym), "de-identified as an upload is"
        assert kept.StudyInstanceUID != "1.2.826.0.1.3680043.9.7.1"
        assert pacs_origin(media=asset).accession_number == "ACC-1", "the way back is kept"
        assert asset.uploaded_by == clinician

    again = stow(client, instance(number=2), instance(number=3))
    assert again.status_code == 200, again.content
    assert referenced(again) == [uid(2), uid(3)]
    assert Encounter.objects.filter(patient=patient).count() == 1, "the study's encounter"
    assert media.all().count() == 3, "the instance already held is not stored twice"


def test_an_organization_may_gather_an_order_by_its_accession_number(clinic, clinician, patient):
    clinic.dicom_visit = Organization.StudyVisits.ACCESSION
    clinic.save()
    client = client_for(clinician)
    for study, accession in (("1", "ACC-1"), ("2", "ACC-1"), ("3", "ACC-2")):
        response = stow(client, instance(study=study, accession=accession))
        assert response.status_code == 200, response.content
    encounters = Encounter.objects.filter(patient=patient)
    assert sorted(encounter.media.count() for encounter in encounters) == [1, 2]
    assert not DicomOrigin.objects.filter(accession_key="ACC-1").exists(), "never in the clear"


def test_an_unknown_patient_is_refused_or_created_as_the_organization_chose(clinic, clinician):
    client = client_for(clinician)
    refused = stow(client, instance(patient_id="MRN-NEW"))
    assert refused.status_code == 409
    assert failed(refused) == [(uid(1), 0x0124)]
    assert "refuses images of patients it does not know" in refused["Warning"]
    assert not Patient.objects.exists()
    assert not Encounter.objects.exists()
    assert not MediaAsset.objects.exists()

    clinic.dicom_unknown_patients = Organization.UnknownPatients.CREATE
    clinic.save()
    created = stow(client, instance(patient_id="MRN-NEW"))
    assert created.status_code == 200, created.content
    patient = Patient.objects.get(organization=clinic, mrn="MRN-NEW")
    assert (patient.full_name, patient.birth_date, patient.sex) == (
        "Eleanor Whitmore",
        date(1961, 3, 14),
        "female",
    )
    assert patient.encounters.get().media.count() == 1


def test_one_bad_part_refuses_the_whole_delivery_saying_why(clinician, patient):
    client = client_for(clinician)
    response = stow(client, instance(number=1), b"this is not a DICOM file", instance(number=3))
    assert response.status_code == 409
    assert failed(response) == [("", 0xC000)]
    assert response["Warning"].startswith('299 tessera "part 2: part 2 is not a DICOM file')
    assert referenced(response) == []
    no_image = stow(client, instance(number=1), instance(number=4, pixels=False))
    assert no_image.status_code == 409
    assert failed(no_image) == [(uid(4), 0x0122)]
    assert "image data is missing" in no_image["Warning"]
    assert not MediaAsset.objects.exists(), "no half-stored study"
    assert not Encounter.objects.exists()


def test_a_body_that_is_not_a_dicom_multipart_is_a_problem(clinician, patient, settings):
    client = client_for(clinician)
    body = b"--right\r\nContent-Type: application/dicom\r\n\r\n" + instance() + b"\r\n--right--\r\n"
    wrong_boundary = client.post(STUDIES, data=body, content_type=STOW.format("wrong"))
    assert "boundary" in assert_problem(wrong_boundary, 400, "malformed_multipart")["detail"]
    text_part = stow(client, b"hello", part_type="text/plain")
    assert "part 1 is text/plain" in assert_problem(text_part, 400, "malformed_multipart")["detail"]
    assert_problem(
        client.post(STUDIES, data={"a": 1}, format="json"), 415, "unsupported_media_type"
    )
    other_type = client.post(
        STUDIES, data=body, content_type='multipart/related; type="application/dicom+xml"'
    )
    assert_problem(other_type, 415, "unsupported_media_type")
    chunked = client.post(
        STUDIES, data=body, content_type=STOW.format("right"), HTTP_TRANSFER_ENCODING="chunked"
    )
    assert "ChunkedTransfers" in assert_problem(chunked, 411, "length_required")["detail"]
    settings.TESSERA_MAX_REQUEST_BYTES = 1000
    assert stow(client, instance()).status_code == 413
    assert not MediaAsset.objects.exists()


def test_only_those_who_write_in_the_clinic_store_and_others_never_see_it(
    clinic, other_clinic, school, patient, make_user
):
    for role in (Role.VIEWER, Role.ANALYST):
        reader = make_user(f"stow-{role}", organization=clinic, role=role)
        assert_problem(stow(client_for(reader), instance()), 403)
    teacher = make_user("stow-teacher", organization=school, role=Role.TEACHER)
    assert "no clinic" in assert_problem(stow(client_for(teacher), instance()), 403)["detail"]
    stranger = make_user("stow-stranger", organization=other_clinic, role=Role.CLINICIAN)
    assert_problem(stow(client_for(stranger), instance(), organization=clinic.pk), 404)
    assert stow(client_for(None), instance()).status_code == 401
    both = make_user("stow-both", organization=clinic, role=Role.CLINICIAN)
    both.memberships.create(organization=other_clinic, role=Role.CLINICIAN)
    assert_problem(stow(client_for(both), instance()), 400, "organization_required")
    named = stow(client_for(both), instance(), organization=clinic.pk)
    assert named.status_code == 200, named.content
    assert not MediaAsset.objects.filter(organization=other_clinic).exists()


def test_a_viewer_searches_and_retrieves_the_stored_studies_de_identified(
    clinic, other_clinic, clinician, patient, make_user
):
    """QIDO-RS and WADO-RS, as OHIF asks: by the stand-in UIDs and the patient's pseudonym."""
    sent = stow(client_for(clinician), instance(number=1), instance(number=2, series="2"))
    assert sent.status_code == 200, sent.content
    viewer = client_for(make_user("qido-viewer", organization=clinic, role=Role.VIEWER))
    accept = {"HTTP_ACCEPT": 'multipart/related; type="application/dicom"'}

    [study] = json.loads(viewer.get(STUDIES, HTTP_ACCEPT="application/dicom+json").content)
    uid = study["0020000D"]["Value"][0]
    assert uid.startswith("2.25."), "the stand-in, never the PACS's UID"
    assert study["00100020"]["Value"] == [str(patient.pseudonym)]
    assert (study["00201206"]["Value"], study["00201208"]["Value"]) == ([2], [2])
    assert study["00080061"]["Value"] == ["CT"]
    assert json.loads(viewer.get(STUDIES, {"StudyInstanceUID": "1.2.3"}).content) == []
    assert len(json.loads(viewer.get(STUDIES, {"PatientID": str(patient.pseudonym)}).content)) == 1

    series = json.loads(viewer.get(f"{STUDIES}/{uid}/series").content)
    assert len(series) == 2
    first = series[0]["0020000E"]["Value"][0]
    [listed] = json.loads(viewer.get(f"{STUDIES}/{uid}/series/{first}/instances").content)
    assert listed["00080016"]["Value"] == [CT]
    sop = listed["00080018"]["Value"][0]

    whole = viewer.get(f"{STUDIES}/{uid}", **accept)
    assert whole.status_code == 200, whole.content
    assert whole["Content-Type"].startswith('multipart/related; type="application/dicom"')
    files = related_parts(whole)
    assert len(files) == 2
    assert {file.PatientID for file in files} == {str(patient.pseudonym)}
    [one] = related_parts(viewer.get(f"{STUDIES}/{uid}/series/{first}/instances/{sop}", **accept))
    assert one.SOPInstanceUID == sop
    frame = viewer.get(f"{STUDIES}/{uid}/series/{first}/instances/{sop}/frames/1", **accept)
    assert frame["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {frame['Content-Type']}\r\n\r\n".encode() + frame.content
    )
    [pixels] = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert pixels == one.pixel_array.tobytes(), "the frame's pixels, uncompressed"
    no_frame = viewer.get(f"{STUDIES}/{uid}/series/{first}/instances/{sop}/frames/2")
    assert "has 1 frame" in assert_problem(no_frame, 404)["detail"]
    [header] = json.loads(viewer.get(f"{STUDIES}/{uid}/series/{first}/metadata").content)
    assert header["00080018"]["Value"] == [sop]
    assert "7FE00010" not in header, "the header, not the pixels"
    downloads = AuditEvent.objects.filter(object_type="media", action="download")
    assert downloads.count() == 4

    stranger = client_for(make_user("qido-stranger", organization=other_clinic))
    assert json.loads(stranger.get(STUDIES).content) == []
    assert_problem(stranger.get(f"{STUDIES}/{uid}", **accept), 404)
    assert_problem(stranger.get(f"{STUDIES}/{uid}/series/{first}/metadata"), 404)


def test_a_search_answers_a_page_at_a_time_saying_when_there_is_more(clinician, patient):
    """QIDO-RS `limit` and `offset`: a viewer's study list of a large archive, page by page."""
    for study in ("1", "2", "3"):
        assert stow(client_for(clinician), instance(study=study)).status_code == 200
    reader = client_for(clinician)
    first = reader.get(STUDIES, {"limit": "2"})
    assert len(json.loads(first.content)) == 2
    assert "additional results" in first["Warning"]
    rest = reader.get(STUDIES, {"limit": "2", "offset": "2"})
    assert len(json.loads(rest.content)) == 1
    assert "Warning" not in rest
    uids = [item["0020000D"]["Value"][0] for item in json.loads(first.content)]
    uids += [item["0020000D"]["Value"][0] for item in json.loads(rest.content)]
    assert len(set(uids)) == 3, "every study once"
    assert AuditEvent.objects.filter(action="list").count() == 3, "each listed image logged"
    [uid] = uids[:1]
    series = reader.get(f"{STUDIES}/{uid}/series", {"offset": "1"})
    assert json.loads(series.content) == [], "the study's one series lies before the offset"
    for page in ({"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"limit": "ten"}):
        assert "limit" in assert_problem(reader.get(STUDIES, page), 400)["detail"]


def related_parts(response) -> list[pydicom.Dataset]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {response['Content-Type']}\r\n\r\n".encode() + response.content
    )
    return [
        pydicom.dcmread(io.BytesIO(part.get_payload(decode=True))) for part in message.iter_parts()
    ]


def test_a_patient_who_cannot_be_created_refuses_the_delivery_in_words(clinic, clinician, patient):
    clinic.dicom_unknown_patients = Organization.UnknownPatients.CREATE
    clinic.save()
    dataset = pydicom.dcmread(io.BytesIO(instance(patient_id="MRN-RTL")))
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PatientName = "Whitmore^Eleanor\u202e"  # a right-to-left override in the name
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    known = instance(number=2)  # the known patient's, stored first, then rolled back
    response = stow(client_for(clinician), known, out.getvalue())
    assert response.status_code == 409, response.content
    assert "patient could not be created" in response["Warning"]
    assert not Patient.objects.filter(mrn="MRN-RTL").exists(), "rolled back with its images"
    assert not MediaAsset.objects.exists()
    stored = list(content_store().blobs.names())
    assert stored == [], "and the files it had written"
