"""Micro-batching on the GPU queue, running out of memory, and retries of transient errors.
The model runs for real on the CPU; only running out of GPU memory is simulated, at the edge
where the engine would have raised it."""

from datetime import timedelta

import pytest
import torch
from django.db import OperationalError
from django.utils import timezone

from mlcore.engine import InferenceEngine
from tessera.jobs import tasks
from tessera.jobs.features import prepare
from tessera.jobs.models import AnalysisJob, JobStatus
from tessera.jobs.services import (
    claim_for_inference,
    claim_for_preprocessing,
    hand_to_inference,
    promote_model_version,
    register_model_version,
    request_analysis,
)
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter
from tests.conftest import upload
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db
LONG_NOTE = " ".join(["Chest pain radiating to the left arm, worse on exertion."] * 20)


class ForwardPasses(list):
    """The size of each batch the engine was given, and what does not fit in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: dict[str, int | None] = {"too_big": None, "max_fitting": None}


@pytest.fixture
def forward_passes(monkeypatch):
    """Spies on the engine (which still runs): the size of each batch it was given. A case
    whose note is longer than `too_big` tokens does not fit in memory, nor does a batch larger
    than `max_fitting`."""
    passes = ForwardPasses()
    limits = passes.limits
    real = InferenceEngine.predict_features

    def predict_features(engine, features, **options):
        passes.append(len(features))
        longest = max(len(item.text_ids) for item in features)
        if limits["too_big"] is not None and longest > limits["too_big"]:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        if limits["max_fitting"] is not None and len(features) > limits["max_fitting"]:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(engine, features, **options)

    monkeypatch.setattr(InferenceEngine, "predict_features", predict_features)
    return passes


@pytest.fixture
def republished(monkeypatch):
    sent = []
    monkeypatch.setattr(
        tasks.infer_job,
        "apply_async",
        lambda *, args, countdown=None: sent.append((args[0], countdown)),
    )
    return sent


def waiting_for_inference(visit, count, django_capture_on_commit_callbacks) -> list[str]:
    """Jobs preprocessed by a CPU worker, waiting for the GPU queue (messages not delivered)."""
    ids = []
    for _ in range(count):
        with django_capture_on_commit_callbacks(execute=False):
            job = request_analysis(attached_to=visit, task="all")
        assert claim_for_preprocessing(job_id=job.pk, worker="cpu")
        prepare(AnalysisJob.objects.select_related("model_version").get(pk=job.pk))
        assert hand_to_inference(job_id=job.pk, worker="cpu")
        ids.append(str(job.pk))
    return ids


def statuses(ids) -> list[str]:
    return [AnalysisJob.objects.get(pk=job_id).status for job_id in ids]


def test_one_gpu_message_answers_up_to_n_waiting_jobs_in_one_forward_pass(
    encounter, clinic_model, eager, settings, forward_passes, django_capture_on_commit_callbacks
):
    settings.TESSERA_BATCH_MAX_CASES, settings.TESSERA_BATCH_WAIT_MS = 3, 0
    ids = waiting_for_inference(encounter, 5, django_capture_on_commit_callbacks)

    tasks.infer_job(ids[0])
    assert forward_passes == [3]
    assert statuses(ids).count(JobStatus.SUCCEEDED) == 3
    assert AnalysisJob.objects.get(pk=ids[0]).status == JobStatus.SUCCEEDED

    for job_id in ids:  # every job's own message arrives too
        tasks.infer_job(job_id)
    assert forward_passes == [3, 2], "the two left are one batch; the other messages do nothing"
    for job_id in ids:
        job = AnalysisJob.objects.get(pk=job_id)
        assert job.status == JobStatus.SUCCEEDED
        assert job.results.count() == 1
        assert job.attempts == 1
    assert sorted(AnalysisJob.objects.values_list("timings__batch_cases", flat=True)) == [
        2,
        2,
        3,
        3,
        3,
    ]


def test_a_batch_that_does_not_fit_in_memory_is_split_until_it_does(
    encounter, clinic_model, eager, settings, forward_passes, django_capture_on_commit_callbacks
):
    settings.TESSERA_BATCH_MAX_CASES, settings.TESSERA_BATCH_WAIT_MS = 8, 0
    forward_passes.limits["max_fitting"] = 2
    ids = waiting_for_inference(encounter, 5, django_capture_on_commit_callbacks)
    tasks.infer_job(ids[0])
    assert forward_passes == [5, 2, 3, 1, 2]
    assert statuses(ids) == [JobStatus.SUCCEEDED] * 5
    assert all(AnalysisJob.objects.get(pk=job_id).attempts == 1 for job_id in ids)


def test_a_case_that_fits_nowhere_backs_off_then_fails_at_the_attempt_cap_alone(
    encounter,
    clinic_model,
    eager,
    settings,
    forward_passes,
    republished,
    django_capture_on_commit_callbacks,
):
    settings.TESSERA_BATCH_MAX_CASES, settings.TESSERA_BATCH_WAIT_MS = 8, 0
    settings.TESSERA_RETRY_BACKOFF_SECONDS = 5
    forward_passes.limits["too_big"] = 32  # the usual note is far shorter
    fine = waiting_for_inference(encounter, 2, django_capture_on_commit_callbacks)
    huge_visit = create_encounter(patient=encounter.patient, occurred_at=WHEN)
    add_media(attached_to=huge_visit, kind=MediaKind.CLINICAL_NOTE, file=upload(LONG_NOTE.encode()))
    (huge,) = waiting_for_inference(huge_visit, 1, django_capture_on_commit_callbacks)

    started = timezone.now()
    tasks.infer_job(fine[0])
    assert statuses(fine) == [JobStatus.SUCCEEDED] * 2, "the other jobs of the batch flow on"
    job = AnalysisJob.objects.get(pk=huge)
    assert (job.status, job.stage, job.attempts) == (JobStatus.RUNNING, "waiting to retry", 2)
    assert job.error_code == "out_of_memory"
    assert republished == [(huge, 10.0)], "published again after an exponential backoff"
    backoff = timedelta(seconds=10)  # however long the batch took around the release
    assert started + backoff <= job.retry_after <= timezone.now() + backoff
    assert not claim_for_inference(job_id=huge, worker="eager"), "no retry before the backoff"

    AnalysisJob.objects.filter(pk=huge).update(retry_after=timezone.now())
    tasks.infer_job(huge)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
    assert job.error_code == "out_of_memory"
    assert job.error_message == (
        "the case does not fit in the memory of the inference worker (gave up after 3 attempts)"
    )
    assert not job.results.exists()
    assert len(republished) == 1, "no redelivery loop"


def test_a_lost_database_connection_is_retried_and_bad_input_is_not(
    encounter, clinic_model, eager, monkeypatch, django_capture_on_commit_callbacks
):
    (job_id,) = waiting_for_inference(encounter, 1, django_capture_on_commit_callbacks)
    calls = []
    real_claim = tasks.claim_for_inference

    def claim_once_disconnected(**kwargs):
        calls.append(kwargs["job_id"])
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_claim(**kwargs)

    monkeypatch.setattr(tasks, "claim_for_inference", claim_once_disconnected)
    tasks.infer_job.apply(args=[job_id], throw=False)  # as a worker: retry, do not raise
    assert len(calls) == 2
    job = AnalysisJob.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.results.count() == 1

    options = tasks.infer_job
    assert OperationalError in options.autoretry_for
    assert options.retry_backoff
    assert options.max_retries == 8
    assert not any(issubclass(error, ValueError) for error in options.autoretry_for)


def test_the_worker_holding_a_job_may_claim_it_again_at_no_cost(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="diagnosis")
    assert claim_for_preprocessing(job_id=job.pk, worker="cpu-1")
    assert claim_for_preprocessing(job_id=job.pk, worker="cpu-1"), "its task was retried"
    assert not claim_for_preprocessing(job_id=job.pk, worker="cpu-2")
    assert hand_to_inference(job_id=job.pk, worker="cpu-1")
    assert claim_for_inference(job_id=job.pk, worker="gpu-1")
    assert claim_for_inference(job_id=job.pk, worker="gpu-1")
    assert not claim_for_inference(job_id=job.pk, worker="gpu-2")
    assert AnalysisJob.objects.get(pk=job.pk).attempts == 1


def test_a_bundle_that_cannot_load_fails_its_jobs_at_once_and_other_models_flow(
    encounter,
    clinic_model,
    eager,
    settings,
    republished,
    django_capture_on_commit_callbacks,
    bundle_dir,
):
    settings.TESSERA_BATCH_MAX_CASES, settings.TESSERA_BATCH_WAIT_MS = 8, 0
    healthy = waiting_for_inference(encounter, 2, django_capture_on_commit_callbacks)
    broken_version = _break_the_active_model(bundle_dir, settings)
    broken = waiting_for_inference(encounter, 2, django_capture_on_commit_callbacks)
    assert AnalysisJob.objects.get(pk=broken[0]).model_version == broken_version

    for job_id in broken + healthy:
        tasks.infer_job(job_id)
    for job_id in broken:
        job = AnalysisJob.objects.get(pk=job_id)
        assert (job.status, job.error_code) == (JobStatus.FAILED, "model_unavailable")
        assert job.error_message.startswith("The model 'clinic-broken' could not be loaded")
        assert "promote a working model version" in job.error_message
        assert (job.lease_owner, job.lease_expires_at) == ("", None), "no lease left to renew"
    assert statuses(healthy) == [JobStatus.SUCCEEDED] * 2
    assert republished == [], "a broken bundle is not retried in a loop"


def _break_the_active_model(bundle_dir, settings):
    import json
    import shutil

    broken = bundle_dir.parent / "clinic-broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(bundle_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["fusion"]["dim"] *= 2  # the weights no longer fit the model the config describes
    (broken / "config.json").write_text(json.dumps(config))
    version = register_model_version(
        name="clinic-broken", serves="clinic", bundle_path="clinic-broken", metrics={}
    )
    return promote_model_version(version=version, promoted_by=None)


def test_a_bundle_unreadable_at_preprocessing_fails_the_job_with_model_unavailable(
    encounter, clinic_model, eager, settings, bundle_dir, django_capture_on_commit_callbacks
):
    import shutil

    unreadable = bundle_dir.parent / "clinic-unreadable"
    shutil.rmtree(unreadable, ignore_errors=True)
    unreadable.mkdir()
    (unreadable / "config.json").write_text("{not json")
    version = register_model_version(
        name="clinic-unreadable", serves="clinic", bundle_path="clinic-unreadable", metrics={}
    )
    promote_model_version(version=version, promoted_by=None)
    with django_capture_on_commit_callbacks(execute=True):
        job = request_analysis(attached_to=encounter, task="all")
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "model_unavailable")
    assert "'clinic-unreadable' could not be loaded" in job.error_message


def test_an_unexpected_error_in_a_batch_backs_off_then_fails_with_a_sentence(
    encounter,
    clinic_model,
    eager,
    settings,
    monkeypatch,
    republished,
    django_capture_on_commit_callbacks,
):
    settings.TESSERA_BATCH_MAX_CASES, settings.TESSERA_BATCH_WAIT_MS = 8, 0
    ids = waiting_for_inference(encounter, 2, django_capture_on_commit_callbacks)

    def crash(engine, features):
        raise RuntimeError("index 7 is out of bounds for dimension 0")

    monkeypatch.setattr(InferenceEngine, "predict_features", crash)
    tasks.infer_job(ids[0])
    for job_id in ids:
        job = AnalysisJob.objects.get(pk=job_id)
        assert (job.status, job.stage, job.error_code) == (
            JobStatus.RUNNING,
            "waiting to retry",
            "inference_error",
        )
        assert (job.lease_owner, job.lease_expires_at) == ("", None)
    assert sorted(job_id for job_id, _ in republished) == sorted(ids)

    for _ in range(2):
        AnalysisJob.objects.filter(pk__in=ids).update(retry_after=timezone.now())
        tasks.infer_job(ids[0])
    for job_id in ids:
        job = AnalysisJob.objects.get(pk=job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
        assert job.error_code == "inference_error"
        assert job.error_message.startswith("the analysis stopped on an unexpected error")
        assert "index 7" not in job.error_message, "the technical reason is for the log"
