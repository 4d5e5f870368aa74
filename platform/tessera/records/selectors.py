"""Reads for records that more than one room needs."""

import json
import logging
from dataclasses import asdict

from django.db.models import Q, QuerySet

from mlcore.speech import Segment
from tessera.audit import services as audit
from tessera.records.deidentify import DicomIdentity
from tessera.records.models import DicomOrigin, MediaAsset, Transcript
from tessera.records.origins import unseal_identity
from tessera.records.storage import StoredContentCorrupted, content_store

logger = logging.getLogger(__name__)


def stored_content_in_use(sha256: str, *, encrypted: bool) -> bool:
    """Whether a media row still refers to this stored file (as its content, or as its kept
    original, which is always encrypted)."""
    refers = Q(sha256=sha256, encrypted=encrypted)
    if encrypted:
        refers |= Q(original_sha256=sha256)
    return MediaAsset.objects.filter(refers).exists()


def sealed(segments: list[Segment], *, encrypted: bool) -> str:
    """Segments as a transcript row keeps them: JSON, sealed with the media keys when
    `encrypted` (what `transcript_segments` reads back)."""
    plain = json.dumps([asdict(segment) for segment in segments])
    return content_store().seal(plain.encode()) if encrypted else plain


def transcript_segments(transcript: Transcript) -> list[Segment]:
    """What was said, segment by segment (unsealed when the organization encrypts its media).
    Raises StoredContentCorrupted when it cannot be decrypted."""
    if not transcript.sealed_segments:
        return []
    plain = transcript.sealed_segments
    if transcript.encrypted:
        plain = content_store().unseal(plain).decode()
    return [Segment(**segment) for segment in json.loads(plain)]


def readable_segments(transcript: Transcript) -> list[Segment]:
    """The segments to show (read once per transcript object): none, logged for the IT team,
    when the sealed transcript cannot be decrypted with this server's keys."""
    if not hasattr(transcript, "_readable_segments"):
        try:
            transcript._readable_segments = transcript_segments(transcript)
        except StoredContentCorrupted:
            logger.error("transcript %s cannot be decrypted with this server's keys", transcript.pk)
            transcript._readable_segments = []
    return transcript._readable_segments


def transcripts_of(media) -> list[Transcript]:
    """The transcripts of these files (their recordings'), as loaded with them."""
    return [asset.transcript for asset in media if hasattr(asset, "transcript")]


def pacs_origin(*, media: MediaAsset) -> DicomIdentity | None:
    """Where a de-identified DICOM image came from in the PACS (its original UIDs and accession
    number); None for any other file. The read is audited; who may make it is the caller's
    check (an organization's admins: Capability.READ_ORIGINALS). Raises StoredContentCorrupted
    when this server's keys cannot open it."""
    origin = DicomOrigin.objects.filter(media=media).first()
    if origin is None:
        return None
    audit.record(origin, action=audit.Action.VIEW)
    return unseal_identity(origin.sealed)


def dicom_instances(*, organizations) -> QuerySet[DicomOrigin]:
    """The de-identified DICOM images of `organizations`, by the stand-in UIDs they are stored
    under (what DICOMweb searches and serves), with their image and patient."""
    return DicomOrigin.objects.filter(media__organization__in=organizations).select_related(
        "media", "media__visit_key__encounter__patient"
    )
