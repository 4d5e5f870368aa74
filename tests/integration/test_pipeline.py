"""The analysis pipeline end to end with real processes: jobs requested from one process are
taken by a real Celery worker (file-system broker and SQLite, or Redis and PostgreSQL when
CELERY_BROKER_URL / DATABASE_URL point at them) and each ends with exactly one result."""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset
from mlcore.train import TrainingConfig, train
from tests.mlcore.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
JOBS = 6
pytestmark = pytest.mark.worker

SUBMIT = """
from pathlib import Path
from django.utils import timezone
from tessera.accounts.services import create_organization
from tessera.jobs.services import promote_model_version, register_model_version, request_analysis
from tessera.records.services import add_media, create_encounter, create_patient
data = Path({data!r})
clinic = create_organization(name="Clinic", slug="pipeline", kind="clinic", jurisdiction="US")
version = register_model_version(name="tiny", serves="clinic", bundle_path="tiny", metrics={{}})
promote_model_version(version=version, promoted_by=None)
for number in range({jobs}):
    patient = create_patient(organization=clinic, mrn=str(number), full_name=f"Patient {{number}}")
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    files = (("dicom", "ct.dcm"), ("clinical_note", "note.txt"), ("speech", "speech.wav"))
    for kind, name in files:
        with (data / name).open("rb") as file:
            add_media(attached_to=visit, kind=kind, file=file)
    request_analysis(attached_to=visit, task="all")
"""

WAIT = """
import time
from tessera.jobs.models import FINISHED, AnalysisJob
deadline = time.monotonic() + 240
while time.monotonic() < deadline and AnalysisJob.objects.exclude(status__in=FINISHED).exists():
    time.sleep(0.5)
for job in AnalysisJob.objects.all():
    print(job.status, job.results.count(), job.attempts, job.error_message or "-")
"""


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-models")
    cases = read_manifest(
        write_dataset(
            root / "data", kind="clinic", cases=16, seed=4, image_size=32, voice_seconds=2.0
        )
    )
    result = train(
        tiny_config(),
        cases[:12],
        cases[12:],
        TrainingConfig(epochs=1, batch_size=8, progress=False),
    )
    save_bundle(root / "tiny", result.model, metrics=result.metrics)
    return root


@contextmanager
def throwaway_database(tmp_path: Path):
    """A database the test and the worker processes share: a fresh PostgreSQL database when
    DATABASE_URL names PostgreSQL, else a SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'pipeline.sqlite3'}"
        return
    import psycopg

    name = f"tessera_pipeline_{uuid.uuid4().hex[:8]}"
    server, _, _ = url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_jobs_submitted_elsewhere_are_each_answered_once_by_a_real_worker(
    tmp_path, models_dir, dicom_bytes, wav_audio
):
    data = tmp_path / "files"
    data.mkdir()
    (data / "ct.dcm").write_bytes(dicom_bytes)
    (data / "note.txt").write_text("Cough for six weeks; patient feels overwhelmed.\n")
    (data / "speech.wav").write_bytes(wav_audio)
    manage = [sys.executable, str(REPO / "manage.py")]
    with throwaway_database(tmp_path) as database_url:
        env = {
            **os.environ,
            "TESSERA_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": database_url,
            "MLCORE_MODELS_DIR": str(models_dir),
            "MLCORE_DEVICE": "cpu",
        }
        if not env.get("CELERY_BROKER_URL", "").startswith("redis://"):
            env.pop("CELERY_BROKER_URL", None)
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=REPO, check=True)
        submitted = subprocess.run(
            [*manage, "shell", "-v", "0", "-c", SUBMIT.format(data=str(data), jobs=JOBS)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert submitted.returncode == 0, submitted.stderr
        log = tmp_path / "worker.log"
        with log.open("w") as output:
            worker = subprocess.Popen(
                [*manage, "worker", "--loglevel", "info"],
                env=env,
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                finished = subprocess.run(
                    [*manage, "shell", "-v", "0", "-c", WAIT],
                    env=env,
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    rows = [line.split(" ", 3) for line in finished.stdout.splitlines()]
    assert len(rows) == JOBS, f"{finished.stderr}\n{log.read_text()[-3000:]}"
    for status, results, attempts, error in rows:
        assert (status, results, attempts) == ("succeeded", "1", "1"), (
            error,
            log.read_text()[-3000:],
        )
