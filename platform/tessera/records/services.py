"""Writes for records: subjects, visits and sessions, and media uploads."""

import dataclasses
import hashlib
import io
from datetime import date, datetime
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Model

from tessera.accounts.models import Organization
from tessera.accounts.selectors import organization_of
from tessera.records.archives import dicom_entries
from tessera.records.deidentify import METHOD, DicomIdentity, accession_key, deidentify_dicom
from tessera.records.kinds import Visit, kind_accepting, kind_of, subject_of, visit_fields
from tessera.records.models import (
    Cohort,
    DicomOrigin,
    Encounter,
    LearningSession,
    MediaAsset,
    MediaKind,
    Patient,
    Sex,
    Student,
    Transcript,
)
from tessera.records.origins import seal_identity, unseal_identity
from tessera.records.selectors import sealed, stored_content_in_use, transcript_segments
from tessera.records.storage import ContentStore, StoredContentCorrupted, content_store
from tessera.records.transcription import is_recording, request_transcription
from tessera.records.uploads import UploadRejected, ValidatedUpload, validate_upload


def change_record(*, record: Model, changes: dict[str, object]) -> Model:
    """A correction to a cohort, a person or a visit: the changed fields, checked by the
    model's own rules (uniqueness included) before anything is saved."""
    for field, value in changes.items():
        setattr(record, field, value)
    record.full_clean()
    record.save()
    return record


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
    attached_to: Visit,
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
    if kind not in kind_of(attached_to).media_kinds:
        where = kind_accepting(kind).visit_described
        raise UploadRejected(
            f"a {kind.label.lower()} must be attached to {where}", code="wrong_subject"
        )
    upload = validate_upload(
        kind=kind, file=file, filename=filename, declared_content_type=declared_content_type
    )
    [asset] = _store(attached_to, [_staged(attached_to, upload, file)], uploaded_by=uploaded_by)
    return asset


def add_validated_dicom(
    *,
    encounter: Encounter,
    upload: ValidatedUpload,
    file: BinaryIO,
    uploaded_by: AbstractBaseUser | None = None,
) -> MediaAsset:
    """Store a DICOM file `validate_upload` has already accepted (a PACS delivery checks every
    image before it writes any): de-identified and recorded as `add_media` does, without
    decoding it a second time."""
    [asset] = _store(encounter, [_staged(encounter, upload, file)], uploaded_by=uploaded_by)
    return asset


def add_dicom_series(
    *,
    encounter: Encounter,
    archive: BinaryIO,
    uploaded_by: AbstractBaseUser | None = None,
) -> list[MediaAsset]:
    """Store every image of a zipped DICOM series (archives.dicom_entries says what is safe),
    each validated and de-identified like a single upload — all of them, or none: one bad
    entry refuses the archive, naming the entry, with nothing written."""
    if MediaKind.DICOM not in kind_of(encounter).media_kinds:
        raise UploadRejected("medical images belong to a patient encounter", code="wrong_subject")
    staged = []
    for entry in dicom_entries(archive):
        try:
            upload = validate_upload(kind=MediaKind.DICOM, file=entry.content, filename=entry.name)
            staged.append(_staged(encounter, upload, entry.content))
        except UploadRejected as rejection:
            raise UploadRejected(
                f"{entry.name}: {rejection.message}",
                code=rejection.code,
                technical_detail=rejection.technical_detail,
            ) from rejection
    return _store(encounter, staged, uploaded_by=uploaded_by)


@dataclasses.dataclass(frozen=True)
class _Staged:
    """A validated upload as it will be stored, and the original when that is kept too; for
    DICOM, where the image sits in the PACS and where it is stored (the way back)."""

    upload: ValidatedUpload
    content: BinaryIO
    original_sha256: str = ""
    original_content: BinaryIO | None = None
    original: DicomIdentity | None = None
    stand_in: DicomIdentity | None = None


def _staged(attached_to: Visit, upload: ValidatedUpload, file: BinaryIO) -> _Staged:
    if upload.kind != MediaKind.DICOM:
        return _Staged(upload, file)
    cleaned, content, identities = _deidentified(upload, file, patient=subject_of(attached_to))
    if organization_of(attached_to).keep_dicom_originals:
        return _Staged(
            cleaned, content, original_sha256=upload.sha256, original_content=file, **identities
        )
    return _Staged(cleaned, content, **identities)


def _store(
    attached_to: Visit,
    staged: list[_Staged],
    *,
    uploaded_by: AbstractBaseUser | None,
) -> list[MediaAsset]:
    """Writes the files, then their rows in one transaction; if anything fails, the files it
    stored first (and no other row refers to) are removed again."""
    store = content_store()
    encrypted = organization_of(attached_to).encrypt_media
    stored: list[tuple[str, bool]] = []

    def save(sha256: str, content: BinaryIO, *, encrypted: bool) -> None:
        if store.save(content, sha256=sha256, encrypted=encrypted):
            stored.append((sha256, encrypted))

    try:
        for item in staged:
            save(item.upload.sha256, item.content, encrypted=encrypted)
            if item.original_sha256:  # identifiable: never kept in the clear
                save(item.original_sha256, item.original_content, encrypted=True)
        with transaction.atomic():
            assets = [
                _media_row(attached_to, item, encrypted=encrypted, uploaded_by=uploaded_by)
                for item in staged
            ]
            for asset in filter(is_recording, assets):
                request_transcription(media=asset)
            return assets
    except BaseException:
        for sha256, was_encrypted in stored:
            if not stored_content_in_use(sha256, encrypted=was_encrypted):
                store.delete(sha256, encrypted=was_encrypted)
        raise


