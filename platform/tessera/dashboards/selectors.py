"""Reads for the pages: what a signed-in user may see, organization by organization. Every
record a page shows comes through a queryset scoped by `accounts.permissions`, the layer the API
uses too."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import TruncWeek
from django.utils import timezone

from analytics.attention import CONCERNING_AFFECTS, persistently_concerning
from analytics.trends import WeekCounts, weekly_distribution
from tessera.accounts.models import Organization, Role
from tessera.accounts.permissions import Capability, organizations_where
from tessera.accounts.selectors import memberships_of, scoped_to
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback, JobStatus, ModelVersion
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaAsset,
    Patient,
    Student,
)
from tessera.records.storage import content_store

UNFINISHED = (JobStatus.QUEUED, JobStatus.PREPROCESSING, JobStatus.RUNNING)


def visible(queryset: QuerySet, *, user: AbstractBaseUser) -> QuerySet:
    """Rows of `queryset` in the organizations where `user` may read."""
    return scoped_to(
        queryset, organizations=organizations_where(user=user, capability=Capability.READ)
    )


# --- clinician dashboard -------------------------------------------------------------------


class PatientStatus:
    """The dashboard's status filter: what the latest analysis of a patient says."""

    REVIEW = "review"
    PENDING = "pending"
    FAILED = "failed"
    NONE = "none"
    CHOICES = (
        ("", "Any status"),
        (REVIEW, "Needs review (model abstained)"),
        (PENDING, "Analysis in progress"),
        (FAILED, "Analysis failed"),
        (NONE, "Not analysed yet"),
    )


def _latest_of_patient(queryset: QuerySet, field: str) -> Subquery:
    return Subquery(queryset.order_by("-created_at").values(field)[:1])


def clinic_patients(
    *, organization: Organization, cohort: int | None = None, status: str = ""
) -> QuerySet[Patient]:
    """The organization's patients, most urgent first: the highest finding probability of their
    latest analysis; patients never analysed last. Each carries `latest_result_id`,
    `urgency`, `abstained` and `latest_job_status`."""
    results = AnalysisResult.objects.filter(job__encounter__patient=OuterRef("pk"))
    jobs = AnalysisJob.objects.filter(encounter__patient=OuterRef("pk"))
    patients = (
        Patient.objects.filter(organization=organization)
        .select_related("cohort")
        .annotate(
            latest_result_id=_latest_of_patient(results, "pk"),
            urgency=_latest_of_patient(results, "urgency"),
            abstained=_latest_of_patient(results, "abstain"),
            latest_job_status=_latest_of_patient(jobs, "status"),
        )
        .order_by(F("urgency").desc(nulls_last=True), "full_name")
    )
    if cohort:
        patients = patients.filter(cohort_id=cohort)
    if status == PatientStatus.REVIEW:
        patients = patients.filter(abstained=True)
    elif status == PatientStatus.PENDING:
        patients = patients.filter(latest_job_status__in=UNFINISHED)
    elif status == PatientStatus.FAILED:
        patients = patients.filter(latest_job_status=JobStatus.FAILED)
    elif status == PatientStatus.NONE:
        patients = patients.filter(latest_job_status__isnull=True)
    return patients


def job_counts(*, organization: Organization) -> dict[str, int]:
    """Unfinished jobs, and jobs that failed in the last seven days."""
    jobs = AnalysisJob.objects.filter(organization=organization)
    week_ago = timezone.now() - timedelta(days=7)
    return {
        "pending": jobs.filter(status__in=UNFINISHED).count(),
        "failed": jobs.filter(status=JobStatus.FAILED, finished_at__gte=week_ago).count(),
    }


def results_by_id(ids) -> dict[int, AnalysisResult]:
    return AnalysisResult.objects.select_related("model_version").in_bulk(
        [pk for pk in ids if pk is not None]
    )


def cohorts_of(*, organization: Organization) -> QuerySet[Cohort]:
    return Cohort.objects.filter(organization=organization)


# --- teacher dashboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class StudentAttention:
    student: Student
    recent_labels: list[str]


def _week_starts(weeks: int) -> list[date]:
    today = timezone.localdate()
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=back) for back in reversed(range(weeks))]


