"""Writes for analysis jobs: requests (with the organization's policy), publishing, leases,
results, cancellation, retries and feedback.

A job moves queued → preprocessing (a CPU worker holds its lease) → running (a GPU worker holds
it) → succeeded | failed | cancelled. Every transition is a conditional update, so two workers
handed the same message cannot both take the job.
"""

import math
import os
import socket
import threading
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from tessera.accounts.models import Organization
from tessera.accounts.policy import Analysis
from tessera.accounts.selectors import organization_of
from tessera.celery import TaskName, enqueue
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import (
    FINISHED,
    INPUT_NOUN,
    Activity,
    AnalysisJob,
    AnalysisResult,
    Feedback,
    JobStatus,
    JobTask,
    ModelVersion,
    Stage,
)
from tessera.jobs.selectors import active_model_version, model_labels
from tessera.records.kinds import Visit, kind_of, subject_of, visit_fields, visit_of
from tessera.records.models import MODALITY_OF, MediaAsset
from tessera.refusals import RefusalCode, Refused
from tessera.text import duration_in_words
from tessera.webhooks.models import Event
from tessera.webhooks.services import emit


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


# --- model versions -----------------------------------------------------------------------


def register_model_version(
    *,
    name: str,
    serves: str,
    bundle_path: str,
    metrics: dict,
    trained_on_synthetic_data: bool = False,
) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name,
        serves=serves,
        bundle_path=bundle_path,
        metrics=json_safe(metrics),
        trained_on_synthetic_data=trained_on_synthetic_data,
    )


