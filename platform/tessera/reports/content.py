"""What a report says, gathered from the database (aggregates for cohorts: a ward's report reads
counts, not rows) into a `ReportContent` that `reports.pdf` lays out."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from analytics.attention import CONCERNING_AFFECTS, RECENT_WEEKS
from analytics.monitoring import expected_calibration_error, largest_gap
from analytics.trends import weekly_distribution, weeks_between
from tessera.accounts.models import Organization
from tessera.audit import services as audit
from tessera.jobs.models import AnalysisResult, Feedback, LatestAnalysis, ModelVersion
from tessera.jobs.statistics import (
    affect_agreement,
    affect_by_week,
    finding_counts,
    findings_calibration,
    input_drift,
    local_midnight,
    prediction_drift,
    rate_by_group,
)
from tessera.records.kinds import CLINIC, SCHOOL, kind_of, visit_of
from tessera.records.models import MediaAsset
from tessera.reports import charts
from tessera.reports.models import Report, ReportKind

NOTICE = (
    "Every result in this report is a suggestion made by a machine-learning model. It is not a "
    "diagnosis or an assessment: a qualified professional must review and confirm it before it "
    "informs any decision."
)
MOST_ANALYSES_LISTED = 60


def _notice(versions: list[ModelVersion]) -> str:
    """The report's notice, and what any of its model versions must say about itself."""
    return " ".join(dict.fromkeys([NOTICE, *(v.notice for v in versions if v.notice)]))


MOST_EXPLAINED = 10
MOST_STUDENTS_LISTED = 40


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


def report_content(report: Report) -> ReportContent:
    if report.kind == ReportKind.COHORT:
        return cohort_content(report)
    return subject_content(report)


def _period_bounds(report: Report, results: QuerySet[AnalysisResult]) -> tuple[date, date]:
    """The report's days; with no start asked for, from the day of the first of `results`."""
    if report.period_start:
        return report.period_start, report.period_end
    first = results.order_by("created_at").values_list("created_at", flat=True).first()
    return (timezone.localdate(first) if first else report.period_end), report.period_end


def _in_period(rows: QuerySet, start: date, end: date) -> QuerySet:
    """The rows created from the first day's local midnight to the end of the last day."""
    return rows.filter(
        created_at__gte=local_midnight(start), created_at__lt=local_midnight(end + timedelta(1))
    )


def _header(report: Report, *, title: str, about: str, start: date, end: date) -> dict:
    person = report.requested_by
    requested = (person.get_full_name() or person.get_username()) if person else "a schedule"
    return {
        "title": title,
        "organization": report.organization.name,
        "about": about,
        "period": f"{start:%d %b %Y} to {end:%d %b %Y}",
        "generated": f"{timezone.localtime():%d %b %Y, %H:%M} for {requested}",
    }


def _versions(results: QuerySet[AnalysisResult]) -> list[ModelVersion]:
    ids = results.order_by().values_list("model_version", flat=True).distinct()
    return list(ModelVersion.objects.filter(pk__in=list(ids)).order_by("created_at"))


def _labels_of(results: QuerySet[AnalysisResult], versions: list[ModelVersion]):
    """The finding and affect labels the versions predict, read from one result of each (the
    bundles may live on other hosts)."""
    findings: list[str] = []
    affects: list[str] = []
    for version in versions:
        sample = results.filter(model_version=version)
        diagnosed = sample.exclude(diagnosis={}).values_list("diagnosis", flat=True).first()
        felt = sample.exclude(emotion={}).values_list("emotion", flat=True).first()
        findings += [label for label in diagnosed or {} if label not in findings]
        affects += [label for label in felt or {} if label not in affects]
    suggested = results.exclude(emotion_label="").order_by().values_list("emotion_label", flat=True)
    affects += sorted(set(suggested.distinct()) - set(affects))
    return findings, affects


# --- one patient or student ----------------------------------------------------------------


def _verdict(result: AnalysisResult) -> str:
    verdicts = list(result.feedback.all())
    if not verdicts:
        return "not reviewed"
    latest = verdicts[0]
    if latest.kind == Feedback.Kind.CORRECT:
        corrected = ", ".join(words(label) for label in latest.diagnosis or []) or words(
            latest.emotion_label
        )
        return f"corrected: {corrected or 'none'}"
    return latest.get_kind_display().lower()


@dataclass(frozen=True)
class Analysed:
    """One person's results in a report's period, oldest first."""

    results: list[AnalysisResult]
    start: date
    end: date


