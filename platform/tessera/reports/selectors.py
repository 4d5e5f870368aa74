"""Reads of reports, for the pages and the API."""

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from tessera.accounts.models import Organization
from tessera.records.kinds import TO_SUBJECTS
from tessera.reports.models import Report, ReportSchedule


def report_file(report: Report) -> Path:
    return Path(settings.MEDIA_ROOT) / report.file_path


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
