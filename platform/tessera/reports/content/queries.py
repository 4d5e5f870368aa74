"""The reads of a report: a person's results in its period, a cohort's rows, the students who
need attention. A read that returns people for a report to name logs them as viewed."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from analytics.attention import RECENT_WEEKS
from tessera.audit import services as audit
from tessera.jobs.models import AnalysisResult, Feedback, LatestAnalysis, ModelVersion
from tessera.jobs.statistics import local_midnight
from tessera.records.kinds import TO_VISITS, Subject, kind_of, subject_of
from tessera.records.models import MediaAsset, Transcript, TranscriptStatus
from tessera.reports.models import Report


def period_bounds(report: Report, results: QuerySet[AnalysisResult]) -> tuple[date, date]:
    """The report's days; with no start asked for, from the day of the first of `results`."""
    if report.period_start:
        return report.period_start, report.period_end
    first = results.order_by("created_at").values_list("created_at", flat=True).first()
    return (timezone.localdate(first) if first else report.period_end), report.period_end


def in_period(rows: QuerySet, start: date, end: date) -> QuerySet:
    """The rows created from the first day's local midnight to the end of the last day."""
    return rows.filter(
        created_at__gte=local_midnight(start), created_at__lt=local_midnight(end + timedelta(1))
    )


def versions_of(results: QuerySet[AnalysisResult]) -> list[ModelVersion]:
    ids = results.order_by().values_list("model_version", flat=True).distinct()
    return list(ModelVersion.objects.filter(pk__in=list(ids)).order_by("created_at"))


def labels_of(results: QuerySet[AnalysisResult], versions: list[ModelVersion]):
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


def results_of(subject: Subject, *, report: Report) -> tuple[list[AnalysisResult], date, date]:
    """The person's results in the report's period, oldest first, with what their rows show
    (model version, visit, verdicts newest first), and the period's days; the person logged
    as viewed."""
    audit.record(subject, action=audit.Action.VIEW)
    every = AnalysisResult.objects.filter(**{kind_of(subject).from_result: subject})
    start, end = period_bounds(report, every)
    results = list(
        in_period(every, start, end)
        .select_related("model_version", *(f"job__{path}" for path in TO_VISITS))
        .prefetch_related(Prefetch("feedback", queryset=Feedback.objects.order_by("-created_at")))
        .order_by("created_at")
    )
    return results, start, end


def transcripts_of(subject: Subject, *, start: date, end: date) -> list[Transcript]:
    """The transcripts of the person's recordings on visits in the period, oldest visit first,
    with their visit; logged as viewed."""
    kind = kind_of(subject)
    visit = f"media__{kind.to_visit}"
    transcripts = list(
        Transcript.objects.filter(
            status=TranscriptStatus.DONE,
            **{
                f"media__{kind.from_visit}": subject,
                f"{visit}__occurred_at__gte": local_midnight(start),
                f"{visit}__occurred_at__lt": local_midnight(end + timedelta(1)),
            },
        )
        .select_related(visit)
        .order_by(f"{visit}__occurred_at", "media__created_at")
    )
    audit.record_each(transcripts, action=audit.Action.VIEW)
    return transcripts


@dataclass(frozen=True)
class CohortRows:
    """A cohort's rows (a ward, a class, or the whole organization), of every time."""

    results: QuerySet[AnalysisResult]
    people: QuerySet
    media: QuerySet[MediaAsset]


def cohort_rows(report: Report) -> CohortRows:
    organization = report.organization
    kind = kind_of(organization)
    results = AnalysisResult.objects.filter(organization=organization)
    people = kind.subject_model.objects.filter(organization=organization)
    media = MediaAsset.objects.filter(organization=organization)
    if report.cohort_id:
        results = results.filter(**{f"{kind.from_result}__cohort": report.cohort_id})
        people = people.filter(cohort=report.cohort_id)
        media = media.filter(**{f"{kind.from_visit}__cohort": report.cohort_id})
    return CohortRows(results, people, media)


def students_needing_attention(*, report: Report, limit: int) -> tuple[int, list[LatestAnalysis]]:
    """How many students of the report's class (or school) keep showing concerning affects,
    and the latest analyses of the `limit` whose concern is newest, those students logged as
    viewed."""
    flagged = LatestAnalysis.objects.filter(
        organization=report.organization,
        subject_key__student__isnull=False,
        concern_since__gte=timezone.now() - timedelta(weeks=RECENT_WEEKS),
    ).select_related("subject_key__student")
    if report.cohort_id:
        flagged = flagged.filter(subject_key__student__cohort=report.cohort_id)
    flagged = flagged.order_by("-concern_since")
    listed = list(flagged[:limit])
    audit.record_each([subject_of(latest) for latest in listed], action=audit.Action.VIEW)
    return flagged.count(), listed
