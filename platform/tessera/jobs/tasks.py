"""Celery tasks of the analysis pipeline. Thin: they take a job id, re-read the row and call
services. Preprocessing runs on the `cpu` queue, inference on `gpu`.

Each worker process keeps what is expensive to build: a preprocessor per model version on CPU
workers, one inference engine per model version on GPU workers (a promotion brings a new
version, which loads once).
"""

import time
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_init, worker_process_init
from django.conf import settings

from mlcore.engine import InferenceEngine
from mlcore.errors import InputError
from mlcore.io import warm_up
from tessera.jobs import features as job_features
from tessera.jobs.heartbeat import heartbeat
from tessera.jobs.models import AnalysisJob, ModelVersion
from tessera.jobs.services import (
    claim_for_inference,
    claim_for_preprocessing,
    complete_job,
    fail_job,
    hand_to_inference,
    record_timing,
    sweep_stale_jobs,
    worker_name,
)

_engines: dict[int, InferenceEngine] = {}


@worker_init.connect  # solo and threads pools: the worker process itself
@worker_process_init.connect  # prefork pool: each child
def _warm_up(**_: object) -> None:
    """librosa compiles its kernels on first use (seconds): do it before taking jobs."""
    warm_up()


def engine_for(version: ModelVersion) -> InferenceEngine:
    engine = _engines.get(version.pk)
    if engine is None:
        engine = InferenceEngine(version.bundle_dir, device=settings.MLCORE_DEVICE)
        _engines[version.pk] = engine
    return engine


@shared_task(name="tessera.jobs.preprocess", acks_late=True)
def preprocess_job(job_id: str) -> None:
    worker = worker_name()
    if not claim_for_preprocessing(job_id=job_id, worker=worker):
        return  # finished, cancelled, or held by another worker
    job = AnalysisJob.objects.select_related("model_version").get(pk=job_id)
    started = time.monotonic()
    try:
        with heartbeat(job_id=job_id, worker=worker):
            job_features.prepare(job)
    except InputError as error:
        fail_job(job_id=job_id, code="bad_input", message=str(error))
        return
    record_timing(job_id=job_id, stage="preprocessing", seconds=time.monotonic() - started)
    if hand_to_inference(job_id=job_id, worker=worker):
        infer_job.apply_async(args=[job_id], queue="gpu")


@shared_task(name="tessera.jobs.infer", acks_late=True)
def infer_job(job_id: str) -> None:
    worker = worker_name()
    if not claim_for_inference(job_id=job_id, worker=worker):
        return
    job = AnalysisJob.objects.select_related("model_version").get(pk=job_id)
    started = time.monotonic()
    with heartbeat(job_id=job_id, worker=worker):
        try:
            prepared = job_features.prepare(job)  # from the cache unless it was lost
        except InputError as error:
            fail_job(job_id=job_id, code="bad_input", message=str(error))
            return
        (prediction,) = engine_for(job.model_version).predict_features([prepared])
    record_timing(job_id=job_id, stage="inference", seconds=time.monotonic() - started)
    complete_job(job_id=job_id, worker=worker, prediction=prediction.to_dict())


@shared_task(name="tessera.jobs.sweep")
def sweep() -> dict[str, int]:
    """Periodic (celery beat): re-publish lost or abandoned jobs, fail exhausted ones."""
    return sweep_stale_jobs(
        publish_grace=timedelta(seconds=settings.TESSERA_JOB_PUBLISH_GRACE),
        stale_after=timedelta(seconds=settings.TESSERA_JOB_STALE_AFTER),
    )
