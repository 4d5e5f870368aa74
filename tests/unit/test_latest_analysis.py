"""`LatestAnalysis`: kept true by the job services as jobs are requested and finish, rebuilt in
bulk with the same answer, and what the dashboards' needs-attention list reads."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tessera.dashboards.selectors import students_needing_attention
from tessera.jobs.latest import rebuild_latest_analyses, refresh_latest_analysis
from tessera.jobs.models import AnalysisJob, AnalysisResult, LatestAnalysis
from tessera.jobs.services import complete_job, register_model_version, request_analysis
from tessera.records.services import (
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tests.unit.conftest import WHEN, finished, prediction

pytestmark = pytest.mark.django_db
SUMMARY = ("job_id", "result_id", "urgency", "abstained", "recent_affects", "concern_since")


@pytest.fixture
def school_version(db):
    return register_model_version(name="school-v1", serves="school", bundle_path="s", metrics={})


def test_a_request_and_its_result_update_the_patients_row(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    patient = encounter.patient
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="all")
    latest = LatestAnalysis.objects.get(subject_key__patient=patient)
    assert (latest.job_id, latest.result_id, latest.urgency) == (job.pk, None, None)

    result = complete_job(
        job_id=job.pk, worker="gpu", prediction=prediction(mass=0.8, abstain=True)
    )
    latest.refresh_from_db()
    assert (latest.job_id, latest.result_id) == (job.pk, result.pk)
    assert (latest.urgency, latest.abstained) == (pytest.approx(0.8), True)

    with django_capture_on_commit_callbacks(execute=False):
        newer = request_analysis(attached_to=encounter, task="all")
    latest.refresh_from_db()
    assert latest.job_id == newer.pk, "the newest request is the patient's job"
    assert latest.result_id == result.pk, "until it finishes, the result shown is the last one"


def test_two_concerning_affects_of_the_last_three_flag_a_student_while_recent(
    school, school_version
):
    student = create_student(organization=school, student_number="1", full_name="Sam")
    calm = create_student(organization=school, student_number="2", full_name="Calm")
    for affect in ("confused", "engaged", "frustrated"):
        session = create_learning_session(student=student, occurred_at=WHEN, subject_area="maths")
        finished(session, school_version, affect=affect)
    for affect in ("confused", "engaged", "engaged"):
        session = create_learning_session(student=calm, occurred_at=WHEN, subject_area="maths")
        finished(session, school_version, affect=affect)

    count, (flagged,) = students_needing_attention(organization=school)
    assert (count, flagged.student) == (1, student)
    assert flagged.recent_labels == ["frustrated", "engaged", "confused"]

    # the older concerning analysis was five weeks ago: one in four weeks is no pattern
    older = AnalysisResult.objects.get(
        job__visit_key__learning_session__student=student, emotion_label="confused"
    )
    AnalysisResult.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - timedelta(weeks=5)
    )
    refresh_latest_analysis(subject=student)
    assert students_needing_attention(organization=school) == (0, [])
    count, flagged = students_needing_attention(organization=school, weeks=6)
    assert [item.student for item in flagged] == [student]


def test_a_rebuild_gives_every_subject_the_row_its_services_kept(
    clinic, school, clinic_model, school_version
):
    patients = [
        create_patient(organization=clinic, mrn=str(n), full_name=f"P{n}") for n in range(3)
    ]
    for patient, masses in zip(patients, ([0.2, 0.9], [0.4], []), strict=True):
        visit = create_encounter(patient=patient, occurred_at=WHEN)
        for mass in masses:
            finished(visit, clinic_model, mass=mass, affect="anxious")
        if not masses:  # requested, never finished
            AnalysisJob.objects.create(
                organization=clinic,
                visit_key=visit.visit_key,
                task="all",
                model_version=clinic_model,
            )
            refresh_latest_analysis(subject=patient)
    student = create_student(organization=school, student_number="1", full_name="Sam")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="maths")
    for affect in ("bored", "confused", "confused", "engaged"):
        finished(session, school_version, affect=affect)

    kept = {
        row.subject_key_id: [getattr(row, field) for field in SUMMARY]
        for row in LatestAnalysis.objects.all()
    }
    assert len(kept) == 4
    assert rebuild_latest_analyses(organization=clinic) == 3
    assert rebuild_latest_analyses(organization=school) == 1
    rebuilt = {
        row.subject_key_id: [getattr(row, field) for field in SUMMARY]
        for row in LatestAnalysis.objects.all()
    }
    assert rebuilt == kept
    assert kept[student.subject_key.pk][4] == ["engaged", "confused", "confused"]
    assert kept[patients[0].subject_key.pk][2] == pytest.approx(0.9)
