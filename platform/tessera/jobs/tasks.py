"""Celery tasks of the analysis pipeline. Thin: they take a job id, re-read the row and call
services. Preprocessing runs on the `cpu` queue, inference (in micro-batches) and training on
`gpu`.

A lost database connection is transient: the task retries with exponential backoff, and the
claims let the worker that holds a job take it again. Bad input is never retried.

The web process imports this module to publish jobs, so the model code (torch, MONAI,
transformers: seconds to import, hundreds of MB) is imported inside the tasks, by workers only.
"""

import logging
import os
import time
from datetime import timedelta

from celery import shared_task
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connection
from django.utils import timezone

from tessera.celery import DATABASE_GONE, RETRY_WHEN_DATABASE_GONE, TaskName, app, enqueue
from tessera.jobs.heartbeat import heartbeat
from tessera.jobs.models import Activity, AnalysisJob, JobStatus, Stage, Timing
from tessera.jobs.services import (
    claim_for_inference,
    claim_for_preprocessing,
    fail_job,
    hand_to_inference,
    publish,
    sweep_stale_jobs,
    wait_for_transcript,
    worker_name,
)

logger = logging.getLogger(__name__)


def _takes(queue: str) -> bool:
    """Whether this worker consumes `queue` (`-Q`)."""
    return queue in app.amqp.queues.consume_from


# How many processes of this worker run jobs side by side: its prefork children share the cores.
_processes = 1


@worker_init.connect  # before the pool starts: prefork children inherit what it did
def _import_model_code(sender, **_: object) -> None:
    """librosa compiles its kernels on first use, and torch, MONAI and transformers take
    seconds to import: both once, before any job. A prefork parent goes no further: torch's
    threads would not survive the fork of a child."""
    global _processes
    pool = sender.pool_cls  # still its name here ("prefork", "solo", "threads") when given one
    prefork = "prefork" in (pool if isinstance(pool, str) else pool.__module__)
    _processes = max(1, sender.concurrency or 1) if prefork else 1
    if _takes("cpu") or _takes("gpu"):
        from mlcore.io import warm_up
        from tessera.jobs import features, inference  # noqa: F401 (imported to be ready)

        warm_up()


@worker_process_init.connect  # prefork pool: each child, after the fork
def _warm_up_child(**_: object) -> None:
    """Each child takes its share of the cores for torch (N children with torch's default of
    one thread per core would run N times as many threads as there are cores, all slower),
    then readies its preprocessing."""
    if _takes("cpu"):
        _share_the_cores()
        _warm_up_preprocessing()


@worker_ready.connect
def _warm_up_worker(sender, **_: object) -> None:
    """The solo and threads pools run jobs in the worker process itself: load the serving
    models there (the gpu worker's engines), and run each once, before it consumes."""
    if isinstance(sender.pool, PreforkPool) or not (_takes("cpu") or _takes("gpu")):
        return
    _share_the_cores()
    if _takes("cpu"):
        _warm_up_preprocessing()
    if _takes("gpu"):
        from tessera.jobs import inference

        inference.warm_up_engines()
        connection.close()  # its first job opens its own


def _share_the_cores() -> None:
    """torch's threads in this process: TESSERA_TORCH_THREADS, else its share of the cores."""
    import torch  # imported by the worker already (_import_model_code)

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(settings.TESSERA_TORCH_THREADS or max(1, cores // _processes))


def _warm_up_preprocessing() -> None:
    from tessera.jobs import features

    features.warm_up_preprocessors()
    connection.close()


@shared_task(name=TaskName.PREPROCESS, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def preprocess_job(job_id: str) -> None:
    from mlcore.errors import InputError
    from tessera.jobs import features as job_features

    worker = worker_name()
    job = AnalysisJob.objects.select_related("model_version").filter(pk=job_id).first()
    if job is None:
        return  # erased with its record since it was published
    if (
        job.status == JobStatus.QUEUED
        and job_features.transcript_pending(job)
        and wait_for_transcript(job=job)
    ):
        return  # what the recording says is evidence: back when it is written down
    taken_at, claiming = timezone.now(), time.perf_counter()
    if not claim_for_preprocessing(job_id=job_id, worker=worker):
        return  # finished, cancelled, or held by another worker
    job.refresh_from_db()
    timings = {
        **job.timings,
        Timing.QUEUED: _seconds_since(job.published_at, until=taken_at),
        Timing.CLAIMS: time.perf_counter() - claiming,
    }
    started = time.monotonic()
    try:
        with heartbeat(job_ids=[job_id], worker=worker):
            job_features.prepare(job, timings=timings)
    except InputError as error:
        fail_job(job_id=job_id, code="bad_input", message=str(error))
        return
    except job_features.ModelUnavailable as error:
        logger.exception("job %s: its model bundle cannot be loaded", job_id)
        fail_job(job_id=job_id, code="model_unavailable", message=str(error))
        return
    except DATABASE_GONE:
        raise  # transient: the task retries
    except Exception:
        # A fault of ours, not of the input: the job says so instead of waiting for the sweeper.
        logger.exception("job %s: preprocessing failed", job_id)
        fail_job(
            job_id=job_id,
            code="preprocessing_error",
            message="the files could not be prepared for the model because of an error on our "
            "side; it was logged for the IT team. Retry the analysis.",
        )
        return
    timings[Activity.PREPROCESSING] = time.monotonic() - started
    if hand_to_inference(job_id=job_id, worker=worker, timings=timings):
        publish(job_id=job_id, stage=Stage.INFER)


def _seconds_since(moment, *, until) -> float:
    """Seconds from `moment` (None: never published, so no wait to count) to `until`."""
    return max(0.0, (until - moment).total_seconds()) if moment else 0.0


@shared_task(name=TaskName.INFER, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def infer_job(job_id: str) -> None:
    from tessera.jobs import inference

    worker = worker_name()
    claiming = time.perf_counter()
    if not claim_for_inference(job_id=job_id, worker=worker):
        return  # finished, cancelled, backing off, or taken into another worker's batch
    claimed = time.perf_counter() - claiming
    started = time.monotonic()
    batch = inference.gather_batch(first=job_id, worker=worker)
    with heartbeat(job_ids=batch, worker=worker):
        retries = inference.run_batch(
            batch,
            worker=worker,
            started=started,
            gathered=time.monotonic() - started,
            first_claim=claimed,
        )
    for retry in retries:
        enqueue(TaskName.INFER, str(retry.job_id), countdown=retry.delay_seconds)


@shared_task(name=TaskName.TRAIN, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def train_model(run_id: int) -> None:
    from tessera.jobs import training

    if training.claim_run(run_id=run_id):
        training.run_training(run_id=run_id)


@shared_task(name=TaskName.SWEEP_JOBS)
def sweep() -> dict[str, int]:
    """Periodic (celery beat): re-publish lost or abandoned jobs, fail exhausted ones."""
    return sweep_stale_jobs(
        publish_grace=timedelta(seconds=settings.TESSERA_JOB_PUBLISH_GRACE),
        stale_after=timedelta(seconds=settings.TESSERA_JOB_STALE_AFTER),
        max_duration=timedelta(seconds=settings.TESSERA_JOB_MAX_SECONDS),
    )