def subject_content(report: Report) -> ReportContent:
    subject = report.subject
    audit.record(subject, action=audit.Action.VIEW)
    kind = kind_of(subject)
    all_results = AnalysisResult.objects.filter(**{kind.from_result: subject})
    start, end = _period_bounds(report, all_results)
    results = list(
        _in_period(all_results, start, end)
        .select_related("model_version", "job__encounter", "job__learning_session")
        .prefetch_related(Prefetch("feedback", queryset=Feedback.objects.order_by("-created_at")))
        .order_by("created_at")
    )
    versions = sorted({r.model_version for r in results}, key=lambda v: v.created_at)
    identifier = f"{kind.identifier_abbreviation} {kind.identifier_of(subject)}"
    grade = getattr(subject, "grade", "")
    extra = f", grade {grade}" if grade else ""
    content = ReportContent(
        **_header(
            report,
            title=f"{kind.subject_noun.capitalize()} report",
            about=f"{subject.full_name} ({identifier}{extra})",
            start=start,
            end=end,
        ),
        facts=[
            ("Analyses in the period", str(len(results))),
            (
                "Flagged for review (the model was unsure)",
                str(sum(result.abstain for result in results)),
            ),
            ("Reviewed by a professional", str(sum(bool(r.feedback.all()) for r in results))),
        ],
        model_versions=versions,
        notice=_notice(versions),
    )
    SUBJECT_SECTIONS[kind](content, Analysed(results, start, end))
    content.explanations = [_explained(result) for result in results[-MOST_EXPLAINED:]]
    return content


def _visit_name(result: AnalysisResult) -> str:
    visit = visit_of(result.job)
    return kind_of(visit).visit_title(visit)


def _patient_sections(content: ReportContent, analysed: Analysed) -> None:
    """Findings over time, and each analysis."""
    results = analysed.results
    labels = list(dict.fromkeys(label for r in results for label in r.diagnosis))
    if results and labels:
        content.charts.append(
            Chart(
                "Finding probabilities over time",
                charts.probabilities_over_time(
                    [r.created_at for r in results],
                    {
                        words(label): [r.diagnosis.get(label, 0.0) for r in results]
                        for label in labels
                    },
                    title="Finding probability at each analysis (dashed: 50%)",
                ),
            )
        )
    content.tables.append(
        Table(
            "Analyses",
            ["Date", "Visit", "Findings", "Affect", "Review", "Model", "Professional"],
            [
                [
                    f"{timezone.localtime(r.created_at):%d %b %Y}",
                    _visit_name(r),
                    ", ".join(
                        f"{words(label)} {percent(p)}"
                        for label, p in sorted(r.diagnosis.items(), key=lambda item: -item[1])
                    )
                    or "—",
                    words(r.emotion_label) or "—",
                    "needs a person" if r.abstain else "",
                    r.model_version.name,
                    _verdict(r),
                ]
                for r in results[-MOST_ANALYSES_LISTED:]
            ],
            note=_listed_note(len(results)),
        )
    )


def _student_sections(content: ReportContent, analysed: Analysed) -> None:
    """Affect per week, and each analysis."""
    results = analysed.results
    labels = list(dict.fromkeys(label for r in results for label in r.emotion))
    weeks = weeks_between(analysed.start, analysed.end)[-26:]
    distribution = weekly_distribution(
        (
            (_monday_of(timezone.localdate(r.created_at)), r.emotion_label, 1)
            for r in results
            if r.emotion_label
        ),
        labels=labels,
        weeks=weeks,
    )
    if results and labels:
        content.charts.append(_affect_chart(distribution, labels))
    content.tables.append(
        Table(
            "Analyses",
            ["Date", "Session", "Affect", "Suggestion", "Review", "Model", "Professional"],
            [
                [
                    f"{timezone.localtime(r.created_at):%d %b %Y}",
                    _visit_name(r),
                    f"{words(r.emotion_label)} {percent(r.emotion.get(r.emotion_label))}"
                    if r.emotion_label
                    else "—",
                    r.tutoring[0]["title"] if r.tutoring else "—",
                    "needs a person" if r.abstain else "",
                    r.model_version.name,
                    _verdict(r),
                ]
                for r in results[-MOST_ANALYSES_LISTED:]
            ],
            note=_listed_note(len(results)),
        )
    )


