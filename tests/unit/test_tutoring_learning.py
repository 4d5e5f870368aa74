"""A school's tutoring head learns from its teachers' verdicts: `train_from_feedback school`
teaches it (with enough verdicts, and no confirmed results needed), judges it on held-out
sessions, and the school's next analyses are ordered by it, each suggestion saying so; another
school keeps the tag match."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tessera.accounts.models import Role
from tessera.accounts.services import create_organization
from tessera.jobs import training
from tessera.jobs.models import AnalysisJob, Feedback, TrainingRun
from tessera.jobs.services import (
    complete_job,
    promote_model_version,
    record_feedback,
    register_model_version,
)
from tessera.records.services import create_learning_session, create_student
from tessera.refusals import Refused
from tessera.tutoring.models import TutoringHead
from tests.unit.conftest import prediction

pytestmark = pytest.mark.django_db
CONFUSED = {"confused": 0.8, "bored": 0.2}


@pytest.fixture
def version(db):
    version = register_model_version(name="school-v1", serves="school", bundle_path="x", metrics={})
    return promote_model_version(version=version, promoted_by=None)


@pytest.fixture
def teacher(school, make_user):
    return make_user("teacher", organization=school, role=Role.TEACHER)


def analysed(
    learner, version, *, subject: str, days_ago: int = 1, quotes=None, unsure: bool = False
):
    session = create_learning_session(
        student=learner,
        occurred_at=timezone.now() - timedelta(days=days_ago),
        subject_area=subject,
    )
    job = AnalysisJob.objects.create(
        organization=learner.organization,
        visit_key=session.visit_key,
        task="tutoring",
        status="running",
        model_version=version,
    )
    predicted = prediction()
    predicted["emotion"], predicted["emotion_label"] = CONFUSED, "confused"
    if quotes:
        predicted["quotes"] = {"emotion": quotes}
    if unsure:
        predicted["needs_person"] = {
            "emotion": {"reason": "uncertain", "detail": "The estimate is unsure."}
        }
    return complete_job(job_id=job.pk, worker="gpu", prediction=predicted)


def order(result) -> list[str]:
    return [suggestion["id"] for suggestion in result.tutoring]


def test_verdicts_reach_training_and_reorder_the_next_suggestions(
    school, teacher, version, settings
):
    """This teacher finds the concept check helps a confused learner in Mathematics and the
    worked example in Science: overall, each is useful half the time, so the tag match (which
    counts verdicts per intervention) cannot tell; the learnt head can."""
    settings.TESSERA_TUTORING_MIN_VERDICTS = 30
    learners = [
        create_student(organization=school, student_number=f"L-{n}", full_name=f"Learner {n}")
        for n in range(8)
    ]
    subjects = ("Mathematics", "Science")
    for number in range(48):
        subject = subjects[number % 2]
        result = analysed(learners[number % 8], version, subject=subject, days_ago=number + 2)
        if number == 0:
            assert order(result)[:2] == ["worked-example", "concept-check"], "own subject first"
        favourite = "concept-check" if subject == "Mathematics" else "worked-example"
        for intervention in ("worked-example", "concept-check"):
            kind = Feedback.Kind.USEFUL if intervention == favourite else Feedback.Kind.NOT_USEFUL
            record_feedback(result=result, kind=kind, given_by=teacher, intervention=intervention)

    run = training.request_training(serves="school", requested_by=teacher)
    run = training.run_training(run_id=run.pk)

    assert run.status == TrainingRun.Status.PROMOTED, run.message
    assert run.candidate is None, "no confirmed results: the model itself was not fine-tuned"
    figures = run.metrics["tutoring"][school.slug]
    assert figures["used"]
    assert figures["verdicts"] + 2 * figures["held_out_sessions"] == 96
    assert figures["candidate"]["ndcg_at_3"] > figures["tags"]["ndcg_at_3"]
    head = TutoringHead.objects.get(organization=school)
    assert head.in_use
    assert "uses the learnt head" in head.decision

    verdicts = training.tutoring_training_verdicts(organization_id=school.pk)
    assert len(verdicts) == 96
    assert sum(verdict.useful for verdict in verdicts) == 48
    maths = analysed(learners[0], version, subject="Mathematics")
    science = analysed(learners[1], version, subject="Science")
    assert order(maths)[:2] == ["concept-check", "worked-example"]
    assert order(science)[:2] == ["worked-example", "concept-check"]
    assert {suggestion["basis"] for suggestion in maths.tutoring} == {"learnt"}
    assert "verdicts of this school's teachers taught" in maths.tutoring[0]["reason"]


def test_another_school_keeps_the_tag_match(school, teacher, version):
    other_school = create_organization(
        name="Other School", slug="other-school", kind="school", jurisdiction="EU"
    )
    TutoringHead.objects.create(
        organization=school,
        library=analysed(
            create_student(organization=school, student_number="S-1", full_name="Sam"),
            version,
            subject="Mathematics",
        ).tutoring_library,
        weights={"weights": {"tags": 1.0, "concept-check": 9.0}, "verdicts": 40},
        verdicts=40,
        in_use=True,
        decision="uses the learnt head",
    )
    elsewhere = create_student(organization=other_school, student_number="O-1", full_name="Olu")
    result = analysed(elsewhere, version, subject="Mathematics")
    assert order(result)[0] == "worked-example"
    assert {suggestion["basis"] for suggestion in result.tutoring} == {"tags"}


def test_too_few_verdicts_are_refused_in_a_sentence(school, teacher, version, settings):
    settings.TESSERA_TUTORING_MIN_VERDICTS = 30
    result = analysed(
        create_student(organization=school, student_number="F-1", full_name="Fay"),
        version,
        subject="Mathematics",
    )
    record_feedback(
        result=result, kind=Feedback.Kind.USEFUL, given_by=teacher, intervention="concept-check"
    )
    with pytest.raises(Refused, match="no school has the 30 verdicts on suggestions"):
        training.request_training(serves="school")
    assert not TrainingRun.objects.exists()


def test_each_suggestion_says_why_from_the_learners_own_sentence(school, version):
    learner = create_student(organization=school, student_number="Q-1", full_name="Quinn")
    wrote = "I keep mixing up which formula goes where."
    said = "I don't see where the minus went."
    result = analysed(learner, version, subject="Mathematics", quotes={"text": wrote})
    assert result.tutoring[0]["rationale"] == (
        "For a learner who seems confused, in Mathematics. This learner seems confused "
        f'(they wrote "{wrote}"), in Mathematics.'
    )
    # What the recording said, where it showed the affect more than the text did.
    spoken = analysed(
        learner, version, subject="Mathematics", quotes={"speech_text": said, "text": wrote}
    )
    assert f'(they said "{said}")' in spoken.tutoring[0]["rationale"]
    assert wrote not in spoken.tutoring[0]["rationale"]
    unquoted = analysed(learner, version, subject="Mathematics")
    assert all('"' not in suggestion["rationale"] for suggestion in unquoted.tutoring)


def test_a_suggestion_for_an_unsure_affect_estimate_says_it_needs_a_person(school, version):
    """A read the model is unsure of ("Needs a person" on the affect) is still the best guess
    the ranking has, but no suggestion may sound surer than it."""
    learner = create_student(organization=school, student_number="U-1", full_name="Uma")
    result = analysed(learner, version, subject="Mathematics", unsure=True)
    for suggestion in result.tutoring:
        assert "This learner may seem confused, in Mathematics; " in suggestion["rationale"]
        assert suggestion["rationale"].endswith("the affect estimate is unsure and needs a person.")
        assert "This learner seems" not in suggestion["rationale"]