def json_safe(value):
    """Metrics as JSON allows them: an undefined score (NaN, say F1 of a class never seen in a
    small held-out set) becomes null."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def promote_model_version(
    *, version: ModelVersion, promoted_by: AbstractBaseUser | None
) -> ModelVersion:
    """Make `version` the one that serves its kind of organization; the previous one retires.
    Raises Refused (code `rejected`) for a version its evaluation rejected."""
    if version.status == ModelVersion.Status.REJECTED:
        raise Refused(
            "this version was rejected by its evaluation and cannot serve",
            code=RefusalCode.REJECTED,
        )
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(
            serves=version.serves, status=ModelVersion.Status.ACTIVE
        ).exclude(pk=version.pk).update(status=ModelVersion.Status.RETIRED)
        version.status = ModelVersion.Status.ACTIVE
        version.promoted_at = timezone.now()
        version.promoted_by = promoted_by
        version.save(update_fields=["status", "promoted_at", "promoted_by"])
    return version


# --- requests ------------------------------------------------------------------------------


# The analysis each input of an affect estimate is: leaving the input out leaves the analysis out.
AFFECT_FROM = {"text": Analysis.EMOTION_FROM_TEXT, "audio": Analysis.EMOTION_FROM_VOICE}


def _core_analyses(*, task: str, organization: Organization) -> list[str]:
    """What the task asks for beyond affect, whichever inputs it reads. (Tutoring suggestions
    rest on the affect the model infers, so they count as emotion inference from each input
    they read: see inputs_to_leave_out.)"""
    if task == JobTask.DIAGNOSIS:
        return [Analysis.DIAGNOSIS]
    if task == JobTask.EMOTION:
        return []
    if task == JobTask.TUTORING:
        return [Analysis.TUTORING]
    return [kind_of(organization).core_analysis]


def inputs_to_leave_out(
    *, organization: Organization, task: str, media: list[MediaAsset]
) -> dict[str, str]:
    """Input (modality) → why the law or the organization's policy keeps it out of this task.

    A diagnosis reads every input without inferring affect from it; every other task infers
    affect from the text and the voice it reads, so a forbidden affect analysis keeps that
    input out."""
    if task == JobTask.DIAGNOSIS:
        return {}
    left_out = {}
    for modality in sorted({MODALITY_OF[asset.kind] for asset in media} & AFFECT_FROM.keys()):
        reason = organization.refusal_for(AFFECT_FROM[modality])
        if reason:
            left_out[modality] = reason
    return left_out


def request_analysis(
    *,
    attached_to: Visit,
    task: str,
    requested_by: AbstractBaseUser | None = None,
    media: list[MediaAsset] | None = None,
    publish_to_workers: bool = True,
) -> AnalysisJob:
    """Create a queued job for `attached_to` and publish it after the transaction commits
    (unless `publish_to_workers` is off: this process runs it, see jobs.in_process).

    An input that the law or the organization's policy keeps out of the task (a recording in
    an EU school) is left out of the job, which says so in `left_out`, when the caller let the
    visit's files be chosen; files the caller chose are analysed as chosen or not at all.

    Raises Refused (nothing written) when the media do not belong to the visit or
    session, when there is nothing (allowed) to analyse, when the organization's policy or
    the law forbids the analysis, or when no model serves the organization.
    """
    task = JobTask(task)
    visit_noun = kind_of(attached_to).visit_noun
    organization = organization_of(attached_to)
    own_media = list(attached_to.media.all())
    chosen = own_media if media is None else list(media)
    strangers = [asset for asset in chosen if asset not in own_media]
    if strangers:
        raise Refused(
            f"{len(strangers)} of the chosen files belong to another {visit_noun}",
            code=RefusalCode.FOREIGN_MEDIA,
        )
    if not chosen:
        raise Refused(
            "there is nothing to analyse yet: upload a file first", code=RefusalCode.NO_MEDIA
        )
    for analysis in _core_analyses(task=task, organization=organization):
        reason = organization.refusal_for(analysis)
        if reason:
            raise Refused(reason, code=RefusalCode.POLICY)
    left_out = inputs_to_leave_out(organization=organization, task=task, media=chosen)
    if left_out and media is not None:
        raise Refused(" ".join(left_out.values()), code=RefusalCode.POLICY)
    analysed = [asset for asset in chosen if MODALITY_OF[asset.kind] not in left_out]
    if task == JobTask.EMOTION:
        analysed = [asset for asset in analysed if MODALITY_OF[asset.kind] in AFFECT_FROM]
    if not analysed and not left_out:
        raise Refused(
            "an affect estimate needs a text or a recording: upload one first",
            code=RefusalCode.NO_MEDIA,
        )
    if not analysed:
        raise Refused(
            _nothing_allowed_left(left_out=left_out, visit_noun=visit_noun), code=RefusalCode.POLICY
        )
    version = active_model_version(serves=organization.kind)
    if version is None:
        raise Refused(
            f"no model serves {organization.get_kind_display().lower()}s yet: an "
            "organization admin must promote one",
            code=RefusalCode.NO_MODEL,
        )
    with transaction.atomic():
        job = AnalysisJob.objects.create(
            organization=organization,
            **visit_fields(attached_to),
            task=task,
            model_version=version,
            requested_by=requested_by,
            left_out=left_out,
        )
        job.media.set(analysed)
        refresh_latest_analysis(subject=subject_of(attached_to))
        if publish_to_workers:
            transaction.on_commit(partial(publish, job_id=job.pk))
    return job


def _nothing_allowed_left(*, left_out: dict[str, str], visit_noun: str) -> str:
    inputs = " and ".join(f"its {INPUT_NOUN[modality]}" for modality in left_out)
    return f"Nothing in this {visit_noun} may be analysed: {inputs} may not be used. " + " ".join(
        left_out.values()
    )


TASK_OF_STAGE = {Stage.PREPROCESS: TaskName.PREPROCESS, Stage.INFER: TaskName.INFER}


def publish(*, job_id, stage: Stage = Stage.PREPROCESS) -> None:
    """Hand the job to the broker for one stage of the pipeline, and note when. If this process
    dies before it runs, a queued job stays with no `published_at`, and the sweeper publishes
    it."""
    enqueue(TASK_OF_STAGE[stage], str(job_id))
    AnalysisJob.objects.filter(pk=job_id).update(published_at=timezone.now())


def sweep_stale_jobs(
    *, publish_grace: timedelta, stale_after: timedelta, max_duration: timedelta
) -> dict[str, int]:
    """Make sure no job is lost: the broker may drop messages (a Redis restart without
    persistence), a process may die between commit and publish, a worker may die mid-job.

    - queued and never published for `publish_grace`, or published `stale_after` ago and still
      queued: preprocessing is published (again);
    - a worker's lease expired (it stopped its heartbeat): the job is published again for its
      stage, to be taken over; out of attempts, it fails instead, so nothing loops forever;
    - waiting for inference longer than `stale_after`: inference is published again;
    - started longer than `max_duration` ago and still not finished: it fails (`timed_out`),
      whatever holds it, so no job is running forever.
    Publishing twice is harmless: only one worker can claim a job.
    """
    now = timezone.now()
    timed_out, longest = 0, duration_in_words(max_duration)
    for job_id in AnalysisJob.objects.filter(
        status__in=[JobStatus.PREPROCESSING, JobStatus.RUNNING],
        started_at__lt=now - max_duration,
    ).values_list("pk", flat=True):
        fail_job(
            job_id=job_id,
            code="timed_out",
            message=f"stopped: it took longer than the {longest} an analysis may take. Retry "
            "it; if it happens again, tell your IT team.",
        )
        timed_out += 1
    expired = Q(status__in=[JobStatus.PREPROCESSING, JobStatus.RUNNING], lease_expires_at__lt=now)
    gave_up = 0
    for job in AnalysisJob.objects.filter(expired, attempts__gte=F("max_attempts")).only(
        "pk", "attempts"
    ):
        fail_job(
            job_id=job.pk,
            code="gave_up",
            message=f"stopped after {job.attempts} attempts: its worker died each time",
        )
        gave_up += 1
    to_preprocess = AnalysisJob.objects.filter(
        Q(status=JobStatus.QUEUED, published_at__isnull=True, created_at__lt=now - publish_grace)
        | Q(status=JobStatus.QUEUED, published_at__lt=now - stale_after)
        | Q(status=JobStatus.PREPROCESSING, lease_expires_at__lt=now)
    )
    to_infer = AnalysisJob.objects.filter(
        Q(status=JobStatus.RUNNING, lease_expires_at__lt=now)
        | Q(status=JobStatus.RUNNING, lease_owner="", updated_at__lt=now - stale_after)
    )
    republished = 0
    for stage, jobs in ((Stage.PREPROCESS, to_preprocess), (Stage.INFER, to_infer)):
        for job_id in jobs.values_list("pk", flat=True):
            publish(job_id=job_id, stage=stage)
            republished += 1
    return {"republished": republished, "failed": gave_up, "timed_out": timed_out}


# --- leases --------------------------------------------------------------------------------
#
# A worker holds a job by its lease (owner + expiry), renewed by a heartbeat while it works.
# A job waiting for a GPU worker has no lease: a queue backlog is not a dead worker.


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


def hand_to_inference(*, job_id, worker: str) -> bool:
    """Preprocessing is done: the job waits, without a lease, for a GPU worker."""
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


def record_timing(*, job_id, stage: str, seconds: float, **extra: int) -> None:
    job = AnalysisJob.objects.get(pk=job_id)
    job.timings = {**job.timings, stage: round(seconds, 4), **extra}
    job.save(update_fields=["timings", "updated_at"])


# --- outcomes ------------------------------------------------------------------------------


def complete_job(
    *, job_id, worker: str, prediction: dict, timings: dict | None = None
) -> AnalysisResult | None:
    """Store the result (once per job and model version) and mark the job succeeded, adding
    `timings` to the job's; a job cancelled meanwhile keeps no result."""
    with transaction.atomic():
        job = (
            AnalysisJob.objects.select_for_update(of=("self",))
            .select_related("encounter__patient", "learning_session__student")
            .get(pk=job_id)
        )
        if job.status == JobStatus.CANCELLED:
            return None
        result, created = AnalysisResult.objects.get_or_create(
            job=job,
            model_version_id=job.model_version_id,
            defaults={
                "organization_id": job.organization_id,
                **_result_fields(job, prediction),
            },
        )
        if created:
            refresh_latest_analysis(subject=subject_of(job))
        if not job.is_finished:
            job.timings = {**job.timings, **(timings or {})}
            job.status = JobStatus.SUCCEEDED
            job.stage, job.progress = Activity.NONE, 100
            job.lease_owner, job.lease_expires_at = "", None
            job.error_code, job.error_message = "", ""  # a transient error it recovered from
            job.finished_at = timezone.now()
            job.save()
            _announce(job, event=Event.JOB_SUCCEEDED, result=result)
    return result


