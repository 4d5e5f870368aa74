"""Reads of reports, for the pages and the API."""

from pathlib import PurePosixPath
from typing import BinaryIO

from django.db.models import QuerySet

from tessera.accounts.models import Organization
from tessera.records.kinds import TO_SUBJECTS
from tessera.records.storage import content_store
from tessera.reports.models import Report, ReportSchedule


def report_sha256(report: Report) -> str:
    """The address of a rendered report's PDF in the content store (its file_path ends in it)."""
    return PurePosixPath(report.file_path).name


def open_report(report: Report) -> BinaryIO:
    """A rendered report's PDF, checked against its address. Raises StoredContentCorrupted."""
    return content_store().open(report_sha256(report))


def reports_of(*, organization: Organization) -> QuerySet[Report]:
    return (
        Report.objects.filter(organization=organization)
        .select_related("cohort", "requested_by", *TO_SUBJECTS)
        .prefetch_related("model_versions")
    )


def schedules_of(*, organization: Organization) -> QuerySet[ReportSchedule]:
    return ReportSchedule.objects.filter(organization=organization).select_related(
        "cohort", "periodic_task"
    )
