"""Demo data for `make run`: a clinic and a school, a user for every role, patients with CT
images, notes and speech, students with writing and spoken answers.

Idempotent: running it again finds what exists and adds only what is missing. Media goes through
the same validation service as every upload. Generated from fixed seeds, so every run of every
machine makes the same demo.
"""

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from mlcore.synthetic import clinical_case, ct_dicom_bytes, learner_case, wav_bytes
from tessera.accounts.models import Organization, Role
from tessera.accounts.services import set_membership
from tessera.records.models import Cohort, Encounter, LearningSession, MediaKind, Patient, Student
from tessera.records.services import add_media

DEMO_PASSWORD = "tessera-demo"
PATIENT_COUNT = 20
STUDENT_COUNT = 30

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


def seed_demo() -> list[DemoUser]:
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
    _seed_patients(clinic, clinician=users["dr-okafor"])
    _seed_students(school, teacher=users["ms-lindqvist"])
    return list(DEMO_USERS)


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


def _demo_time(index: int) -> datetime:
    start = timezone.make_aware(datetime(2026, 9, 1, 9, 0))
    return start + timedelta(days=index * 3, hours=index % 6)


def _seed_patients(clinic: Organization, *, clinician) -> None:
    wards = [
        Cohort.objects.get_or_create(organization=clinic, name=name)[0]
        for name in ("Respiratory ward", "Outpatients")
    ]
    for index in range(PATIENT_COUNT):
        rng = np.random.default_rng(1000 + index)
        birth_date = date(1940 + (index * 3) % 60, 1 + index % 12, 1 + index % 28)
        sex = ("female", "male")[index % 2]
        with transaction.atomic():
            patient, _ = Patient.objects.get_or_create(
                organization=clinic,
                mrn=f"NF-{index + 1:05d}",
                defaults={
                    "full_name": _name(index),
                    "birth_date": birth_date,
                    "sex": sex,
                    "cohort": wards[index % len(wards)],
                },
            )
            encounter, _ = Encounter.objects.get_or_create(
                patient=patient,
                reason="Chest review",
                defaults={"occurred_at": _demo_time(index), "clinician": clinician},
            )
            if encounter.media.exists():
                continue
            case = clinical_case(rng)
            dicom = ct_dicom_bytes(
                case.hounsfield,
                patient_name=patient.full_name.replace(" ", "^"),
                patient_id=patient.mrn,
                birth_date=birth_date,
                sex=sex,
                study_date=encounter.occurred_at.date(),
                uid_seed=f"demo-{patient.mrn}",
            )
            uploads = (
                (MediaKind.DICOM, "chest-ct.dcm", dicom),
                (MediaKind.CLINICAL_NOTE, "note.txt", case.note.encode()),
                (MediaKind.SPEECH, "speech.wav", wav_bytes(case.voice)),
            )
            for kind, filename, content in uploads:
                add_media(
                    attached_to=encounter,
                    kind=kind,
                    file=io.BytesIO(content),
                    filename=filename,
                    uploaded_by=clinician,
                )


def _seed_students(school: Organization, *, teacher) -> None:
    classes = [
        Cohort.objects.get_or_create(organization=school, name=name)[0]
        for name in ("Year 9 Maple", "Year 10 Birch")
    ]
    for index in range(STUDENT_COUNT):
        rng = np.random.default_rng(5000 + index)
        cohort = classes[index % len(classes)]
        with transaction.atomic():
            student, _ = Student.objects.get_or_create(
                organization=school,
                student_number=f"LH-{index + 1:04d}",
                defaults={
                    "full_name": _name(index + 7),
                    "grade": cohort.name.split(" ")[1],
                    "sex": ("female", "male")[index % 2],
                    "cohort": cohort,
                },
            )
            case = learner_case(rng)
            session, _ = LearningSession.objects.get_or_create(
                student=student,
                title="Reflection on today's lesson",
                defaults={
                    "occurred_at": _demo_time(index),
                    "subject_area": case.subject,
                    "teacher": teacher,
                },
            )
            if session.media.exists():
                continue
            uploads = (
                (MediaKind.LEARNER_TEXT, "reflection.txt", case.text.encode()),
                (MediaKind.LEARNER_AUDIO, "spoken-answer.wav", wav_bytes(case.voice)),
            )
            for kind, filename, content in uploads:
                add_media(
                    attached_to=session,
                    kind=kind,
                    file=io.BytesIO(content),
                    filename=filename,
                    uploaded_by=teacher,
                )
