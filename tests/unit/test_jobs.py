"""The analysis pipeline in one process: requests and the organization's policy, leases,
preprocessing and inference tasks, idempotent results, cancellation, retries and feedback.
(Real worker processes, brokers and failures are tested in tests/integration.)"""

import re
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.utils import timezone

from tessera.jobs.models import (
    AnalysisJob,
    AnalysisResult,
    Feedback,
    JobStatus,
    ModelVersion,
    Timing,
)
from tessera.jobs.services import (
    cancel_job,
    claim_for_inference,
    claim_for_preprocessing,
    complete_job,
    hand_to_inference,
    promote_model_version,
    record_feedback,
    register_model_version,
    renew_leases,
    request_analysis,
    retry_job,
)
from tessera.records.models import MediaKind
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tessera.records.storage import content_store
from tessera.refusals import Refused
from tests.conftest import upload

pytestmark = pytest.mark.django_db
WHEN = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def run(encounter, django_capture_on_commit_callbacks, **kwargs) -> AnalysisJob:
    with django_capture_on_commit_callbacks(execute=True):
        job = request_analysis(attached_to=encounter, **kwargs)
    job.refresh_from_db()
    return job


def test_a_requested_analysis_runs_to_one_result(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks, make_user
):
    doctor = make_user("doc")
    job = run(encounter, django_capture_on_commit_callbacks, task="all", requested_by=doctor)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.published_at is not None
    assert job.attempts == 1
    assert job.progress == 100
    assert set(job.timings) == {"preprocessing", "inference", "batch_cases", *Timing}
    assert job.timings["batch_cases"] == 1
    # the breakdown adds up within what the stages took (decoding and the cache's write are
    # inside preprocessing; the forward pass and the explanation inside inference)
    inside = job.timings[Timing.DECODING] + job.timings[Timing.FEATURE_CACHE]
    assert 0 < inside <= job.timings["preprocessing"] + job.timings["inference"]
    forward, explained = job.timings[Timing.FORWARD], job.timings[Timing.EXPLANATION]
    assert 0 < forward + explained <= job.timings["inference"]
    assert job.timings[Timing.RESULT_WRITE] > 0
    (result,) = job.results.all()
    assert result.model_version == clinic_model
    assert set(result.diagnosis) == {"suspicious_mass"}
    assert result.emotion_label in result.emotion
    assert result.modalities_used == ["image", "text", "audio"]
    assert set(result.contributions) == {"suspicious_mass", "emotion"}, "one set per answer"
    for values in result.contributions.values():
        assert set(values) == {"image", "text", "audio"}
        assert all(-1.0 <= value <= 1.0 for value in values.values())
    assert 0.0 <= result.uncertainty <= 1.0


def test_a_job_stores_only_what_was_asked(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks
):
    job = run(encounter, django_capture_on_commit_callbacks, task="diagnosis")
    result = job.results.get()
    assert result.diagnosis
    assert result.emotion == {}
    assert result.emotion_label == ""
    assert set(result.contributions) == {"suspicious_mass"}


@pytest.mark.parametrize(("threshold", "expected"), [(99, {"diagnosis", "emotion"}), (1, set())])
def test_an_organization_sets_when_an_answer_needs_a_person(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks, threshold, expected
):
    organization = encounter.patient.organization
    organization.needs_person_below = threshold
    organization.save()
    result = run(encounter, django_capture_on_commit_callbacks, task="all").results.get()
    assert set(result.needs_person) == expected
    assert result.abstain == bool(expected)
    for why in result.needs_person.values():
        assert why["reason"] == "low_confidence", why
        assert "below the 99% asked for" in why["detail"]


def test_an_answer_is_only_judged_for_what_the_job_asked(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks
):
    organization = encounter.patient.organization
    organization.needs_person_below = 99
    organization.save()
    result = run(encounter, django_capture_on_commit_callbacks, task="diagnosis").results.get()
    assert set(result.needs_person) == {"diagnosis"}


def test_the_same_files_are_preprocessed_once(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks, settings
):
    run(encounter, django_capture_on_commit_callbacks, task="all")
    cached = list(settings.TESSERA_FEATURE_CACHE.iterdir())
    run(encounter, django_capture_on_commit_callbacks, task="all")
    assert list(settings.TESSERA_FEATURE_CACHE.iterdir()) == cached
    assert len(cached) == 1


def test_a_damaged_stored_file_fails_the_job_clearly_without_retrying(
    clinic, clinic_model, eager, django_capture_on_commit_callbacks, dicom_bytes
):
    patient = create_patient(organization=clinic, mrn="J-2", full_name="Damaged Scan")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    asset = add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    content_store().path(asset.sha256).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 400)  # bit rot
    job = run(visit, django_capture_on_commit_callbacks, task="diagnosis")
    assert job.status == JobStatus.FAILED
    assert job.error_code == "bad_input"
    assert "DICOM" in job.error_message
    assert "checksum" in job.error_message
    assert job.attempts == 1
    assert not job.results.exists()


