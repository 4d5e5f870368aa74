"""Writes for reports: requests (checked against the organization and the period), rendering
on the `reports` queue, the sweeper that re-publishes lost ones, and weekly schedules.

A report moves queued → rendering → ready | failed by conditional updates, so a message
delivered twice renders it once; the file is written beside its final name and renamed into
place (the content store of media), so a download never reads half a PDF."""

import hashlib
import io
import json
import logging
from datetime import date, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tessera.accounts.models import Organization
from tessera.celery import TASK_QUEUES, TaskName, enqueue
from tessera.records.kinds import TO_SUBJECTS, Subject, kind_of, subject_fields
from tessera.records.models import Cohort
from tessera.records.storage import content_store
from tessera.refusals import RefusalCode, Refused
from tessera.reports.models import Report, ReportKind, ReportSchedule, ReportStatus
from tessera.webhooks.models import Event
from tessera.webhooks.services import emit

logger = logging.getLogger(__name__)


def request_report(
    *,
    organization: Organization,
    requested_by: AbstractBaseUser | None,
    subject: Subject | None = None,
    cohort: Cohort | None = None,
    period_start: date | None = None,
    period_end: date | None = None,
    schedule: ReportSchedule | None = None,
) -> Report:
    """Queue a report of one patient or student (`subject`), or else a cohort (`cohort`, or the
    whole organization when None), and publish it once the transaction commits. Raises
    Refused, writing nothing, when the subject or cohort is not the organization's or the
    period is backwards."""
    if subject is not None and subject.organization_id != organization.pk:
        raise Refused("that record belongs to another organization", code=RefusalCode.FOREIGN)
    if cohort is not None and (subject is not None or cohort.organization_id != organization.pk):
        raise Refused("choose either a record or one of your cohorts", code=RefusalCode.FOREIGN)
    subject_kind = kind_of(subject) if subject is not None else None
    if subject_kind is not None and subject_kind != kind_of(organization):
        kept_by = subject_kind.organization_kind.label.lower()
        raise Refused(
            f"{subject_kind.subject_noun} reports are for {kept_by}s", code=RefusalCode.WRONG_KIND
        )
    period_end = period_end or timezone.localdate()
    if period_start and period_start > period_end:
        raise Refused("the period starts after it ends", code=RefusalCode.BAD_PERIOD)
    # A person's report is of their kind ("patient", "student"): ReportKind names it so.
    kind = ReportKind(subject_kind.subject_noun) if subject_kind else ReportKind.COHORT
    with transaction.atomic():
        report = Report.objects.create(
            organization=organization,
            kind=kind,
            **(subject_fields(subject) if subject is not None else {}),
            cohort=cohort,
            period_start=period_start,
            period_end=period_end,
            requested_by=requested_by,
            schedule=schedule,
        )
        transaction.on_commit(partial(publish, report_id=report.pk))
    return report


def publish(*, report_id) -> None:
    enqueue(TaskName.RENDER_REPORT, str(report_id))


def _abandoned(now) -> Q:
    """Rendering for longer than a live renderer takes: its worker died."""
    stale = now - timedelta(seconds=settings.TESSERA_REPORT_STALE_AFTER)
    return Q(status=ReportStatus.RENDERING, started_at__lt=stale)


def claim(*, report_id) -> bool:
    """Take a queued report, or one whose renderer died, for rendering."""
    now = timezone.now()
    return bool(
        Report.objects.filter(pk=report_id)
        .filter(Q(status=ReportStatus.QUEUED) | _abandoned(now))
        .update(status=ReportStatus.RENDERING, started_at=now)
    )


