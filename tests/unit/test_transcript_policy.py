"""What a recording says and how it sounds are two inputs (issue 20, the AI Act precisely): the
policy matrix of which of them each task reads, by kind of organization, jurisdiction and the
"affect from transcripts" setting, and an EU school's analysis run by a model that reads
transcripts: the sound never enters it, the transcript feeds the tutoring suggestions, and the
affect estimate rests on the written text alone."""

import pytest

from mlcore.config import TaskConfig
from mlcore.data import read_manifest
from mlcore.engine import InferenceEngine
from mlcore.registry import save_bundle
from mlcore.speech import Segment
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset
from mlcore.train import TrainingConfig, train
from tessera.accounts.models import Organization
from tessera.accounts.policy import Analysis, default_policy
from tessera.accounts.services import create_organization
from tessera.jobs.features import prepare, withheld_from
from tessera.jobs.models import JobStatus
from tessera.jobs.services import promote_model_version, register_model_version, request_analysis
from tessera.records.models import MediaKind, Transcript, TranscriptStatus
from tessera.records.selectors import sealed
from tessera.records.services import (
    add_media,
    create_encounter,
    create_learning_session,
    create_patient,
    create_student,
)
from tests.conftest import upload
from tests.mlcore.conftest import tiny_config
from tests.unit.conftest import WHEN, tiny_school_bundle

SAID = "I keep getting it wrong and I do not know why."
WRITTEN = b"I kept getting it wrong."


@pytest.fixture(scope="module")
def speech_bundles(tmp_path_factory):
    """Tiny clinic and school models that read what a recording says besides its sound."""
    root = tmp_path_factory.mktemp("speech-models")
    clinic_cases = read_manifest(
        write_dataset(root / "clinic", kind="clinic", cases=16, seed=2, image_size=32)
    )
    clinic = train(
        tiny_config(
            modalities=["image", "text", "audio", "speech_text"],
            tasks=TaskConfig(
                diagnosis_labels=list(CLINIC_FINDINGS), emotion_labels=list(CLINIC_AFFECTS)
            ),
        ),
        clinic_cases[:12],
        clinic_cases[12:],
        TrainingConfig(epochs=1, batch_size=8, progress=False),
    )
    save_bundle(root / "clinic-speech", clinic.model, metrics=clinic.metrics)
    tiny_school_bundle(
        root,
        "school-speech",
        modalities=["text", "audio", "speech_text"],
        cases=16,
        seed=3,
        train_on=12,
        voice_seconds=3.0,  # write_dataset's default, as before
    )
    return root


@pytest.fixture
def speech_models(speech_bundles, settings, db):
    settings.MLCORE_MODELS_DIR = speech_bundles
    for kind in ("clinic", "school"):
        version = register_model_version(
            name=f"{kind}-speech", serves=kind, bundle_path=f"{kind}-speech", metrics={}
        )
        promote_model_version(version=version, promoted_by=None)


def organization(kind: str, jurisdiction: str, *, transcript_affect: bool) -> Organization:
    allowed = default_policy(kind=kind, jurisdiction=jurisdiction)
    allowed = [a for a in allowed if a != Analysis.EMOTION_FROM_TRANSCRIPT]
    if transcript_affect:
        allowed.append(Analysis.EMOTION_FROM_TRANSCRIPT)
    return create_organization(
        name=f"{kind} {jurisdiction}",
        slug=f"{kind}-{jurisdiction}-{transcript_affect}".lower(),
        kind=kind,
        jurisdiction=jurisdiction,
        allowed_analyses=allowed,
    )


def visit_with_recording(organization: Organization, wav_audio: bytes):
    """A visit or session with a written text and a recording whose transcript is done."""
    if organization.kind == "clinic":
        patient = create_patient(organization=organization, mrn="P-1", full_name="Pat Said")
        visit = create_encounter(patient=patient, occurred_at=WHEN)
        text_kind, audio_kind = MediaKind.CLINICAL_NOTE, MediaKind.SPEECH
    else:
        student = create_student(organization=organization, student_number="S-1", full_name="Sam")
        visit = create_learning_session(
            student=student, occurred_at=WHEN, subject_area="Mathematics"
        )
        text_kind, audio_kind = MediaKind.LEARNER_TEXT, MediaKind.LEARNER_AUDIO
    add_media(attached_to=visit, kind=text_kind, file=upload(WRITTEN))
    recording = add_media(attached_to=visit, kind=audio_kind, file=upload(wav_audio))
    Transcript.objects.filter(media=recording).update(
        status=TranscriptStatus.DONE,
        sealed_segments=sealed(
            [Segment(start=0.0, end=3.0, text=SAID, log_probability=-0.2)], encrypted=False
        ),
    )
    return visit


def test_an_eu_school_starts_with_affect_from_transcripts_off_and_others_with_it_on():
    assert Analysis.EMOTION_FROM_TRANSCRIPT not in default_policy(kind="school", jurisdiction="EU")
    assert Analysis.EMOTION_FROM_VOICE not in default_policy(kind="school", jurisdiction="EU")
    for kind, jurisdiction in (("school", "US"), ("clinic", "EU"), ("clinic", "US")):
        assert Analysis.EMOTION_FROM_TRANSCRIPT in default_policy(
            kind=kind, jurisdiction=jurisdiction
        )