AI_ACT = r"Art\. 5\(1\)\(f\)"


@pytest.fixture
def eu_session(school, wav_audio):
    student = create_student(organization=school, student_number="S-9", full_name="Voice Pupil")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="Mathematics")
    add_media(attached_to=session, kind=MediaKind.LEARNER_AUDIO, file=upload(wav_audio))
    add_media(
        attached_to=session, kind=MediaKind.LEARNER_TEXT, file=upload(b"I kept getting it wrong.")
    )
    return session


@pytest.mark.parametrize("task", ["all", "tutoring", "emotion"])
def test_an_eu_school_analyses_a_session_without_its_recording_and_says_why(
    eu_session, trained_school_model, eager, django_capture_on_commit_callbacks, task
):
    job = run(eu_session, django_capture_on_commit_callbacks, task=task)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert set(job.left_out) == {"audio"}
    assert re.search(AI_ACT, job.left_out["audio"])
    assert [asset.kind for asset in job.media.all()] == [MediaKind.LEARNER_TEXT]
    result = job.results.get()
    assert result.modalities_used == ["text"]
    assert all(set(values) == {"text"} for values in result.contributions.values())
    assert result.left_out == job.left_out
    assert result.left_out_notes[0].startswith(
        "The recording's sound was left out: Emotion inference"
    )
    assert bool(result.emotion) == (task != "tutoring")  # affect from the text
    assert bool(result.tutoring) == (task != "emotion")


def test_a_session_with_only_a_recording_is_refused_with_its_own_sentence(
    school, trained_school_model, wav_audio
):
    student = create_student(organization=school, student_number="S-8", full_name="Only Voice")
    session = create_learning_session(student=student, occurred_at=WHEN, subject_area="Mathematics")
    add_media(attached_to=session, kind=MediaKind.LEARNER_AUDIO, file=upload(wav_audio))
    for task in ("all", "tutoring", "emotion"):
        with pytest.raises(Refused) as refused:
            request_analysis(attached_to=session, task=task)
        assert refused.value.code == "policy"
        assert refused.value.message.startswith(
            "Nothing in this learning session may be analysed: its recording may not be used."
        )
        assert re.search(AI_ACT, refused.value.message)
    assert not AnalysisJob.objects.exists()


def test_asking_explicitly_for_the_recording_of_an_eu_pupil_is_still_refused(
    eu_session, trained_school_model
):
    recording = eu_session.media.get(kind=MediaKind.LEARNER_AUDIO)
    for task in ("emotion", "tutoring", "all"):
        with pytest.raises(Refused, match=AI_ACT):
            request_analysis(attached_to=eu_session, task=task, media=[recording])
    assert not AnalysisJob.objects.exists()


def test_a_clinic_leaves_out_nothing(encounter, clinic_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="all")
    assert job.left_out == {}
    assert job.media.count() == 3


def test_requests_are_refused_clearly(encounter, clinic, school, make_user):
    with pytest.raises(Refused, match="no model serves clinics"):
        request_analysis(attached_to=encounter, task="diagnosis")
    other = create_encounter(patient=encounter.patient, occurred_at=WHEN)
    with pytest.raises(Refused, match="nothing to analyse"):
        request_analysis(attached_to=other, task="diagnosis")
    with pytest.raises(Refused, match="belong to another encounter"):
        request_analysis(attached_to=other, task="diagnosis", media=list(encounter.media.all()))
    clinic.allowed_analyses = ["diagnosis"]
    clinic.save()
    with pytest.raises(Refused, match="turned off by Test Clinic's policy"):
        request_analysis(attached_to=encounter, task="emotion")
    assert not AnalysisJob.objects.exists()


def test_two_workers_handed_the_same_job_run_it_once(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="diagnosis")
    assert claim_for_preprocessing(job_id=job.pk, worker="a")
    assert not claim_for_preprocessing(job_id=job.pk, worker="b")
    assert hand_to_inference(job_id=job.pk, worker="a")
    assert claim_for_inference(job_id=job.pk, worker="gpu-1")
    assert not claim_for_inference(job_id=job.pk, worker="gpu-2")
    prediction = {
        "diagnosis": {"suspicious_mass": 0.9},
        "findings": ["suspicious_mass"],
        "emotion": {},
        "emotion_label": None,
        "modalities_used": ["image"],
        "contributions": {"suspicious_mass": {"image": 0.4}},
        "uncertainty": 0.2,
        "abstain": False,
        "needs_person": {},
    }
    complete_job(job_id=job.pk, worker="gpu-1", prediction=prediction)
    complete_job(job_id=job.pk, worker="gpu-2", prediction=prediction)  # a duplicate delivery
    assert AnalysisResult.objects.filter(job=job).count() == 1