def _announce(job: AnalysisJob, *, event: str, result: AnalysisResult | None = None) -> None:
    """Tell the organization's webhook subscribers; ids only, never a name or a finding."""
    emit(
        organization_id=job.organization_id,
        event=event,
        data={
            "job": str(job.pk),
            "status": job.status,
            "task": job.task,
            "encounter": job.encounter_id,
            "learning_session": job.learning_session_id,
            "result": result.pk if result else None,
            "error_code": job.error_code,
            "error_message": job.error_message,
        },
    )


def _result_fields(job: AnalysisJob, prediction: dict) -> dict:
    """What the job asked for, and nothing more; what it left out, and why."""
    task = job.task
    wants_diagnosis = task in (JobTask.DIAGNOSIS, JobTask.ALL)
    wants_emotion = task in (JobTask.EMOTION, JobTask.ALL)
    wants_tutoring = task in (JobTask.TUTORING, JobTask.ALL)
    wanted = {"diagnosis": wants_diagnosis, "emotion": wants_emotion}
    needs_person = {
        answer: why for answer, why in prediction["needs_person"].items() if wanted.get(answer)
    }
    return {
        "diagnosis": prediction["diagnosis"] if wants_diagnosis else {},
        "findings": prediction["findings"] if wants_diagnosis else [],
        "emotion": prediction["emotion"] if wants_emotion else {},
        "emotion_label": (prediction["emotion_label"] or "") if wants_emotion else "",
        "tutoring": prediction["tutoring"] if wants_tutoring else [],
        "modalities_used": prediction["modalities_used"],
        "left_out": job.left_out,
        "contributions": {
            task: values
            for task, values in prediction["contributions"].items()
            if (wants_emotion if task == "emotion" else wants_diagnosis)
        },
        "uncertainty": prediction["uncertainty"],
        "abstain": bool(needs_person),
        "needs_person": needs_person,
        "rationale": prediction.get("rationale") or "",
        "rationales": {
            task: sentence
            for task, sentence in prediction.get("rationales", {}).items()
            if wanted.get(task)
        },
        "explanation": (prediction.get("explanation") or {}) if wants_diagnosis else {},
        "urgency": max(prediction["diagnosis"].values(), default=0.0) if wants_diagnosis else 0.0,
    }


