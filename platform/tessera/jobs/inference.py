"""Inference on the GPU queue, in micro-batches.

A GPU worker that takes one job gathers the other jobs waiting for the same model version (up to
TESSERA_BATCH_MAX_CASES, waiting at most TESSERA_BATCH_WAIT_MS for company) and runs them in one
forward pass: throughput rises with load, and a lone job waits at most that long. The messages of
the jobs it gathered find them taken and do nothing.

Running out of memory is transient: the batch is split in halves, a single case that still does
not fit moves to the CPU, and a case that fits nowhere backs off and retries later, until its
attempts run out. Bad input fails its own job only. A bundle that cannot be loaded fails the
batch's jobs at once (`model_unavailable`): jobs of other versions run in their own batches. Any
other error is a fault of ours: the jobs back off and retry, until their attempts run out.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
from django.conf import settings
from django.utils import timezone

from mlcore.data import Case, Features
from mlcore.engine import InferenceEngine, Prediction
from mlcore.errors import InputError
from tessera.celery import DATABASE_GONE
from tessera.jobs import features as job_features
from tessera.jobs.features import WARM_UP_NOTE, ModelUnavailable, model_unavailable_message
from tessera.jobs.models import Activity, AnalysisJob, ModelVersion, Timing
from tessera.jobs.services import (
    claim_more_for_inference,
    complete_job,
    fail_job,
    release_for_retry,
)
from tessera.records.kinds import TO_VISITS

OUT_OF_MEMORY = (torch.OutOfMemoryError, MemoryError)
logger = logging.getLogger(__name__)
_engines: dict[tuple[str, str, str], InferenceEngine] = {}


@dataclass(frozen=True)
class Retry:
    job_id: object
    delay_seconds: float


def engine_for(version: ModelVersion, device: str | None = None) -> InferenceEngine:
    """One engine per model version and device, loaded once per worker process."""
    device = device or settings.MLCORE_DEVICE
    key = (version.name, str(version.bundle_dir), device)
    if key not in _engines:
        try:
            _engines[key] = InferenceEngine(version.bundle_dir, device=device)
        except OUT_OF_MEMORY:
            raise
        except Exception as error:  # any fault of the bundle: missing, invalid, mismatched
            raise ModelUnavailable(model_unavailable_message(version.name)) from error
    return _engines[key]


def warm_up_engines() -> None:
    """Load the serving versions' engines and run each once (a note alone), before the worker
    takes a job: the first job of a version would otherwise wait seconds for its loading. A
    bundle that cannot be loaded is left for its jobs to report (`ModelUnavailable`)."""
    for version in job_features.versions_to_warm_up():
        try:
            engine = engine_for(version)
            engine.predict_features([engine.prepare(Case(id="warm-up", text=WARM_UP_NOTE))])
        except Exception:
            logger.warning("the model %s could not be warmed up", version.name)


def gather_batch(*, first, worker: str) -> list:
    """`first` (already claimed) and up to N-1 more jobs for the same model, waiting at most T."""
    limit = settings.TESSERA_BATCH_MAX_CASES
    model_version_id = AnalysisJob.objects.values_list("model_version_id", flat=True).get(pk=first)
    batch = [first]
    deadline = time.monotonic() + settings.TESSERA_BATCH_WAIT_MS / 1000
    while True:
        batch += claim_more_for_inference(
            worker=worker,
            model_version_id=model_version_id,
            limit=limit - len(batch),
            exclude=batch,
        )
        remaining = deadline - time.monotonic()
        if len(batch) >= limit or remaining <= 0:
            return batch
        time.sleep(min(0.005, remaining))


UNEXPECTED_ERROR = (
    "the analysis stopped on an unexpected error on our side; it was logged for the IT team"
)


def run_batch(
    job_ids: list,
    *,
    worker: str,
    started: float,
    gathered: float = 0.0,
    first_claim: float = 0.0,
) -> list[Retry]:
    """Predict and store a result for each job; returns the jobs to publish again later.
    `started` (time.monotonic) is when the batch began to gather: its inference time counts
    the wait for company, which took `gathered` seconds, after the first job's claim took
    `first_claim`. Every job of the batch ends succeeded, failed, or backing off."""
    began = timezone.now() - timedelta(seconds=time.monotonic() - started)
    jobs = list(
        AnalysisJob.objects.select_related("model_version", "organization", *TO_VISITS).filter(
            pk__in=job_ids
        )
    )
    for job in jobs:
        job.timings = {
            **job.timings,
            Timing.WAITING_FOR_INFERENCE: max(0.0, (began - job.published_at).total_seconds())
            if job.published_at
            else 0.0,
            Timing.WAITING_FOR_COMPANY: gathered,
        }
        if str(job.pk) == str(job_ids[0]):
            job.timings[Timing.CLAIMS] = job.timings.get(Timing.CLAIMS, 0.0) + first_claim
    try:
        return _run_batch(jobs, worker=worker, started=started)
    except ModelUnavailable as error:
        logger.exception("jobs %s: their model bundle cannot be loaded", [job.pk for job in jobs])
        for job in jobs:
            fail_job(job_id=job.pk, code="model_unavailable", message=str(error))
        return []
    except DATABASE_GONE:
        raise  # transient: the task retries, and the claims let this worker take its jobs again
    except Exception:
        logger.exception("jobs %s: inference failed", [job.pk for job in jobs])
        return _back_off(jobs, worker=worker, code="inference_error", message=UNEXPECTED_ERROR)


def _run_batch(jobs: list[AnalysisJob], *, worker: str, started: float) -> list[Retry]:
    ready: list[tuple[AnalysisJob, Features]] = []
    for job in jobs:
        try:  # from the cache unless it was lost
            ready.append((job, job_features.prepare(job, timings=job.timings)))
        except InputError as error:
            fail_job(job_id=job.pk, code="bad_input", message=str(error))
    if not ready:
        return []
    version = ready[0][0].model_version
    spent: dict[str, float] = {}
    outcomes = predict_fitting_memory(version, [features for _, features in ready], timings=spent)
    seconds = time.monotonic() - started
    retries = []
    for (job, _features), prediction in zip(ready, outcomes, strict=True):
        if prediction is None:
            retries += _back_off(
                [job],
                worker=worker,
                code="out_of_memory",
                message="the case does not fit in the memory of the inference worker",
            )
            continue
        if job.organization.needs_person_below is not None:
            engine_for(version).review(
                prediction, abstain_below=job.organization.needs_person_below / 100
            )
        complete_job(
            job_id=job.pk,
            worker=worker,
            prediction=prediction.to_dict(),
            timings={
                **job.timings,
                **spent,
                Activity.INFERENCE: seconds,
                "batch_cases": len(ready),
            },
        )
    return retries


def _back_off(jobs: list[AnalysisJob], *, worker: str, code: str, message: str) -> list[Retry]:
    """Jobs this worker still holds wait to be tried again, or fail once out of attempts."""
    retries = []
    for job in jobs:
        delay = release_for_retry(job_id=job.pk, worker=worker, code=code, message=message)
        if delay is not None:
            retries.append(Retry(job.pk, delay.total_seconds()))
    return retries


def predict_fitting_memory(
    version: ModelVersion, features: list[Features], *, timings: dict[str, float] | None = None
) -> list[Prediction | None]:
    """Predictions for `features`; None for a case that fits in memory nowhere. `timings` gets
    the seconds of the forward passes and explanations (InferenceEngine.predict_features)."""
    engine = engine_for(version)
    try:
        return engine.predict_features(features, timings=timings)
    except OUT_OF_MEMORY:
        _release_cached_memory(engine)
    if len(features) > 1:
        half = len(features) // 2
        logger.warning("out of memory on %d cases: splitting the batch", len(features))
        return predict_fitting_memory(
            version, features[:half], timings=timings
        ) + predict_fitting_memory(version, features[half:], timings=timings)
    if engine.device.type != "cpu":
        logger.warning("one case does not fit in %s memory: trying the CPU", engine.device)
        try:
            return engine_for(version, "cpu").predict_features(features, timings=timings)
        except OUT_OF_MEMORY:
            pass
    return [None]


def _release_cached_memory(engine: InferenceEngine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()
