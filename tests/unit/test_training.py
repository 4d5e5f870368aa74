"""Learning from feedback: confirmed and corrected results become a manifest, a training run
fine-tunes the active model on it and promotes the new version only if it is not worse on
held-out cases; every version stays listed with its metrics."""

import hashlib
import json

import pytest

from mlcore.synthetic import write_dataset
from tessera.jobs import training
from tessera.jobs.models import AnalysisResult, ModelVersion, TrainingRun
from tessera.jobs.services import record_feedback, request_analysis
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.refusals import Refused
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db
CASES = 12


@pytest.fixture(scope="module")
def labelled_cases(tmp_path_factory):
    """Synthetic visits with their true findings and affect."""
    manifest = write_dataset(
        tmp_path_factory.mktemp("feedback") / "data",
        kind="clinic",
        cases=CASES,
        seed=11,
        image_size=32,
        voice_seconds=2.0,
    )
    return manifest.parent, [json.loads(line) for line in manifest.read_text().splitlines()]


@pytest.fixture
def reviewed(
    clinic, clinic_model, eager, labelled_cases, make_user, django_capture_on_commit_callbacks
):
    """Each visit analysed; the doctor confirmed half the results and corrected the others."""
    data, entries = labelled_cases
    doctor = make_user("dr-feedback")
    for number, entry in enumerate(entries):
        patient = create_patient(organization=clinic, mrn=f"F-{number}", full_name=f"P {number}")
        visit = create_encounter(patient=patient, occurred_at=WHEN)
        for kind, key in (
            (MediaKind.DICOM, "image"),
            (MediaKind.CLINICAL_NOTE, "text"),
            (MediaKind.SPEECH, "audio"),
        ):
            with (data / entry[key]).open("rb") as file:
                add_media(attached_to=visit, kind=kind, file=file)
        with django_capture_on_commit_callbacks(execute=True):
            job = request_analysis(attached_to=visit, task="all")
        result = AnalysisResult.objects.get(job=job)
        if number % 2:
            record_feedback(result=result, kind="confirm", given_by=doctor)
        else:
            record_feedback(
                result=result,
                kind="correct",
                given_by=doctor,
                diagnosis=entry["diagnosis"],
                emotion_label=entry["emotion"],
            )
    return doctor


def test_the_feedback_cases_are_labelled_by_the_latest_verdict(reviewed, labelled_cases):
    cases = {case.id: case for case in training.feedback_cases(serves="clinic")}
    assert len(cases) == CASES
    for result in AnalysisResult.objects.select_related("job"):
        case = cases[str(result.job_id)]
        verdict = result.feedback.get()
        if verdict.kind == "confirm":
            assert (case.diagnosis, case.emotion) == (result.findings, result.emotion_label)
        else:
            assert (case.diagnosis, case.emotion) == (verdict.diagnosis, verdict.emotion_label)
        assert all((case.image, case.audio, case.text)), "every modality, from the content store"

    corrected = AnalysisResult.objects.filter(feedback__kind="correct").first()
    record_feedback(result=corrected, kind="correct", given_by=None, emotion_label="pain")
    cases = {c.id: c for c in training.feedback_cases(serves="clinic")}
    latest = cases[str(corrected.job_id)]
    assert (latest.diagnosis, latest.emotion) == (None, "pain"), "only what was corrected"


