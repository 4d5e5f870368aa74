"""The access log of the current organization, for its admins: filter it on the page, take it
away as CSV (for a student, the FERPA record of disclosures)."""

import csv

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from tessera.accounts.permissions import Capability
from tessera.audit.selectors import events_of
from tessera.dashboards.access import current_organization, require
from tessera.dashboards.forms import AuditFilterForm

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
    require(request, Capability.ADMINISTER, organization)
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
