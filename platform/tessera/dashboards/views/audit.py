"""Privacy pages for organization admins: the access log (filter it, take it away as CSV — for
a student, the FERPA record of disclosures) and data-subject requests (export, erase)."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from tessera.accounts.permissions import Capability
from tessera.audit.selectors import events_of
from tessera.dashboards.access import current_organization, require, visible_or_404
from tessera.dashboards.forms import AuditFilterForm
from tessera.privacy.services import (
    erase_subject,
    erasure_confirmed,
    export_filename,
    export_subject,
)
from tessera.records.models import Patient, Student

EVENTS_PER_PAGE = 100
CSV_COLUMNS = [
    "at",
    "actor_name",
    "channel",
    "action",
    "object_type",
    "object_id",
    "subject",
    "address",
    "via",
]


def _filtered(request: HttpRequest):
    organization = current_organization(request)
    require(request, Capability.READ_ACCESS_LOG, organization)
    form = AuditFilterForm(request.GET or None)
    chosen = form.cleaned_data if form.is_valid() else {}
    return organization, form, events_of(organization=organization, **chosen)


@login_required
@require_GET
def audit_page(request: HttpRequest) -> HttpResponse:
    organization, form, events = _filtered(request)
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboards/audit.html",
        {"organization": organization, "form": form, "page": page, "query": query.urlencode()},
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    organization, _, events = _filtered(request)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for event in events.values_list(*CSV_COLUMNS).iterator(chunk_size=2000):
            yield writer.writerow([_cell(value) for value in event])

    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{organization.slug}-{stamp}.csv"'
    )
    return response


def _cell(value) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value or "")
    # A spreadsheet would run a cell that starts like a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _export(request: HttpRequest, model, pk: int) -> HttpResponse:
    subject = visible_or_404(model, request, pk)
    require(request, Capability.EXPORT_SUBJECT, subject.organization)
    response = HttpResponse(export_subject(subject=subject), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(subject)}"'
    return response


def _erase(request: HttpRequest, model, pk: int) -> HttpResponse:
    subject = visible_or_404(model, request, pk)
    require(request, Capability.ERASE_SUBJECT, subject.organization)
    if not erasure_confirmed(subject, request.POST.get("confirm", "")):
        messages.error(request, "Nothing was erased: the number typed did not match theirs.")
        return redirect(request.path.removesuffix("erase/"))
    name = subject.full_name
    erased = erase_subject(subject=subject, erased_by=request.user)
    messages.success(
        request,
        f"{name} was erased: {erased['visits']} visits, {erased['files']} files, "
        f"{erased['analyses']} analyses and {erased['reports']} reports.",
    )
    return redirect("home")


@login_required
@require_GET
def patient_export(request: HttpRequest, pk: int) -> HttpResponse:
    return _export(request, Patient, pk)


@login_required
@require_GET
def student_export(request: HttpRequest, pk: int) -> HttpResponse:
    return _export(request, Student, pk)


@login_required
@require_POST
def patient_erase(request: HttpRequest, pk: int) -> HttpResponse:
    return _erase(request, Patient, pk)


@login_required
@require_POST
def student_erase(request: HttpRequest, pk: int) -> HttpResponse:
    return _erase(request, Student, pk)
