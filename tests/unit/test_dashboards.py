"""The clinician's and the teacher's pages, through Django's test client: what each page shows,
the whole upload → analyse → result → feedback loop (tasks run eagerly), and every rule of who
may see and do what. The same flows run in a real browser in tests/browser."""

import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from tessera.accounts.models import ApiToken, Role
from tessera.accounts.services import set_membership
from tessera.audit.models import AuditEvent
from tessera.jobs.latest import refresh_latest_analysis
from tessera.jobs.models import AnalysisJob, AnalysisResult, Feedback, JobStatus, ModelVersion
from tessera.jobs.services import register_model_version
from tessera.records.kinds import subject_of
from tessera.records.models import Encounter, MediaKind
from tessera.records.services import (
    add_media,
    create_cohort,
    create_learning_session,
    create_patient,
    create_student,
)
from tests.conftest import upload
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def signed_in(client, user):
    client.force_login(user)
    return client


def page(response) -> str:
    return response.content.decode()


def finished_result(visit, version, **fields) -> AnalysisResult:
    """A succeeded analysis of `visit` with the given fields, without running a model."""
    is_encounter = isinstance(visit, Encounter)
    job = AnalysisJob.objects.create(
        organization=visit.patient.organization if is_encounter else visit.student.organization,
        visit_key=visit.visit_key,
        task="all",
        status=JobStatus.SUCCEEDED,
        model_version=version,
    )
    defaults = {
        "modalities_used": ["image"],
        "contributions": {"suspicious_mass": {"image": 0.4}},
        "uncertainty": 0.4,
        "abstain": False,
    }
    result = AnalysisResult.objects.create(job=job, model_version=version, **{**defaults, **fields})
    refresh_latest_analysis(subject=subject_of(visit))  # what complete_job does
    return result


def result_for(encounter, *, diagnosis: dict, abstain: bool = False) -> AnalysisResult:
    return finished_result(
        encounter,
        ModelVersion.objects.get(status="active"),
        diagnosis=diagnosis,
        findings=[label for label, p in diagnosis.items() if p >= 0.5],
        emotion={"neutral": 0.1, "anxious": 0.6, "depressed_mood": 0.1, "pain": 0.2},
        emotion_label="anxious",
        abstain=abstain,
        urgency=max(diagnosis.values()),
    )


# --- the clinician's dashboard -------------------------------------------------------------


def test_patients_are_listed_most_urgent_first(client, clinic, people, clinic_model):
    from tessera.records.services import create_encounter

    calm, worrying, unsure = (
        create_patient(organization=clinic, mrn=str(n), full_name=name)
        for n, name in enumerate(("Calm Case", "Worrying Case", "Unsure Case"))
    )
    create_patient(organization=clinic, mrn="9", full_name="Aaron Never Analysed")
    for patient, probability, abstain in (
        (calm, 0.1, False),
        (worrying, 0.93, False),
        (unsure, 0.5, True),
    ):
        result_for(
            create_encounter(patient=patient, occurred_at=WHEN),
            diagnosis={"suspicious_mass": probability},
            abstain=abstain,
        )
    text = page(signed_in(client, people["clinician"]).get(reverse("home")))
    order = [
        text.index(name)
        for name in ("Worrying Case", "Unsure Case", "Calm Case", "Aaron Never Analysed")
    ]
    assert order == sorted(order)
    assert "suspicious mass 93%" in text
    assert text.count('<span class="badge review">Needs a person</span>') == 1


def test_the_dashboard_filters_by_ward_and_status(client, clinic, people, clinic_model):
    from tessera.records.services import create_encounter

    ward = create_cohort(organization=clinic, name="Ward 3")
    inside = create_patient(organization=clinic, mrn="1", full_name="In Ward", cohort=ward)
    create_patient(organization=clinic, mrn="2", full_name="Elsewhere")
    result_for(
        create_encounter(patient=inside, occurred_at=WHEN),
        diagnosis={"suspicious_mass": 0.7},
        abstain=True,
    )
    browser = signed_in(client, people["clinician"])
    by_ward = page(browser.get(reverse("home"), {"cohort": ward.pk}))
    assert "In Ward" in by_ward
    assert "Elsewhere" not in by_ward
    never = page(browser.get(reverse("home"), {"status": "none"}))
    assert "Elsewhere" in never
    assert "In Ward" not in never
    review = page(browser.get(reverse("home"), {"status": "review"}))
    assert "In Ward" in review
    assert "Elsewhere" not in review


