"""DICOM de-identification on ingest: the DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile, with the Retain Longitudinal Temporal Information with Modified Dates
option.

The per-attribute actions (remove, empty, replace, replace UID) are dicom-anonymizer's tables,
generated from the standard (edition 2026c); this module only decides what the profile leaves to
the implementer:

- the patient's name and id become the record's pseudonym, so a stored file points at the record
  and nowhere else;
- every date (DA, DT, nested ones too) moves by a whole number of days that is the same for all of
  one patient's files, so intervals between studies survive; times of day stay;
- every UID that is not a standard one (SOP classes, transfer syntaxes) is remapped to a `2.25.`
  UID derived from it with a keyed hash, so a study uploaded in several parts stays one study;
- private tags go, and the 128-byte preamble is zeroed (a DICOM file can double as an executable,
  CVE-2019-11687);
- what the profile cannot clean — text burned into the pixels, and the SOP classes that usually
  carry it (ultrasound, secondary capture) — is flagged for a person to review.
"""

import hashlib
import hmac
import io
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import BinaryIO

import pydicom
from dicomanonymizer import simpledicomanonymizer
from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from tessera.records.uploads import UploadRejected

PROFILE_EDITION = "dicomfields_2026c"
METHOD = "DICOM PS3.15 Annex E Basic Profile, Modified Dates (Tessera)"
# PS3.16 CID 7050 De-identification Method: Basic Application Confidentiality Profile, and
# Retain Longitudinal Temporal Information with Modified Dates Option.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
# A patient's dates move back by 30 to 730 days: far enough that a date identifies nobody, near
# enough that the season and the patient's age barely change.
SHIFT_DAYS = range(30, 731)

