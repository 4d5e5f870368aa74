"""Images that arrive from a PACS or a modality (DICOMweb STOW-RS; DIMSE to come) rather than
from a person's upload. Each finds its patient and encounter by the organization's rules:

- its PatientID is the patient's MRN; an unknown one is refused, or the patient is created from
  the image (`Organization.dicom_unknown_patients`);
- it joins the encounter that holds earlier images of its study, or of its order (same
  accession number: `Organization.dicom_visit`), else a new encounter on the study's date.

Then it is validated, de-identified and stored exactly as an upload is (records.services), its
way back to the PACS kept (records.origins). A delivery is stored whole or not at all: one
refused image refuses them all, each refusal saying why, so a sender never has half a study
here. An image already held (same SOP instance) is not stored twice, and counts as stored.
"""

import io
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, time

import pydicom
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydicom.errors import InvalidDicomError

from tessera.accounts.models import Organization
from tessera.records.deidentify import accession_key, remapped_uid
from tessera.records.models import DicomOrigin, Encounter, MediaAsset, MediaKind, Patient, Sex
from tessera.records.selectors import stored_content_in_use
from tessera.records.services import add_validated_dicom, create_encounter, create_patient
from tessera.records.storage import content_store
from tessera.records.uploads import UploadRejected, ValidatedUpload, validate_upload

# PS3.4 / PS3.18 failure reasons, as STOW-RS and C-STORE report them.
CANNOT_UNDERSTAND = 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
DICOM_SEXES = {"F": Sex.FEMALE, "M": Sex.MALE, "O": Sex.OTHER}


@dataclass(frozen=True)
class Refusal:
    """One image not stored: what it was, the DICOM failure reason and why, in words."""

    part: int  # its place in the delivery, from 1
    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int
    why: str


@dataclass(frozen=True)
class Stored:
    part: int
    sop_class_uid: str
    sop_instance_uid: str  # as the sender knows it
    media: MediaAsset
    already_held: bool = False


@dataclass
class Delivery:
    stored: list[Stored] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass(frozen=True)
class _Arrival:
    part: int
    content: bytes
    dataset: pydicom.Dataset  # the header, before de-identification
    upload: ValidatedUpload


def receive_dicom(
    *,
    organization: Organization,
    instances: list[bytes],
    received_by: AbstractBaseUser | None,
) -> Delivery:
    """Store `instances` (DICOM files as sent) for `organization`: all of them, or none with
    every refusal listed."""
    delivery = Delivery()
    arrivals = []
    for part, content in enumerate(instances, start=1):
        arrival, refusal = _checked(part, content, organization=organization)
        if refusal is not None:
            delivery.refused.append(refusal)
        else:
            arrivals.append(arrival)
    if delivery.refused:
        return delivery
    written: list[MediaAsset] = []
    try:
        with transaction.atomic():
            for arrival in arrivals:
                try:
                    delivery.stored.append(_store(arrival, organization, received_by, written))
                except (UploadRejected, ValidationError) as error:
                    raise _Refused(_refusal(arrival, error)) from error
    except BaseException as failure:
        store = content_store()
        for media in written:  # rolled back: their files go too, unless another row has them
            files = [(media.sha256, media.encrypted)]
            if media.original_sha256:  # a kept original, always encrypted
                files.append((media.original_sha256, True))
            for sha256, encrypted in files:
                if not stored_content_in_use(sha256, encrypted=encrypted):
                    store.delete(sha256, encrypted=encrypted)
        if isinstance(failure, _Refused):
            return Delivery(refused=[failure.refusal])
        raise
    return delivery


