"""The teacher's loop on a suggestion: tried, then, at the learner's next session, whether it
helped; the class overview and the school's report count what helped. Attacked: an outcome
before trying, a second try or outcome, a viewer."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tessera.accounts.models import Role
from tessera.jobs.models import AnalysisJob, Feedback
from tessera.jobs.services import complete_job, record_feedback, register_model_version
from tessera.records.services import create_learning_session, create_student
from tessera.refusals import Refused
from tessera.reports.content.cohort import cohort_content
from tessera.reports.models import Report
from tests.unit.conftest import prediction


@pytest.fixture
def teacher(school, make_user):
    return make_user("teacher", organization=school, role=Role.TEACHER)


@pytest.fixture
def learner(school):
    return create_student(organization=school, student_number="L-1", full_name="Lena Learner")


@pytest.fixture
def version(db):
    return register_model_version(name="school-v1", serves="school", bundle_path="x", metrics={})


def session_analysed(learner, version, *, days_ago: int):
    session = create_learning_session(
        student=learner,
        occurred_at=timezone.now() - timedelta(days=days_ago),
        subject_area="Mathematics",
    )
    job = AnalysisJob.objects.create(
        organization=learner.organization,
        visit_key=session.visit_key,
        task="tutoring",
        status="running",
        model_version=version,
    )
    predicted = prediction()
    predicted["emotion"], predicted["emotion_label"] = {"confused": 0.8, "bored": 0.2}, "confused"
    return complete_job(job_id=job.pk, worker="gpu", prediction=predicted)


def test_a_suggestion_is_tried_once_and_said_to_help_once_after_trying(learner, version, teacher):
    result = session_analysed(learner, version, days_ago=7)
    first = result.tutoring[0]["id"]

    def say(kind):
        return record_feedback(result=result, kind=kind, given_by=teacher, intervention=first)

    with pytest.raises(Refused, match="mark the suggestion as tried before"):
        say(Feedback.Kind.HELPED)
    say(Feedback.Kind.TRIED)
    with pytest.raises(Refused, match="already marked as tried"):
        say(Feedback.Kind.TRIED)
    say(Feedback.Kind.HELPED)
    with pytest.raises(Refused, match="already recorded"):
        say(Feedback.Kind.DID_NOT_HELP)
    with pytest.raises(Refused, match="which of the suggested"):
        record_feedback(
            result=result, kind=Feedback.Kind.TRIED, given_by=teacher, intervention="made-up"
        )
    assert sorted(result.feedback.values_list("kind", flat=True)) == ["helped", "tried"]


def test_the_next_session_asks_whether_it_helped_and_the_overview_counts_it(
    client, school, learner, version, teacher, make_user
):
    earlier = session_analysed(learner, version, days_ago=7)
    tried = earlier.tutoring[0]
    client.force_login(teacher)
    student_page = reverse("student", args=[learner.pk])
    client.post(
        reverse("feedback", args=[earlier.pk]), {"kind": "tried", "intervention": tried["id"]}
    )
    assert "Did it help?" not in client.get(student_page).content.decode(), "no next session yet"

    later = session_analysed(learner, version, days_ago=0)
    page = client.get(student_page).content.decode()
    question = page[page.index("After the last session") :]
    assert f"You tried <strong>{tried['title']}</strong>" in question
    assert f'action="{reverse("feedback", args=[earlier.pk])}"' in question

    viewer = make_user("viewer", organization=school, role=Role.VIEWER)
    client.force_login(viewer)
    assert "It helped<" not in client.get(student_page).content.decode(), "a viewer cannot say"
    refused = client.post(
        reverse("feedback", args=[earlier.pk]), {"kind": "helped", "intervention": tried["id"]}
    )
    assert refused.status_code == 403

    client.force_login(teacher)
    client.post(
        reverse("feedback", args=[earlier.pk]), {"kind": "helped", "intervention": tried["id"]}
    )
    assert "Did it help?" not in client.get(student_page).content.decode(), "answered"
    assert later.feedback.count() == 0, "the outcome belongs to the session it was tried after"

    # What helped counts in the ranking of the next suggestions.
    after = session_analysed(learner, version, days_ago=0)
    helped = next(s for s in after.tutoring if s["id"] == tried["id"])
    assert "teachers found it useful 1 of 1 times" in helped["reason"]

    overview = client.get(reverse("home")).content.decode()
    table = overview[overview.index("What helped") :]
    table = table[: table.index("</table>")]
    assert f'<th scope="row">{tried["title"]}</th><td>1</td><td>1</td><td>0</td><td>0</td>' in (
        table.replace("\n", "").replace("  ", "")
    )


def test_the_school_report_carries_what_helped(school, learner, version, teacher):
    earlier = session_analysed(learner, version, days_ago=7)
    for suggestion in earlier.tutoring[:2]:
        record_feedback(
            result=earlier,
            kind=Feedback.Kind.TRIED,
            given_by=teacher,
            intervention=suggestion["id"],
        )
    record_feedback(
        result=earlier,
        kind=Feedback.Kind.DID_NOT_HELP,
        given_by=teacher,
        intervention=earlier.tutoring[1]["id"],
    )
    report = Report.objects.create(
        organization=school, requested_by=teacher, kind="cohort", period_end=timezone.localdate()
    )
    content = cohort_content(report)
    table = next(table for table in content.tables if table.title == "What helped")
    assert sorted(table.rows) == sorted(
        [
            [earlier.tutoring[0]["title"], "1", "0", "0", "1"],
            [earlier.tutoring[1]["title"], "1", "0", "1", "0"],
        ]
    )
