"""Transcription with real workers (issue 20): a spoken recording uploaded in one process is
transcribed by a worker on the `speech` queue, and shows in the API and on the page; an
analysis requested at once waits for the transcript and reads what was said (its `speech_text`
contribution); a 30-minute recording, worked through a span per task, does not hold up a short
one queued after it."""

import json
import time

import numpy as np
import pytest
import soundfile

from mlcore.config import FusionConfig, ModelConfig, TaskConfig
from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import CLINIC_AFFECTS, CLINIC_FINDINGS, write_dataset
from mlcore.train import TrainingConfig, train
from tests.conftest import spoken
from tests.integration.processes import (
    manage,
    pipeline_environment,
    query,
    shell,
    throwaway_database,
    worker_process,
)

pytestmark = pytest.mark.worker

SENTENCE = "The patient reports a cough for three weeks and some pain on the right side."

UPLOAD = """
from pathlib import Path
from django.utils import timezone
from tessera.accounts.models import Organization, Role
from tessera.accounts.services import create_organization, set_membership
from tessera.records.models import Patient
from tessera.records.services import add_media, create_encounter, create_patient
clinic = Organization.objects.filter(slug="speech").first() or create_organization(
    name="Clinic", slug="speech", kind="clinic", jurisdiction="US"
)
patient = Patient.objects.filter(mrn="S-1").first() or create_patient(
    organization=clinic, mrn="S-1", full_name="Ada Speaker"
)
visit = create_encounter(patient=patient, occurred_at=timezone.now())
with Path({path!r}).open("rb") as file:
    asset = add_media(attached_to=visit, kind="speech", file=file, filename="dictation.flac")
print(asset.transcript.pk)
"""

SHOWN = """
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
from tessera.accounts.models import Organization, Role
from tessera.accounts.services import set_membership
from tessera.records.models import Transcript
transcript = Transcript.objects.select_related("media").get(pk={pk})
clinician = get_user_model().objects.create_user("dr-listener", password="x")
set_membership(
    user=clinician, organization=Organization.objects.get(slug="speech"), role=Role.CLINICIAN
)
api = APIClient()
api.force_authenticate(clinician)
body = api.get(f"/api/v1/media/{{transcript.media_id}}/").json()["transcript"]
print(body["status"], len(body["segments"]), body["text"])
browser = Client()
browser.force_login(clinician)
patient = transcript.media.visit_key.encounter.patient
page = browser.get(f"/patients/{{patient.pk}}/", HTTP_HOST="localhost").content.decode()
print("segment-shown", 'class="segment" data-seek="0.0"' in page)
"""


# One of the sentences the synthetic patients say when distressed (mlcore/resources/speech).
DISTRESSED = "I am really frightened. The pain keeps me awake and nothing I take seems to help."

ANALYSE_AT_ONCE = """
from pathlib import Path
from django.utils import timezone
from tessera.accounts.services import create_organization
from tessera.jobs.services import promote_model_version, register_model_version, request_analysis
from tessera.records.services import add_media, create_encounter, create_patient
clinic = create_organization(name="Clinic", slug="said", kind="clinic", jurisdiction="US")
version = register_model_version(
    name="listening", serves="clinic", bundle_path="listening", metrics={{}}
)
promote_model_version(version=version, promoted_by=None)
patient = create_patient(organization=clinic, mrn="L-1", full_name="Lee Listened")
visit = create_encounter(patient=patient, occurred_at=timezone.now())
with Path({recording!r}).open("rb") as file:
    add_media(attached_to=visit, kind="speech", file=file, filename="patient.wav")
print(request_analysis(attached_to=visit, task="all").pk.hex)
"""

RESULT = """
import json
import uuid
from tessera.jobs.models import AnalysisJob
job = AnalysisJob.objects.get(pk=uuid.UUID({pk!r}))
result = job.results.first()
print(json.dumps({{
    "status": job.status,
    "error": job.error_message,
    "used": result and result.modalities_used,
    "contributions": result and result.contributions,
    "rationales": result and result.rationales,
}}))
"""


@pytest.fixture(scope="module")
def listening_models(tmp_path_factory):
    """A small clinic model that reads what a recording says (the shipped MiniLM, frozen),
    trained on synthetic cases whose spoken sentences carry distress."""
    root = tmp_path_factory.mktemp("listening")
    cases = read_manifest(
        write_dataset(
            root / "data", kind="clinic", cases=240, seed=11, image_size=32, voice_seconds=0.5
        )
    )
    config = ModelConfig(
        name="listening",
        modalities=["speech_text"],
        fusion=FusionConfig(kind="attention", dim=64, modality_dropout=0.4),
        tasks=TaskConfig(
            diagnosis_labels=list(CLINIC_FINDINGS), emotion_labels=list(CLINIC_AFFECTS)
        ),
    )
    result = train(
        config, cases[:200], cases[200:], TrainingConfig(epochs=15, batch_size=32, progress=False)
    )
    save_bundle(root / "listening", result.model, metrics=result.metrics)
    return root