def test_feedback_trains_a_version_that_is_promoted_only_if_not_worse(
    reviewed, clinic_model, settings, django_capture_on_commit_callbacks
):
    settings.TESSERA_TRAINING_MIN_CASES, settings.TESSERA_TRAINING_EPOCHS = CASES, 2
    base_weights = hashlib.sha256((clinic_model.bundle_dir / "model.safetensors").read_bytes())

    with django_capture_on_commit_callbacks(execute=True):
        run = training.request_training(serves="clinic", requested_by=reviewed)
    run.refresh_from_db()

    assert run.status in (TrainingRun.Status.PROMOTED, TrainingRun.Status.REJECTED), run.message
    assert run.cases == CASES
    assert run.metrics["held_out_cases"] == 3
    candidate, base = run.metrics["candidate_macro_f1"], run.metrics["base_macro_f1"]
    version = run.candidate
    assert (version.bundle_dir / "model.safetensors").is_file()
    assert version.metrics["held_out"] == run.metrics
    assert version.metrics["base_version"] == clinic_model.name
    clinic_model.refresh_from_db()
    if candidate >= base:
        assert run.status == TrainingRun.Status.PROMOTED
        assert (version.status, version.promoted_by) == (ModelVersion.Status.ACTIVE, reviewed)
        assert clinic_model.status == ModelVersion.Status.RETIRED
    else:
        assert run.status == TrainingRun.Status.REJECTED
        assert clinic_model.status == ModelVersion.Status.ACTIVE
    assert ModelVersion.objects.count() == 2, "every version stays listed"
    assert (
        base_weights.digest()
        == hashlib.sha256((clinic_model.bundle_dir / "model.safetensors").read_bytes()).digest()
    ), "fine-tuning works on a copy"


def test_a_version_worse_than_the_active_one_is_kept_out_of_service(
    reviewed, clinic_model, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.TESSERA_TRAINING_MIN_CASES, settings.TESSERA_TRAINING_EPOCHS = CASES, 1
    ModelVersion.objects.filter(pk=clinic_model.pk).update(trained_on_synthetic_data=True)
    scores = iter([0.41, 0.62])  # the candidate is scored first, then the active model
    monkeypatch.setattr(training, "held_out_score", lambda *args, **kwargs: next(scores))
    with django_capture_on_commit_callbacks(execute=True):
        run = training.request_training(serves="clinic", requested_by=reviewed)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.REJECTED
    assert run.message == (f"kept {clinic_model.name}: held-out macro-F1 0.410 is below its 0.620")
    assert run.candidate.status == ModelVersion.Status.REJECTED
    assert run.candidate.promoted_by is None
    assert run.candidate.trained_on_synthetic_data, "fine-tuning keeps what the base learnt from"
    assert ModelVersion.objects.get(status="active") == clinic_model


def test_training_needs_enough_feedback_and_a_model_to_start_from(clinic_model, settings):
    settings.TESSERA_TRAINING_MIN_CASES = 5
    with pytest.raises(Refused, match="only 0 results have been confirmed or corrected"):
        training.request_training(serves="clinic")
    with pytest.raises(Refused, match="no active school model"):
        training.request_training(serves="school")
    assert not TrainingRun.objects.exists()


def test_a_run_is_taken_once(reviewed, clinic_model, settings, django_capture_on_commit_callbacks):
    settings.TESSERA_TRAINING_MIN_CASES = CASES
    with django_capture_on_commit_callbacks(execute=False):
        run = training.request_training(serves="clinic", requested_by=reviewed)
    assert training.claim_run(run_id=run.pk)
    assert not training.claim_run(run_id=run.pk), "a second delivery does nothing"


def test_the_command_queues_a_run_or_says_why_it_cannot(
    reviewed, clinic_model, settings, django_capture_on_commit_callbacks
):
    from django.core.management import CommandError, call_command

    settings.TESSERA_TRAINING_MIN_CASES = CASES + 1
    with pytest.raises(CommandError, match=f"only {CASES} results have been confirmed"):
        call_command("train_from_feedback", "clinic", "--by", reviewed.username)
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("train_from_feedback", "clinic", "--by", "nobody")
    settings.TESSERA_TRAINING_MIN_CASES = CASES
    with django_capture_on_commit_callbacks(execute=False) as published:
        call_command("train_from_feedback", "clinic", "--by", reviewed.username)
    run = TrainingRun.objects.get()
    assert (run.status, run.requested_by) == (TrainingRun.Status.QUEUED, reviewed)
    assert len(published) == 1, "handed to the gpu queue when the transaction commits"
