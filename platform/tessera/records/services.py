"""Writes for records: subjects, visits and sessions, and media uploads."""

import dataclasses
import hashlib
import io
from contextlib import contextmanager
from datetime import date, datetime
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from tessera.accounts.models import Organization
from tessera.accounts.selectors import organization_of
from tessera.records.archives import dicom_entries
from tessera.records.deidentify import METHOD, deidentify_dicom
from tessera.records.models import (
    ENCOUNTER_MEDIA,
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    MediaKind,
    Patient,
    Sex,
    Student,
)
from tessera.records.storage import content_store
from tessera.records.uploads import UploadRejected, ValidatedUpload, validate_upload


def create_cohort(*, organization: Organization, name: str, description: str = "") -> Cohort:
    cohort = Cohort(organization=organization, name=name, description=description)
    cohort.full_clean()
    cohort.save()
    return cohort


def create_patient(
    *,
    organization: Organization,
    mrn: str,
    full_name: str,
    birth_date: date | None = None,
    sex: str = Sex.UNKNOWN,
    cohort: Cohort | None = None,
) -> Patient:
    patient = Patient(
        organization=organization,
        mrn=mrn,
        full_name=full_name,
        birth_date=birth_date,
        sex=sex,
        cohort=cohort,
    )
    patient.full_clean()
    patient.save()
    return patient


def create_student(
    *,
    organization: Organization,
    student_number: str,
    full_name: str,
    grade: str = "",
    birth_date: date | None = None,
    sex: str = Sex.UNKNOWN,
    cohort: Cohort | None = None,
) -> Student:
    student = Student(
        organization=organization,
        student_number=student_number,
        full_name=full_name,
        grade=grade,
        birth_date=birth_date,
        sex=sex,
        cohort=cohort,
    )
    student.full_clean()
    student.save()
    return student


def create_encounter(
    *,
    patient: Patient,
    occurred_at: datetime,
    reason: str = "",
    clinician: AbstractBaseUser | None = None,
) -> Encounter:
    encounter = Encounter(
        patient=patient, occurred_at=occurred_at, reason=reason, clinician=clinician
    )
    encounter.full_clean()
    encounter.save()
    return encounter


def create_learning_session(
    *,
    student: Student,
    occurred_at: datetime,
    subject_area: str,
    title: str = "",
    teacher: AbstractBaseUser | None = None,
) -> LearningSession:
    session = LearningSession(
        student=student,
        occurred_at=occurred_at,
        subject_area=subject_area,
        title=title,
        teacher=teacher,
    )
    session.full_clean()
    session.save()
    return session


def add_media(
    *,
    attached_to: Encounter | LearningSession,
    kind: str,
    file: BinaryIO,
    filename: str = "",
    declared_content_type: str = "",
    uploaded_by: AbstractBaseUser | None = None,
) -> MediaAsset:
    """Validate an upload, store it content-addressed and record it.

    Raises UploadRejected, with nothing written, when the file is not acceptable.
    """
    kind = MediaKind(kind)
    belongs_to_encounter = kind in ENCOUNTER_MEDIA
    if belongs_to_encounter != isinstance(attached_to, Encounter):
        where = "a patient encounter" if belongs_to_encounter else "a learning session"
        raise UploadRejected(
            f"a {kind.label.lower()} must be attached to {where}", code="wrong_subject"
        )
    upload = validate_upload(
        kind=kind, file=file, filename=filename, declared_content_type=declared_content_type
    )
    if kind == MediaKind.DICOM:
        upload, file = _deidentified(upload, file, patient=attached_to.patient)
    with _storing() as store:
        store(upload, file)
        with transaction.atomic():
            return _media_row(attached_to, upload, uploaded_by=uploaded_by)


def add_dicom_series(
    *,
    encounter: Encounter,
    archive: BinaryIO,
    uploaded_by: AbstractBaseUser | None = None,
) -> list[MediaAsset]:
    """Store every image of a zipped DICOM series (archives.dicom_entries says what is safe),
    each validated and de-identified like a single upload — all of them, or none: one bad
    entry refuses the archive, naming the entry, with nothing written."""
    if not isinstance(encounter, Encounter):
        raise UploadRejected("medical images belong to a patient encounter", code="wrong_subject")
    prepared = []
    for entry in dicom_entries(archive):
        try:
            upload = validate_upload(kind=MediaKind.DICOM, file=entry.content, filename=entry.name)
            prepared.append(_deidentified(upload, entry.content, patient=encounter.patient))
        except UploadRejected as rejection:
            raise UploadRejected(
                f"{entry.name}: {rejection.message}", code=rejection.code
            ) from rejection
    with _storing() as store:
        for upload, content in prepared:
            store(upload, content)
        with transaction.atomic():
            return [
                _media_row(encounter, upload, uploaded_by=uploaded_by) for upload, _ in prepared
            ]


@contextmanager
def _storing():
    """Yields a function that stores content-addressed files; if the block fails, the files it
    stored first (and no other row refers to) are removed again."""
    store = content_store()
    stored: list[str] = []

    def save(upload: ValidatedUpload, file: BinaryIO) -> None:
        if store.save(file, sha256=upload.sha256):
            stored.append(upload.sha256)

    try:
        yield save
    except BaseException:
        for sha256 in stored:
            if not MediaAsset.objects.filter(sha256=sha256).exists():
                store.delete(sha256)
        raise


def _media_row(
    attached_to: Encounter | LearningSession,
    upload: ValidatedUpload,
    *,
    uploaded_by: AbstractBaseUser | None,
) -> MediaAsset:
    belongs_to_encounter = isinstance(attached_to, Encounter)
    return MediaAsset.objects.create(
        organization=organization_of(attached_to),
        encounter=attached_to if belongs_to_encounter else None,
        learning_session=None if belongs_to_encounter else attached_to,
        kind=upload.kind,
        sha256=upload.sha256,
        size_bytes=upload.size_bytes,
        content_type=upload.content_type,
        original_filename=upload.original_filename,
        metadata=upload.metadata,
        storage_path=content_store().relative_path(upload.sha256),
        uploaded_by=uploaded_by,
    )


def _deidentified(
    upload: ValidatedUpload, file: BinaryIO, *, patient: Patient
) -> tuple[ValidatedUpload, BinaryIO]:
    """The validated DICOM upload as it will be stored: de-identified, under its new hash. Tessera
    never stores the original (an upload over FILE_UPLOAD_MAX_MEMORY_SIZE does pass through
    Django's temporary upload file, removed when the request ends)."""
    cleaned = deidentify_dicom(file, pseudonym=str(patient.pseudonym))
    metadata = {
        **upload.metadata,
        "deidentification": {"method": METHOD, "review": cleaned.review_reasons},
    }
    stored = dataclasses.replace(
        upload,
        sha256=hashlib.sha256(cleaned.content).hexdigest(),
        size_bytes=len(cleaned.content),
        metadata=metadata,
    )
    return stored, io.BytesIO(cleaned.content)
