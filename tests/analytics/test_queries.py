"""The database aggregates of `tessera.jobs.statistics`, on small fixtures whose answers are
worked out by hand: counted by the database (SQLite here, PostgreSQL in the integration run),
handed to the pure functions."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db.models import Q

from analytics.monitoring import expected_calibration_error
from analytics.trends import mondays, weeks_between
from tessera.accounts.models import Organization
from tessera.jobs.models import AnalysisResult, Feedback
from tessera.jobs.services import register_model_version
from tessera.jobs.statistics import (
    affect_by_week,
    finding_counts,
    findings_calibration,
    input_drift,
    prediction_drift,
    rate_by_group,
)
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tests.conftest import upload
from tests.unit.conftest import finished

pytestmark = pytest.mark.django_db
MONDAY = date(2026, 11, 16)


@pytest.fixture
def version(db):
    return register_model_version(name="v1", serves="school", bundle_path="v1", metrics={})


def student_results(school, version, *, sex: str = "unknown", history) -> list[AnalysisResult]:
    """One student's analyses: (affect, when, abstained) each."""
    number = school.students.count() + 1
    student = create_student(
        organization=school, student_number=str(number), full_name=f"S{number}", sex=sex
    )
    made = []
    for affect, when, abstain in history:
        session = create_learning_session(student=student, occurred_at=when, subject_area="x")
        result = finished(session, version, affect=affect, abstain=abstain)
        AnalysisResult.objects.filter(pk=result.pk).update(created_at=when)
        made.append(result)
    return made


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def test_mondays_and_the_weeks_a_period_touches():
    assert mondays(weeks=3, until=date(2026, 11, 19)) == [
        date(2026, 11, 2),
        date(2026, 11, 9),
        date(2026, 11, 16),
    ]
    assert weeks_between(date(2026, 11, 15), date(2026, 11, 16)) == [
        date(2026, 11, 9),
        date(2026, 11, 16),
    ]


def test_affect_by_week_puts_each_result_in_its_week_at_the_boundaries(school, version):
    student_results(
        school,
        version,
        history=[
            ("confused", at(MONDAY, 0, 0), False),  # the first instant of the second week
            ("confused", at(MONDAY - timedelta(days=1), 23, 59), False),  # the first week
            ("engaged", at(MONDAY + timedelta(days=6), 23, 59), False),
            ("engaged", at(MONDAY + timedelta(days=7)), False),  # after the weeks asked
            ("bored", at(MONDAY), False),  # a label not asked for
        ],
    )
    weeks = affect_by_week(
        results=AnalysisResult.objects.all(),
        labels=["engaged", "confused"],
        weeks=[MONDAY - timedelta(days=7), MONDAY],
    )
    assert [week.counts for week in weeks] == [
        {"engaged": 0, "confused": 1},
        {"engaged": 1, "confused": 1},
    ]


def test_findings_are_counted_from_the_probabilities(clinic, version):
    patient = create_patient(organization=clinic, mrn="1", full_name="P")
    visit = create_encounter(patient=patient, occurred_at=at(MONDAY))
    for mass in (0.5, 0.49, 0.9, 0.0):
        finished(visit, version, mass=mass)
    counts = finding_counts(AnalysisResult.objects.all(), labels=["suspicious_mass", "nodule"])
    assert counts == {"suspicious_mass": 2, "nodule": 0}


def test_findings_calibration_against_confirmations_and_corrections(clinic, version):
    patient = create_patient(organization=clinic, mrn="1", full_name="P")
    visit = create_encounter(patient=patient, occurred_at=at(MONDAY))
    verdicts = [
        (0.9, "confirm", None),  # suggested and confirmed: truly there
        (0.2, "confirm", None),  # not suggested, confirmed: truly absent
        (0.3, "correct", ["suspicious_mass"]),  # missed: the correction names it
        (0.8, "correct", []),  # suggested, corrected away
        (0.7, "correct", None),  # only the affect corrected: says nothing of findings
    ]
    for mass, kind, named in verdicts:
        result = finished(visit, version, mass=mass)
        Feedback.objects.create(result=result, kind=kind, diagnosis=named, emotion_label="pain")
    curve = findings_calibration(
        version=version,
        organizations=Organization.objects.filter(pk=clinic.pk),
        labels=["suspicious_mass"],
    )
    assert [(b.lower, b.count, b.accuracy) for b in curve] == [
        (0.2, 1, 0.0),
        (0.3, 1, 1.0),
        (0.8, 1, 0.0),
        (0.9, 1, 1.0),
    ]
    assert [b.mean_confidence for b in curve] == pytest.approx([0.2, 0.3, 0.8, 0.9])
    # (0.2 + 0.7 + 0.8 + 0.1) / 4: the mean gap between probability and truth
    assert expected_calibration_error(curve) == pytest.approx(0.45)


def test_prediction_drift_compares_the_label_shares_of_two_periods(school, version):
    old = student_results(
        school,
        version,
        history=[(a, at(MONDAY), False) for a in ("engaged", "engaged", "bored", "bored")],
    )
    new = student_results(
        school,
        version,
        history=[(a, at(MONDAY), False) for a in ("engaged", "engaged", "engaged", "bored")],
    )
    results = AnalysisResult.objects.all()
    before = results.filter(pk__in=[r.pk for r in old])
    after = results.filter(pk__in=[r.pk for r in new])
    labels = ["engaged", "bored"]
    assert prediction_drift(before=before, after=before, labels=labels) == 0.0
    # shares 0.5/0.5 → 0.75/0.25: 0.25·ln(1.5) + 0.25·ln(2)
    assert prediction_drift(before=before, after=after, labels=labels) == pytest.approx(0.274653)
    assert prediction_drift(before=results.none(), after=after, labels=labels) is None


def test_input_drift_of_text_length_in_pooled_standard_deviations(clinic):
    patient = create_patient(organization=clinic, mrn="1", full_name="P")
    visit = create_encounter(patient=patient, occurred_at=at(MONDAY))
    notes = {
        length: add_media(
            attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"x" * length)
        )
        for length in (10, 20, 30, 40)
    }
    media = MediaAsset.objects.all()
    (moved,) = input_drift(
        before=media.filter(pk__in=[notes[10].pk, notes[20].pk]),
        after=media.filter(pk__in=[notes[30].pk, notes[40].pk]),
    )
    assert moved.name == "note length (characters)"
    assert (moved.before.mean, moved.after.mean) == (15.0, 35.0)
    assert moved.before.std == pytest.approx(7.0711, abs=1e-4)  # sample standard deviation
    assert moved.shift == pytest.approx(20 / 7.0711, abs=1e-3)


def test_a_rate_per_subgroup(school, version):
    student_results(
        school,
        version,
        sex="female",
        history=[("engaged", at(MONDAY), True), ("engaged", at(MONDAY), False)],
    )
    student_results(
        school,
        version,
        sex="male",
        history=[("engaged", at(MONDAY), False), ("bored", at(MONDAY), False)],
    )
    rates = rate_by_group(
        AnalysisResult.objects.all(),
        group="job__visit_key__learning_session__student__sex",
        condition=Q(abstain=True),
    )
    assert rates == {"female": 0.5, "male": 0.0}
