"""Records: organization-scoped identifiers, consistent relations, content-addressed media that is
stored whole or not at all, and deletion that is explicit and complete."""

import hashlib
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tessera.records.models import MediaAsset, MediaKind, Patient
from tessera.records.services import (
    add_media,
    create_cohort,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.uploads import UploadRejected
from tests.conftest import stored_files, upload

pytestmark = pytest.mark.django_db
WHEN = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
def encounter(clinic):
    patient = create_patient(organization=clinic, mrn="A-1", full_name="Ada Byron")
    return create_encounter(patient=patient, occurred_at=WHEN, reason="Cough")


@pytest.fixture
def session(school):
    student = create_student(
        organization=school, student_number="S-1", full_name="Sam Lee", grade="9"
    )
    return create_learning_session(student=student, occurred_at=WHEN, subject_area="Mathematics")


def test_an_mrn_is_unique_within_its_organization_only(clinic, other_clinic):
    create_patient(organization=clinic, mrn="123", full_name="First Person")
    create_patient(organization=other_clinic, mrn="123", full_name="Someone Else")
    with pytest.raises(ValidationError, match="MRN already exists"):
        create_patient(organization=clinic, mrn="123", full_name="Duplicate")
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(organization=clinic, mrn="123", full_name="Bypassing validation")


def test_a_student_number_is_unique_within_its_organization(school):
    create_student(organization=school, student_number="7", full_name="One")
    with pytest.raises(ValidationError):
        create_student(organization=school, student_number="7", full_name="Two")


def test_patients_belong_to_clinics_and_students_to_schools(clinic, school):
    with pytest.raises(ValidationError, match="Patients belong to clinics"):
        create_patient(organization=school, mrn="1", full_name="Wrong Place")
    with pytest.raises(ValidationError, match="Students belong to schools"):
        create_student(organization=clinic, student_number="1", full_name="Wrong Place")


def test_a_cohort_of_another_organization_is_refused(clinic, other_clinic):
    foreign_ward = create_cohort(organization=other_clinic, name="Ward 3")
    with pytest.raises(ValidationError, match="another organization"):
        create_patient(organization=clinic, mrn="9", full_name="Cross Over", cohort=foreign_ward)


def test_each_patient_gets_a_distinct_pseudonym(clinic):
    first = create_patient(organization=clinic, mrn="1", full_name="A B")
    second = create_patient(organization=clinic, mrn="2", full_name="C D")
    assert first.pseudonym != second.pseudonym


def test_media_is_stored_content_addressed_with_its_metadata(
    encounter, dicom_bytes, media_root, make_user
):
    clinician = make_user("doc")
    asset = add_media(
        attached_to=encounter,
        kind=MediaKind.DICOM,
        file=upload(dicom_bytes),
        filename="ct.dcm",
        uploaded_by=clinician,
    )
    kept = (media_root / asset.storage_path).read_bytes()
    digest = hashlib.sha256(kept).hexdigest()
    assert asset.sha256 == digest
    assert asset.storage_path == f"{digest[:2]}/{digest[2:4]}/{digest}"
    assert kept != dicom_bytes, "DICOM is stored de-identified"
    assert asset.organization == encounter.patient.organization
    assert asset.metadata["modality"] == "CT"
    assert asset.uploaded_by == clinician
    assert stored_files(media_root) == [media_root / asset.storage_path], "no temporary files left"


def test_identical_content_is_stored_once(encounter, wav_audio, media_root):
    first = add_media(attached_to=encounter, kind=MediaKind.SPEECH, file=upload(wav_audio))
    second = add_media(attached_to=encounter, kind=MediaKind.SPEECH, file=upload(wav_audio))
    assert first.pk != second.pk
    assert first.storage_path == second.storage_path
    assert len(stored_files(media_root)) == 1


def test_a_rejected_upload_leaves_nothing_behind(encounter, dicom_bytes, media_root):
    with pytest.raises(UploadRejected):
        add_media(attached_to=encounter, kind=MediaKind.DICOM, file=upload(dicom_bytes[:-500]))
    assert MediaAsset.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_failed_database_write_removes_the_new_file(encounter, wav_audio, media_root):
    with (
        mock.patch.object(MediaAsset.objects, "create", side_effect=IntegrityError("disk full")),
        pytest.raises(IntegrityError),
    ):
        add_media(attached_to=encounter, kind=MediaKind.SPEECH, file=upload(wav_audio))
    assert stored_files(media_root) == []


def test_media_must_match_its_subject(encounter, session, wav_audio):
    with pytest.raises(UploadRejected, match="must be attached to a learning session"):
        add_media(attached_to=encounter, kind=MediaKind.LEARNER_AUDIO, file=upload(wav_audio))
    with pytest.raises(UploadRejected, match="must be attached to a patient encounter"):
        add_media(attached_to=session, kind=MediaKind.SPEECH, file=upload(wav_audio))
    with pytest.raises(IntegrityError), transaction.atomic():
        MediaAsset.objects.create(
            organization=encounter.patient.organization,
            visit_key=encounter.visit_key,
            kind=MediaKind.LEARNER_TEXT,
            sha256="0" * 64,
            size_bytes=1,
            content_type="text/plain",
            storage_path="x",
        )


@pytest.mark.django_db(transaction=True)
def test_deleting_a_patient_is_explicit_and_removes_their_files(
    clinic, wav_audio, dicom_bytes, media_root
):
    patient = create_patient(organization=clinic, mrn="Z", full_name="To Delete")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    kept = create_encounter(
        patient=create_patient(organization=clinic, mrn="K", full_name="Kept"), occurred_at=WHEN
    )
    add_media(attached_to=kept, kind=MediaKind.SPEECH, file=upload(wav_audio))
    add_media(attached_to=visit, kind=MediaKind.SPEECH, file=upload(wav_audio))  # shared content

    patient.delete()

    assert MediaAsset.objects.count() == 1
    remaining = stored_files(media_root)
    assert [path.name for path in remaining] == [hashlib.sha256(wav_audio).hexdigest()]


def test_an_organization_with_records_cannot_be_deleted_by_accident(clinic):
    from django.db.models import ProtectedError

    create_patient(organization=clinic, mrn="P", full_name="Protected")
    with pytest.raises(ProtectedError):
        clinic.delete()
