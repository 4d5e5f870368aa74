"""Reads that count: the database aggregates of results, feedback and inputs that the pure
functions of `analytics` turn into cohort statistics and model monitoring. Here rather than in
`analytics`, which stays pure (it knows neither Django nor Tessera), so that the arrow between
the two runs one way: Tessera uses analytics."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import (
    Avg,
    Case,
    Count,
    F,
    FloatField,
    Q,
    QuerySet,
    StdDev,
    Sum,
    TextField,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Floor
from django.utils import timezone

from analytics.monitoring import (
    ClassMetrics,
    ReliabilityBin,
    Summary,
    accuracy,
    confusion_matrix,
    per_class,
    population_stability_index,
    reliability_curve,
    standardized_shift,
)
from analytics.trends import WeekCounts, weekly_distribution
from tessera.accounts.models import Organization
from tessera.jobs.models import AnalysisResult, Feedback, ModelVersion
from tessera.records.models import MediaAsset, MediaKind


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def affect_by_week(
    *, results: QuerySet[AnalysisResult], labels: list[str], weeks: list[date]
) -> list[WeekCounts]:
    """How many of `results` suggested each affect label in each week starting on the Mondays
    `weeks`. Counted in the database as one row per label with a filtered count per week: the
    rows are compared with the weeks' boundaries, with no date arithmetic per row, so the
    (organization, created_at, emotion_label) index answers it alone."""
    bounds = [local_midnight(week) for week in weeks] + [local_midnight(weeks[-1] + timedelta(7))]
    per_week = {
        f"week_{n}": Count("pk", filter=Q(created_at__gte=bounds[n], created_at__lt=bounds[n + 1]))
        for n in range(len(weeks))
    }
    rows = (
        results.filter(created_at__gte=bounds[0], created_at__lt=bounds[-1])
        .filter(emotion_label__in=labels)
        .order_by()
        .values("emotion_label")
        .annotate(**per_week)
    )
    return weekly_distribution(
        (
            (week, row["emotion_label"], row[f"week_{n}"])
            for row in rows
            for n, week in enumerate(weeks)
        ),
        labels=labels,
        weeks=weeks,
    )


def affect_agreement(
    *,
    version: ModelVersion,
    organizations: QuerySet[Organization],
    labels: list[str],
    within: QuerySet[AnalysisResult] | None = None,
) -> tuple[list[list[int]], list[ClassMetrics], float | None]:
    """How the version's affect suggestions compare with what professionals said of them: a
    confirmation agrees with the suggestion, a correction names the true label. Counted per
    pair of labels in the database; returns the confusion matrix (rows: what the professional
    said), the per-label metrics and the accuracy. `within` narrows it to some results (a
    period, a cohort)."""
    truth = Case(
        When(kind=Feedback.Kind.CONFIRM, then=F("result__emotion_label")),
        default=F("emotion_label"),
    )
    verdicts = Feedback.objects.filter(
        result__model_version=version, result__organization__in=organizations
    )
    if within is not None:
        verdicts = verdicts.filter(result__in=within)
    counts = (
        verdicts.exclude(result__emotion_label="")
        .filter(
            Q(kind=Feedback.Kind.CONFIRM) | (Q(kind=Feedback.Kind.CORRECT) & ~Q(emotion_label=""))
        )
        .annotate(truth=truth)
        .order_by()
        .values("truth", "result__emotion_label")
        .annotate(count=Count("pk"))
        .values_list("truth", "result__emotion_label", "count")
    )
    matrix = confusion_matrix(counts, labels=labels)
    return matrix, per_class(matrix, labels=labels), accuracy(matrix)


def findings_calibration(
    *,
    version: ModelVersion,
    organizations: QuerySet[Organization],
    labels: list[str],
    within: QuerySet[AnalysisResult] | None = None,
    bins: int = 10,
) -> list[ReliabilityBin]:
    """The reliability curve of the version's finding probabilities against what professionals
    said: each verdict on a result is one prediction per finding. A confirmation makes the
    findings suggested (probability at least 0.5) the true ones; a correction names them. The
    probabilities are binned and counted in the database."""
    verdicts = Feedback.objects.filter(
        result__model_version=version,
        result__organization__in=organizations,
        kind__in=[Feedback.Kind.CONFIRM, Feedback.Kind.CORRECT],
    ).exclude(kind=Feedback.Kind.CORRECT, diagnosis__isnull=True)
    if within is not None:
        verdicts = verdicts.filter(result__in=within)
    counts = []
    for label in labels:
        # from the results' side: a JSON key is read from the model's own field
        probability = Cast(KT(f"diagnosis__{label}"), FloatField())
        named = Cast("feedback__diagnosis", TextField())  # a JSON list as text, on any database
        truly = Q(feedback__kind=Feedback.Kind.CONFIRM, **{f"diagnosis__{label}__gte": 0.5}) | Q(
            feedback__kind=Feedback.Kind.CORRECT, named__contains=f'"{label}"'
        )
        counts += (
            AnalysisResult.objects.filter(
                feedback__in=verdicts, **{f"diagnosis__{label}__isnull": False}
            )
            .annotate(probability=probability, named=named)
            .annotate(bin=Floor(F("probability") * bins))
            .order_by()
            .values("bin")
            .annotate(
                count=Count("feedback"),
                confidence=Sum("probability"),
                right=Count("feedback", filter=truly),
            )
            .values_list("bin", "count", "confidence", "right")
        )
    return reliability_curve(counts, bin_count=bins)


def label_counts(results: QuerySet[AnalysisResult], *, labels: list[str]) -> list[int]:
    """How many of `results` suggested each affect label, in the order of `labels`."""
    counted = dict(
        results.filter(emotion_label__in=labels)
        .order_by()
        .values("emotion_label")
        .annotate(count=Count("pk"))
        .values_list("emotion_label", "count")
    )
    return [counted.get(label, 0) for label in labels]


def finding_counts(
    results: QuerySet[AnalysisResult], *, labels: list[str], threshold: float = 0.5
) -> dict[str, int]:
    """How many of `results` found each finding (probability at least `threshold`)."""
    counts = results.order_by().aggregate(
        **{
            f"finding_{n}": Count("pk", filter=Q(**{f"diagnosis__{label}__gte": threshold}))
            for n, label in enumerate(labels)
        }
    )
    return {label: counts[f"finding_{n}"] for n, label in enumerate(labels)}


def prediction_drift(
    *, before: QuerySet[AnalysisResult], after: QuerySet[AnalysisResult], labels: list[str]
) -> float | None:
    """The population stability index of the affect labels suggested in two periods; None
    when either period suggested none (nothing to compare)."""
    old, new = label_counts(before, labels=labels), label_counts(after, labels=labels)
    if not sum(old) or not sum(new):
        return None
    return population_stability_index(old, new)


def media_summary(media: QuerySet[MediaAsset], *, fact: str) -> Summary | None:
    """Count, mean and standard deviation of a numeric fact the upload recorded in the media's
    metadata (`duration_seconds` of audio, `characters` of a text, `mean_intensity` of an
    image), aggregated in the database; None when no medium has it."""
    value = Cast(KT(f"metadata__{fact}"), FloatField())
    stats = media.filter(**{f"metadata__{fact}__isnull": False}).aggregate(
        count=Count("pk"), mean=Avg(value), std=StdDev(value, sample=True)
    )
    if not stats["count"]:
        return None
    return Summary(count=stats["count"], mean=stats["mean"], std=stats["std"] or 0.0)


INPUT_FACTS = {
    "image intensity": (MediaKind.DICOM, "mean_intensity"),
    "audio length (s)": (MediaKind.SPEECH, "duration_seconds"),
    "spoken answer length (s)": (MediaKind.LEARNER_AUDIO, "duration_seconds"),
    "note length (characters)": (MediaKind.CLINICAL_NOTE, "characters"),
    "text length (characters)": (MediaKind.LEARNER_TEXT, "characters"),
}


@dataclass(frozen=True)
class InputDrift:
    name: str
    before: Summary
    after: Summary
    shift: float  # in pooled standard deviations (analytics.monitoring.standardized_shift)


def input_drift(*, before: QuerySet[MediaAsset], after: QuerySet[MediaAsset]) -> list[InputDrift]:
    """How the inputs moved between two periods, for every kind of input both periods have."""
    drifts = []
    for name, (kind, fact) in INPUT_FACTS.items():
        old = media_summary(before.filter(kind=kind), fact=fact)
        new = media_summary(after.filter(kind=kind), fact=fact)
        if old and new:
            drifts.append(InputDrift(name, old, new, standardized_shift(old, new)))
    return drifts


def rate_by_group(
    results: QuerySet[AnalysisResult], *, group: str, condition: Q
) -> dict[str, float | None]:
    """For each value of `group` (a path from a result to, say, its subject's sex or grade),
    the share of `results` meeting `condition`: the input of `largest_gap`."""
    rows = (
        results.order_by()
        .values(group)
        .annotate(total=Count("pk"), meeting=Count("pk", filter=condition))
        .values_list(group, "total", "meeting")
    )
    return {str(value or "unknown"): meeting / total for value, total, meeting in rows if total}
