"""What a cohort's report says (a ward, a class, or the whole organization) over a period:
counts, affect per week, what each kind of organization watches, and the model's monitoring.
It reads aggregates, not rows."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from analytics.attention import CONCERNING_AFFECTS
from analytics.monitoring import expected_calibration_error, largest_gap
from analytics.trends import weeks_between
from tessera.accounts.models import Organization
from tessera.jobs.models import AnalysisResult, ModelVersion
from tessera.jobs.selectors import intervention_outcomes
from tessera.jobs.statistics import (
    affect_agreement,
    affect_by_week,
    finding_counts,
    findings_calibration,
    input_drift,
    prediction_drift,
    rate_by_group,
)
from tessera.records.kinds import CLINIC, SCHOOL, kind_of, subject_of
from tessera.records.models import MediaAsset
from tessera.reports import charts
from tessera.reports.content.document import (
    MOST_STUDENTS_LISTED,
    Chart,
    ReportContent,
    Table,
    affect_chart,
    header,
    notice_for,
    percent,
    words,
)
from tessera.reports.content.queries import (
    cohort_rows,
    in_period,
    labels_of,
    period_bounds,
    students_needing_attention,
    versions_of,
)
from tessera.reports.models import Report


def cohort_content(report: Report) -> ReportContent:
    organization: Organization = report.organization
    kind = kind_of(organization)
    subject = kind.from_result
    rows = cohort_rows(report)
    results, media = rows.results, rows.media
    start, end = period_bounds(report, results)
    in_the_period = in_period(results, start, end)
    length = (end - start).days + 1
    before = in_period(results, start - timedelta(length), start - timedelta(1))
    versions = versions_of(in_the_period)
    finding_labels, affect_labels = labels_of(in_the_period, versions)
    totals = in_the_period.aggregate(
        analyses=Count("pk"),
        analysed=Count(subject, distinct=True),
        review=Count("pk", filter=Q(abstain=True)),
    )
    scope = report.cohort.name if report.cohort else f"all of {organization.name}"
    count = rows.people.count()
    kind_word = kind.subject_noun + ("" if count == 1 else "s")
    content = ReportContent(
        **header(
            report,
            title=f"{kind.cohort_noun.capitalize()} report" if report.cohort else "Cohort report",
            about=f"{scope} ({count} {kind_word})",
            start=start,
            end=end,
        ),
        facts=[
            ("Analyses in the period", str(totals["analyses"])),
            (f"{kind.subject_noun.capitalize()}s analysed", str(totals["analysed"])),
            ("Flagged for review (the model was unsure)", str(totals["review"])),
        ],
        model_versions=versions,
        notice=notice_for(versions),
    )
    weeks = weeks_between(start, end)[-26:]
    if affect_labels:
        distribution = affect_by_week(results=in_the_period, labels=affect_labels, weeks=weeks)
        content.charts.append(affect_chart(distribution, affect_labels))
        content.tables.append(
            Table(
                "Affect per week",
                ["Week of", *[words(label) for label in affect_labels]],
                [
                    [f"{week.week:%d %b}", *[str(n) for n in week.counts.values()]]
                    for week in distribution
                ],
            )
        )
    period = Period(
        report=report,
        organization=organization,
        subject=subject,
        results=in_the_period,
        results_before=before,
        media=in_period(media, start, end),
        media_before=in_period(media, start - timedelta(length), start - timedelta(1)),
        versions=versions,
        affect_labels=affect_labels,
        finding_labels=finding_labels,
    )
    COHORT_SECTIONS[kind](content, period)
    content.tables += _monitoring(period)
    return content


@dataclass(frozen=True)
class Period:
    """A cohort's results and inputs in a report's period, and in as long a time before it."""

    report: Report
    organization: Organization
    subject: str  # the path from a result to its patient or student
    results: QuerySet[AnalysisResult]
    results_before: QuerySet[AnalysisResult]
    media: QuerySet[MediaAsset]
    media_before: QuerySet[MediaAsset]
    versions: list[ModelVersion]
    affect_labels: list[str]
    finding_labels: list[str]


def _findings_chart(content: ReportContent, period: Period) -> None:
    """A ward's or a clinic's: how many analyses suggested each finding."""
    if not period.finding_labels:
        return
    found = finding_counts(period.results, labels=period.finding_labels)
    content.charts.append(
        Chart(
            "Findings",
            charts.bars(
                {words(label): n for label, n in found.items()},
                title="Analyses with each finding (probability ≥ 50%)",
                unit="analyses",
            ),
        )
    )


def _attention_table(content: ReportContent, period: Period) -> None:
    """A class's or a school's: the students whose recent affects keep being concerning."""
    count, listed = students_needing_attention(report=period.report, limit=MOST_STUDENTS_LISTED)
    content.tables.append(
        Table(
            "Students needing attention",
            ["Student", "Latest affects", "Since"],
            [
                [
                    subject_of(latest).full_name,
                    ", ".join(words(label) for label in latest.recent_affects),
                    f"{timezone.localtime(latest.concern_since):%d %b %Y}",
                ]
                for latest in listed
            ],
            note=(
                "Frustration or confusion in at least two of their last three analyses"
                + (
                    f"; the {MOST_STUDENTS_LISTED} most recent of {count}."
                    if count > MOST_STUDENTS_LISTED
                    else "."
                )
            ),
        )
    )


def _monitoring(period: Period) -> list[Table]:
    """Drift of suggestions and inputs against the period before, agreement with the
    professionals' verdicts, and the largest gaps between subgroups."""
    rows = []
    drift = prediction_drift(
        before=period.results_before, after=period.results, labels=period.affect_labels
    )
    if drift is not None:
        rows.append(
            ["Affect suggested vs the period before (PSI)", f"{drift:.3f}", _drift_word(drift)]
        )
    for moved in input_drift(before=period.media_before, after=period.media):
        rows.append(
            [
                f"{moved.name.capitalize()}: mean {moved.before.mean:.1f} → {moved.after.mean:.1f}",
                f"{moved.shift:+.2f} SD",
                "a shift worth a look" if abs(moved.shift) >= 0.5 else "stable",
            ]
        )
    for version in period.versions if period.affect_labels else []:
        _, _, agreed = affect_agreement(
            version=version,
            organizations=Organization.objects.filter(pk=period.organization.pk),
            labels=period.affect_labels,
            within=period.results,
        )
        if agreed is not None:
            rows.append(
                [
                    f"Affect agreement with professionals ({version.name})",
                    percent(agreed),
                    "from their confirmations and corrections",
                ]
            )
    for version in period.versions if period.finding_labels else []:
        curve = findings_calibration(
            version=version,
            organizations=Organization.objects.filter(pk=period.organization.pk),
            labels=period.finding_labels,
            within=period.results,
        )
        if curve:
            rows.append(
                [
                    f"Finding calibration against verdicts ({version.name}): ECE",
                    f"{expected_calibration_error(curve):.3f}",
                    f"over {sum(b.count for b in curve)} judged findings",
                ]
            )
    subgroups = [("sex", "sex", Q(abstain=True), "Flagged-for-review rate")]
    if period.subject.endswith("student"):
        concerning = Q(emotion_label__in=sorted(CONCERNING_AFFECTS))
        subgroups.append(("grade", "grade", concerning, "Frustration/confusion rate"))
    for name, fact, condition, measure in subgroups:
        gap = largest_gap(
            rate_by_group(period.results, group=f"{period.subject}__{fact}", condition=condition)
        )
        if gap:
            rows.append(
                [
                    f"{measure} by {name}: largest gap",
                    f"{round(gap.size * 100)} points",
                    f"highest: {gap.best}, lowest: {gap.worst}",
                ]
            )
    if not rows:
        return []
    return [
        Table(
            "Model monitoring",
            ["Measure", "Value", "Reading"],
            rows,
            note="Drift compares this period with as long a time before it.",
        )
    ]


def _drift_word(psi: float) -> str:
    if psi < 0.1:
        return "stable"
    return "a shift worth a look" if psi < 0.25 else "a real drift"


# What a report shows of a cohort beyond what every report shows.
def _what_helped_table(content: ReportContent, period: Period) -> None:
    """A school's: the suggestions its teachers tried, and what they said at the learner's
    next session (all of the school's, whatever the period: counts are few)."""
    rows = intervention_outcomes(organization=period.organization)
    content.tables.append(
        Table(
            "What helped",
            ["Intervention", "Tried", "Helped", "Did not help", "Not said yet"],
            [
                [
                    row["title"],
                    *(str(row[key]) for key in ("tried", "helped", "did_not_help", "not_said")),
                ]
                for row in rows
            ],
            note="" if rows else "No suggestion marked as tried yet.",
        )
    )


def _school_sections(content: ReportContent, period: Period) -> None:
    _attention_table(content, period)
    _what_helped_table(content, period)


COHORT_SECTIONS = {CLINIC: _findings_chart, SCHOOL: _school_sections}
