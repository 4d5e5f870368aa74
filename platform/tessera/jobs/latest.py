"""Keeps `LatestAnalysis` true: one row per analysed patient or student, recomputed from their
jobs and results whenever a job of theirs is requested or finishes (`refresh_latest_analysis`),
or for a whole organization at once after a bulk import (`rebuild_latest_analyses`)."""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import transaction

from analytics.attention import WINDOW, concern_since
from tessera.accounts.models import Organization
from tessera.jobs.models import AnalysisJob, AnalysisResult, LatestAnalysis
from tessera.records.kinds import KINDS, Subject, kind_of, subject_fields


class ResultFacts(NamedTuple):
    pk: int
    urgency: float
    abstain: bool
    emotion_label: str
    created_at: datetime


FACTS = ResultFacts._fields


def _summary(job_id, newest: ResultFacts | None, labelled: Sequence[ResultFacts]) -> dict:
    """The row's fields from the newest job, the newest result and the newest results that
    suggested an affect (newest first, at least the last WINDOW of them)."""
    affects = [(facts.emotion_label, facts.created_at) for facts in labelled]
    return {
        "job_id": job_id,
        "result_id": newest.pk if newest else None,
        "urgency": newest.urgency if newest else None,
        "abstained": newest.abstain if newest else None,
        "recent_affects": [label for label, _ in affects[:WINDOW]],
        "concern_since": concern_since(affects),
    }


def refresh_latest_analysis(*, subject: Subject) -> LatestAnalysis:
    """Recompute `subject`'s row from their newest job, newest result and last labelled
    results (a few indexed rows, however long their history). The subject is locked first, so
    two workers finishing jobs of the same subject take turns, and the second sees the first
    one's result."""
    path = kind_of(subject).from_visit
    with transaction.atomic():
        list(type(subject).objects.select_for_update().filter(pk=subject.pk).values_list("pk"))
        job_id = (
            AnalysisJob.objects.filter(**{path: subject})
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)
            .first()
        )
        newest_first = (
            AnalysisResult.objects.filter(**{f"job__{path}": subject})
            .order_by("-created_at", "-pk")
            .values_list(*FACTS)
        )
        newest = newest_first.first()
        labelled = newest_first.exclude(emotion_label="")[:WINDOW]
        latest, _ = LatestAnalysis.objects.update_or_create(
            **subject_fields(subject),
            defaults={
                "organization_id": subject.organization_id,
                **_summary(
                    job_id,
                    ResultFacts(*newest) if newest else None,
                    [ResultFacts(*row) for row in labelled],
                ),
            },
        )
    return latest


def rebuild_latest_analyses(*, organization: Organization) -> int:
    """Recompute the rows of every subject of `organization` from two ordered scans (one of
    jobs, one of results), for rows written around the services; returns how many."""
    rows = []
    with transaction.atomic():
        LatestAnalysis.objects.filter(organization=organization).delete()
        for kind in KINDS:
            path = f"{kind.from_visit}__subject_key"
            newest_job = {}
            jobs = (
                AnalysisJob.objects.filter(organization=organization, **{f"{path}__isnull": False})
                .order_by(path, "-created_at", "-pk")
                .values_list(path, "pk")
            )
            for key_id, job_id in jobs.iterator(chunk_size=10_000):
                newest_job.setdefault(key_id, job_id)
            results: dict[int, list[ResultFacts]] = {}
            ordered = (
                AnalysisResult.objects.filter(organization=organization)
                .filter(**{f"job__{path}__isnull": False})
                .order_by(f"job__{path}", "-created_at", "-pk")
                .values_list(f"job__{path}", *FACTS)
            )
            for key_id, *facts in ordered.iterator(chunk_size=10_000):
                results.setdefault(key_id, []).append(ResultFacts(*facts))
            for key_id, job_id in newest_job.items():
                history = results.get(key_id, [])
                labelled = [facts for facts in history if facts.emotion_label]
                rows.append(
                    LatestAnalysis(
                        organization=organization,
                        subject_key_id=key_id,
                        **_summary(job_id, history[0] if history else None, labelled),
                    )
                )
        LatestAnalysis.objects.bulk_create(rows, batch_size=5_000)
    return len(rows)
