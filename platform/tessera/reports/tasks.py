"""Celery tasks of reports, on the `reports` queue: thin, they call the services."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from tessera.celery import RETRY_WHEN_DATABASE_GONE, TaskName
from tessera.reports.services import render_report, request_scheduled_report, sweep_reports


@shared_task(name=TaskName.RENDER_REPORT, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def render(report_id: str) -> None:
    render_report(report_id=report_id)


@shared_task(name=TaskName.WEEKLY_REPORT, **RETRY_WHEN_DATABASE_GONE)
def weekly(schedule_id: int) -> None:
    """Periodic (celery beat, one entry per schedule): request the week's cohort report."""
    request_scheduled_report(schedule_id=schedule_id)


@shared_task(name=TaskName.SWEEP_REPORTS)
def sweep() -> int:
    """Periodic (celery beat): publish again the reports whose message or renderer was lost."""
    return sweep_reports(publish_grace=timedelta(seconds=settings.TESSERA_JOB_PUBLISH_GRACE))
