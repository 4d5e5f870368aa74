"""Data-subject requests (GDPR Art. 15 and 17, FERPA inspection): everything held about one
patient or student, exported as a zip; or erased — record, visits, files, analyses, reports and
cached features — leaving only the access log, which names them by id and records the erasure."""

import io
import json
import zipfile
from pathlib import PurePosixPath

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from tessera.audit import services as audit
from tessera.audit.models import AuditEvent
from tessera.jobs.models import AnalysisJob
from tessera.records.kinds import (
    TO_VISITS,
    Subject,
    kind_of,
    subject_fields,
    visit_id_of,
    visit_ids,
)
from tessera.records.models import MediaAsset
from tessera.records.selectors import readable_segments
from tessera.records.storage import StoredContentCorrupted, content_store
from tessera.reports.models import Report
from tessera.reports.selectors import report_sha256
from tessera.storage import blob_store

EXPORT_FORMAT = "tessera-subject-export/1"


def export_subject(*, subject: Subject) -> bytes:
    """A zip: `subject.json` (the record, each visit with its files' facts, analyses and
    verdicts, reports, and the access log of this person) and the files themselves under
    `files/` and `reports/`. Logged as an export."""
    media = list(_media(subject))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = {
            asset.pk: {
                "in_this_export": _add_file(archive, asset),
                "original_in_this_export": _add_original(archive, asset),
            }
            for asset in media
        }
        reports = [_report(archive, report) for report in _reports(subject).order_by("created_at")]
        document = {
            "format": EXPORT_FORMAT,
            "exported_at": timezone.now(),
            "organization": subject.organization.name,
            "subject": _record(subject),
            "visits": [_visit(visit, media, files) for visit in _visits(subject)],
            "reports": reports,
            "access_log": list(
                AuditEvent.objects.filter(subject=audit.facts_of(subject)[1])
                .order_by("at", "pk")
                .values("at", "actor_name", "channel", "action", "object_type", "object_id")
            ),
        }
        archive.writestr(
            "subject.json", json.dumps(document, cls=DjangoJSONEncoder, indent=2, default=str)
        )
    audit.record(subject, action=audit.Action.EXPORT)
    return buffer.getvalue()


def export_filename(subject: Subject) -> str:
    """Names the person by pseudonym, never by name: file names travel (downloads folders,
    mail attachments)."""
    kind = kind_of(subject).subject_noun
    return f"tessera-{kind}-{subject.pseudonym}-{timezone.localdate():%Y%m%d}.zip"


def confirming_number(subject: Subject) -> str:
    """What an erasure is confirmed with: the person's number (MRN, student number), typed
    back."""
    return kind_of(subject).identifier_noun


def erasure_confirmed(subject: Subject, typed: str) -> bool:
    return typed.strip() == kind_of(subject).identifier_of(subject)


def erase_subject(*, subject: Subject, erased_by: AbstractBaseUser | None) -> dict[str, int]:
    """Delete the person and everything of theirs, and their files once the deletion commits
    (a stored file another record shares stays). Returns what was erased, by kind."""
    from tessera.jobs.features import cache_name  # torch & co: not in every web process

    jobs = list(
        AnalysisJob.objects.filter(**{kind_of(subject).from_visit: subject}).select_related(
            "model_version", *TO_VISITS
        )
    )
    cached = [cache_name(job) for job in jobs]
    reports = list(_reports(subject))
    counts = {
        "visits": _visits(subject).count(),
        "files": _media(subject).count(),
        "analyses": len(jobs),
        "reports": len(reports),
    }
    with transaction.atomic():
        subject.delete()  # cascades; each audited row's deletion is logged by the audit signals
        transaction.on_commit(lambda: _remove_files(cached, reports))
    return counts


def _remove_files(cached: list[str], reports: list[Report]) -> None:
    feature_cache = blob_store("features")
    for name in cached:
        feature_cache.delete(name)
    for report in reports:
        if report.file_path and not Report.objects.filter(file_path=report.file_path).exists():
            content_store().delete(report_sha256(report))