def test_the_dashboard_counts_pending_and_failed_jobs(client, encounter, people, clinic_model):
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
        AnalysisJob.objects.create(
            organization=encounter.patient.organization,
            visit_key=encounter.visit_key,
            task="all",
            status=status,
            model_version=clinic_model,
            finished_at=timezone.now() if status == JobStatus.FAILED else None,
        )
    text = page(signed_in(client, people["clinician"]).get(reverse("home")))
    assert "<dt>Analyses in progress</dt><dd>2</dd>" in text
    assert '<dt>Failed this week</dt><dd class="danger">1</dd>' in text


def test_another_clinics_patients_never_appear(client, clinic, other_clinic, people):
    create_patient(organization=other_clinic, mrn="1", full_name="Someone Else's Patient")
    create_patient(organization=clinic, mrn="1", full_name="Our Patient")
    text = page(signed_in(client, people["clinician"]).get(reverse("home")))
    assert "Our Patient" in text
    assert "Someone Else" not in text


def test_a_user_of_two_organizations_switches_between_them(client, clinic, school, people):
    set_membership(user=people["clinician"], organization=school, role=Role.TEACHER)
    create_student(organization=school, student_number="S1", full_name="Sam Student")
    browser = signed_in(client, people["clinician"])
    assert "Patients of Test Clinic" in page(browser.get(reverse("home")))
    response = browser.post(reverse("switch_organization"), {"organization": school.pk})
    assert response.status_code == 302
    text = page(browser.get(reverse("home")))
    assert "Class overview: Test School" in text
    assert "Sam Student" in text


def test_the_switcher_refuses_an_organization_you_do_not_belong_to(client, other_clinic, people):
    response = signed_in(client, people["clinician"]).post(
        reverse("switch_organization"), {"organization": other_clinic.pk}
    )
    assert response.status_code == 404


# --- a patient's page: upload, analyse, watch, confirm ------------------------------------


