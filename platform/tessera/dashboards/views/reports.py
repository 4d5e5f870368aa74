"""The pages of reports: ask for a patient's, a student's or a cohort's PDF, watch it render
(the table polls itself while a report is unfinished), download it, and schedule weekly cohort
reports. Scoped and checked like every page: someone who may not see a record gets 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, can
from tessera.audit import services as audit
from tessera.dashboards import selectors
from tessera.dashboards.access import current_organization, form_errors, require, visible_or_404
from tessera.dashboards.forms import CohortReportForm, ReportForm, ScheduleForm
from tessera.records.kinds import kind_of
from tessera.records.models import Patient, Student
from tessera.records.storage import StoredContentCorrupted
from tessera.refusals import Refused
from tessera.reports.models import Report, ReportStatus
from tessera.reports.selectors import open_report, reports_of, schedules_of
from tessera.reports.services import (
    cancel_schedule,
    request_report,
    schedule_weekly_report,
)

REPORTS_PER_PAGE = 25


def _whole(organization: Organization) -> str:
    return f"All of {organization.name}"


def _table(request: HttpRequest, organization: Organization) -> dict:
    """A page of the organization's reports; the table polls itself while one is unfinished."""
    page = selectors.page_of(
        reports_of(organization=organization),
        number=request.GET.get("page"),
        per_page=REPORTS_PER_PAGE,
    )
    return {"page": page, "polling": any(not report.is_finished for report in page)}


@login_required
@require_GET
def reports_page(request: HttpRequest) -> HttpResponse:
    organization = current_organization(request)
    cohorts = selectors.cohorts_of(organization=organization)
    can_write = can(user=request.user, capability=Capability.WRITE, organization=organization)
    return render(
        request,
        "dashboards/reports.html",
        {
            "organization": organization,
            "kind": kind_of(organization),
            **_table(request, organization),
            "can_write": can_write,
            "cohort_form": CohortReportForm(cohorts=cohorts, whole=_whole(organization)),
            "schedule_form": ScheduleForm(cohorts=cohorts, whole=_whole(organization)),
            "schedules": schedules_of(organization=organization),
        },
    )


@login_required
@require_GET
def report_rows(request: HttpRequest) -> HttpResponse:
    """The table alone, which the page asks for every two seconds while a report renders."""
    organization = current_organization(request)
    return render(request, "dashboards/parts/reports_table.html", _table(request, organization))


def _asked(request: HttpRequest, form, organization: Organization, **scope) -> HttpResponse:
    require(request, Capability.WRITE, organization)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("reports")
    try:
        request_report(
            organization=organization,
            requested_by=request.user,
            period_start=form.cleaned_data.get("period_start"),
            period_end=form.cleaned_data.get("period_end"),
            **scope,
        )
    except Refused as refused:
        messages.error(request, f"No report: {refused.message}.")
        return redirect("reports")
    messages.success(request, "The report is being prepared: it appears below when ready.")
    return redirect("reports")


@login_required
@require_POST
def patient_report(request: HttpRequest, pk: int) -> HttpResponse:
    patient = visible_or_404(Patient, request, pk)
    return _asked(request, ReportForm(request.POST), patient.organization, subject=patient)


@login_required
@require_POST
def student_report(request: HttpRequest, pk: int) -> HttpResponse:
    student = visible_or_404(Student, request, pk)
    return _asked(request, ReportForm(request.POST), student.organization, subject=student)


@login_required
@require_POST
def cohort_report(request: HttpRequest) -> HttpResponse:
    organization = current_organization(request)
    cohorts = selectors.cohorts_of(organization=organization)
    form = CohortReportForm(request.POST, cohorts=cohorts, whole=_whole(organization))
    if not form.is_valid():
        return _asked(request, form, organization)
    chosen = form.cleaned_data["cohort"]
    cohort = get_object_or_404(cohorts, pk=chosen) if chosen else None
    return _asked(request, form, organization, cohort=cohort)


@login_required
@require_GET
def report_download(request: HttpRequest, pk) -> FileResponse:
    report = selectors.shown(
        Report.objects.filter(status=ReportStatus.READY),
        user=request.user,
        pk=pk,
        action=audit.Action.DOWNLOAD,
    )
    try:
        pdf = open_report(report)
    except StoredContentCorrupted:
        return HttpResponse(
            "This report's file is missing or damaged, so it was not sent. Please ask for the "
            "report again, and tell your administrator.",
            status=500,
            content_type="text/plain",
        )
    return FileResponse(
        pdf,
        as_attachment=True,
        filename=report.filename,
        content_type="application/pdf",
    )


@login_required
@require_POST
def schedule_report(request: HttpRequest) -> HttpResponse:
    organization = current_organization(request)
    require(request, Capability.WRITE, organization)
    cohorts = selectors.cohorts_of(organization=organization)
    form = ScheduleForm(request.POST, cohorts=cohorts, whole=_whole(organization))
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("reports")
    chosen = form.cleaned_data["cohort"]
    try:
        schedule_weekly_report(
            organization=organization,
            requested_by=request.user,
            cohort=get_object_or_404(cohorts, pk=chosen) if chosen else None,
        )
    except Refused as refused:
        messages.error(request, f"Not scheduled: {refused.message}.")
        return redirect("reports")
    messages.success(request, "Scheduled: a report every Monday morning, covering the week before.")
    return redirect(reverse("reports") + "#schedules-heading")


@login_required
@require_POST
def unschedule_report(request: HttpRequest, pk: int) -> HttpResponse:
    organization = current_organization(request)
    require(request, Capability.WRITE, organization)
    schedule = get_object_or_404(schedules_of(organization=organization), pk=pk)
    cancel_schedule(schedule=schedule)
    messages.success(request, "The weekly report is no longer scheduled.")
    return redirect("reports")
