"""`seed_demo` builds the demo clinic and school through the real services, and is idempotent."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from tessera.accounts.models import Membership, Organization, Role
from tessera.demo import DEMO_PASSWORD, PATIENT_COUNT, STUDENT_COUNT, VISITS_PER_PERSON
from tessera.jobs.demo_models import ensure_demo_models
from tessera.jobs.models import (
    SYNTHETIC_NOTICE,
    AnalysisJob,
    AnalysisResult,
    Feedback,
    LatestAnalysis,
    ModelVersion,
)
from tessera.records.kinds import subject_of, visit_of
from tessera.records.models import (
    Encounter,
    LearningSession,
    MediaAsset,
    MediaKind,
    Patient,
    Student,
    Transcript,
)
from tessera.records.storage import content_store
from tessera.records.uploads import validate_upload
from tessera.reports.content import report_content
from tessera.reports.models import Report

pytestmark = pytest.mark.django_db


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Organization, Membership, Patient, Student, MediaAsset)
    }


def test_seed_demo_creates_every_role_and_the_records(capsys, client):
    call_command("seed_demo")
    output = capsys.readouterr().out
    assert DEMO_PASSWORD in output
    assert "dr-okafor" in output
    assert "ms-lindqvist" in output

    clinic = Organization.objects.get(kind="clinic")
    school = Organization.objects.get(kind="school")
    assert set(Membership.objects.values_list("role", flat=True)) == set(Role.values)
    assert Patient.objects.filter(organization=clinic).count() == PATIENT_COUNT
    assert Student.objects.filter(organization=school).count() == STUDENT_COUNT
    kinds = dict(MediaAsset.objects.values_list("kind").annotate(n=Count("id")))
    visits, sessions = PATIENT_COUNT * VISITS_PER_PERSON, STUDENT_COUNT * VISITS_PER_PERSON
    assert kinds == {
        MediaKind.DICOM: visits,
        MediaKind.CLINICAL_NOTE: visits,
        MediaKind.SPEECH: visits,
        MediaKind.LEARNER_TEXT: sessions,
        MediaKind.LEARNER_AUDIO: sessions,
    }
    assert "No model serves clinics yet" in output, "without models it says what to do"
    signed_in = client.post(reverse("login"), {"username": "dr-okafor", "password": DEMO_PASSWORD})
    assert signed_in.status_code == 302, "the demo password signs in"
    assert Membership.objects.filter(user__username="analyst").count() == 2


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first


def test_demo_dicom_is_well_formed_and_passes_validation():
    call_command("seed_demo")
    asset = MediaAsset.objects.filter(kind=MediaKind.DICOM).first()
    with content_store().path(asset.sha256).open("rb") as stored:
        accepted = validate_upload(kind=MediaKind.DICOM, file=stored)
    meta = accepted.metadata
    assert meta["sop_class"] == "CT Image Storage"
    assert meta["bits_allocated"] == 16
    assert meta["rescale_slope"] == 1.0
    assert meta["rescale_intercept"] == -1024.0
    assert meta["pixel_spacing_mm"] == [0.7, 0.7]


def test_seed_demo_refuses_production(settings):
    from django.core.management import CommandError

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not in production"):
        call_command("seed_demo")


def test_the_demo_history_is_analysed_by_the_engine_and_fills_the_first_screens(
    settings, tmp_path, client, capsys
):
    """One seeding (demo models, transcripts, the analysed history: about a minute and a half)
    for every check of what it made."""

    settings.MLCORE_MODELS_DIR = tmp_path / "models"
    settings.TESSERA_FEATURE_CACHE = tmp_path / "features"
    ensure_demo_models(cases=16, epochs=1, log=lambda message: None)
    call_command("seed_demo")
    assert "past visits analysed in" in capsys.readouterr().out

    past = VISITS_PER_PERSON - 1
    assert AnalysisJob.objects.count() == (PATIENT_COUNT + STUDENT_COUNT) * past
    assert set(AnalysisJob.objects.values_list("status", flat=True)) == {"succeeded"}
    assert {job.timings["batch_cases"] > 1 for job in AnalysisJob.objects.all()} == {True}
    for result in AnalysisResult.objects.select_related("job"):
        visit = visit_of(result.job)
        assert result.created_at == visit.occurred_at + timedelta(minutes=12)
        assert timezone.now() - result.created_at < timedelta(weeks=8)
    today = Encounter.objects.filter(reason="Review today")
    assert today.count() == PATIENT_COUNT
    assert not AnalysisJob.objects.filter(visit_key__encounter__in=today).exists(), (
        "left to try Analyse on"
    )
    assert not AnalysisJob.objects.filter(
        visit_key__learning_session__in=LearningSession.objects.filter(title__contains="today")
    ).exists()
    school_results = AnalysisResult.objects.filter(job__visit_key__learning_session__isnull=False)
    # the past visits' recordings say real sentences, transcribed before they were analysed
    history = Transcript.objects.filter(media__visit_key__jobs__isnull=False).distinct()
    assert history.count() == (PATIENT_COUNT + STUDENT_COUNT) * past
    assert history.filter(status="done").count() >= 0.95 * history.count()
    # the sound never (the law), the transcript not for affect (the school's policy)
    assert all(set(result.left_out) == {"audio", "speech_text"} for result in school_results)
    for result in school_results:  # what was said is read wherever it was understood
        heard = Transcript.objects.get(media__visit_key__jobs=result.job).status == "done"
        assert ("speech_text" in result.modalities_used) == heard
    assert all(result.tutoring for result in school_results)
    judged = 2  # the two visits older than three weeks
    assert Feedback.objects.count() == (PATIENT_COUNT + STUDENT_COUNT) * judged
    assert LatestAnalysis.objects.count() == PATIENT_COUNT + STUDENT_COUNT

    for username in ("dr-okafor", "ms-lindqvist"):
        client.post(reverse("login"), {"username": username, "password": DEMO_PASSWORD})
        home = client.get(reverse("home")).content.decode()
        assert '<span class="meta">Not analysed yet</span>' not in home, username
        assert "No analyses in these weeks yet" not in home, username
        if username == "ms-lindqvist":
            assert '<svg class="chart"' in home, "the class's affect over the weeks"
        models = client.get(reverse("models")).content.decode()
        assert "as professionals judged it" in models, username
        client.post(reverse("logout"))

    call_command("seed_demo")
    assert AnalysisJob.objects.count() == (PATIENT_COUNT + STUDENT_COUNT) * past, "once"
    every_result_says_it_was_trained_on_synthetic_data(client)


def every_result_says_it_was_trained_on_synthetic_data(client) -> None:
    assert set(ModelVersion.objects.values_list("trained_on_synthetic_data", flat=True)) == {True}
    result = AnalysisResult.objects.filter(job__visit_key__encounter__isnull=False).first()
    patient = subject_of(result.job)
    client.post(reverse("login"), {"username": "dr-okafor", "password": DEMO_PASSWORD})
    page = client.get(reverse("patient", args=[patient.pk])).content.decode()
    assert page.count(f'<p class="meta synthetic">{SYNTHETIC_NOTICE}</p>') == 3, "each result"
    api = client.get("/api/v1/model-versions/").json()["results"]
    assert {version["trained_on_synthetic_data"] for version in api} == {True}
    today = timezone.localdate()
    report = Report.objects.create(
        organization=patient.organization,
        kind="patient",
        subject_key=patient.subject_key,
        period_start=today - timedelta(weeks=8),
        period_end=today,
    )
    assert SYNTHETIC_NOTICE in report_content(report).notice