_ULTRASOUND = "1.2.840.10008.5.1.4.1.1.6."
_ULTRASOUND_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class DicomIdentity:
    """Where a DICOM instance sits in a PACS: its study's, series' and own UIDs, the study's
    accession number, and the frame of reference its pixels are placed in (each empty when it
    had none)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    accession_number: str = ""
    sop_class_uid: str = ""  # a standard UID: the same before and after
    frame_of_reference_uid: str = ""


@dataclass(frozen=True)
class DeidentifiedDicom:
    content: bytes
    # Why a person should look at the image before it is shared (empty when nothing was found).
    review_reasons: list[str] = field(default_factory=list)
    # The instance as the PACS knows it, and as Tessera stores it: the way back from the one
    # to the other (records.origins keeps it sealed).
    original: DicomIdentity | None = None
    stand_in: DicomIdentity | None = None


def deidentify_dicom(file: BinaryIO, *, pseudonym: str) -> DeidentifiedDicom:
    """Return the file de-identified for the patient whose record has `pseudonym`.

    The pixel data is left exactly as it was. Raises UploadRejected when the file cannot be
    cleaned (nothing is stored then).
    """
    file.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(file)
        try:
            original = _identity(dataset)
            review_reasons = _review_reasons(dataset)
            _apply_profile(dataset)
            _shift_dates(dataset, days=-date_shift_days(pseudonym))
            _remap_uids(dataset)
            _replace_identity(dataset, pseudonym=pseudonym, review=bool(review_reasons))
            dataset.preamble = b"\0" * 128
            out = io.BytesIO()
            dataset.save_as(out, enforce_file_format=True)
        except (ValueError, TypeError, KeyError, NotImplementedError) as error:
            raise UploadRejected(
                "the DICOM file could not be de-identified, so it was not stored",
                code="dicom_deidentification",
                technical_detail=str(error),
            ) from error
    file.seek(0)
    return DeidentifiedDicom(
        content=out.getvalue(),
        review_reasons=review_reasons,
        original=original,
        stand_in=_identity(dataset),
    )


def _identity(dataset: Dataset) -> DicomIdentity:
    return DicomIdentity(
        study_uid=str(dataset.get("StudyInstanceUID", "")).strip("\0 "),
        series_uid=str(dataset.get("SeriesInstanceUID", "")).strip("\0 "),
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")).strip("\0 "),
        accession_number=str(dataset.get("AccessionNumber", "") or "").strip(),
        sop_class_uid=str(dataset.get("SOPClassUID", "")).strip("\0 "),
        frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "")).strip("\0 "),
    )


def date_shift_days(pseudonym: str) -> int:
    """How many days back this patient's dates move: fixed per patient, unguessable without
    the de-identification key."""
    digest = _keyed_digest("date-shift", pseudonym)
    return SHIFT_DAYS[int.from_bytes(digest[:8], "big") % len(SHIFT_DAYS)]


def remapped_uid(uid: str) -> str:
    """The UID that stands in for `uid`: the same one in every file, from any worker."""
    return f"2.25.{int.from_bytes(_keyed_digest('uid', uid)[:16], 'big')}"


def accession_key(accession_number: str) -> str:
    """What stands in for an accession number where images of one order are looked up
    together: a keyed hash, so the number itself is never stored in the clear."""
    return _keyed_digest("accession", accession_number.strip()).hex()[:40]


def _keyed_digest(purpose: str, value: str) -> bytes:
    key = settings.TESSERA_DEIDENTIFICATION_KEY.encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()


@cache
def _profile_actions() -> dict:
    """The profile's action for each attribute, except dates, times and UIDs, which this module
    handles itself (shifted and remapped consistently rather than blanked or randomised)."""
    actions = simpledicomanonymizer.initialize_actions(PROFILE_EDITION)
    for tag in list(actions):
        if len(tag) == 2 and _vr_of(tag) in {"DA", "DT", "TM", "UI"}:
            actions[tag] = simpledicomanonymizer.keep
    return actions


def _vr_of(tag: tuple[int, int]) -> str:
    try:
        return pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return ""


def _apply_profile(dataset: Dataset) -> None:
    simpledicomanonymizer.anonymize_dataset(
        dataset, delete_private_tags=True, base_rules_gen=_profile_actions
    )


def _shift_dates(dataset: Dataset, *, days: int) -> None:
    offset = timedelta(days=days)

    def shift(_, element) -> None:
        if element.VR == "DA" and element.value:
            element.value = _shifted(element.value, offset, _shift_date)
        elif element.VR == "DT" and element.value:
            element.value = _shifted(element.value, offset, _shift_datetime)

    dataset.walk(shift)  # into sequences too


def _shifted(value, offset: timedelta, shift):
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return shift(str(value), offset)
    return [shift(str(item), offset) for item in value]


def _shift_date(value: str, offset: timedelta) -> str:
    value = value.strip().replace(".", "")  # ACR-NEMA wrote YYYY.MM.DD
    if not value:
        return value
    if "-" in value:  # a range query: shift both ends
        return "-".join(_shift_date(part, offset) for part in value.split("-"))
    return (datetime.strptime(value[:8], "%Y%m%d").date() + offset).strftime("%Y%m%d")


def _shift_datetime(value: str, offset: timedelta) -> str:
    value = value.strip()
    if len(value) < 8:
        return ""  # a year or a month alone cannot be shifted by days; it goes
    shifted: date = datetime.strptime(value[:8], "%Y%m%d").date() + offset
    return shifted.strftime("%Y%m%d") + value[8:]


def _remap_uids(dataset: Dataset) -> None:
    def remap(_, element) -> None:
        if element.VR == "UI" and element.value:
            if isinstance(element.value, str):
                element.value = _remap(element.value)
            else:
                element.value = [_remap(uid) for uid in element.value]

    dataset.walk(remap)
    meta = dataset.file_meta
    if "SOPInstanceUID" in dataset:
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword in ("ImplementationClassUID", "ImplementationVersionName"):
        if keyword in meta:
            del meta[keyword]  # pydicom writes its own: the sender's software is not ours to keep


def _remap(uid: str) -> str:
    uid = uid.strip("\0 ")
    return uid if uid in UID_dictionary else remapped_uid(uid)


def _replace_identity(dataset: Dataset, *, pseudonym: str, review: bool) -> None:
    dataset.PatientName = pseudonym
    dataset.PatientID = pseudonym
    # "YES" only when nothing identifying may remain in the pixels (PS3.3 C.7.1.1).
    dataset.PatientIdentityRemoved = "NO" if review else "YES"
    dataset.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in METHOD_CODES:
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = meaning
        codes.append(code)
    dataset.DeidentificationMethodCodeSequence = Sequence(codes)


def _review_reasons(dataset: Dataset) -> list[str]:
    reasons = []
    burned_in = str(dataset.get("BurnedInAnnotation", "")).upper()
    if burned_in == "YES":
        reasons.append("the image says it has text burned into its pixels")
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class.startswith(_ULTRASOUND) or sop_class == _ULTRASOUND_MULTIFRAME:
        reasons.append("ultrasound images often show the patient's name in the picture")
    elif sop_class.startswith(_SECONDARY_CAPTURE):
        reasons.append("a secondary capture (screenshot or scan) may show text in the picture")
    return reasons
