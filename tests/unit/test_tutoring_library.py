"""A school's intervention library: in the database, versioned, edited by teachers and admins
on its page, over the API and by import; every suggestion records the version it came from, and
is ranked by the library's tags with a reason, never a percentage. Attacked: a viewer's edit,
another school's teacher, a broken import."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from mlcore.library import SHIPPED_LIBRARY, InterventionLibrary
from tessera.accounts.models import Role
from tessera.accounts.services import create_organization
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback
from tessera.jobs.services import complete_job, register_model_version
from tessera.records.services import (
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.reports.content.person import _explained
from tessera.tutoring.models import LibraryVersion
from tessera.tutoring.services import library_in_effect
from tests.unit.api import assert_problem, client_for
from tests.unit.conftest import finished, prediction

GALLERY = {
    "id": "gallery-walk",
    "title": "Gallery walk of finished work",
    "description": "Learners walk round and leave one question on each piece.",
    "affects": ["bored"],
    "subjects": ["Art"],
}


@pytest.fixture
def other_school(db):
    return create_organization(
        name="Other School", slug="other-school", kind="school", jurisdiction="US"
    )


@pytest.fixture
def staff(school, other_school, make_user):
    return {
        "admin": make_user("admin", organization=school, role=Role.ORG_ADMIN),
        "teacher": make_user("teacher", organization=school, role=Role.TEACHER),
        "viewer": make_user("viewer", organization=school, role=Role.VIEWER),
        "stranger": make_user("stranger", organization=other_school, role=Role.TEACHER),
    }


@pytest.fixture
def school_version(db):
    return register_model_version(
        name="school-v1", serves="school", bundle_path="school-v1", metrics={}
    )


def analysed(school, version, *, subject: str, affect: dict, grade: str = "") -> AnalysisResult:
    """A session analysed through `complete_job`, as a worker ends one, the model having read
    `affect`."""
    student = create_student(
        organization=school,
        student_number=f"S-{AnalysisJob.objects.count()}",
        full_name="A Learner",
        grade=grade,
    )
    session = create_learning_session(
        student=student, occurred_at=timezone.now(), subject_area=subject
    )
    job = AnalysisJob.objects.create(
        organization=school,
        visit_key=session.visit_key,
        task="tutoring",
        status="running",
        model_version=version,
    )
    predicted = prediction()
    predicted["emotion"], predicted["emotion_label"] = affect, max(affect, key=affect.get)
    return complete_job(job_id=job.pk, worker="gpu", prediction=predicted)


def test_a_school_starts_from_the_library_mlcore_ships(school):
    first = library_in_effect(organization=school)
    shipped = InterventionLibrary.load(SHIPPED_LIBRARY)
    assert first.number == 1
    assert first.library.interventions == shipped.interventions
    assert library_in_effect(organization=school) == first, "read again, not written again"
    assert LibraryVersion.objects.filter(organization=school).count() == 1


def test_a_teacher_edits_the_library_and_the_next_analysis_suggests_from_it(
    client, school, staff, school_version
):
    before = analysed(school, school_version, subject="Art", affect={"bored": 0.8, "engaged": 0.2})
    assert before.tutoring_library.number == 1
    assert "gallery-walk" not in [s["id"] for s in before.tutoring]

    client.force_login(staff["teacher"])
    response = client.post(
        reverse("library"), {**GALLERY, "subjects": "Art", "affects": ["bored"]}, follow=True
    )
    assert "Saved as version 2. Added “Gallery walk of finished work”." in response.content.decode()

    after = analysed(school, school_version, subject="Art", affect={"bored": 0.8, "engaged": 0.2})
    assert after.tutoring_library.number == 2
    first = after.tutoring[0]
    assert (first["rank"], first["id"], first["reason"]) == (
        1,
        "gallery-walk",
        "matches: bored, Art",
    )
    assert "score" not in first
    # The earlier result still names the version it came from.
    before.refresh_from_db()
    assert before.tutoring_library.number == 1

    # Edited again (same id): a third version; retired: a fourth, without it.
    client.post(reverse("library"), {**GALLERY, "title": "Gallery walk", "affects": ["bored"]})
    client.post(reverse("library_retire", args=["gallery-walk"]))
    versions = list(LibraryVersion.objects.filter(organization=school).order_by("number"))
    assert [v.change for v in versions[2:]] == ["Edited “Gallery walk”.", "Retired “Gallery walk”."]
    assert "gallery-walk" not in [item["id"] for item in versions[-1].interventions]
    assert any(item["id"] == "gallery-walk" for item in versions[1].interventions), "kept"


def test_a_viewer_cannot_edit_and_another_schools_teacher_gets_404(
    client, school, staff, other_school
):
    current = library_in_effect(organization=school)
    client.force_login(staff["viewer"])
    assert client.get(reverse("library")).status_code == 200, "a viewer reads it"
    assert b"Save as a new version" not in client.get(reverse("library")).content
    assert client.post(reverse("library"), {**GALLERY, "affects": ["bored"]}).status_code == 403
    assert client.post(reverse("library_retire", args=["worked-example"])).status_code == 403
    assert LibraryVersion.objects.filter(organization=school).count() == 1

    client.force_login(staff["stranger"])
    assert client.get(reverse("library_export", args=[current.pk])).status_code == 404
    own = client.get(reverse("library")).content.decode()
    assert "Other School" in own
    assert "Test School" not in own
    api = client_for(staff["stranger"])
    assert_problem(api.get(f"/api/v1/library-versions/{current.pk}/"), 404)
    listed = api.get("/api/v1/library-versions/").json()["results"]
    assert {row["organization"] for row in listed} == {other_school.pk}
    refused = api.post(
        "/api/v1/library-versions/",
        {"organization": school.pk, "interventions": [GALLERY]},
        format="json",
    )
    assert refused.status_code == 400, "an organization they cannot see does not exist for them"
    assert LibraryVersion.objects.filter(organization=school).count() == 1


def test_a_clinic_has_no_library(client, clinic, make_user):
    client.force_login(make_user("doctor", organization=clinic, role=Role.CLINICIAN))
    assert client.get(reverse("library")).status_code == 404


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (b"not json", "is not JSON"),
        (b'{"interventions": []}', "holds no intervention"),
        (
            json.dumps({"interventions": [{**GALLERY, "affects": ["sleepy"]}]}).encode(),
            "sleepy is not an affect",
        ),
        (json.dumps({"interventions": [GALLERY, GALLERY]}).encode(), "repeated: gallery-walk"),
        (
            json.dumps({"interventions": [{**GALLERY, "title": "Tab\there"}]}).encode(),
            "Intervention 1: the title: This holds a tab",
        ),
        (json.dumps({"interventions": [{**GALLERY, "grades": [9, 2]}]}).encode(), "lowest first"),
    ],
)
def test_a_broken_import_is_refused_in_words_and_writes_nothing(
    client, school, staff, document, says
):
    library_in_effect(organization=school)
    client.force_login(staff["teacher"])
    response = client.post(
        reverse("library_import"),
        {"file": SimpleUploadedFile("library.json", document, "application/json")},
        follow=True,
    )
    assert says in response.content.decode()
    assert LibraryVersion.objects.filter(organization=school).count() == 1


def test_export_then_import_makes_the_same_library_as_a_new_version(client, school, staff):
    current = library_in_effect(organization=school)
    client.force_login(staff["admin"])
    exported = client.get(reverse("library_export", args=[current.pk]))
    assert exported["Content-Disposition"].endswith('interventions-v1.json"')
    client.post(
        reverse("library_import"),
        {"file": SimpleUploadedFile("library.json", exported.content, "application/json")},
    )
    newest = library_in_effect(organization=school)
    assert newest.number == 2
    assert newest.interventions == current.interventions
    assert newest.change == f"Imported {len(current.interventions)} interventions."


def test_a_teacher_writes_a_version_over_the_api_and_a_viewer_may_not(school, staff):
    body = {"organization": school.pk, "interventions": [GALLERY]}
    assert_problem(
        client_for(staff["viewer"]).post("/api/v1/library-versions/", body, format="json"), 403
    )
    created = client_for(staff["teacher"]).post("/api/v1/library-versions/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["number"] == 2
    assert created.json()["created_by"] == "teacher"
    problem = assert_problem(
        client_for(staff["teacher"]).post(
            "/api/v1/library-versions/",
            {"organization": school.pk, "interventions": [{**GALLERY, "affects": ["sleepy"]}]},
            format="json",
        ),
        400,
        "invalid_library",
    )
    assert "sleepy is not an affect" in problem["detail"]


def test_earlier_verdicts_reach_the_ranking(school, staff, school_version):
    first = analysed(
        school, school_version, subject="Mathematics", affect={"confused": 0.9, "bored": 0.1}
    )
    assert [s["id"] for s in first.tutoring[:2]] == ["worked-example", "concept-check"]
    for _ in range(3):
        Feedback.objects.create(
            result=first, kind=Feedback.Kind.NOT_USEFUL, intervention="worked-example"
        )
    again = analysed(
        school, school_version, subject="Mathematics", affect={"confused": 0.9, "bored": 0.1}
    )
    assert [s["id"] for s in again.tutoring[:2]] == ["concept-check", "worked-example"]
    assert "found it useful 0 of 3 times" in again.tutoring[1]["reason"]


def test_the_report_shows_ranks_and_reasons_not_percentages(school, school_version):
    result = analysed(
        school, school_version, subject="Mathematics", affect={"confused": 0.9, "bored": 0.1}
    )
    _, text = _explained(result)
    suggestions = text[text.index("Suggestions: ") :]
    assert suggestions.startswith("Suggestions: 1. ")
    assert "2. " in suggestions
    assert "matches: confused" in suggestions
    assert (
        "(matches: confused, Mathematics). For a learner who seems confused, in Mathematics. "
        "This learner seems"
    ) in suggestions
    assert ".." not in suggestions, suggestions
    assert "%" not in suggestions


def test_an_org_admin_adds_a_version_in_the_admin_and_cannot_change_one(
    client, school, other_school, make_user
):
    admin_user = make_user("head", organization=school, role=Role.ORG_ADMIN, is_staff=True)
    library_in_effect(organization=other_school)
    client.force_login(admin_user)
    listed = client.get(reverse("admin:tutoring_libraryversion_changelist")).content.decode()
    assert "Other School" not in listed
    refused = client.post(
        reverse("admin:tutoring_libraryversion_add"),
        {"organization": school.pk, "interventions": json.dumps([{**GALLERY, "affects": ["x"]}])},
    )
    assert "x is not an affect" in refused.content.decode()
    added = client.post(
        reverse("admin:tutoring_libraryversion_add"),
        {"organization": school.pk, "interventions": json.dumps([GALLERY])},
    )
    assert added.status_code == 302, (
        added.context["adminform"].form.errors if added.context else added
    )
    newest = library_in_effect(organization=school)
    assert (newest.number, newest.created_by) == (2, admin_user)
    assert [item["id"] for item in newest.interventions] == ["gallery-walk"]
    change = reverse("admin:tutoring_libraryversion_change", args=[newest.pk])
    client.post(change, {"organization": school.pk, "interventions": "[]"})
    newest.refresh_from_db()
    assert [item["id"] for item in newest.interventions] == ["gallery-walk"], "kept as written"
    foreign = library_in_effect(organization=other_school)
    assert client.get(
        reverse("admin:tutoring_libraryversion_change", args=[foreign.pk])
    ).status_code in (302, 403, 404)


def test_a_clinic_analysis_suggests_no_tutoring(clinic):
    version = register_model_version(
        name="clinic-v1", serves="clinic", bundle_path="clinic-v1", metrics={}
    )
    patient = create_patient(organization=clinic, mrn="T-1", full_name="A Patient")
    result = finished(create_encounter(patient=patient, occurred_at=timezone.now()), version)
    assert result.tutoring == []
    assert result.tutoring_library is None
    assert not LibraryVersion.objects.filter(organization=clinic).exists()