def test_an_expired_lease_lets_another_worker_take_over_until_the_attempt_cap(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="diagnosis")
    for attempt, worker in enumerate(("a", "b", "c"), start=1):
        assert claim_for_preprocessing(job_id=job.pk, worker=worker)
        AnalysisJob.objects.filter(pk=job.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert AnalysisJob.objects.get(pk=job.pk).attempts == attempt
    assert not claim_for_preprocessing(job_id=job.pk, worker="d"), "three attempts at most"


def test_a_cancelled_job_is_not_run_and_can_be_retried(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = request_analysis(attached_to=encounter, task="diagnosis")
    assert cancel_job(job=job)
    for callback in callbacks:
        callback()  # the message arrives after the cancellation
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not job.results.exists()
    assert not cancel_job(job=job)
    with django_capture_on_commit_callbacks(execute=True):
        again = retry_job(job=job)
    again.refresh_from_db()
    assert again.pk != job.pk
    assert again.status == JobStatus.SUCCEEDED
    assert set(again.media.all()) == set(job.media.all())


def test_a_running_job_cannot_be_retried(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="diagnosis")
    with pytest.raises(Refused, match="only a failed or cancelled job"):
        retry_job(job=job)


def test_feedback_is_checked_against_the_models_labels(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks, make_user
):
    doctor = make_user("doc")
    result = run(encounter, django_capture_on_commit_callbacks, task="all").results.get()
    record_feedback(result=result, kind="confirm", given_by=doctor)
    record_feedback(
        result=result, kind="correct", given_by=doctor, diagnosis=[], emotion_label="pain"
    )
    with pytest.raises(Refused, match="unknown findings: broken_leg"):
        record_feedback(result=result, kind="correct", given_by=doctor, diagnosis=["broken_leg"])
    with pytest.raises(Refused, match="unknown affect label: joy"):
        record_feedback(result=result, kind="correct", given_by=doctor, emotion_label="joy")
    with pytest.raises(Refused, match="which of the suggested interventions"):
        record_feedback(
            result=result, kind="useful", given_by=doctor, intervention="worked-example"
        )
    assert Feedback.objects.filter(result=result).count() == 2


def test_promoting_a_model_retires_the_previous_one(clinic_model, make_user):
    analyst = make_user("analyst")
    newer = register_model_version(
        name="clinic-v2", serves="clinic", bundle_path="clinic-v1", metrics={}
    )
    promote_model_version(version=newer, promoted_by=analyst)
    clinic_model.refresh_from_db()
    assert clinic_model.status == ModelVersion.Status.RETIRED
    assert ModelVersion.objects.get(status="active") == newer
    assert newer.promoted_by == analyst
    assert newer.promoted_at is not None


@pytest.fixture
def published(monkeypatch):
    """Records what the sweeper publishes instead of sending it to a broker."""
    sent = []
    monkeypatch.setattr(
        "tessera.jobs.services.requests.publish",
        lambda *, job_id, stage: sent.append((job_id, stage)),
    )
    return sent


def _job(encounter, django_capture_on_commit_callbacks, **fields) -> AnalysisJob:
    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="diagnosis")
    AnalysisJob.objects.filter(pk=job.pk).update(**fields)
    return job


def test_the_sweeper_publishes_lost_and_abandoned_jobs_and_gives_up_on_exhausted_ones(
    encounter, clinic_model, django_capture_on_commit_callbacks, published
):
    from tessera.jobs.services import sweep_stale_jobs

    now = timezone.now()
    long_ago, expired, later = (
        now - timedelta(hours=1),
        now - timedelta(seconds=5),
        now + timedelta(minutes=5),
    )
    make = partial(_job, encounter, django_capture_on_commit_callbacks)
    never_published = make(created_at=long_ago)
    just_created = make()
    lost_message = make(published_at=long_ago)
    fresh_message = make(published_at=now)
    cpu_worker_died = make(
        status=JobStatus.PREPROCESSING, attempts=1, lease_owner="cpu-1", lease_expires_at=expired
    )
    gpu_worker_died = make(
        status=JobStatus.RUNNING, attempts=1, lease_owner="gpu-1", lease_expires_at=expired
    )
    still_working = make(
        status=JobStatus.RUNNING, attempts=1, lease_owner="gpu-2", lease_expires_at=later
    )
    waiting_long = make(status=JobStatus.RUNNING, attempts=1, updated_at=long_ago)
    waiting_briefly = make(status=JobStatus.RUNNING, attempts=1, updated_at=now)
    exhausted = make(
        status=JobStatus.PREPROCESSING, attempts=3, lease_owner="cpu-2", lease_expires_at=expired
    )
    overran = make(
        status=JobStatus.RUNNING,
        attempts=1,
        lease_owner="gpu-3",
        lease_expires_at=later,  # its heartbeat still beats, for work that never ends
        started_at=long_ago,
    )

    outcome = sweep_stale_jobs(
        publish_grace=timedelta(seconds=30),
        stale_after=timedelta(minutes=5),
        max_duration=timedelta(minutes=30),
    )

    assert set(published) == {
        (never_published.pk, "preprocess"),
        (lost_message.pk, "preprocess"),
        (cpu_worker_died.pk, "preprocess"),
        (gpu_worker_died.pk, "infer"),
        (waiting_long.pk, "infer"),
    }
    assert outcome == {"republished": 5, "failed": 1, "timed_out": 1}
    exhausted.refresh_from_db()
    assert exhausted.status == JobStatus.FAILED
    assert exhausted.error_code == "gave_up"
    assert "stopped after 3 attempts" in exhausted.error_message
    overran.refresh_from_db()
    assert (overran.status, overran.error_code) == (JobStatus.FAILED, "timed_out")
    assert "longer than the 30 minutes an analysis may take" in overran.error_message
    assert not renew_leases(job_ids=[overran.pk], worker="gpu-3"), "its lease is not renewed"
    for untouched in (just_created, fresh_message, still_working, waiting_briefly):
        untouched.refresh_from_db()
        assert untouched.status in (JobStatus.QUEUED, JobStatus.RUNNING)


def test_a_gpu_takeover_counts_an_attempt_but_waiting_does_not(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    job = _job(encounter, django_capture_on_commit_callbacks, status=JobStatus.RUNNING, attempts=1)
    assert claim_for_inference(job_id=job.pk, worker="gpu-1")
    assert AnalysisJob.objects.get(pk=job.pk).attempts == 1
    AnalysisJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert claim_for_inference(job_id=job.pk, worker="gpu-2")
    assert AnalysisJob.objects.get(pk=job.pk).attempts == 2


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_a_heartbeat_keeps_the_lease_while_the_work_goes_on(
    encounter, clinic_model, django_capture_on_commit_callbacks
):
    import time

    from tessera.jobs.heartbeat import heartbeat

    job = _job(encounter, django_capture_on_commit_callbacks)
    assert claim_for_preprocessing(job_id=job.pk, worker="cpu-1", lease=timedelta(seconds=0.3))
    with heartbeat(job_ids=[job.pk], worker="cpu-1", lease=timedelta(seconds=0.3)) as lost:
        time.sleep(1.0)  # three leases long
        assert AnalysisJob.objects.get(pk=job.pk).lease_expires_at > timezone.now()
        assert not claim_for_preprocessing(job_id=job.pk, worker="cpu-2")
    assert not lost.is_set()
    cancel_job(job=job)
    with heartbeat(job_ids=[job.pk], worker="cpu-1", lease=timedelta(seconds=0.3)) as lost:
        time.sleep(0.3)
    assert lost.is_set(), "a cancelled job's lease cannot be renewed"


def test_a_job_taken_back_from_a_dead_worker_still_ends_with_one_result(
    encounter, clinic_model, eager, django_capture_on_commit_callbacks
):
    from tessera.jobs.services import sweep_stale_jobs

    with django_capture_on_commit_callbacks(execute=False):
        job = request_analysis(attached_to=encounter, task="all")
    assert claim_for_preprocessing(job_id=job.pk, worker="died-mid-job")
    AnalysisJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    sweep_stale_jobs(
        publish_grace=timedelta(seconds=30),
        stale_after=timedelta(minutes=5),
        max_duration=timedelta(minutes=30),
    )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert job.results.count() == 1


def test_cached_features_keep_the_sentences_of_the_text_and_the_transcript(tmp_path):
    """The rationale quotes a sentence of either: a job read from the feature cache must find
    the same sentences as one preprocessed afresh."""
    import numpy as np

    from mlcore.data import Features
    from tessera.jobs.features import _load, _save
    from tessera.storage import LocalBlobStore

    features = Features(
        text_ids=np.array([101, 7, 102]),
        sentences=[("I am lost.", 1, 2)],
        speech_ids=np.array([101, 5, 6, 102]),
        spoken_sentences=[("I give up.", 1, 2), ("Fine.", 2, 3)],
        facts={"text_language": "en"},
    )
    cache = LocalBlobStore(tmp_path)
    _save(features, cache=cache, name="case.npz")
    with cache.open("case.npz") as stored:
        again = _load(stored)
    assert again.sentences == features.sentences
    assert again.spoken_sentences == features.spoken_sentences
    assert again.speech_ids.tolist() == features.speech_ids.tolist()