def _affect_chart(distribution: list, labels: list[str]) -> Chart:
    return Chart(
        "Affect week by week",
        charts.stacked_weeks(
            distribution, [words(label) for label in labels], title="Affect suggested, per week"
        ),
    )


def _monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _listed_note(total: int) -> str:
    if total > MOST_ANALYSES_LISTED:
        return f"The latest {MOST_ANALYSES_LISTED} of {total} analyses."
    return ""


def _explained(result: AnalysisResult) -> tuple[str, str]:
    moved = "; ".join(
        f"{answer['answer'].replace('_', ' ')}: "
        + ", ".join(f"{item['input']} {percent(item['share'])}" for item in answer["inputs"])
        for answer in result.contributions_by_task
    )
    parts = [f"What moved each answer: {moved or 'not measured'}.", *result.left_out_notes]
    parts += [
        f"{'Findings' if task == 'diagnosis' else 'Affect'} need a person: {why['detail']}"
        for task, why in result.needs_person.items()
    ]
    parts += [
        f"Why the {'findings' if task == 'diagnosis' else 'affect'}, from the evidence: {sentence}"
        for task, sentence in result.rationales.items()
    ]
    if result.rationale:
        parts.append(f"Rationale (language model): {result.rationale}")
    if result.tutoring:
        parts.append(
            "Suggestions: "
            + "; ".join(
                f"{item['title']} ({percent(item.get('score'))})" for item in result.tutoring[:3]
            )
            + "."
        )
    return (
        f"{timezone.localtime(result.created_at):%d %b %Y, %H:%M}: {_visit_name(result)}",
        " ".join(parts),
    )


# --- a cohort --------------------------------------------------------------------------------


def cohort_content(report: Report) -> ReportContent:
    organization: Organization = report.organization
    kind = kind_of(organization)
    subject = kind.from_result
    results = AnalysisResult.objects.filter(organization=organization)
    subjects = kind.subject_model.objects.filter(organization=organization)
    media = MediaAsset.objects.filter(organization=organization)
    if report.cohort_id:
        results = results.filter(**{f"{subject}__cohort": report.cohort_id})
        subjects = subjects.filter(cohort=report.cohort_id)
        media = media.filter(**{f"{kind.from_visit}__cohort": report.cohort_id})
    start, end = _period_bounds(report, results)
    in_period = _in_period(results, start, end)
    length = (end - start).days + 1
    before = _in_period(results, start - timedelta(length), start - timedelta(1))
    versions = _versions(in_period)
    finding_labels, affect_labels = _labels_of(in_period, versions)
    totals = in_period.aggregate(
        analyses=Count("pk"),
        analysed=Count(subject, distinct=True),
        review=Count("pk", filter=Q(abstain=True)),
    )
    scope = report.cohort.name if report.cohort else f"all of {organization.name}"
    count = subjects.count()
    kind_word = kind.subject_noun + ("" if count == 1 else "s")
    content = ReportContent(
        **_header(
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
        notice=_notice(versions),
    )
    weeks = weeks_between(start, end)[-26:]
    if affect_labels:
        distribution = affect_by_week(results=in_period, labels=affect_labels, weeks=weeks)
        content.charts.append(_affect_chart(distribution, affect_labels))
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
        organization=organization,
        cohort_id=report.cohort_id,
        subject=subject,
        results=in_period,
        results_before=before,
        media=_in_period(media, start, end),
        media_before=_in_period(media, start - timedelta(length), start - timedelta(1)),
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

    organization: Organization
    cohort_id: int | None  # None: the whole organization
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
    flagged = LatestAnalysis.objects.filter(
        organization=period.organization,
        student__isnull=False,
        concern_since__gte=timezone.now() - timedelta(weeks=RECENT_WEEKS),
    ).select_related("student")
    if period.cohort_id:
        flagged = flagged.filter(student__cohort=period.cohort_id)
    flagged = flagged.order_by("-concern_since")
    count = flagged.count()
    listed = list(flagged[:MOST_STUDENTS_LISTED])
    audit.record_each([latest.student for latest in listed], action=audit.Action.VIEW)
    content.tables.append(
        Table(
            "Students needing attention",
            ["Student", "Latest affects", "Since"],
            [
                [
                    latest.student.full_name,
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


# What a report shows of a person, and of a cohort, beyond what every report shows.
SUBJECT_SECTIONS = {CLINIC: _patient_sections, SCHOOL: _student_sections}
COHORT_SECTIONS = {CLINIC: _findings_chart, SCHOOL: _attention_table}
