"""Reads for the pages: what a signed-in user may see, organization by organization. Every
record a page shows comes through a queryset scoped by `accounts.permissions`, the layer the API
uses too.

The reads that return what a page shows of a person log it in the access log themselves — the
people on a list, a person's page, the notes and results on their visits' cards, a file, a
preview, a heatmap — so a page cannot forget: the views call no audit function. Each logs in one
batch per page (two queries), however much the page shows."""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page, Paginator
from django.db.models import F, Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from analytics.attention import RECENT_WEEKS
from mlcore.speech import Segment
from tessera.accounts.models import Organization
from tessera.accounts.permissions import Capability, organizations_where
from tessera.accounts.selectors import scoped_to
from tessera.audit import services as audit
from tessera.dashboards.imaging import dicom_png, heatmap_png
from tessera.jobs.models import (
    AnalysisJob,
    AnalysisResult,
    Feedback,
    JobStatus,
    LatestAnalysis,
)
from tessera.records.kinds import SCHOOL, TO_PEOPLE, Subject, Visit, kind_of, subject_of
from tessera.records.models import Cohort, MediaAsset, Patient, Student, Transcript
from tessera.records.selectors import readable_segments, transcripts_of
from tessera.records.storage import StoredContentCorrupted, content_store

UNFINISHED = (JobStatus.QUEUED, JobStatus.PREPROCESSING, JobStatus.RUNNING)
# The path from a person to their LatestAnalysis.
LATEST = "subject_key__latest_analysis"


def visible(queryset: QuerySet, *, user: AbstractBaseUser) -> QuerySet:
    """Rows of `queryset` in the organizations where `user` may read."""
    return scoped_to(
        queryset, organizations=organizations_where(user=user, capability=Capability.READ)
    )


def shown(queryset: QuerySet, *, user: AbstractBaseUser, pk, action: str = audit.Action.VIEW):
    """The one row a page shows (404 unless `user` may read it), logged as `action`."""
    row = get_object_or_404(visible(queryset, user=user), pk=pk)
    audit.record(row, action=action)
    return row


def page_of(rows: QuerySet, *, number: str | None, per_page: int) -> Page:
    """A page of a list of people (or of their reports), each one on it logged as listed."""
    page = Paginator(rows, per_page).get_page(number)
    audit.record_each(page, action=audit.Action.LIST)
    return page


# --- clinician dashboard -------------------------------------------------------------------


class PatientStatus:
    """The dashboard's status filter: what the latest analysis of a patient says."""

    REVIEW = "review"
    PENDING = "pending"
    FAILED = "failed"
    NONE = "none"
    CHOICES = (
        ("", "Any status"),
        (REVIEW, "Needs a person (the model abstained)"),
        (PENDING, "Analysis in progress"),
        (FAILED, "Analysis failed"),
        (NONE, "Not analysed yet"),
    )


def clinic_patients(
    *, organization: Organization, cohort: int | None = None, status: str = ""
) -> QuerySet[Patient]:
    """The organization's patients, most urgent first: the highest finding probability of their
    latest analysis; patients never analysed last. Read from `LatestAnalysis`, so the sort and
    the filters use indexes however many results there are."""
    patients = (
        Patient.objects.filter(organization=organization)
        .select_related("cohort", LATEST)
        .order_by(F(f"{LATEST}__urgency").desc(nulls_last=True), "full_name", "pk")
    )
    if cohort:
        patients = patients.filter(cohort_id=cohort)
    if status == PatientStatus.REVIEW:
        patients = patients.filter(**{f"{LATEST}__abstained": True})
    elif status == PatientStatus.PENDING:
        patients = patients.filter(**{f"{LATEST}__job__status__in": UNFINISHED})
    elif status == PatientStatus.FAILED:
        patients = patients.filter(**{f"{LATEST}__job__status": JobStatus.FAILED})
    elif status == PatientStatus.NONE:
        patients = patients.filter(**{f"{LATEST}__job__isnull": True})
    return patients


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    result: AnalysisResult | None
    job_status: str


