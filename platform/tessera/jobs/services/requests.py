"""Requests for analysis, with the organization's policy and the law; publishing a job to
the pipeline's queues; the sweeper that makes sure no job is lost; running a job again."""

from collections.abc import Collection
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mlcore.config import MODALITIES
from tessera.accounts.models import Organization
from tessera.accounts.policy import Analysis
from tessera.accounts.selectors import organization_of
from tessera.celery import TaskName, enqueue
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import (
    INPUT_NOUN,
    Activity,
    AnalysisJob,
    JobStatus,
    JobTask,
    Stage,
)
from tessera.jobs.selectors import active_model_version, model_inputs
from tessera.jobs.services.results import fail_job
from tessera.records.kinds import Visit, kind_of, subject_of, visit_fields, visit_of
from tessera.records.models import MODALITY_OF, MediaAsset
from tessera.refusals import RefusalCode, Refused
from tessera.text import duration_in_words

# The analysis each input of an affect estimate is: leaving the input out leaves the analysis out.
# A recording is two inputs: its sound (`audio`) and what it says (`speech_text`, its transcript).
AFFECT_FROM = {
    "text": Analysis.EMOTION_FROM_TEXT,
    "audio": Analysis.EMOTION_FROM_VOICE,
    "speech_text": Analysis.EMOTION_FROM_TRANSCRIPT,
}


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
    *, organization: Organization, task: str, media: list[MediaAsset], reads: Collection[str]
) -> dict[str, str]:
    """Input (modality) → why the law or the organization's policy keeps it out of this task,
    for the inputs the model `reads`.

    A diagnosis reads every input without inferring affect from it; every other task infers
    affect from the text and the voice it reads, so a forbidden affect analysis keeps that
    input out. A transcript is the exception: what a recording says is the learner's or the
    patient's words, read for tutoring suggestions whatever the policy; with affect from
    transcripts off, it is only kept out of the affect estimate (`speech_text` here means
    that)."""
    if task == JobTask.DIAGNOSIS:
        return {}
    inputs = {MODALITY_OF[asset.kind] for asset in media}
    if "audio" in inputs:
        inputs.add("speech_text")
    left_out = {}
    for modality in sorted(inputs & AFFECT_FROM.keys() & set(reads)):
        reason = organization.refusal_for(AFFECT_FROM[modality])
        if reason:
            left_out[modality] = reason
    return left_out


def _analysed(
    *, media: list[MediaAsset], task: str, left_out: dict[str, str], reads: Collection[str]
) -> list[MediaAsset]:
    """The files a job reads: each one with some input the task may read. A recording whose
    sound is left out is still read for its transcript, unless that is left out too (an affect
    estimate where affect from transcripts is off) or the model does not read transcripts."""
    transcript_read = "speech_text" in reads and not (
        task == JobTask.EMOTION and "speech_text" in left_out
    )
    analysed = []
    for asset in media:
        modality = MODALITY_OF[asset.kind]
        if task == JobTask.EMOTION and modality not in AFFECT_FROM:
            continue
        if modality not in left_out or (modality == "audio" and transcript_read):
            analysed.append(asset)
    return analysed


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

    An input that the law or the organization's policy keeps out of the task (a recording's
    sound in an EU school) is left out of the job, which says so in `left_out`, when the caller
    let the visit's files be chosen; a file the caller chose is refused when nothing of it may
    be read (a recording whose transcript may be read is read for that, and the job says so).

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
    version = active_model_version(serves=organization.kind)
    # what the policy keeps out is said first, as if a model read every input
    reads = model_inputs(version=version) if version is not None else MODALITIES
    left_out = inputs_to_leave_out(organization=organization, task=task, media=chosen, reads=reads)
    analysed = _analysed(media=chosen, task=task, left_out=left_out, reads=reads)
    kept_out = [a for a in chosen if a not in analysed and MODALITY_OF[a.kind] in left_out]
    if media is not None and kept_out:
        raise Refused(" ".join(left_out.values()), code=RefusalCode.POLICY)
    if not analysed and not left_out:
        raise Refused(
            "an affect estimate needs a text or a recording: upload one first",
            code=RefusalCode.NO_MEDIA,
        )
    if not analysed:
        raise Refused(
            _nothing_allowed_left(left_out=left_out, visit_noun=visit_noun), code=RefusalCode.POLICY
        )
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


TRANSCRIPT_POLL_SECONDS = 2


def wait_for_transcript(*, job: AnalysisJob) -> bool:
    """Whether a queued job should wait for the transcript its recording is still getting
    (`transcript_pending`, asked by the caller): yes until TESSERA_TRANSCRIPT_WAIT_SECONDS
    after it was requested, and then it is looked at again in a moment. After that it runs
    without what the recording says."""
    waited = timezone.now() - job.created_at
    if waited > timedelta(seconds=settings.TESSERA_TRANSCRIPT_WAIT_SECONDS):
        return False
    AnalysisJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        stage=Activity.WAITING_FOR_TRANSCRIPT, updated_at=timezone.now()
    )
    enqueue(TaskName.PREPROCESS, str(job.pk), countdown=TRANSCRIPT_POLL_SECONDS)
    return True


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