def fail_job(*, job_id, code: str, message: str) -> None:
    with transaction.atomic():
        failed = (
            AnalysisJob.objects.filter(pk=job_id)
            .exclude(status__in=FINISHED)
            .update(
                status=JobStatus.FAILED,
                error_code=code,
                error_message=message,
                stage=Activity.NONE,
                lease_owner="",
                lease_expires_at=None,
                finished_at=timezone.now(),
                updated_at=timezone.now(),
            )
        )
        if failed:
            _announce(AnalysisJob.objects.get(pk=job_id), event=Event.JOB_FAILED)


def cancel_job(*, job: AnalysisJob) -> bool:
    """Cancel a job that has not finished; a worker holding it drops it at its next step."""
    return (
        AnalysisJob.objects.filter(pk=job.pk)
        .exclude(status__in=FINISHED)
        .update(
            status=JobStatus.CANCELLED,
            stage=Activity.NONE,
            lease_owner="",
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        == 1
    )


def retry_job(*, job: AnalysisJob, requested_by: AbstractBaseUser | None = None) -> AnalysisJob:
    """A failed or cancelled job runs again as a new job with the same inputs (the old one stays
    in the history)."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Refused(
            "only a failed or cancelled job can be retried", code=RefusalCode.NOT_RETRYABLE
        )
    return request_analysis(
        attached_to=visit_of(job),
        task=job.task,
        requested_by=requested_by,
        media=list(job.media.all()),
    )


def record_feedback(
    *,
    result: AnalysisResult,
    kind: str,
    given_by: AbstractBaseUser | None,
    diagnosis: list[str] | None = None,
    emotion_label: str = "",
    intervention: str = "",
    comment: str = "",
) -> Feedback:
    kind = Feedback.Kind(kind)
    if kind == Feedback.Kind.CORRECT:
        if diagnosis is None and not emotion_label:
            raise Refused(
                "a correction needs the right findings or affect label", code=RefusalCode.EMPTY
            )
        known_findings, known_affects = model_labels(version=result.model_version)
        unknown = set(diagnosis or []) - set(known_findings)
        if unknown:
            raise Refused(
                f"unknown findings: {', '.join(sorted(unknown))}", code=RefusalCode.UNKNOWN_LABEL
            )
        if emotion_label and emotion_label not in known_affects:
            raise Refused(f"unknown affect label: {emotion_label}", code=RefusalCode.UNKNOWN_LABEL)
    if kind in (Feedback.Kind.USEFUL, Feedback.Kind.NOT_USEFUL):
        offered = {item["id"] for item in result.tutoring}
        if intervention not in offered:
            raise Refused(
                "say which of the suggested interventions this is about",
                code=RefusalCode.UNKNOWN_INTERVENTION,
            )
    return Feedback.objects.create(
        result=result,
        kind=kind,
        diagnosis=diagnosis,
        emotion_label=emotion_label,
        intervention=intervention,
        comment=comment,
        given_by=given_by,
    )