def patient_rows(patients: list[Patient]) -> list[PatientRow]:
    """A page of `clinic_patients` with each one's latest result and job status: two queries
    for the page, not one per patient."""
    latest = [getattr(patient.subject_key, "latest_analysis", None) for patient in patients]
    results = AnalysisResult.objects.select_related("model_version").in_bulk(
        [row.result_id for row in latest if row and row.result_id]
    )
    statuses = dict(
        AnalysisJob.objects.filter(
            pk__in=[row.job_id for row in latest if row and row.job_id]
        ).values_list("pk", "status")
    )
    rows = [
        PatientRow(
            patient,
            results.get(row.result_id) if row else None,
            statuses.get(row.job_id, "") if row else "",
        )
        for patient, row in zip(patients, latest, strict=True)
    ]
    audit.record_each([row.result for row in rows if row.result], action=audit.Action.LIST)
    return rows


def job_counts(*, organization: Organization) -> dict[str, int]:
    """Unfinished jobs, and jobs that failed in the last seven days."""
    jobs = AnalysisJob.objects.filter(organization=organization)
    week_ago = timezone.now() - timedelta(days=7)
    return {
        "pending": jobs.filter(status__in=UNFINISHED).count(),
        "failed": jobs.filter(status=JobStatus.FAILED, finished_at__gte=week_ago).count(),
    }


def cohorts_of(*, organization: Organization) -> QuerySet[Cohort]:
    return Cohort.objects.filter(organization=organization)


# --- teacher dashboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class StudentAttention:
    student: Student
    recent_labels: list[str]


def school_results(*, organization: Organization) -> QuerySet[AnalysisResult]:
    return AnalysisResult.objects.filter(organization=organization)


def concerned_students(
    *, organization: Organization, weeks: int = RECENT_WEEKS
) -> QuerySet[LatestAnalysis]:
    """Students whose analyses of the last `weeks` keep suggesting frustration or confusion
    (`analytics.attention`), newest concern first."""
    return (
        LatestAnalysis.objects.filter(
            organization=organization,
            subject_key__student__isnull=False,
            concern_since__gte=timezone.now() - timedelta(weeks=weeks),
        )
        .select_related("subject_key__student__cohort")
        .order_by("-concern_since", "pk")
    )


def students_needing_attention(
    *, organization: Organization, weeks: int = RECENT_WEEKS, limit: int = 20
) -> tuple[int, list[StudentAttention]]:
    """How many students need attention, and the `limit` whose concern is newest."""
    flagged = concerned_students(organization=organization, weeks=weeks)
    listed = [
        StudentAttention(subject_of(latest), latest.recent_affects) for latest in flagged[:limit]
    ]
    audit.record_each([item.student for item in listed], action=audit.Action.LIST)
    return flagged.count(), listed


def latest_suggestions(*, organization: Organization, limit: int = 10) -> list[AnalysisResult]:
    suggestions = list(
        AnalysisResult.objects.filter(organization=organization)
        .exclude(tutoring=[])
        .select_related(*(f"job__{path}" for path in TO_PEOPLE), "model_version")
        .order_by("-created_at")[:limit]
    )
    audit.record_each(suggestions, action=audit.Action.LIST)
    return suggestions


def students_of(*, organization: Organization) -> QuerySet[Student]:
    return (
        Student.objects.filter(organization=organization)
        .select_related("cohort")
        .order_by("full_name", "pk")
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
        "visit_key__jobs",
        queryset=AnalysisJob.objects.select_related("model_version").prefetch_related(
            "media", _results_with_feedback()
        ),
    )


def visits_of(*, subject: Subject) -> QuerySet:
    """The person's encounters or learning sessions, with their media, jobs and results."""
    kind = kind_of(subject)
    return (
        kind.visits_of(subject)
        .select_related(f"{kind.subject_field}__organization")
        .prefetch_related("visit_key__media__transcript", _jobs_with_results())
    )


def visit_with_history(visit: Visit) -> Visit:
    """The visit again, with its media, jobs and results loaded for the page."""
    return visits_of(subject=subject_of(visit)).get(pk=visit.pk)


@dataclass(frozen=True)
class VisitShown:
    visit: Visit
    # Each note's or learner text's content, by media id.
    texts: dict[int, str]
    # Each recording's transcript, by media id.
    transcripts: dict[int, Transcript]