def test_an_eu_school_may_turn_affect_from_transcripts_on_but_never_affect_from_voice(db):
    school = organization("school", "EU", transcript_affect=True)
    school.full_clean()  # lawful: words are not biometric data
    school.allowed_analyses.append(Analysis.EMOTION_FROM_VOICE)
    with pytest.raises(Exception, match=r"Art\. 5\(1\)\(f\)"):
        school.full_clean()


# (kind, jurisdiction, affect from transcripts on, task) → (sound read, transcript read for
# affect, transcript read at all)
MATRIX = [
    (kind, jurisdiction, on, task)
    for kind, tasks in (
        ("clinic", ("all", "emotion", "diagnosis")),
        ("school", ("all", "emotion", "tutoring")),
    )
    for jurisdiction in ("EU", "US")
    for on in (True, False)
    for task in tasks
]


@pytest.mark.parametrize(("kind", "jurisdiction", "on", "task"), MATRIX)
def test_each_cell_of_the_policy_matrix(speech_models, wav_audio, kind, jurisdiction, on, task):
    visit = visit_with_recording(organization(kind, jurisdiction, transcript_affect=on), wav_audio)
    job = request_analysis(attached_to=visit, task=task, publish_to_workers=False)
    eu_school = kind == "school" and jurisdiction == "EU"
    reads_affect = task != "diagnosis"
    sound_read = not (eu_school and reads_affect)
    transcript_for_affect = on or not reads_affect
    transcript_read = transcript_for_affect or task != "emotion"

    assert ("audio" in job.left_out) == (not sound_read), job.left_out
    if not sound_read:
        assert "Art. 5(1)(f)" in job.left_out["audio"]
    assert ("speech_text" in job.left_out) == (not transcript_for_affect), job.left_out
    if not transcript_for_affect:
        assert "Emotion / affect from transcripts" in job.left_out["speech_text"]
    recording_kept = job.media.filter(kind__in=[MediaKind.SPEECH, MediaKind.LEARNER_AUDIO])
    assert recording_kept.exists() == (sound_read or transcript_read)
    assert withheld_from(job) == ({} if transcript_for_affect else {"emotion": ["speech_text"]})
    if recording_kept.exists():
        features = prepare(job)
        assert (features.audio is not None) == sound_read
        assert (features.speech_ids is not None) == transcript_read


@pytest.fixture
def eu_school_session(speech_models, wav_audio):
    return visit_with_recording(organization("school", "EU", transcript_affect=False), wav_audio)


def test_an_eu_school_reads_the_transcript_for_tutoring_and_never_the_sound(
    eu_school_session, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = request_analysis(attached_to=eu_school_session, task="all")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    result = job.results.get()
    # the sound is masked for every head: no head's answer reads it
    assert "audio" not in result.modalities_used
    assert result.modalities_used == ["text", "speech_text"]
    assert set(result.contributions["emotion"]) == {"text"}
    assert result.tutoring
    notes = result.left_out_notes
    assert any(note.startswith("The recording's sound was left out: Emotion") for note in notes)
    assert any(
        note.startswith("What the recording says was not read for the affect") for note in notes
    )


def test_without_affect_from_transcripts_the_affect_rests_on_the_written_text_alone(
    eu_school_session, speech_bundles
):
    job = request_analysis(attached_to=eu_school_session, task="all", publish_to_workers=False)
    features = prepare(job)
    engine = InferenceEngine(speech_bundles / "school-speech")
    [read] = engine.predict_features([features], explain=False)
    written_only = features.__class__(text_ids=features.text_ids, facts=features.facts)
    with_transcript = features.__class__(text_ids=features.text_ids, speech_ids=features.speech_ids)
    [alone], [both] = (
        engine.predict_features([f], explain=False) for f in (written_only, with_transcript)
    )
    assert read.emotion == pytest.approx(alone.emotion, abs=1e-5)
    assert read.emotion != pytest.approx(both.emotion, abs=1e-5)  # the transcript would move it


def test_the_admin_page_explains_affect_from_transcripts(admin_client, db):
    school = organization("school", "EU", transcript_affect=False)
    page = admin_client.get(f"/admin/accounts/organization/{school.pk}/change/").content.decode()
    assert "Emotion / affect from transcripts (the words a recording says)" in page
    assert "never from how the voice sounds" in page
    assert "it starts off for EU schools" in page


@pytest.mark.parametrize("transcript_affect", [False, True])
def test_a_verdict_teaches_affect_from_a_transcript_only_where_the_policy_reads_it(
    speech_models, wav_audio, eager, django_capture_on_commit_callbacks, transcript_affect
):
    from tessera.jobs import training
    from tessera.jobs.services import record_feedback

    session = visit_with_recording(
        organization("school", "EU", transcript_affect=transcript_affect), wav_audio
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = request_analysis(attached_to=session, task="all")
    result = job.results.get()
    record_feedback(result=result, kind="correct", given_by=None, emotion_label="frustrated")
    [case] = training.feedback_cases(serves="school")
    assert case.emotion == "frustrated"
    assert case.audio is None  # the sound, never
    assert case.speech_text == (SAID if transcript_affect else None)
