"""How a job ends: its result stored (once per job and model version), or failed, or
cancelled; the organization's webhooks told."""

import time

from django.db import transaction
from django.utils import timezone

from mlcore.suggestions import rank_interventions
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import (
    FINISHED,
    Activity,
    AnalysisJob,
    AnalysisResult,
    JobStatus,
    JobTask,
    Timing,
)
from tessera.jobs.selectors import tutoring_verdicts
from tessera.jobs.services.deliveries import ON_ANALYSIS, deliver_result_if_wanted
from tessera.records.kinds import (
    TO_PEOPLE,
    kind_of,
    level_of,
    subject_of,
    topic_of,
    visit_ids,
    visit_of,
)
from tessera.tutoring.models import LibraryVersion
from tessera.tutoring.selectors import head_in_use
from tessera.tutoring.services import library_in_effect
from tessera.webhooks.models import Event
from tessera.webhooks.services import emit


def complete_job(
    *, job_id, worker: str, prediction: dict, timings: dict | None = None
) -> AnalysisResult | None:
    """Store the result (once per job and model version) and mark the job succeeded, adding
    `timings` to the job's, and the seconds this took; a job cancelled meanwhile keeps no
    result."""
    began = time.perf_counter()
    with transaction.atomic():
        job = (
            AnalysisJob.objects.select_for_update(of=("self",))
            .select_related(*TO_PEOPLE)
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
            deliver_result_if_wanted(result=result, moment=ON_ANALYSIS)
        if not job.is_finished:
            job.status = JobStatus.SUCCEEDED
            job.stage, job.progress = Activity.NONE, 100
            job.lease_owner, job.lease_expires_at = "", None
            job.error_code, job.error_message = "", ""  # a transient error it recovered from
            job.finished_at = timezone.now()
            _announce(job, event=Event.JOB_SUCCEEDED, result=result)
            job.timings = rounded(
                {
                    **job.timings,
                    **(timings or {}),
                    Timing.RESULT_WRITE: time.perf_counter() - began,
                }
            )
            job.save()
    return result


def rounded(timings: dict) -> dict:
    """Timings as a job keeps them: seconds to the tenth of a millisecond."""
    return {
        key: round(value, 4) if isinstance(value, float) else value
        for key, value in timings.items()
    }


def _announce(job: AnalysisJob, *, event: str, result: AnalysisResult | None = None) -> None:
    """Tell the organization's webhook subscribers; ids only, never a name or a finding."""
    emit(
        organization_id=job.organization_id,
        event=event,
        data={
            "job": str(job.pk),
            "status": job.status,
            "task": job.task,
            **visit_ids(job),
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
    suggests = wants_tutoring and kind_of(job).suggests_tutoring
    library = library_in_effect(organization=job.organization) if suggests else None
    needs_person = {
        answer: why for answer, why in prediction["needs_person"].items() if wanted.get(answer)
    }
    return {
        "diagnosis": prediction["diagnosis"] if wants_diagnosis else {},
        "findings": prediction["findings"] if wants_diagnosis else [],
        "emotion": prediction["emotion"] if wants_emotion else {},
        "emotion_label": (prediction["emotion_label"] or "") if wants_emotion else "",
        "tutoring": _suggestions(job, prediction, library) if library else [],
        "tutoring_library": library,
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


def _suggestions(job: AnalysisJob, prediction: dict, library: LibraryVersion) -> list[dict]:
    """The organization's library ranked for this session (mlcore.suggestions) by the
    school's learnt head where one is in use, else by the transparent match: the affect the
    model read, the lesson's subject, the learner's grade and what the teachers said of each
    intervention before; each with a rationale quoting the learner's sentence (written or said)
    that showed the affect, where one did, and saying so where the affect estimate needs a
    person."""
    return [
        suggestion.to_dict()
        for suggestion in rank_interventions(
            library.library,
            affect=prediction["emotion"],
            subject=topic_of(visit_of(job)),
            grade=level_of(subject_of(job)),
            verdicts=tutoring_verdicts(organization_id=job.organization_id),
            learnt=head_in_use(organization_id=job.organization_id),
            quotes=prediction.get("quotes", {}).get("emotion"),
            affect_unsure="emotion" in prediction["needs_person"],
        )
    ]


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