def visits_shown(visits: list[Visit]) -> list[VisitShown]:
    """Visits as their cards show them (loaded by `visits_of` or `visit_with_history`): each
    note's text, each recording's transcript, and every result on them, logged as viewed (files
    shown as previews or players are logged when the browser fetches them)."""
    cards = [
        VisitShown(
            visit,
            notes_text(list(visit.media.all())),
            {transcript.media_id: transcript for transcript in transcripts_of(visit.media.all())},
        )
        for visit in visits
    ]
    audit.record_each(
        [asset for card in cards for asset in card.visit.media.all() if asset.pk in card.texts],
        action=audit.Action.VIEW,
    )
    audit.record_each(
        [transcript for card in cards for transcript in card.transcripts.values()],
        action=audit.Action.VIEW,
    )
    audit.record_each(
        [
            result
            for visit in visits
            for job in visit.visit_key.jobs.all()
            for result in job.results.all()
        ],
        action=audit.Action.VIEW,
    )
    return cards


def job_shown(*, user: AbstractBaseUser, pk) -> AnalysisJob:
    """A job's card alone (it polls itself while the job runs): its results logged as viewed."""
    jobs = AnalysisJob.objects.select_related("model_version", "organization").prefetch_related(
        "media", "results__model_version", "results__feedback__given_by"
    )
    job = get_object_or_404(visible(jobs, user=user), pk=pk)
    audit.record_each(job.results.all(), action=audit.Action.VIEW)
    return job


def result_shown(result: AnalysisResult) -> AnalysisResult:
    """A result's card again (after feedback on it), logged as viewed."""
    result = (
        AnalysisResult.objects.select_related(
            "model_version", *(f"job__{path}" for path in TO_PEOPLE)
        )
        .prefetch_related("feedback__given_by", "job__media")
        .get(pk=result.pk)
    )
    audit.record(result, action=audit.Action.VIEW)
    return result


def transcript_shown(*, user: AbstractBaseUser, media_pk) -> Transcript:
    """A recording's transcript alone (it polls itself while it is made), logged as viewed."""
    transcript = get_object_or_404(
        visible(Transcript.objects.select_related("media"), user=user), media_id=media_pk
    )
    audit.record(transcript, action=audit.Action.VIEW)
    return transcript


@dataclass(frozen=True)
class SaidMatch:
    visit: Visit
    media_id: int
    segment: Segment


def said_matching(cards: list[VisitShown], *, query: str) -> list[SaidMatch]:
    """The transcript segments on these cards (already read and logged) that contain every
    word of `query`, ignoring case, in the cards' order."""
    words = query.casefold().split()
    if not words:
        return []
    return [
        SaidMatch(card.visit, media_id, segment)
        for card in cards
        for media_id, transcript in card.transcripts.items()
        for segment in readable_segments(transcript)
        if all(word in segment.text.casefold() for word in words)
    ]


def media_opened(asset: MediaAsset):
    """The stored file of `asset`, its download logged. Raises StoredContentCorrupted (nothing
    sent, nothing logged) when it fails its integrity check."""
    content = content_store().open_media(asset)
    audit.record(asset, action=audit.Action.DOWNLOAD)
    return content


def dicom_preview(asset: MediaAsset) -> bytes:
    """A PNG of the DICOM image, logged as viewed once drawn. Raises StoredContentCorrupted, or
    InputError for an image that cannot be drawn."""
    picture = dicom_png(content_store().read_media(asset))
    audit.record(asset, action=audit.Action.VIEW)
    return picture


def heatmap_shown(result: AnalysisResult) -> bytes:
    """The translucent PNG of the result's heatmap, logged as viewed."""
    picture = heatmap_png(result.explanation["heatmap"])
    audit.record(result, action=audit.Action.VIEW)
    return picture


def affect_over_time(*, student: Student) -> list[AnalysisResult]:
    return list(
        AnalysisResult.objects.filter(**{SCHOOL.from_result: student})
        .exclude(emotion_label="")
        .order_by("created_at")
    )


DAMAGED_TEXT = (
    "[This file is damaged: its content no longer matches the checksum taken at upload. "
    "Please tell your administrator.]"
)


def notes_text(media: list[MediaAsset]) -> dict[int, str]:
    """The text of each note or learner text among `media`, read from the content store."""
    store = content_store()
    texts = {}
    for asset in media:
        if asset.kind not in (MediaAsset.Kind.CLINICAL_NOTE, MediaAsset.Kind.LEARNER_TEXT):
            continue
        try:
            texts[asset.pk] = store.read_media(asset).decode("utf-8", errors="replace")
        except StoredContentCorrupted:
            texts[asset.pk] = DAMAGED_TEXT
    return texts


# --- models --------------------------------------------------------------------------------
