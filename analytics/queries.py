"""Thin Django glue: the database aggregates that the pure functions of `analytics` read."""

from django.db.models import Count, F, Q, QuerySet

from analytics.monitoring import ClassMetrics, accuracy, confusion_matrix, per_class
from tessera.accounts.models import Organization
from tessera.jobs.models import Feedback, ModelVersion


def affect_agreement(
    *, version: ModelVersion, organizations: QuerySet[Organization], labels: list[str]
) -> tuple[list[list[int]], list[ClassMetrics], float | None]:
    """How the version's affect suggestions compare with what professionals said of them: a
    confirmation agrees with the suggestion, a correction names the true label. Counted per
    pair of labels in the database; returns the confusion matrix (rows: what the professional
    said), the per-label metrics and the accuracy."""
    verdicts = Feedback.objects.filter(
        result__model_version=version,
        result__job__organization__in=organizations,
    ).exclude(result__emotion_label="")
    confirmed = verdicts.filter(kind=Feedback.Kind.CONFIRM).annotate(
        truth=F("result__emotion_label")
    )
    corrected = verdicts.filter(Q(kind=Feedback.Kind.CORRECT) & ~Q(emotion_label="")).annotate(
        truth=F("emotion_label")
    )
    counts = [
        row
        for verdict in (confirmed, corrected)
        for row in verdict.values("truth", "result__emotion_label")
        .annotate(count=Count("pk"))
        .values_list("truth", "result__emotion_label", "count")
    ]
    matrix = confusion_matrix(counts, labels=labels)
    return matrix, per_class(matrix, labels=labels), accuracy(matrix)
