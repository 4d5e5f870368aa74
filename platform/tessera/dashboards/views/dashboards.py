"""The dashboards: the clinician's most urgent patients, the teacher's class (affect per week, who
needs attention, the latest suggestions); the organization switcher."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from analytics.trends import mondays
from tessera.accounts.models import Organization
from tessera.accounts.selectors import memberships_of
from tessera.dashboards import selectors
from tessera.dashboards.context_processors import SESSION_ORGANIZATION, current_membership
from tessera.dashboards.forms import PatientFilterForm
from tessera.jobs.selectors import (
    active_model_version,
    intervention_outcomes,
    model_labels,
)
from tessera.jobs.statistics import affect_by_week
from tessera.records.kinds import (
    CLINIC,
    SCHOOL,
    kind_of,
)

SUBJECTS_PER_PAGE = 50


ATTENTION_SHOWN = 20  # the newest concerns; the count says how many more there are


@login_required
def home(request: HttpRequest) -> HttpResponse:
    current, _ = current_membership(request)
    if current is None:
        return render(request, "dashboards/no_organization.html")
    dashboard = DASHBOARDS[kind_of(current.organization)]
    return dashboard(request, current)


@login_required
@require_POST
def switch_organization(request: HttpRequest) -> HttpResponse:
    chosen = request.POST.get("organization", "")
    if not chosen.isdigit():
        raise Http404
    membership = get_object_or_404(memberships_of(user=request.user), organization_id=chosen)
    request.session[SESSION_ORGANIZATION] = membership.organization_id
    return redirect("home")


def _clinic_dashboard(request: HttpRequest, membership) -> HttpResponse:
    organization = membership.organization
    filters = PatientFilterForm(
        request.GET or None, cohorts=selectors.cohorts_of(organization=organization)
    )
    chosen = filters.cleaned_data if filters.is_valid() else {}
    patients = selectors.clinic_patients(
        organization=organization, cohort=chosen.get("cohort"), status=chosen.get("status", "")
    )
    page = selectors.page_of(patients, number=request.GET.get("page"), per_page=SUBJECTS_PER_PAGE)
    rows = selectors.patient_rows(list(page))
    return render(
        request,
        "dashboards/clinic.html",
        {
            "organization": organization,
            "filters": filters,
            "page": page,
            "rows": rows,
            "counts": selectors.job_counts(organization=organization),
            "query": _query_without_page(request),
        },
    )


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _school_dashboard(request: HttpRequest, membership) -> HttpResponse:
    organization = membership.organization
    labels = affect_labels(organization)
    weeks = affect_by_week(
        results=selectors.school_results(organization=organization),
        labels=labels,
        weeks=mondays(weeks=8, until=timezone.localdate()),
    )
    attention_count, attention = selectors.students_needing_attention(
        organization=organization, limit=ATTENTION_SHOWN
    )
    page = selectors.page_of(
        selectors.students_of(organization=organization),
        number=request.GET.get("page"),
        per_page=SUBJECTS_PER_PAGE,
    )
    suggestions = selectors.latest_suggestions(organization=organization)
    return render(
        request,
        "dashboards/school.html",
        {
            "organization": organization,
            "chart": _stacked_bars(weeks, labels),
            "weeks": weeks,
            "labels": labels,
            "attention": attention,
            "attention_count": attention_count,
            "suggestions": suggestions,
            "what_helped": intervention_outcomes(organization=organization),
            "students": page,
        },
    )


DASHBOARDS = {CLINIC: _clinic_dashboard, SCHOOL: _school_dashboard}


def affect_labels(organization: Organization) -> list[str]:
    """The affect labels of the model serving the organization (none when its bundle is not
    on this host: the charts then show no rows)."""
    version = active_model_version(serves=organization.kind)
    if version is None:
        return []
    try:
        return model_labels(version=version)[1]
    except OSError:
        return []


# Colours a reader with red-green colour blindness can still tell apart (Okabe and Ito).


CHART_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def _stacked_bars(weeks, labels: list[str], *, height: int = 160, bar: int = 36) -> dict:
    """Geometry of an SVG stacked bar chart (one bar per week, one segment per label); the
    template draws it, so the chart needs no script and no external library."""
    tallest = max((week.total for week in weeks), default=0) or 1
    bars = []
    for index, week in enumerate(weeks):
        top = height
        segments = []
        for colour, (label, count) in zip(CHART_COLOURS, week.counts.items(), strict=False):
            size = round(height * count / tallest)
            top -= size
            if count:
                segments.append(
                    {"label": label, "count": count, "y": top, "height": size, "colour": colour}
                )
        bars.append({"x": 40 + index * (bar + 16), "week": week, "segments": segments})
    return {
        "bars": bars,
        "width": 40 + len(weeks) * (bar + 16),
        "height": height,
        "bar": bar,
        "empty": not any(week.total for week in weeks),
        "legend": list(zip(labels, CHART_COLOURS, strict=False)),
    }
