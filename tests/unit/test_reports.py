"""PDF reports: asked for through the API and the pages, rendered by the `reports` task, read
back with pypdf (page one drawn to PNG under tests/artifacts/reports/ by pdfium), refused with
404 to whoever may not see the record, and scheduled weekly in celery beat's database."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pypdfium2
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler
from pypdf import PdfReader

from tessera.accounts.models import Role
from tessera.celery import app as celery_app
from tessera.jobs.models import AnalysisResult, Feedback
from tessera.jobs.services import register_model_version
from tessera.records.services import (
    create_cohort,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.reports.models import Report, ReportSchedule, ReportStatus
from tessera.reports.services import (
    render_report,
    request_report,
    request_scheduled_report,
    schedule_weekly_report,
    sweep_reports,
)
from tessera.webhooks.models import WebhookDelivery
from tessera.webhooks.services import create_subscription
from tests.unit.api import client_for
from tests.unit.conftest import WHEN, finished

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reports"
NOTICE = "suggestion made by a machine-learning model"


def browser_for(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def pdf_text(data: bytes, path: Path) -> str:
    """The text of every page; page one drawn to `path` (and checked to hold ink)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".pdf").write_bytes(data)
    image = pypdfium2.PdfDocument(data)[0].render(scale=1.5).to_pil()
    image.save(path)
    assert image.convert("L").getextrema()[0] < 100, "page one is blank"
    return "\n".join(page.extract_text() for page in PdfReader(path.with_suffix(".pdf")).pages)


def rendered(report: Report, django_capture_on_commit_callbacks) -> Report:
    """What the `reports` worker does with the message, its own webhooks left unsent."""
    with django_capture_on_commit_callbacks(execute=False):
        return render_report(report_id=report.pk)


def rendered_text(client, asked, django_capture_on_commit_callbacks, artifact: str) -> str:
    """Render the report an API request asked for, download it, and read its words."""
    report = rendered(Report.objects.get(pk=asked.json()["id"]), django_capture_on_commit_callbacks)
    assert report.status == ReportStatus.READY, report.error_message
    download = client.get(f"/api/v1/reports/{report.pk}/download/")
    return " ".join(pdf_text(b"".join(download.streaming_content), ARTIFACTS / artifact).split())


@pytest.fixture
def patient_with_history(clinic, clinic_model, people):
    patient = create_patient(organization=clinic, mrn="MRN-77", full_name="Jane Doe-Report")
    first = create_encounter(patient=patient, occurred_at=WHEN, reason="Cough for weeks")
    second = create_encounter(
        patient=patient, occurred_at=WHEN + timedelta(days=9), reason="Follow-up"
    )
    worried = finished(first, clinic_model, mass=0.91, affect="anxious")
    finished(second, clinic_model, mass=0.23, affect="neutral", abstain=True)
    Feedback.objects.create(result=worried, kind="confirm", given_by=people["clinician"])
    return patient


