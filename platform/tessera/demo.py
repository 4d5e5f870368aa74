"""Demo data for `make run`: a clinic and a school, a user for every role, patients with CT
images, notes and spoken recordings, students with writing and spoken answers. The recordings
say real sentences (mlcore's committed clips): the past visits' ones are transcribed while
seeding, in this process, before their visits are analysed; today's are left to the worker.

Each person has a history: visits over the last eight weeks, analysed while seeding by the real
engine (in this process, in batches, once the demo models exist), some of them confirmed or
corrected by the demo clinician or teacher from the synthetic truth. So dashboards, attention
lists, trends, the models page and reports have content at first sign-in. Each person also has
one visit of today, not analysed, to try **Analyse** on.

Idempotent: running it again finds what exists and adds only what is missing (and analyses a
history seeded before the models were trained). Media goes through the same validation service
as every upload. Generated from fixed seeds, so every run of every machine makes the same demo
(its dates follow the day it was seeded).
"""

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from mlcore.synthetic import clinical_case, ct_dicom_bytes, learner_case, wav_bytes
from mlcore.synthetic.cases import ClinicalCase, LearnerCase
from tessera.accounts.models import Organization, Role
from tessera.accounts.policy import OrganizationKind
from tessera.accounts.services import set_membership
from tessera.jobs.demo_models import DEMO_IMAGE_SIZE
from tessera.jobs.in_process import analyse_in_process
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback, JobStatus
from tessera.jobs.selectors import active_model_version, model_inputs
from tessera.jobs.services import record_feedback
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import (
    Cohort,
    Encounter,
    LearningSession,
    MediaKind,
    Patient,
    Student,
    Transcript,
    TranscriptStatus,
)
from tessera.records.services import (
    add_media,
    create_cohort,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.transcription import transcribe_now

DEMO_PASSWORD = "tessera-demo"
PATIENT_COUNT = 20
STUDENT_COUNT = 30
# Every person's visits: (what it is called, how many days ago); the last is today's, which the
# user analyses.
CLINIC_VISITS = (
    ("Chest review", 47),
    ("Follow-up", 29),
    ("Second follow-up", 9),
    ("Review today", 0),
)
SCHOOL_VISITS = (
    ("Reflection, week 1", 46),
    ("Reflection, week 4", 27),
    ("Reflection, week 7", 6),
    ("Reflection on today's lesson", 0),
)
VISITS_PER_PERSON = len(CLINIC_VISITS)

_FIRST = (
    "Amara",
    "Ben",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ivo",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noor",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sami",
    "Tove",
)
_LAST = (
    "Adeyemi",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nowak",
    "Okafor",
    "Petrov",
    "Rossi",
    "Silva",
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    organization_slugs: tuple[str, ...]
    role: str


DEMO_USERS = (
    DemoUser("clinic-admin", "Clara Admin", ("northfield-clinic",), Role.ORG_ADMIN),
    DemoUser("dr-okafor", "Dr Ngozi Okafor", ("northfield-clinic",), Role.CLINICIAN),
    DemoUser("clinic-viewer", "Victor Viewer", ("northfield-clinic",), Role.VIEWER),
    DemoUser("school-admin", "Sven Admin", ("lindenhof-school",), Role.ORG_ADMIN),
    DemoUser("ms-lindqvist", "Ms Ebba Lindqvist", ("lindenhof-school",), Role.TEACHER),
    DemoUser("school-viewer", "Vera Viewer", ("lindenhof-school",), Role.VIEWER),
    DemoUser("analyst", "Ana Lyst", ("northfield-clinic", "lindenhof-school"), Role.ANALYST),
)


def seed_demo(*, log=print) -> list[DemoUser]:
    clinic, _ = Organization.objects.get_or_create(
        slug="northfield-clinic",
        defaults={
            "name": "Northfield Clinic",
            "kind": Organization.Kind.CLINIC,
            "jurisdiction": "EU",
        },
    )
    school, _ = Organization.objects.get_or_create(
        slug="lindenhof-school",
        defaults={
            "name": "Lindenhof School",
            "kind": Organization.Kind.SCHOOL,
            "jurisdiction": "EU",
        },
    )
    organizations = {clinic.slug: clinic, school.slug: school}
    users = {demo.username: _demo_user(demo, organizations) for demo in DEMO_USERS}
    clinic_truth = _seed_patients(clinic, clinician=users["dr-okafor"])
    school_truth = _seed_students(school, teacher=users["ms-lindqvist"])
    _transcribe_recordings([*clinic_truth, *school_truth], log=log)
    for organization, truth, professional in (
        (clinic, clinic_truth, users["dr-okafor"]),
        (school, school_truth, users["ms-lindqvist"]),
    ):
        _analyse_history(organization, truth, professional=professional, log=log)
    return list(DEMO_USERS)


def _transcribe_recordings(history: list[Encounter | LearningSession], *, log) -> None:
    """Write down what the past visits' recordings say before they are analysed by a model that
    reads it (what was said is evidence): here, once, since no worker runs yet. Today's
    recordings, and any no model reads yet, are left to the worker, as a new upload's are."""
    listening = [
        kind
        for kind in OrganizationKind
        if (version := active_model_version(serves=kind))
        and "speech_text" in model_inputs(version=version)
    ]
    waiting = list(
        Transcript.objects.filter(
            media__visit_key__in=[visit.visit_key for visit in history],
            media__organization__kind__in=listening,
            status=TranscriptStatus.QUEUED,
        ).values_list("pk", flat=True)
    )
    if not waiting:
        return
    log(f"Transcribing the demo's {len(waiting)} recordings (once)…")
    started = timezone.now()
    for transcript_id in waiting:
        transcribe_now(transcript_id=transcript_id)
    log(f"  done in {(timezone.now() - started).total_seconds():.0f} s")


def _analyse_history(organization: Organization, truth: dict, *, professional, log) -> None:
    """Analyse the past visits not analysed yet, date each analysis at its visit, and let the
    professional judge the older half of them from the synthetic truth."""
    waiting = [visit for visit in truth if not visit.visit_key.jobs.exists()]
    if not waiting:
        return
    if active_model_version(serves=organization.kind) is None:
        log(
            f"No model serves {organization.get_kind_display().lower()}s yet: the history of "
            f"{organization.name} stays unanalysed (run train_demo_models, then seed_demo again)."
        )
        return
    started = timezone.now()
    jobs = analyse_in_process(visits=waiting, requested_by=professional)
    succeeded = [job for job in jobs if job.status == JobStatus.SUCCEEDED]
    log(
        f"  {organization.name}: {len(succeeded)} of {len(jobs)} past visits analysed in "
        f"{(timezone.now() - started).total_seconds():.0f} s"
    )
    failed = [job for job in jobs if job.status == JobStatus.FAILED]
    if failed:
        log(f"  {len(failed)} failed, the first with: {failed[0].error_message}")
    for job in succeeded:
        visit = visit_of(job)
        _date_at_visit(job, visit)
        days_ago = (timezone.now() - visit.occurred_at).days
        if days_ago > 20:
            _judge(job.results.get(), truth[visit], professional=professional)
    subjects = {subject_of(job) for job in succeeded}
    for subject in subjects:
        refresh_latest_analysis(subject=subject)


def _date_at_visit(job: AnalysisJob, visit) -> None:
    """An analysis of the history happened a few minutes after its visit, not at seeding."""
    analysed = visit.occurred_at + timedelta(minutes=12)
    AnalysisJob.objects.filter(pk=job.pk).update(
        created_at=analysed, started_at=analysed, finished_at=analysed, updated_at=analysed
    )
    AnalysisResult.objects.filter(job=job).update(created_at=analysed)


def _judge(result: AnalysisResult, case: ClinicalCase | LearnerCase, *, professional) -> None:
    """Confirm what the model got right, correct what it got wrong, as the synthetic truth
    says."""
    if isinstance(case, ClinicalCase):
        right = result.findings == case.findings and result.emotion_label == case.affect
        if right:
            record_feedback(result=result, kind=Feedback.Kind.CONFIRM, given_by=professional)
        else:
            record_feedback(
                result=result,
                kind=Feedback.Kind.CORRECT,
                given_by=professional,
                diagnosis=case.findings,
                emotion_label=case.affect,
            )
    elif result.emotion_label == case.affect:
        record_feedback(result=result, kind=Feedback.Kind.CONFIRM, given_by=professional)
    else:
        record_feedback(
            result=result,
            kind=Feedback.Kind.CORRECT,
            given_by=professional,
            emotion_label=case.affect,
        )


def _demo_user(demo: DemoUser, organizations: dict[str, Organization]):
    first, _, last = demo.full_name.rpartition(" ")
    user, created = get_user_model().objects.get_or_create(
        username=demo.username,
        defaults={"first_name": first, "last_name": last, "email": f"{demo.username}@demo.invalid"},
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    for slug in demo.organization_slugs:
        set_membership(user=user, organization=organizations[slug], role=demo.role)
    return user


def _name(index: int) -> str:
    return f"{_FIRST[index % len(_FIRST)]} {_LAST[(index * 7) % len(_LAST)]}"


def _visit_time(index: int, days_ago: int) -> datetime:
    """A past visit: office hours about `days_ago` days before today (moved by up to six days
    by person, so the weeks fill), spread over the morning by person. Today's: a little while
    ago."""
    if not days_ago:
        return timezone.now() - timedelta(minutes=10 + 3 * index)
    day = timezone.localdate() - timedelta(days=days_ago + index % 7)
    return timezone.make_aware(datetime(day.year, day.month, day.day, 8, 0)) + timedelta(
        minutes=17 * index
    )


def _seed_patients(clinic: Organization, *, clinician) -> dict[Encounter, ClinicalCase]:
    """The patients and their visits; returns each past visit's synthetic truth."""
    wards = [
        Cohort.objects.filter(organization=clinic, name=name).first()
        or create_cohort(organization=clinic, name=name)
        for name in ("Respiratory ward", "Outpatients")
    ]
    history = {}
    for index in range(PATIENT_COUNT):
        birth_date = date(1940 + (index * 3) % 60, 1 + index % 12, 1 + index % 28)
        sex = ("female", "male")[index % 2]
        mrn = f"NF-{index + 1:05d}"
        patient = Patient.objects.filter(organization=clinic, mrn=mrn).first() or create_patient(
            organization=clinic,
            mrn=mrn,
            full_name=_name(index),
            birth_date=birth_date,
            sex=sex,
            cohort=wards[index % len(wards)],
        )
        for number, (reason, days_ago) in enumerate(CLINIC_VISITS):
            case = clinical_case(
                np.random.default_rng(1000 + index * VISITS_PER_PERSON + number),
                image_size=DEMO_IMAGE_SIZE,
            )
            with transaction.atomic():
                encounter = Encounter.objects.filter(
                    patient=patient, reason=reason
                ).first() or create_encounter(
                    patient=patient,
                    reason=reason,
                    occurred_at=_visit_time(index, days_ago),
                    clinician=clinician,
                )
                if not encounter.media.exists():
                    _add_clinical_media(encounter, case, clinician=clinician)
            if days_ago:
                history[encounter] = case
    return history


def _add_clinical_media(encounter: Encounter, case: ClinicalCase, *, clinician) -> None:
    patient = encounter.patient
    dicom = ct_dicom_bytes(
        case.hounsfield,
        patient_name=patient.full_name.replace(" ", "^"),
        patient_id=patient.mrn,
        birth_date=patient.birth_date,
        sex=patient.sex,
        study_date=encounter.occurred_at.date(),
        uid_seed=f"demo-{patient.mrn}-{encounter.reason}",
    )
    _upload(
        encounter,
        (
            (MediaKind.DICOM, "chest-ct.dcm", dicom),
            (MediaKind.CLINICAL_NOTE, "note.txt", case.note.encode()),
            (MediaKind.SPEECH, "speech.wav", wav_bytes(case.voice)),
        ),
        by=clinician,
    )


def _upload(visit: Encounter | LearningSession, files: tuple, *, by) -> None:
    """(kind, file name, bytes) for each file, through the validation every upload passes."""
    for kind, filename, content in files:
        add_media(
            attached_to=visit,
            kind=kind,
            file=io.BytesIO(content),
            filename=filename,
            uploaded_by=by,
        )


def _seed_students(school: Organization, *, teacher) -> dict[LearningSession, LearnerCase]:
    """The students and their sessions; returns each past session's synthetic truth."""
    classes = [
        Cohort.objects.filter(organization=school, name=name).first()
        or create_cohort(organization=school, name=name)
        for name in ("Year 9 Maple", "Year 10 Birch")
    ]
    history = {}
    for index in range(STUDENT_COUNT):
        cohort = classes[index % len(classes)]
        student_number = f"LH-{index + 1:04d}"
        student = Student.objects.filter(
            organization=school, student_number=student_number
        ).first() or create_student(
            organization=school,
            student_number=student_number,
            full_name=_name(index + 7),
            grade=cohort.name.split(" ")[1],
            sex=("female", "male")[index % 2],
            cohort=cohort,
        )
        for number, (title, days_ago) in enumerate(SCHOOL_VISITS):
            case = learner_case(np.random.default_rng(5000 + index * VISITS_PER_PERSON + number))
            with transaction.atomic():
                session = LearningSession.objects.filter(
                    student=student, title=title
                ).first() or create_learning_session(
                    student=student,
                    title=title,
                    occurred_at=_visit_time(index, days_ago),
                    subject_area=case.subject,
                    teacher=teacher,
                )
                if not session.media.exists():
                    files = (
                        (MediaKind.LEARNER_TEXT, "reflection.txt", case.text.encode()),
                        (MediaKind.LEARNER_AUDIO, "spoken-answer.wav", wav_bytes(case.voice)),
                    )
                    _upload(session, files, by=teacher)
            if days_ago:
                history[session] = case
    return history