class _Refused(Exception):
    """An image refused only while the delivery was being stored (a name the patient cannot
    be created with, a file de-identification cannot clean): the whole delivery rolls back."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.why)
        self.refusal = refusal


def _refusal(arrival: _Arrival, error: Exception) -> Refusal:
    if isinstance(error, UploadRejected):
        why = error.message
    else:
        why = "the image's patient could not be created: " + " ".join(error.messages)
    dataset = arrival.dataset
    return Refusal(
        arrival.part,
        str(dataset.SOPClassUID),
        str(dataset.SOPInstanceUID),
        CANNOT_UNDERSTAND,
        why,
    )


def _checked(
    part: int, content: bytes, *, organization: Organization
) -> tuple[_Arrival | None, Refusal | None]:
    """The arrival with its header, or why it cannot be stored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, TypeError, EOFError, OSError) as error:
        why = f"part {part} is not a DICOM file ({error})"
        return None, Refusal(part, "", "", CANNOT_UNDERSTAND, why)
    sop_class = str(dataset.get("SOPClassUID", ""))
    sop_instance = str(dataset.get("SOPInstanceUID", ""))

    def refused(reason: int, why: str) -> tuple[None, Refusal]:
        return None, Refusal(part, sop_class, sop_instance, reason, why)

    if not sop_instance or not dataset.get("StudyInstanceUID"):
        return refused(CANNOT_UNDERSTAND, "the image has no SOP Instance UID or Study UID")
    try:
        upload = validate_upload(
            kind=MediaKind.DICOM,
            file=io.BytesIO(content),
            filename=f"{sop_instance}.dcm",
            declared_content_type="application/dicom",
        )
    except UploadRejected as rejection:
        reason = (
            SOP_CLASS_NOT_SUPPORTED if rejection.code == "dicom_no_image" else CANNOT_UNDERSTAND
        )
        return refused(reason, rejection.message)
    mrn = str(dataset.get("PatientID", "")).strip()
    if not mrn:
        return refused(CANNOT_UNDERSTAND, "the image has no PatientID to find its patient by")
    known = Patient.objects.filter(organization=organization, mrn=mrn).exists()
    if not known and organization.dicom_unknown_patients == Organization.UnknownPatients.REFUSE:
        return refused(
            NOT_AUTHORIZED,
            f"no patient of {organization.name} has the MRN in the image's PatientID, and the "
            "organization refuses images of patients it does not know",
        )
    return _Arrival(part, content, dataset, upload), None


def _store(
    arrival: _Arrival,
    organization: Organization,
    received_by: AbstractBaseUser | None,
    written: list[MediaAsset],
) -> Stored:
    dataset = arrival.dataset
    sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
    held = (
        DicomOrigin.objects.filter(
            media__organization=organization, sop_instance_uid=remapped_uid(sop_instance)
        )
        .select_related("media")
        .first()
    )
    if held is not None:
        return Stored(arrival.part, sop_class, sop_instance, held.media, already_held=True)
    patient = _patient(dataset, organization)
    media = add_validated_dicom(
        encounter=_encounter(dataset, patient),
        upload=arrival.upload,
        file=io.BytesIO(arrival.content),
        uploaded_by=received_by,
    )
    written.append(media)
    return Stored(arrival.part, sop_class, sop_instance, media)


def _patient(dataset: pydicom.Dataset, organization: Organization) -> Patient:
    mrn = str(dataset.PatientID).strip()
    patient = Patient.objects.filter(organization=organization, mrn=mrn).first()
    if patient is not None:
        return patient
    name = dataset.get("PatientName")
    full_name = (
        " ".join(part for part in (name.given_name, name.family_name) if part) if name else ""
    )
    return create_patient(
        organization=organization,
        mrn=mrn,
        full_name=full_name or f"Patient {mrn}",
        birth_date=_date(dataset.get("PatientBirthDate")),
        sex=DICOM_SEXES.get(str(dataset.get("PatientSex", "")).upper(), Sex.UNKNOWN),
    )


def _encounter(dataset: pydicom.Dataset, patient: Patient) -> Encounter:
    """The encounter holding earlier images of this study (or order), else a new one."""
    earlier = DicomOrigin.objects.filter(media__visit_key__encounter__patient=patient)
    accession = str(dataset.get("AccessionNumber", "") or "").strip()
    if patient.organization.dicom_visit == Organization.StudyVisits.ACCESSION and accession:
        earlier = earlier.filter(accession_key=accession_key(accession))
    else:
        earlier = earlier.filter(study_uid=remapped_uid(str(dataset.StudyInstanceUID)))
    found = earlier.select_related("media__visit_key__encounter").first()
    if found is not None:
        return found.media.visit_key.encounter
    modality = str(dataset.get("Modality", "") or "").strip()
    return create_encounter(
        patient=patient,
        occurred_at=_occurred_at(dataset),
        reason=f"{modality + ' ' if modality else ''}study from the PACS",
    )


def _occurred_at(dataset: pydicom.Dataset) -> datetime:
    day = _date(dataset.get("StudyDate"))
    if day is None:
        return timezone.now()
    clock = str(dataset.get("StudyTime", "") or "")[:6]
    try:
        at = time(int(clock[:2]), int(clock[2:4] or 0), int(clock[4:6] or 0))
    except ValueError:
        at = time(0, 0)
    return timezone.make_aware(datetime.combine(day, at))


def _date(value) -> date | None:
    try:
        return datetime.strptime(str(value or "")[:8], "%Y%m%d").date()
    except ValueError:
        return None