def _visits(subject: Subject) -> QuerySet:
    return kind_of(subject).visits_of(subject).order_by("occurred_at")


def _media(subject: Subject) -> QuerySet[MediaAsset]:
    return (
        MediaAsset.objects.filter(**{kind_of(subject).from_visit: subject})
        .select_related("visit_key", "transcript")
        .order_by("pk")
    )


def _reports(subject: Subject) -> QuerySet[Report]:
    return Report.objects.filter(**subject_fields(subject))


def _record(obj) -> dict:
    """Every column of the row (foreign keys as ids)."""
    return {field.attname: field.value_from_object(obj) for field in obj._meta.concrete_fields}


def _job_record(job: AnalysisJob) -> dict:
    """The job's columns, its visit named by its own id under its kind's name
    (`encounter_id`, `learning_session_id`) rather than by its key, which means nothing to the
    person."""
    record = _record(job)
    del record["visit_key_id"]
    return record | {f"{field}_id": pk for field, pk in visit_ids(job).items()}


def _visit(visit, media: list[MediaAsset], files: dict[int, dict]) -> dict:
    own = [asset for asset in media if visit_id_of(asset) == visit.pk]
    return _record(visit) | {
        "files": [
            {
                "id": asset.pk,
                "kind": asset.kind,
                "original_filename": asset.original_filename,
                "content_type": asset.content_type,
                "size_bytes": asset.size_bytes,
                "sha256": asset.sha256,
                "metadata": asset.metadata,
                "uploaded_at": asset.created_at,
                "transcript": _transcript(asset),
                **files[asset.pk],
            }
            for asset in own
        ],
        "analyses": [
            {
                **_job_record(job),
                "results": [
                    {
                        **_record(result),
                        "model_version": result.model_version.name,
                        "feedback": [_record(verdict) for verdict in result.feedback.all()],
                    }
                    for result in job.results.select_related("model_version")
                ],
            }
            for job in visit.visit_key.jobs.order_by("created_at")
        ],
    }


def _transcript(asset: MediaAsset) -> dict | None:
    """What was said in a recording, as the speech model heard it; None for other files."""
    if not hasattr(asset, "transcript"):
        return None
    transcript = asset.transcript
    return {
        "status": transcript.status,
        "message": transcript.message,
        "speech_model": transcript.speech_model,
        "language": transcript.language,
        "segments": [
            {"start": segment.start, "end": segment.end, "text": segment.text}
            for segment in readable_segments(transcript)
        ],
    }


def _add_file(archive: zipfile.ZipFile, asset: MediaAsset) -> str | None:
    """The file under files/, or None when the stored copy failed its integrity check."""
    path = f"files/{asset.pk}-{_file_name(asset)}"
    try:
        archive.writestr(path, content_store().read_media(asset))
    except StoredContentCorrupted:
        return None
    return path


def _add_original(archive: zipfile.ZipFile, asset: MediaAsset) -> str | None:
    """The DICOM file as uploaded, where the organization keeps originals, under originals/."""
    if not asset.original_sha256:
        return None
    path = f"originals/{asset.pk}-{_file_name(asset)}"
    try:
        with content_store().open_original(asset) as original:
            archive.writestr(path, original.read())
    except StoredContentCorrupted:
        return None
    return path


def _file_name(asset: MediaAsset) -> str:
    return PurePosixPath(asset.original_filename or asset.kind).name or asset.kind


def _report(archive: zipfile.ZipFile, report: Report) -> dict:
    entry = {
        "id": str(report.id),
        "kind": report.kind,
        "status": report.status,
        "period_start": report.period_start,
        "period_end": report.period_end,
        "created_at": report.created_at,
        "in_this_export": None,
    }
    if report.file_path:
        try:
            with content_store().open(report_sha256(report)) as pdf:
                archive.writestr(f"reports/{report.id}.pdf", pdf.read())
        except StoredContentCorrupted:
            return entry  # missing or damaged: said so (in_this_export: null), never shipped
        entry["in_this_export"] = f"reports/{report.id}.pdf"
    return entry
