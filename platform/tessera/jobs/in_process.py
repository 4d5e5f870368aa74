"""Analyses run to their end in this process, in batches, by the same claims, feature cache
and engine as the workers: for seeding a demo's history before any worker runs (no broker
message is sent). A job whose input is bad fails alone, as on a worker."""

import time
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from mlcore.errors import InputError
from tessera.jobs import features as job_features
from tessera.jobs import inference
from tessera.jobs.models import AnalysisJob, JobTask
from tessera.jobs.services import (
    claim_for_inference,
    claim_for_preprocessing,
    fail_job,
    hand_to_inference,
    request_analysis,
    worker_name,
)
from tessera.records.kinds import TO_VISITS
from tessera.records.models import Encounter, LearningSession


def analyse_in_process(
    *,
    visits: Iterable[Encounter | LearningSession],
    requested_by: AbstractBaseUser | None = None,
) -> list[AnalysisJob]:
    """Request an analysis of each visit (everything its organization allows) and run them all
    here, TESSERA_BATCH_MAX_CASES to a forward pass; returns the finished jobs."""
    from mlcore.io import warm_up

    warm_up()  # librosa compiles its kernels on first use
    worker = f"{worker_name()}:in-process"
    jobs = [
        request_analysis(
            attached_to=visit, task=JobTask.ALL, requested_by=requested_by, publish_to_workers=False
        )
        for visit in visits
    ]
    by_version: dict[int, list] = {}
    for job in jobs:
        by_version.setdefault(job.model_version_id, []).append(job.pk)
    size = settings.TESSERA_BATCH_MAX_CASES
    for job_ids in by_version.values():
        for start in range(0, len(job_ids), size):
            started = time.monotonic()
            batch = [
                job_id
                for job_id in job_ids[start : start + size]
                if _preprocessed(job_id, worker=worker)
            ]
            if batch:
                inference.run_batch(batch, worker=worker, started=started)
    return list(AnalysisJob.objects.filter(pk__in=[job.pk for job in jobs]))


def _preprocessed(job_id, *, worker: str) -> bool:
    """Preprocess the job and claim it for inference; False when its input failed it."""
    claim_for_preprocessing(job_id=job_id, worker=worker)
    job = AnalysisJob.objects.select_related("model_version", *TO_VISITS).get(pk=job_id)
    timings = dict(job.timings)
    try:
        job_features.prepare(job, timings=timings)
    except (InputError, job_features.ModelUnavailable) as error:
        code = "bad_input" if isinstance(error, InputError) else "model_unavailable"
        fail_job(job_id=job_id, code=code, message=str(error))
        return False
    hand_to_inference(job_id=job_id, worker=worker, timings=timings)
    return claim_for_inference(job_id=job_id, worker=worker)