def _media_row(
    attached_to: Visit,
    staged: _Staged,
    *,
    encrypted: bool,
    uploaded_by: AbstractBaseUser | None,
) -> MediaAsset:
    upload = staged.upload
    asset = MediaAsset.objects.create(
        organization=organization_of(attached_to),
        **visit_fields(attached_to),
        kind=upload.kind,
        sha256=upload.sha256,
        size_bytes=upload.size_bytes,
        content_type=upload.content_type,
        original_filename=upload.original_filename,
        metadata=upload.metadata,
        storage_path=content_store().relative_path(upload.sha256, encrypted=encrypted),
        encrypted=encrypted,
        original_sha256=staged.original_sha256,
        uploaded_by=uploaded_by,
    )
    if staged.original is not None and staged.stand_in is not None:
        DicomOrigin.objects.create(
            media=asset,
            study_uid=staged.stand_in.study_uid,
            series_uid=staged.stand_in.series_uid,
            sop_instance_uid=staged.stand_in.sop_instance_uid,
            sop_class_uid=staged.stand_in.sop_class_uid,
            accession_key=accession_key(staged.original.accession_number)
            if staged.original.accession_number
            else "",
            sealed=seal_identity(staged.original),
        )
    return asset


def _deidentified(
    upload: ValidatedUpload, file: BinaryIO, *, patient: Patient
) -> tuple[ValidatedUpload, BinaryIO, dict[str, DicomIdentity | None]]:
    """The validated DICOM upload as it will be stored: de-identified, under its new hash, and
    its original and stand-in identities. Tessera stores the original file only where the
    organization opts in, and then encrypted (and uploads reach it from memory:
    records.upload_handlers)."""
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
    identities = {"original": cleaned.original, "stand_in": cleaned.stand_in}
    return stored, io.BytesIO(cleaned.content), identities


@dataclasses.dataclass
class EncryptionSync:
    encrypted: int = 0
    decrypted: int = 0
    rotated: int = 0
    damaged: list[int] = dataclasses.field(default_factory=list)


def sync_media_encryption(*, rotate: bool = False) -> EncryptionSync:
    """Bring every stored file in line with its organization's encryption setting: encrypt the
    files of organizations that turned encryption on, decrypt those of organizations that turned
    it off, and with `rotate` re-encrypt the rest (and every kept original) under the first key.
    A damaged file is left as it is and reported by media id."""
    store = content_store()
    done = EncryptionSync()
    assets = MediaAsset.objects.select_related("organization", "transcript", "origin")
    assets = assets.order_by("pk")
    for asset in assets.iterator():
        wanted = asset.organization.encrypt_media
        try:
            if asset.encrypted != wanted:
                _convert(store, asset, encrypted=wanted)
                if wanted:
                    done.encrypted += 1
                else:
                    done.decrypted += 1
            elif rotate and asset.encrypted:
                store.rotate(asset.sha256)
                done.rotated += 1
            if rotate and asset.original_sha256:
                store.rotate(asset.original_sha256)
            if hasattr(asset, "transcript"):
                _reseal(asset.transcript, encrypted=wanted, rotate=rotate)
            if rotate and hasattr(asset, "origin"):
                origin = asset.origin  # sealed whatever the setting: under the first key now
                DicomOrigin.objects.filter(pk=origin.pk).update(
                    sealed=seal_identity(unseal_identity(origin.sealed))
                )
        except StoredContentCorrupted:
            done.damaged.append(asset.pk)
    return done


def _reseal(transcript: Transcript, *, encrypted: bool, rotate: bool) -> None:
    """The transcript's segments in the same form as its recording (under the first key)."""
    if transcript.encrypted == encrypted and not (rotate and encrypted):
        return
    Transcript.objects.filter(pk=transcript.pk).update(
        sealed_segments=sealed(transcript_segments(transcript), encrypted=encrypted),
        encrypted=encrypted,
    )


def _convert(store: ContentStore, asset: MediaAsset, *, encrypted: bool) -> None:
    """Store the asset's content in the other form, point its row there, then remove the old
    form once nothing refers to it."""
    was_encrypted = asset.encrypted
    with store.open_media(asset) as content:
        store.save(content, sha256=asset.sha256, encrypted=encrypted)
    asset.encrypted = encrypted
    asset.storage_path = store.relative_path(asset.sha256, encrypted=encrypted)
    asset.save(update_fields=["encrypted", "storage_path"])
    if not stored_content_in_use(asset.sha256, encrypted=was_encrypted):
        store.delete(asset.sha256, encrypted=was_encrypted)