def test_a_patient_report_holds_the_name_findings_notice_and_model_version(
    patient_with_history, people, clinic_model, django_capture_on_commit_callbacks
):
    create_subscription(
        organization=patient_with_history.organization,
        url="https://his.example.org/hooks",
        events=["report.ready"],
        created_by=None,
    )
    client = client_for(people["clinician"])
    with django_capture_on_commit_callbacks(execute=False) as published:
        asked = client.post(f"/api/v1/patients/{patient_with_history.pk}/reports/", {})
    assert asked.status_code == 202, asked.content
    assert asked["Location"] == f"/api/v1/reports/{asked.json()['id']}/"
    assert asked.json()["status"] == "queued"
    assert asked.json()["download"] is None
    assert len(published) == 1, "the render task is published once the request commits"
    report = Report.objects.get(pk=asked.json()["id"])
    assert client.get(f"/api/v1/reports/{report.pk}/download/").status_code == 409

    assert rendered(report, django_capture_on_commit_callbacks).status == ReportStatus.READY
    body = client.get(asked["Location"]).json()
    assert body["status"] == "ready"
    assert body["pages"] >= 1
    assert body["model_versions"] == [clinic_model.name]
    download = client.get(body["download"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert "Jane" not in download["Content-Disposition"], "no name in a file name"
    text = pdf_text(b"".join(download.streaming_content), ARTIFACTS / "patient-report.png")
    for expected in (
        "Test Clinic",
        "Patient report",
        "Jane Doe-Report (MRN MRN-77)",
        "suspicious mass 91%",
        "suspicious mass 23%",
        "needs a person",
        "confirmed",
        "Cough for weeks",
        clinic_model.name,
        NOTICE,
    ):
        assert expected in " ".join(text.split()), expected
    (delivery,) = WebhookDelivery.objects.filter(event="report.ready")
    assert delivery.payload["data"] == {"report": str(report.pk), "kind": "patient", "pages": 1}


@pytest.fixture
def school_class(school, make_user):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    version = register_model_version(name="school-v7", serves="school", bundle_path="s", metrics={})
    year7 = create_cohort(organization=school, name="Year 7 Blue")
    other = create_cohort(organization=school, name="Year 9 Red")
    histories = {
        ("Ada Struggling", "7", "female"): ["frustrated", "engaged", "confused"],
        ("Ben Steady", "8", "male"): ["engaged", "engaged", "bored"],
    }
    for number, ((name, grade, sex), affects) in enumerate(histories.items()):
        student = create_student(
            organization=school,
            student_number=str(number),
            full_name=name,
            cohort=year7,
            grade=grade,
            sex=sex,
        )
        for affect in affects:
            session = create_learning_session(
                student=student, occurred_at=WHEN, subject_area="mathematics"
            )
            last = finished(session, version, affect=affect)
    Feedback.objects.create(result=last, kind="correct", emotion_label="engaged", given_by=teacher)
    # before the report's period: what its drift is measured against
    earlier = finished(session, version, affect="engaged")
    AnalysisResult.objects.filter(pk=earlier.pk).update(
        created_at=timezone.now() - timedelta(days=45)
    )
    elsewhere = create_student(
        organization=school, student_number="9", full_name="Cy Otherclass", cohort=other
    )
    for affect in ("confused", "frustrated"):
        session = create_learning_session(student=elsewhere, occurred_at=WHEN, subject_area="art")
        finished(session, version, affect=affect)
    return {"teacher": teacher, "cohort": year7, "version": version}


def test_a_class_report_counts_affects_and_names_who_needs_attention(
    school_class, django_capture_on_commit_callbacks
):
    client = client_for(school_class["teacher"])
    with django_capture_on_commit_callbacks(execute=False):
        asked = client.post(
            f"/api/v1/cohorts/{school_class['cohort'].pk}/reports/",
            {"period_start": str(date.today() - timedelta(days=30))},
        )
    assert asked.status_code == 202, asked.content
    text = rendered_text(client, asked, django_capture_on_commit_callbacks, "class-report.png")
    for expected in (
        "Class report",
        "Year 7 Blue (2 students)",
        "Analyses in the period 6",
        "Affect week by week",
        "Students needing attention",
        "Ada Struggling",
        "Model monitoring",
        "school-v7",
        NOTICE,
    ):
        assert expected in text, expected
    assert "Ben Steady" not in text, "only who needs attention is named"
    assert "Otherclass" not in text, "another class stays out of this one's report"


def test_a_report_of_a_record_you_cannot_see_is_404(
    patient_with_history, people, make_user, school, django_capture_on_commit_callbacks
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    with django_capture_on_commit_callbacks(execute=False):
        report = request_report(
            organization=patient_with_history.organization,
            requested_by=people["clinician"],
            subject=patient_with_history,
        )
    rendered(report, django_capture_on_commit_callbacks)
    for outsider in (people["stranger"], teacher):
        api = client_for(outsider)
        assert api.post(f"/api/v1/patients/{patient_with_history.pk}/reports/").status_code == 404
        assert api.get(f"/api/v1/reports/{report.pk}/").status_code == 404
        assert api.get(f"/api/v1/reports/{report.pk}/download/").status_code == 404
        assert api.get("/api/v1/reports/").json()["results"] == []
        pages = browser_for(outsider)
        page = pages.post(reverse("patient_report", args=[patient_with_history.pk]))
        assert page.status_code == 404
        assert pages.get(reverse("report_download", args=[report.pk])).status_code == 404
    assert Report.objects.count() == 1, "nothing was asked in their name"
    viewer = client_for(people["viewer"])
    assert viewer.post(f"/api/v1/patients/{patient_with_history.pk}/reports/").status_code == 403
    assert viewer.get(f"/api/v1/reports/{report.pk}/download/").status_code == 200


def test_a_backwards_period_is_refused_clearly(patient_with_history, people):
    response = client_for(people["clinician"]).post(
        f"/api/v1/patients/{patient_with_history.pk}/reports/",
        {"period_start": "2026-11-20", "period_end": "2026-11-01"},
    )
    assert response.status_code == 400
    assert "starts after it ends" in response.content.decode()
    assert not Report.objects.exists()


def test_a_report_that_cannot_render_fails_and_says_so(
    patient_with_history, people, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(content):
        raise ValueError("no room on the page")

    monkeypatch.setattr("tessera.reports.pdf.render_pdf", broken)
    with django_capture_on_commit_callbacks(execute=False):
        report = request_report(
            organization=patient_with_history.organization,
            requested_by=None,
            subject=patient_with_history,
        )
    failed = rendered(report, django_capture_on_commit_callbacks)
    assert failed.status == ReportStatus.FAILED
    assert "could not be rendered" in failed.error_message
    refused = client_for(people["clinician"]).get(f"/api/v1/reports/{report.pk}/download/")
    assert refused.status_code == 409
    assert "failed" in refused.json()["detail"]
    assert render_report(report_id=report.pk) is None, "a finished report is not taken again"


def test_the_pages_ask_for_a_report_and_offer_it_when_ready(
    patient_with_history, people, django_capture_on_commit_callbacks
):
    browser = browser_for(people["clinician"])
    page = browser.get(reverse("patient", args=[patient_with_history.pk])).content.decode()
    assert reverse("patient_report", args=[patient_with_history.pk]) in page
    with django_capture_on_commit_callbacks(execute=False):
        asked = browser.post(reverse("patient_report", args=[patient_with_history.pk]), {})
    assert asked.status_code == 302
    assert asked["Location"] == reverse("reports")
    listing = browser.get(reverse("reports")).content.decode()
    assert "Jane Doe-Report" in listing
    assert "Queued" in listing
    assert 'hx-trigger="every 2s"' in listing, "the table polls itself while a report renders"
    rendered(Report.objects.get(), django_capture_on_commit_callbacks)
    table = browser.get(reverse("report_rows")).content.decode()
    assert "Download PDF" in table
    assert "hx-trigger" not in table
    report = Report.objects.get()
    download = browser.get(reverse("report_download", args=[report.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"%PDF")


def test_a_weekly_report_is_a_periodic_task_beat_reads_from_the_database(
    school_class, django_capture_on_commit_callbacks, monkeypatch
):
    cohort = school_class["cohort"]
    schedule = schedule_weekly_report(
        organization=cohort.organization, requested_by=school_class["teacher"], cohort=cohort
    )
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "tessera.reports.weekly"
    assert task.queue == "reports"
    assert (task.crontab.day_of_week, task.crontab.hour, task.crontab.minute) == ("1", "6", "0")
    # beat loads the crontab entries due within two hours of now: make it Monday, 05:30
    monday_morning = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)
    monkeypatch.setattr("django_celery_beat.schedulers.aware_now", lambda: monday_morning)
    entries = DatabaseScheduler(app=celery_app, lazy=True).all_as_schedule()
    assert task.name in entries, "celery beat sees the schedule"
    assert entries[task.name].kwargs == {"schedule_id": schedule.pk}

    monday = date(2026, 11, 23)
    with django_capture_on_commit_callbacks(execute=False) as published:
        report = request_scheduled_report(schedule_id=schedule.pk, today=monday)
    assert (report.period_start, report.period_end) == (date(2026, 11, 16), date(2026, 11, 22))
    assert (report.cohort, report.schedule, len(published)) == (cohort, schedule, 1)

    browser = browser_for(school_class["teacher"])
    page = browser.get(reverse("reports")).content.decode()
    assert "Year 7 Blue" in page
    browser.post(reverse("unschedule_report", args=[schedule.pk]))
    assert not ReportSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert request_scheduled_report(schedule_id=schedule.pk) is None


def test_the_sweeper_republishes_lost_reports(patient_with_history, monkeypatch):
    published = []
    monkeypatch.setattr(
        "tessera.reports.services.publish", lambda *, report_id: published.append(report_id)
    )
    report = Report.objects.create(
        organization=patient_with_history.organization,
        kind="patient",
        subject_key=patient_with_history.subject_key,
        period_end=date.today(),
    )
    assert sweep_reports(publish_grace=timedelta(minutes=1)) == 0, "just asked: not lost yet"
    Report.objects.filter(pk=report.pk).update(created_at=report.created_at - timedelta(hours=1))
    assert sweep_reports(publish_grace=timedelta(minutes=1)) == 1
    assert published == [report.pk]


def test_a_clinic_report_counts_findings_and_checks_calibration_against_verdicts(
    patient_with_history, people, clinic_model, django_capture_on_commit_callbacks
):
    client = client_for(people["admin"])
    organization = patient_with_history.organization
    with django_capture_on_commit_callbacks(execute=False):
        asked = client.post(f"/api/v1/organizations/{organization.pk}/reports/", {})
    assert asked.status_code == 202, asked.content
    text = rendered_text(client, asked, django_capture_on_commit_callbacks, "clinic-report.png")
    for expected in (
        "Cohort report",
        "all of Test Clinic (1 patient)",
        "Flagged for review (the model was unsure) 1",
        "Findings",
        # one confirmed suggestion at 91%: a gap of 0.09 between probability and truth
        f"Finding calibration against verdicts ({clinic_model.name}): ECE 0.090",
        NOTICE,
    ):
        assert expected in text, expected
    assert "Jane Doe-Report" not in text, "a cohort report names no patient"


def test_a_student_report_says_what_each_analysis_left_out_and_why(
    school, make_user, django_capture_on_commit_callbacks
):
    teacher = make_user("teacher", organization=school, role=Role.TEACHER)
    version = register_model_version(name="school-v8", serves="school", bundle_path="s", metrics={})
    student = create_student(organization=school, student_number="L-1", full_name="Lia Leftout")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="poetry")
    result = finished(session, version, affect="engaged")
    reason = "Emotion inference from voice is prohibited for schools in the EU (Art. 5(1)(f))."
    AnalysisResult.objects.filter(pk=result.pk).update(left_out={"audio": reason})
    client = client_for(teacher)
    with django_capture_on_commit_callbacks(execute=False):
        asked = client.post(f"/api/v1/students/{student.pk}/reports/", {})
    assert asked.status_code == 202, asked.content
    text = rendered_text(client, asked, django_capture_on_commit_callbacks, "left-out.png")
    assert f"The recording's sound was left out: {reason}" in text
