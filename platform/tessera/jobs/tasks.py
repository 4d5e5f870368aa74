"""Celery tasks of the analysis pipeline. Thin: they take a job id, re-read the row and call
services. Preprocessing runs on the `cpu` queue, inference (in micro-batches) and training on
`gpu`.

A lost database connection is transient: the task retries with exponential backoff, and the
claims let the worker that holds a job take it again. Bad input is never retried.

The web process imports this module to publish jobs, so the model code (torch, MONAI,
transformers: seconds to import, hundreds of MB) is imported inside the tasks, by workers only.
"""

import logging
import time
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings

from tessera.celery import DATABASE_GONE, RETRY_WHEN_DATABASE_GONE, TaskName, enqueue
from tessera.jobs.heartbeat import heartbeat
from tessera.jobs.models import Activity, AnalysisJob, JobStatus, Stage
from tessera.jobs.services import (
    claim_for_inference,
    claim_for_preprocessing,
    fail_job,
    hand_to_inference,
    publish,
    record_timing,
    sweep_stale_jobs,
    wait_for_transcript,
    worker_name,
)

logger = logging.getLogger(__name__)


@worker_init.connect  # solo and threads pools: the worker process itself
@worker_process_init.connect  # prefork pool: each child
def _warm_up(**_: object) -> None:
    """librosa compiles its kernels on first use (seconds): do it before taking jobs."""
    from mlcore.io import warm_up

    warm_up()


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
    if not claim_for_preprocessing(job_id=job_id, worker=worker):
        return  # finished, cancelled, or held by another worker
    job.refresh_from_db()
    started = time.monotonic()
    try:
        with heartbeat(job_ids=[job_id], worker=worker):
            job_features.prepare(job)
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
    record_timing(job_id=job_id, stage=Activity.PREPROCESSING, seconds=time.monotonic() - started)
    if hand_to_inference(job_id=job_id, worker=worker):
        publish(job_id=job_id, stage=Stage.INFER)


@shared_task(name=TaskName.INFER, acks_late=True, **RETRY_WHEN_DATABASE_GONE)
def infer_job(job_id: str) -> None:
    from tessera.jobs import inference

    worker = worker_name()
    if not claim_for_inference(job_id=job_id, worker=worker):
        return  # finished, cancelled, backing off, or taken into another worker's batch
    started = time.monotonic()
    batch = inference.gather_batch(first=job_id, worker=worker)
    with heartbeat(job_ids=batch, worker=worker):
        retries = inference.run_batch(batch, worker=worker, started=started)
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
