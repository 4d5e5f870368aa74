"""Leases: a worker holds a job by its lease (owner + expiry), renewed by a heartbeat while it
works. Every transition is a conditional update, so two workers handed the same message cannot
both take the job. A job waiting for a GPU worker has no lease: a queue backlog is not a dead
worker."""

import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from tessera.jobs.models import (
    FINISHED,
    Activity,
    AnalysisJob,
    JobStatus,
)
from tessera.jobs.services.results import fail_job, rounded


def lease_length() -> timedelta:
    return timedelta(seconds=settings.TESSERA_JOB_LEASE_SECONDS)


def worker_name() -> str:
    """Who holds a lease: the process, and the thread in a threads pool (threads of one process
    must not take each other's jobs)."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    thread = threading.current_thread()
    return name if thread is threading.main_thread() else f"{name}:{thread.name}"


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff after a transient error, doubling from the base, at most 5 minutes."""
    seconds = settings.TESSERA_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempt - 1)
    return timedelta(seconds=min(seconds, 300))


def claim_for_preprocessing(*, job_id, worker: str, lease: timedelta | None = None) -> bool:
    """Take a queued job, or take over one whose preprocessing worker stopped renewing its
    lease; either counts an attempt (at most `max_attempts`). The worker that holds the job
    may claim it again (its task retried after a lost database connection) at no cost."""
    lease = lease or lease_length()
    now = timezone.now()
    mine = Q(status=JobStatus.PREPROCESSING, lease_owner=worker)
    taken = (
        AnalysisJob.objects.filter(pk=job_id)
        .filter(
            mine
            | Q(status=JobStatus.QUEUED, attempts__lt=F("max_attempts"))
            | Q(
                status=JobStatus.PREPROCESSING,
                lease_expires_at__lt=now,
                attempts__lt=F("max_attempts"),
            )
        )
        .update(
            status=JobStatus.PREPROCESSING,
            stage=Activity.PREPROCESSING,
            progress=10,
            attempts=Case(When(mine, then=F("attempts")), default=F("attempts") + 1),
            worker=worker,
            lease_owner=worker,
            lease_expires_at=now + lease,
            started_at=Coalesce("started_at", now),
            updated_at=now,
        )
    )
    return taken == 1


def hand_to_inference(*, job_id, worker: str, timings: dict | None = None) -> bool:
    """Preprocessing is done: the job waits, without a lease, for a GPU worker. `timings` (the
    job's, with its preprocessing's added), when given, are written in the same update."""
    written = {"timings": rounded(timings)} if timings is not None else {}
    return (
        AnalysisJob.objects.filter(
            pk=job_id, status=JobStatus.PREPROCESSING, lease_owner=worker
        ).update(
            status=JobStatus.RUNNING,
            stage=Activity.WAITING_FOR_INFERENCE,
            progress=40,
            lease_owner="",
            lease_expires_at=None,
            updated_at=timezone.now(),
            **written,
        )
        == 1
    )


def _waiting_for_inference(now) -> Q:
    return Q(status=JobStatus.RUNNING, lease_owner="") & (
        Q(retry_after__isnull=True) | Q(retry_after__lte=now)
    )


def claim_for_inference(*, job_id, worker: str, lease: timedelta | None = None) -> bool:
    """Take a job waiting for inference (not backing off), or take over one whose GPU worker
    stopped renewing its lease (that counts an attempt); the holder may claim it again."""
    lease = lease or lease_length()
    now = timezone.now()
    waiting = _waiting_for_inference(now) | Q(lease_owner=worker)
    abandoned = Q(lease_expires_at__lt=now, attempts__lt=F("max_attempts"))
    return (
        AnalysisJob.objects.filter(pk=job_id, status=JobStatus.RUNNING)
        .filter(waiting | abandoned)
        .update(
            stage=Activity.INFERENCE,
            progress=60,
            attempts=Case(When(waiting, then=F("attempts")), default=F("attempts") + 1),
            worker=worker,
            lease_owner=worker,
            lease_expires_at=now + lease,
            retry_after=None,
            updated_at=now,
        )
        == 1
    )


def claim_more_for_inference(
    *, worker: str, model_version_id: int, limit: int, exclude: list
) -> list:
    """Micro-batching: take up to `limit` more jobs waiting for the same model version, oldest
    first, each by the same atomic claim (a job another worker takes first is skipped)."""
    if limit <= 0:
        return []
    now = timezone.now()
    candidates = (
        AnalysisJob.objects.filter(_waiting_for_inference(now), model_version_id=model_version_id)
        .exclude(pk__in=exclude)
        .order_by("updated_at")
        .values_list("pk", flat=True)[: limit * 2]
    )
    taken = []
    for job_id in candidates:
        if claim_for_inference(job_id=job_id, worker=worker):
            taken.append(job_id)
            if len(taken) == limit:
                break
    return taken


def renew_leases(*, job_ids: list, worker: str, lease: timedelta | None = None) -> int:
    """Heartbeat: keep long jobs from being taken by another worker while they run; returns
    how many leases this worker still holds."""
    lease = lease or lease_length()
    return (
        AnalysisJob.objects.filter(pk__in=job_ids, lease_owner=worker)
        .exclude(status__in=FINISHED)
        .update(lease_expires_at=timezone.now() + lease, updated_at=timezone.now())
    )


def release_for_retry(*, job_id, worker: str, code: str, message: str) -> timedelta | None:
    """A transient error (out of memory): the job waits, backing off, for another inference
    attempt, and the delay is returned; out of attempts, it fails with `message` instead (and
    None is returned), so a job that fails the same way every time cannot loop."""
    with transaction.atomic():
        job = (
            AnalysisJob.objects.select_for_update()
            .filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=worker)
            .first()
        )
        if job is None:
            return None  # cancelled or taken over meanwhile
        job.attempts += 1
        if job.attempts >= job.max_attempts:
            job.save(update_fields=["attempts", "updated_at"])
            fail_job(
                job_id=job_id,
                code=code,
                message=f"{message} (gave up after {job.attempts} attempts)",
            )
            return None
        delay = retry_delay(job.attempts)
        job.stage = Activity.WAITING_TO_RETRY
        job.lease_owner, job.lease_expires_at = "", None
        job.retry_after = timezone.now() + delay
        job.error_code, job.error_message = code, message
        job.save()
    return delay