def render_report(*, report_id) -> Report | None:
    """Render a claimed report to its PDF and mark it ready (announcing `report.ready`), or
    failed with the reason; returns None when it was not this caller's to render."""
    from tessera.reports.content import report_content  # matplotlib & ReportLab: workers only
    from tessera.reports.pdf import render_pdf

    if not claim(report_id=report_id):
        return None
    report = Report.objects.select_related(
        "organization", "cohort", "requested_by", *TO_SUBJECTS
    ).get(pk=report_id)
    try:
        content = report_content(report)
        pdf, pages = render_pdf(content)
    except (OperationalError, InterfaceError):
        raise  # the database went away: the task retries; the sweeper takes over a stale claim
    except Exception as error:  # any flaw in one report must fail it, not the worker
        logger.exception("report %s could not be rendered", report_id)
        Report.objects.filter(pk=report_id, status=ReportStatus.RENDERING).update(
            status=ReportStatus.FAILED,
            error_message=f"The report could not be rendered ({type(error).__name__}).",
            finished_at=timezone.now(),
        )
        return Report.objects.get(pk=report_id)
    sha256 = hashlib.sha256(pdf).hexdigest()
    store = content_store()  # written beside its address, renamed into place once checked
    store.save(io.BytesIO(pdf), sha256=sha256)
    relative = store.relative_path(sha256)
    with transaction.atomic():
        finished = Report.objects.filter(pk=report_id, status=ReportStatus.RENDERING).update(
            status=ReportStatus.READY,
            file_path=relative,
            size_bytes=len(pdf),
            pages=pages,
            error_message="",
            finished_at=timezone.now(),
        )
        if finished:
            report.model_versions.set(content.model_versions)
            emit(
                organization_id=report.organization_id,
                event=Event.REPORT_READY,
                data={"report": str(report.pk), "kind": report.kind, "pages": pages},
            )
    report.refresh_from_db()
    return report


def sweep_reports(*, publish_grace: timedelta) -> int:
    """Re-publish reports whose message was lost (queued past the grace period) or whose
    renderer died (rendering past the stale limit); returns how many."""
    now = timezone.now()
    lost = Report.objects.filter(
        Q(status=ReportStatus.QUEUED, created_at__lt=now - publish_grace) | _abandoned(now)
    ).values_list("pk", flat=True)
    ids = list(lost[:500])
    for report_id in ids:
        publish(report_id=report_id)
    return len(ids)


# --- weekly schedules ----------------------------------------------------------------------


def schedule_weekly_report(
    *,
    organization: Organization,
    requested_by: AbstractBaseUser | None,
    cohort: Cohort | None = None,
) -> ReportSchedule:
    """A cohort report every Monday at 06:00 covering the week before, run by celery beat from
    the database (so an admin sees and can pause it among the periodic tasks)."""
    if cohort is not None and cohort.organization_id != organization.pk:
        raise Refused("that cohort belongs to another organization", code=RefusalCode.FOREIGN)
    if ReportSchedule.objects.filter(organization=organization, cohort=cohort).exists():
        raise Refused("that weekly report is already scheduled", code=RefusalCode.DUPLICATE)
    monday_morning, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="6",
        day_of_week="1",
        day_of_month="*",
        month_of_year="*",
        timezone=settings.TIME_ZONE,
    )
    with transaction.atomic():
        scope = f"cohort {cohort.pk}" if cohort else "whole organization"
        task = PeriodicTask.objects.create(
            name=f"Weekly report: organization {organization.pk}, {scope}",
            task=TaskName.WEEKLY_REPORT,
            crontab=monday_morning,
            queue=TASK_QUEUES[TaskName.WEEKLY_REPORT],
        )
        schedule = ReportSchedule.objects.create(
            organization=organization, cohort=cohort, periodic_task=task, requested_by=requested_by
        )
        task.kwargs = json.dumps({"schedule_id": schedule.pk})
        task.save(update_fields=["kwargs"])
    return schedule


def cancel_schedule(*, schedule: ReportSchedule) -> None:
    schedule.periodic_task.delete()  # cascades to the schedule


def request_scheduled_report(*, schedule_id: int, today: date | None = None) -> Report | None:
    """What beat runs each Monday: the cohort's report for the seven days before `today`."""
    schedule = (
        ReportSchedule.objects.select_related("organization", "cohort", "requested_by")
        .filter(pk=schedule_id)
        .first()
    )
    if schedule is None:
        return None  # cancelled since beat read its schedule
    today = today or timezone.localdate()
    return request_report(
        organization=schedule.organization,
        requested_by=schedule.requested_by,
        cohort=schedule.cohort,
        period_start=today - timedelta(days=7),
        period_end=today - timedelta(days=1),
        schedule=schedule,
    )