def affect_by_week(
    *, results: QuerySet[AnalysisResult], labels: list[str], weeks: int = 8
) -> list[WeekCounts]:
    """How many results suggested each affect label, week by week (counted in the database)."""
    starts = _week_starts(weeks)
    rows = (
        results.filter(created_at__date__gte=starts[0])
        .exclude(emotion_label="")
        .annotate(week=TruncWeek("created_at"))
        .values("week", "emotion_label")
        .annotate(count=Count("pk"))
        .values_list("week", "emotion_label", "count")
    )
    return weekly_distribution(
        ((_as_date(week), label, count) for week, label, count in rows),
        labels=labels,
        weeks=starts,
    )


def _as_date(value) -> date:
    return value.date() if hasattr(value, "date") else value


def school_results(*, organization: Organization) -> QuerySet[AnalysisResult]:
    return AnalysisResult.objects.filter(job__organization=organization)


def students_needing_attention(
    *, organization: Organization, weeks: int = 4
) -> list[StudentAttention]:
    """Students whose recent analyses keep suggesting frustration or confusion."""
    since = timezone.now() - timedelta(weeks=weeks)
    recent = (
        AnalysisResult.objects.filter(
            job__organization=organization,
            job__learning_session__isnull=False,
            created_at__gte=since,
        )
        .exclude(emotion_label="")
        .order_by("job__learning_session__student_id", "-created_at")
        .values_list("job__learning_session__student_id", "emotion_label")
    )
    labels: dict[int, list[str]] = {}
    for student_id, label in recent:
        labels.setdefault(student_id, []).append(label)
    flagged = {
        student_id: latest_first
        for student_id, latest_first in labels.items()
        if persistently_concerning(latest_first, concerning=CONCERNING_AFFECTS)
    }
    students = Student.objects.filter(pk__in=flagged).select_related("cohort")
    return [StudentAttention(student, flagged[student.pk]) for student in students]


def latest_suggestions(*, organization: Organization, limit: int = 10) -> list[AnalysisResult]:
    return list(
        AnalysisResult.objects.filter(job__organization=organization)
        .exclude(tutoring=[])
        .select_related("job__learning_session__student", "model_version")
        .order_by("-created_at")[:limit]
    )


# --- a subject's page ----------------------------------------------------------------------


def _results_with_feedback() -> Prefetch:
    return Prefetch(
        "results",
        queryset=AnalysisResult.objects.select_related("model_version").prefetch_related(
            Prefetch("feedback", queryset=Feedback.objects.select_related("given_by"))
        ),
    )


def _jobs_with_results() -> Prefetch:
    return Prefetch(
        "jobs",
        queryset=AnalysisJob.objects.select_related("model_version").prefetch_related(
            "media", _results_with_feedback()
        ),
    )


def encounters_of(*, patient: Patient) -> QuerySet[Encounter]:
    return patient.encounters.select_related("patient__organization").prefetch_related(
        "media", _jobs_with_results()
    )


def sessions_of(*, student: Student) -> QuerySet[LearningSession]:
    return student.learning_sessions.select_related("student__organization").prefetch_related(
        "media", _jobs_with_results()
    )


def visit_with_history(visit: Encounter | LearningSession) -> Encounter | LearningSession:
    """The visit again, with its media, jobs and results loaded for the page."""
    if isinstance(visit, Encounter):
        return encounters_of(patient=visit.patient).get(pk=visit.pk)
    return sessions_of(student=visit.student).get(pk=visit.pk)


def affect_over_time(*, student: Student) -> list[AnalysisResult]:
    return list(
        AnalysisResult.objects.filter(job__learning_session__student=student)
        .exclude(emotion_label="")
        .order_by("created_at")
    )


def notes_text(media: list[MediaAsset]) -> dict[int, str]:
    """The text of each note or learner text among `media`, read from the content store."""
    store = content_store()
    return {
        asset.pk: store.path(asset.sha256).read_bytes().decode("utf-8", errors="replace")
        for asset in media
        if asset.kind in (MediaAsset.Kind.CLINICAL_NOTE, MediaAsset.Kind.LEARNER_TEXT)
    }


# --- models --------------------------------------------------------------------------------


def model_versions_for(*, user: AbstractBaseUser) -> QuerySet[ModelVersion]:
    """Versions serving the kinds of organization where `user` is an analyst or admin."""
    kinds = (
        memberships_of(user=user)
        .filter(role__in=[Role.ORG_ADMIN, Role.ANALYST])
        .values_list("organization__kind", flat=True)
    )
    return ModelVersion.objects.filter(serves__in=list(kinds)).order_by("serves", "-created_at")