def test_a_clinician_uploads_analyses_and_confirms(
    client,
    clinic,
    people,
    clinic_model,
    eager,
    dicom_bytes,
    wav_audio,
    django_capture_on_commit_callbacks,
):
    from tessera.records.services import create_encounter

    patient = create_patient(organization=clinic, mrn="P-1", full_name="Pat Example")
    visit = create_encounter(patient=patient, occurred_at=WHEN, reason="Cough")
    browser = signed_in(client, people["clinician"])
    for kind, name, content in (
        (MediaKind.DICOM, "ct.dcm", dicom_bytes),
        (MediaKind.CLINICAL_NOTE, "note.txt", b"Persistent cough; patient feels anxious."),
        (MediaKind.SPEECH, "speech.wav", wav_audio),
    ):
        file = io.BytesIO(content)
        file.name = name
        response = browser.post(
            reverse("upload", args=["encounter", visit.pk, kind]), {"file": file}, **HTMX
        )
        assert response.status_code == 200, page(response)
        assert f"{MediaKind(kind).label} uploaded." in page(response)
    assert visit.media.count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(reverse("analyse", args=["encounter", visit.pk]), **HTMX)
    assert response.status_code == 200
    job = AnalysisJob.objects.get(visit_key__encounter=visit)
    assert job.status == JobStatus.SUCCEEDED  # eager: the worker ran when the request committed
    card = page(browser.get(reverse("job_status", args=[job.pk])))
    assert "hx-trigger" not in card  # finished: the card stops asking
    result = job.results.get()
    assert result.explanation["method"] == "grad-cam"
    assert f'src="{reverse("result_heatmap", args=[result.pk])}"' in card
    assert "suspicious mass" in card

    heatmap = browser.get(reverse("result_heatmap", args=[result.pk]))
    assert heatmap["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(heatmap.content)).mode == "RGBA"

    response = browser.post(reverse("feedback", args=[result.pk]), {"kind": "confirm"}, **HTMX)
    assert response.status_code == 200
    assert "Recorded: Confirmed." in page(response)
    feedback = Feedback.objects.get(result=result)
    assert (feedback.kind, feedback.given_by) == ("confirm", people["clinician"])
    assert (feedback.diagnosis, feedback.emotion_label) == (None, "")  # labels only correct


def test_a_correction_records_the_findings_the_clinician_chose(
    client, encounter, people, clinic_model
):
    result = result_for(encounter, diagnosis={"suspicious_mass": 0.8})
    prefix = f"result-{result.pk}"
    response = signed_in(client, people["clinician"]).post(
        reverse("feedback", args=[result.pk]),
        {"kind": "correct", f"{prefix}-affect": "anxious"},
        **HTMX,
    )
    assert response.status_code == 200, page(response)
    feedback = Feedback.objects.get(result=result)
    assert (feedback.kind, feedback.diagnosis, feedback.emotion_label) == (
        "correct",
        [],
        "anxious",
    )


def test_a_correction_with_an_unknown_label_is_refused_in_words(
    client, encounter, people, clinic_model
):
    result = result_for(encounter, diagnosis={"suspicious_mass": 0.8})
    response = signed_in(client, people["clinician"]).post(
        reverse("feedback", args=[result.pk]),
        {"kind": "correct", f"result-{result.pk}-affect": "ecstatic"},
        **HTMX,
    )
    assert response.status_code == 422
    assert "Select a valid choice" in page(response)
    assert not Feedback.objects.exists()


def test_the_patient_page_shows_the_visit_and_its_files(client, encounter, people):
    text = page(
        signed_in(client, people["viewer"]).get(reverse("patient", args=[encounter.patient.pk]))
    )
    assert "Job Patient" in text
    assert "Persistent cough, weight loss." in text  # the note, shown as text
    dicom = encounter.media.get(kind=MediaKind.DICOM)
    speech = encounter.media.get(kind=MediaKind.SPEECH)
    assert f'src="{reverse("media_preview", args=[dicom.pk])}"' in text
    assert f'<audio controls preload="none" src="{reverse("media_file", args=[speech.pk])}"' in text
    assert "Upload" not in text  # a viewer reads, never writes
    assert "Analyse</button>" not in text


def test_a_result_says_what_moved_each_answer(client, encounter, people, clinic_model):
    finished_result(
        encounter,
        clinic_model,
        diagnosis={"suspicious_mass": 0.7},
        emotion={"neutral": 0.2, "anxious": 0.8},
        emotion_label="anxious",
        modalities_used=["image", "text", "audio"],
        contributions={  # stored in another order than shown (PostgreSQL sorts jsonb keys)
            "emotion": {"image": 0.0, "text": -0.1, "audio": 0.3},
            "suspicious_mass": {"image": 0.3, "text": 0.1, "audio": 0.0},
        },
    )
    text = " ".join(
        page(
            signed_in(client, people["viewer"]).get(reverse("patient", args=[encounter.patient.pk]))
        ).split()
    )
    assert "What moved each answer" in text
    mass = text.index("suspicious mass</p>")
    affect = text.index("affect: anxious</p>")
    assert mass < affect
    finding_rows = text[mass:affect]
    assert finding_rows.index("<dt>image</dt>") < finding_rows.index("<dt>text</dt>")
    assert '75% <span class="meta">raised it by 30 points' in finding_rows
    assert "barely moved it" in finding_rows  # the recording
    affect_rows = text[affect:]
    assert affect_rows.index("<dt>recording</dt>") < affect_rows.index("<dt>text</dt>")
    assert "lowered it by 10 points" in affect_rows


def test_a_result_says_which_answers_need_a_person_and_why(client, encounter, people, clinic_model):
    finished_result(
        encounter,
        clinic_model,
        diagnosis={"suspicious_mass": 0.55},
        emotion={"neutral": 0.6, "anxious": 0.4},
        emotion_label="neutral",
        abstain=True,
        needs_person={
            "diagnosis": {
                "reason": "low_confidence",
                "detail": "The model is 55% sure of the findings, below the 60% asked for.",
            }
        },
    )
    text = page(
        signed_in(client, people["viewer"]).get(reverse("patient", args=[encounter.patient.pk]))
    )
    findings, affect = text.split("<h5>Affect")[:2]
    assert "Needs a person:</strong> The model is 55% sure of the findings" in findings
    assert "Needs a person:" not in affect.split("</dl>")[0]


def test_a_dicom_preview_is_a_windowed_png(client, encounter, people):
    dicom = encounter.media.get(kind=MediaKind.DICOM)
    response = signed_in(client, people["viewer"]).get(reverse("media_preview", args=[dicom.pk]))
    assert response["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.mode == "L"
    assert picture.size == (dicom.metadata["columns"], dicom.metadata["rows"])
    low, high = picture.getextrema()
    assert high - low > 100  # windowed to the visible range, not a grey square


def test_a_corrupt_dicom_is_refused_next_to_its_field(client, encounter, people, dicom_bytes):
    damaged = io.BytesIO(dicom_bytes[:400])
    damaged.name = "broken.dcm"
    response = signed_in(client, people["clinician"]).post(
        reverse("upload", args=["encounter", encounter.pk, MediaKind.DICOM]),
        {"file": damaged},
        **HTMX,
    )
    assert response.status_code == 422
    text = page(response)
    field = f"file-encounter-dicom-{encounter.pk}"
    assert (
        f'id="{field}-error" role="alert">The DICOM file holds no image: it may be cut short, '
        "or not be an image at all; Tessera analyses images such as CT, MR or X-ray.<" in text
    )
    assert '<details class="technical-detail"><summary>Technical detail</summary>' in text
    assert f'aria-describedby="{field}-hint {field}-error" aria-invalid="true"' in text
    assert encounter.media.count() == 3


def test_analysing_a_visit_without_files_says_why(client, clinic, people, clinic_model):
    from tessera.records.services import create_encounter

    patient = create_patient(organization=clinic, mrn="E", full_name="Empty")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    response = signed_in(client, people["clinician"]).post(
        reverse("analyse", args=["encounter", visit.pk]), **HTMX
    )
    assert response.status_code == 422
    assert "There is nothing to analyse yet: upload a file first." in page(response)
    assert not AnalysisJob.objects.exists()


def test_a_clinician_adds_an_encounter(client, clinic, people):
    patient = create_patient(organization=clinic, mrn="N", full_name="New Visit")
    response = signed_in(client, people["clinician"]).post(
        reverse("new_encounter", args=[patient.pk]),
        {"occurred_at": "2026-11-20T10:15", "reason": "Follow-up"},
    )
    assert response.status_code == 302
    visit = patient.encounters.get()
    assert (visit.reason, visit.clinician) == ("Follow-up", people["clinician"])


# --- who may see and do what ---------------------------------------------------------------


def test_nothing_of_a_clinic_opens_to_another_clinics_clinician(
    client, encounter, people, clinic_model
):
    result = result_for(encounter, diagnosis={"suspicious_mass": 0.8})
    result.explanation = {"heatmap": [[0.0, 1.0]]}
    result.save()
    dicom = encounter.media.get(kind=MediaKind.DICOM)
    browser = signed_in(client, people["stranger"])
    for url in (
        reverse("patient", args=[encounter.patient.pk]),
        reverse("media_file", args=[dicom.pk]),
        reverse("media_preview", args=[dicom.pk]),
        reverse("result_heatmap", args=[result.pk]),
        reverse("job_status", args=[result.job.pk]),
    ):
        assert browser.get(url).status_code == 404, url
    for url in (
        reverse("upload", args=["encounter", encounter.pk, MediaKind.CLINICAL_NOTE]),
        reverse("analyse", args=["encounter", encounter.pk]),
        reverse("feedback", args=[result.pk]),
        reverse("new_encounter", args=[encounter.patient.pk]),
        reverse("job_retry", args=[result.job.pk]),
    ):
        assert browser.post(url, {"kind": "confirm", "file": upload(b"x")}).status_code == 404
    assert encounter.media.count() == 3
    assert not Feedback.objects.exists()


def test_a_teacher_cannot_open_a_patient_page(client, encounter, school, make_user):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    response = signed_in(client, teacher).get(reverse("patient", args=[encounter.patient.pk]))
    assert response.status_code == 404
    assert "Job Patient" not in page(response)


def test_a_viewer_may_read_but_not_write(client, encounter, people, clinic_model):
    result = result_for(encounter, diagnosis={"suspicious_mass": 0.8})
    browser = signed_in(client, people["viewer"])
    assert (
        browser.post(
            reverse("upload", args=["encounter", encounter.pk, MediaKind.CLINICAL_NOTE]),
            {"file": upload(b"A note.")},
        ).status_code
        == 403
    )
    assert browser.post(reverse("analyse", args=["encounter", encounter.pk])).status_code == 403
    assert (
        browser.post(reverse("feedback", args=[result.pk]), {"kind": "confirm"}).status_code == 403
    )
    assert encounter.media.count() == 3
    assert AnalysisJob.objects.count() == 1
    assert not Feedback.objects.exists()


def test_files_are_served_only_to_the_signed_in(client, encounter):
    dicom = encounter.media.get(kind=MediaKind.DICOM)
    response = client.get(reverse("media_file", args=[dicom.pk]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_form_post_without_csrf_is_refused(encounter, people):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["clinician"])
    response = strict.post(
        reverse("upload", args=["encounter", encounter.pk, MediaKind.CLINICAL_NOTE]),
        {"file": upload(b"A note.")},
    )
    assert response.status_code == 403
    assert encounter.media.count() == 3


# --- the teacher's pages -------------------------------------------------------------------


@pytest.fixture
def school_model(db):
    version = register_model_version(
        name="school-v1", serves="school", bundle_path="school-v1", metrics={}
    )
    version.status = ModelVersion.Status.ACTIVE
    version.save()
    return version


@pytest.fixture
def school_labels(monkeypatch):
    labels = ["engaged", "confused", "frustrated", "bored"]
    monkeypatch.setattr(
        "tessera.dashboards.views.dashboards.model_labels", lambda *, version: ([], labels)
    )
    return labels


def session_result(
    student, school_model, label, *, days_ago=0, needs_person=None
) -> AnalysisResult:
    session = create_learning_session(
        student=student, occurred_at=timezone.now(), subject_area="Mathematics"
    )
    add_media(attached_to=session, kind=MediaKind.LEARNER_TEXT, file=upload(b"My essay."))
    result = finished_result(
        session,
        school_model,
        emotion={label: 0.9},
        emotion_label=label,
        modalities_used=["text"],
        contributions={"emotion": {"text": 0.5}},
        needs_person=needs_person or {},
        tutoring=[
            {
                "rank": 1,
                "id": "worked-example",
                "title": "Show a worked example",
                "description": "",
                "matches": [label],
                "reason": f"matches: {label}",
                "basis": "tags",
            }
        ],
    )
    AnalysisResult.objects.filter(pk=result.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    refresh_latest_analysis(subject=student)
    return result


def test_the_class_overview_flags_persistent_frustration(
    client, school, make_user, school_model, school_labels
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    struggling = create_student(organization=school, student_number="1", full_name="Struggling")
    fine = create_student(organization=school, student_number="2", full_name="Mostly Fine")
    for days_ago, label in ((0, "frustrated"), (3, "engaged"), (8, "confused")):
        session_result(struggling, school_model, label, days_ago=days_ago)
    for days_ago, label in ((0, "frustrated"), (3, "engaged"), (8, "engaged")):
        session_result(fine, school_model, label, days_ago=days_ago)
    text = page(signed_in(client, teacher).get(reverse("home")))
    attention = text[text.index("Students needing attention") : text.index("Latest tutoring")]
    assert "Struggling" in attention
    assert "Mostly Fine" not in attention
    listed = AuditEvent.objects.filter(action="list", object_type="student", actor=teacher)
    assert listed.filter(object_id=str(struggling.pk)).count() == 2, "class list and attention"
    assert listed.filter(object_id=str(fine.pk)).count() == 1, "class list only"
    assert (
        AuditEvent.objects.filter(action="list", object_type="result", actor=teacher).count() == 6
    )
    assert '<svg class="chart"' in text
    assert "Show a worked example" in text
    # The chart's table, this week (the last row): two frustrated results, and the two engaged
    # ones of three days ago when this week began that long ago (Thursday to Sunday).
    table = text[text.index('<table id="affect-summary"') :]
    table = table[: table.index("</table>")]
    last_row = table[table.rindex('<tr><th scope="row">') :]
    now = timezone.localtime()
    engaged = 2 if (now - timedelta(days=3)).isocalendar()[:2] == now.isocalendar()[:2] else 0
    assert re.findall(r"<td>(\d+)</td>", last_row) == [str(engaged), "0", "2", "0"]


def test_the_class_overview_pages_its_students_and_counts_who_needs_attention(
    client, school, make_user, school_model, school_labels, monkeypatch
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    for number in range(52):
        create_student(organization=school, student_number=str(number), full_name=f"S{number:02}")
    for name in ("Worried A", "Worried B"):
        student = create_student(organization=school, student_number=name, full_name=name)
        for label in ("confused", "frustrated"):
            session_result(student, school_model, label)
    monkeypatch.setattr("tessera.dashboards.views.dashboards.ATTENTION_SHOWN", 1)
    browser = signed_in(client, teacher)
    first = page(browser.get(reverse("home")))
    assert "Page 1 of 2" in first
    assert "S49" in first
    assert "S50" not in first
    assert "2 students, the 1 most recent shown" in first
    second = page(browser.get(reverse("home"), {"page": 2}))
    assert "Page 2 of 2" in second
    assert "S51" in second


def test_a_teacher_marks_a_suggestion_useful(
    client, school, make_user, school_model, school_labels
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    student = create_student(organization=school, student_number="1", full_name="Stu Dent")
    result = session_result(student, school_model, "confused")
    browser = signed_in(client, teacher)
    text = page(browser.get(reverse("student", args=[student.pk])))
    assert "Show a worked example" in text
    assert "Affect over time" in text
    response = browser.post(
        reverse("feedback", args=[result.pk]),
        {"kind": "useful", "intervention": "worked-example"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "Recorded: Suggestion useful." in page(response)
    feedback = Feedback.objects.get()
    assert (feedback.kind, feedback.intervention) == ("useful", "worked-example")


def test_suggestions_for_an_affect_that_needs_a_person_say_so(
    client, school, make_user, school_model, school_labels
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    student = create_student(organization=school, student_number="1", full_name="Stu Dent")
    unsure = {"reason": "uncertain", "detail": "The estimate is unsure."}
    session_result(student, school_model, "confused", needs_person={"emotion": unsure})
    text = page(signed_in(client, teacher).get(reverse("student", args=[student.pk])))
    assert (
        "Ranked for a student who may seem confused (the affect estimate above, which needs a "
        "person: check it before you choose)"
    ) in " ".join(text.split())


def test_a_judgement_of_a_suggestion_never_offered_is_refused(
    client, school, make_user, school_model, school_labels
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    student = create_student(organization=school, student_number="1", full_name="Stu Dent")
    result = session_result(student, school_model, "confused")
    response = signed_in(client, teacher).post(
        reverse("feedback", args=[result.pk]),
        {"kind": "useful", "intervention": "made-up"},
        **HTMX,
    )
    assert response.status_code == 422
    assert not Feedback.objects.exists()


# --- settings and models -------------------------------------------------------------------


def test_a_token_is_shown_once_and_can_be_revoked(client, people):
    browser = signed_in(client, people["clinician"])
    response = browser.post(reverse("settings"), {"name": "PACS bridge"})
    text = page(response)
    token = ApiToken.objects.get(user=people["clinician"])
    key = text.split('<code class="secret" id="new-token">')[1].split("</code>")[0]
    assert key.startswith(token.prefix)
    assert key not in page(browser.get(reverse("settings")))
    api = browser.__class__()
    assert api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    browser.post(reverse("revoke_token", args=[token.pk]))
    assert api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_nobody_revokes_someone_elses_token(client, people):
    from tessera.accounts.services import issue_api_token

    token, _ = issue_api_token(user=people["admin"], name="Admin's")
    response = signed_in(client, people["clinician"]).post(reverse("revoke_token", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_model_page_shows_metrics_and_lets_admins_promote(client, people, clinic_model):
    candidate = register_model_version(
        name="clinic-v2",
        serves="clinic",
        bundle_path="clinic-v1",
        metrics={
            "score": 0.71,
            "emotion": {
                "n": 4,
                "accuracy": 0.75,
                "macro_f1": 0.7,
                "auroc": None,
                "ece": 0.1,
                "labels": ["calm", "pain"],
                "confusion_matrix": [[2, 1], [0, 1]],
            },
        },
    )
    analyst = page(signed_in(client, people["analyst"]).get(reverse("models")))
    assert "clinic-v2" in analyst
    assert '<th scope="row">calm</th><td>2</td><td>1</td>' in analyst
    assert "Promote clinic-v2" not in analyst
    assert client.post(reverse("promote", args=[candidate.pk])).status_code == 403
    admin = signed_in(client, people["admin"])
    assert "Promote clinic-v2" in page(admin.get(reverse("models")))
    admin.post(reverse("promote", args=[candidate.pk]))
    candidate.refresh_from_db()
    clinic_model.refresh_from_db()
    assert (candidate.status, clinic_model.status) == ("active", "retired")


def test_every_member_reads_the_model_card_and_only_admins_promote(
    client, people, clinic_model, make_user, school
):
    candidate = ModelVersion.objects.create(
        name="clinic-v2", serves="clinic", bundle_path="clinic-v1", metrics={}
    )
    for who in ("clinician", "viewer", "analyst"):
        text = page(signed_in(client, people[who]).get(reverse("models")))
        assert '<a href="/models/">Models</a>' in text, who
        assert "clinic-v1" in text
        assert "clinic-v2" in text
        assert "<h3>Intended use</h3>" in text
        assert "<h3>Limits</h3>" in text
        assert "<li>Never an automatic decision. Not a medical device.</li>" in text
        assert "diagnosis suggestions, emotion/affect estimates and tutoring" in text, "one item"
        assert "Promote clinic-v2" not in text
        assert client.post(reverse("promote", args=[candidate.pk])).status_code == 403
    teacher = make_user("teach", organization=school, role=Role.TEACHER)
    text = page(signed_in(client, teacher).get(reverse("models")))
    assert "clinic-v1" not in text, "a school reads the models that answer schools"
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.CANDIDATE


def test_the_page_and_the_api_list_the_same_model_versions(client, people, clinic_model):
    from tests.unit.api import client_for

    for who in ("clinician", "viewer", "analyst", "admin", "stranger"):
        api = client_for(people[who]).get("/api/v1/model-versions/").json()["results"]
        text = page(signed_in(client, people[who]).get(reverse("models")))
        listed = {item["name"] for item in api}
        assert listed == {"clinic-v1"}, who
        assert all(name in text for name in listed), who


def test_pages_link_no_other_host(client, encounter, people):
    browser = signed_in(client, people["clinician"])
    for url in (
        reverse("home"),
        reverse("patient", args=[encounter.patient.pk]),
        reverse("settings"),
    ):
        text = page(browser.get(url))
        assert "http://" not in text
        assert "https://" not in text


def test_a_malformed_organization_choice_is_not_found(client, people):
    response = signed_in(client, people["clinician"]).post(
        reverse("switch_organization"), {"organization": "Robert'); DROP TABLE"}
    )
    assert response.status_code == 404


def test_pages_read_the_same_number_of_times_however_long_the_history(
    client, clinic, people, clinic_model, dicom_bytes
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tessera.records.services import create_encounter

    patient = create_patient(organization=clinic, mrn="H", full_name="Long History")
    browser = signed_in(client, people["clinician"])

    def queries_with(visits: int) -> int:
        while patient.encounters.count() < visits:
            visit = create_encounter(patient=patient, occurred_at=WHEN)
            add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(b"Note."))
            add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
            result = result_for(visit, diagnosis={"suspicious_mass": 0.6})
            result.explanation = {"method": "grad-cam", "heatmap": [[0.5]]}
            result.save()
            result.job.media.set(visit.media.all())
            Feedback.objects.create(result=result, kind="confirm", given_by=people["clinician"])
        with CaptureQueriesContext(connection) as queries:
            assert browser.get(reverse("patient", args=[patient.pk])).status_code == 200
        return len(queries)

    assert queries_with(1) == queries_with(4)


def test_the_model_page_shows_how_professionals_judged_the_affect(
    client, encounter, people, clinic_model, other_clinic
):
    from tessera.records.services import create_encounter

    elsewhere = create_encounter(
        patient=create_patient(organization=other_clinic, mrn="O", full_name="Other"),
        occurred_at=WHEN,
    )

    def judged(suggested: str, kind: str, said: str = "", visit=encounter):
        result = result_for(visit, diagnosis={"suspicious_mass": 0.3})
        result.emotion_label = suggested
        result.save()
        Feedback.objects.create(
            result=result, kind=kind, emotion_label=said, given_by=people["clinician"]
        )

    judged("anxious", "confirm")
    judged("anxious", "confirm")
    judged("anxious", "correct", said="pain")
    judged("neutral", "correct")  # corrected findings only: says nothing of the affect
    judged("neutral", "correct", said="pain", visit=elsewhere)  # another clinic's verdict
    text = page(signed_in(client, people["analyst"]).get(reverse("models")))
    section = text[text.index("Affect, as professionals judged it") :]
    assert "3 confirmations or corrections in your organizations · agreement 67%" in section
    anxious_row = section[section.index('<th scope="row">anxious</th>') :].split("</tr>")[0]
    # said anxious: suggested anxious twice; precision of "anxious" 2/3, recall 2/2
    assert re.findall(r"<td>([^<]*)</td>", anxious_row) == ["0", "2", "0", "0", "67%", "100%"]


def test_pages_work_where_the_model_bundles_are_not_on_this_host(client, encounter, people):
    elsewhere = register_model_version(
        name="on-the-gpu-hosts", serves="clinic", bundle_path="not-here", metrics={}
    )
    finished_result(
        encounter,
        elsewhere,
        diagnosis={"suspicious_mass": 0.7},
        emotion={"neutral": 0.5, "pain": 0.5},
        emotion_label="pain",
    )
    browser = signed_in(client, people["admin"])
    text = page(browser.get(reverse("patient", args=[encounter.patient.pk])))
    assert "suspicious mass" in text
    assert '<option value="pain">pain</option>' in text  # the correction offers the labels
    assert browser.get(reverse("models")).status_code == 200


def test_a_card_gives_reasons_from_the_evidence_and_says_why_it_has_no_heatmap(
    client, encounter, people, clinic_model
):
    result = result_for(encounter, diagnosis={"suspicious_mass": 0.8})
    result.rationales = {
        "diagnosis": "Suspicious mass (80%): the image raised it by 25 points.",
        "emotion": "Anxious (60%): the text raised it by 30 points.",
    }
    result.save()
    result.job.media.set(encounter.media.all())  # the visit's image was analysed
    browser = signed_in(client, people["clinician"])
    card = page(browser.get(reverse("job_status", args=[result.job.pk])))
    assert (
        "<strong>Why, from the evidence:</strong> Suspicious mass (80%): the image raised it by "
        "25 points." in card
    )
    assert "Anxious (60%): the text raised it by 30 points." in card
    assert "No heatmap: this model's heatmaps have not been shown to point at lesions" in card
    result.explanation = {"method": "grad-cam", "finding": "suspicious_mass", "heatmap": [[0.5]]}
    result.save()
    card = page(browser.get(reverse("job_status", args=[result.job.pk])))
    assert "No heatmap" not in card
    assert f'src="{reverse("result_heatmap", args=[result.pk])}"' in card