@pytest.fixture
def speech(tmp_path, models_dir):
    with throwaway_database(tmp_path) as database_url:
        env = pipeline_environment(tmp_path, database_url, models_dir)
        manage(env, "migrate", "-v", "0")
        yield env, database_url


def upload(env, path) -> int:
    return int(shell(env, UPLOAD.format(path=str(path))).split()[-1])


def transcript_row(database_url: str, pk: int) -> tuple:
    [row] = query(
        database_url,
        "SELECT status, transcribed_seconds, duration_seconds, message "
        f"FROM records_transcript WHERE id = {pk}",
    )
    return row


def wait_until_finished(database_url: str, pk: int, *, seconds: float, log) -> tuple:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = transcript_row(database_url, pk)
        if row[0] not in ("queued", "running"):
            return row
        time.sleep(0.2)
    raise AssertionError(f"transcript {pk} unfinished: {row}\n{log.read_text()[-3000:]}")


def test_a_worker_transcribes_a_spoken_recording_for_the_api_and_the_page(speech, tmp_path):
    env, database_url = speech
    recording = tmp_path / "dictation.wav"
    recording.write_bytes(spoken(SENTENCE))
    log = tmp_path / "worker.log"
    with worker_process(env, log, queues="speech"):
        pk = upload(env, recording)
        status, *_ = wait_until_finished(database_url, pk, seconds=120, log=log)
    assert status == "done", log.read_text()[-3000:]
    shown = shell(env, SHOWN.format(pk=pk)).splitlines()
    status, segments, text = shown[0].split(" ", 2)
    assert status == "done"
    assert int(segments) >= 1
    assert "right side" in text.lower()
    assert shown[1] == "segment-shown True"


def test_an_analysis_waits_for_the_transcript_and_reads_what_was_said(tmp_path, listening_models):
    recording = tmp_path / "patient.wav"
    recording.write_bytes(spoken(DISTRESSED))  # no note: the affect rests on what was said
    with throwaway_database(tmp_path) as database_url:
        env = pipeline_environment(tmp_path, database_url, listening_models)
        manage(env, "migrate", "-v", "0")
        log = tmp_path / "worker.log"
        with worker_process(env, log):
            job_id = shell(env, ANALYSE_AT_ONCE.format(recording=str(recording))).split()[-1]
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                [(status,)] = query(
                    database_url, f"SELECT status FROM jobs_analysisjob WHERE id = '{job_id}'"
                )
                if status in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
        result = json.loads(shell(env, RESULT.format(pk=job_id)))
    assert result["status"] == "succeeded", (result, log.read_text()[-3000:])
    assert result["used"] == ["speech_text"]  # the model reads no sound; the recording's words
    assert result["contributions"]["emotion"]["speech_text"] > 0, result["contributions"]
    assert "what was said raised it" in result["rationales"]["emotion"], result["rationales"]


def test_a_thirty_minute_recording_does_not_hold_up_a_short_one(speech, tmp_path):
    env, database_url = speech
    short = tmp_path / "short.wav"
    short.write_bytes(spoken(SENTENCE))
    sentence, rate = soundfile.read(short, dtype="float32")
    pause = np.zeros(rate // 2, dtype=np.float32)
    repeats = int(30 * 60 * rate / (sentence.size + pause.size))  # just under the limit
    long = tmp_path / "long.flac"
    soundfile.write(long, np.tile(np.concatenate([sentence, pause]), repeats), rate)
    log = tmp_path / "worker.log"
    with worker_process(env, log, queues="speech", concurrency=1):
        started = time.monotonic()
        alone = upload(env, short)
        wait_until_finished(database_url, alone, seconds=120, log=log)
        alone_seconds = time.monotonic() - started

        long_pk = upload(env, long)
        deadline = time.monotonic() + 120
        while transcript_row(database_url, long_pk)[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, done_seconds, duration, _ = transcript_row(database_url, long_pk)
        assert status == "running", log.read_text()[-3000:]
        assert duration > 29 * 60
        assert 0 < done_seconds < duration

        started = time.monotonic()
        behind = upload(env, short)
        assert wait_until_finished(database_url, behind, seconds=120, log=log)[0] == "done"
        behind_seconds = time.monotonic() - started
        assert transcript_row(database_url, long_pk)[0] == "running", "still going"
        shell(
            env,
            f"from tessera.records.models import Transcript\n"
            f"Transcript.objects.get(pk={long_pk}).media.delete()",
        )
    print(
        f"a short recording alone: {alone_seconds:.1f} s; behind 30 minutes: {behind_seconds:.1f} s"
    )
    assert behind_seconds - alone_seconds <= 10
