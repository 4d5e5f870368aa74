"""How a report is written, whatever it is about: its parts (facts, charts, tables,
explanations, the notice), the header every report has, and the wording of labels and numbers.
`reports.pdf` lays a ReportContent out."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.utils import timezone

from tessera.jobs.models import ModelVersion
from tessera.reports import charts
from tessera.reports.models import Report

NOTICE = (
    "Every result in this report is a suggestion made by a machine-learning model. It is not a "
    "diagnosis or an assessment: a qualified professional must review and confirm it before it "
    "informs any decision."
)
MOST_ANALYSES_LISTED = 60
MOST_EXPLAINED = 10
MOST_STUDENTS_LISTED = 40


def notice_for(versions: list[ModelVersion]) -> str:
    """The report's notice, and what any of its model versions must say about itself."""
    return " ".join(dict.fromkeys([NOTICE, *(v.notice for v in versions if v.notice)]))


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    shares: tuple[float, ...] = ()  # each column's share of the width; equal when empty


@dataclass
class ReportContent:
    title: str
    organization: str
    about: str
    period: str
    generated: str
    facts: list[tuple[str, str]]
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    explanations: list[tuple[str, str]] = field(default_factory=list)
    model_versions: list[ModelVersion] = field(default_factory=list)
    notice: str = NOTICE


def words(label: str) -> str:
    return label.replace("_", " ")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)}%"


def header(report: Report, *, title: str, about: str, start: date, end: date) -> dict:
    person = report.requested_by
    requested = (person.get_full_name() or person.get_username()) if person else "a schedule"
    return {
        "title": title,
        "organization": report.organization.name,
        "about": about,
        "period": f"{start:%d %b %Y} to {end:%d %b %Y}",
        "generated": f"{timezone.localtime():%d %b %Y, %H:%M} for {requested}",
    }


def affect_chart(distribution: list, labels: list[str]) -> Chart:
    return Chart(
        "Affect week by week",
        charts.stacked_weeks(
            distribution, [words(label) for label in labels], title="Affect suggested, per week"
        ),
    )


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def listed_note(total: int) -> str:
    if total > MOST_ANALYSES_LISTED:
        return f"The latest {MOST_ANALYSES_LISTED} of {total} analyses."
    return ""
