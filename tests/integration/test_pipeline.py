"""The analysis pipeline end to end with real processes: jobs requested from one process are
taken by a real Celery worker (file-system broker and SQLite, or Redis and PostgreSQL when
CELERY_BROKER_URL / DATABASE_URL point at them) and each ends with exactly one result."""

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import write_dataset
from mlcore.train import TrainingConfig, train
from tests.integration.processes import worker_process
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


@pytest.fixture
def media_files(tmp_path, dicom_bytes, wav_audio) -> Path:
    data = tmp_path / "files"
    data.mkdir()
    (data / "ct.dcm").write_bytes(dicom_bytes)
    (data / "note.txt").write_text("Cough for six weeks; patient feels overwhelmed.\n")
    (data / "speech.wav").write_bytes(wav_audio)
    return data


def _environment(tmp_path: Path, database_url: str, models_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "TESSERA_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": database_url,
        "MLCORE_MODELS_DIR": str(models_dir),
        "MLCORE_DEVICE": "cpu",
    }
    if not env.get("CELERY_BROKER_URL", "").startswith("redis://"):
        env.pop("CELERY_BROKER_URL", None)
    return env


def _manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _assert_each_job_answered_once(finished: str, log: Path) -> None:
    rows = [line.split(" ", 3) for line in finished.splitlines()]
    assert len(rows) == JOBS, log.read_text()[-3000:]
    for status, results, _attempts, error in rows:
        assert (status, results) == ("succeeded", "1"), (error, log.read_text()[-3000:])


def test_jobs_submitted_elsewhere_are_each_answered_once_by_a_real_worker(
    tmp_path, models_dir, media_files
):
    with throwaway_database(tmp_path) as database_url:
        env = _environment(tmp_path, database_url, models_dir)
        _manage(env, "migrate", "-v", "0")
        _manage(env, "shell", "-v", "0", "-c", SUBMIT.format(data=str(media_files), jobs=JOBS))
        log = tmp_path / "worker.log"
        with worker_process(env, log):
            finished = _manage(env, "shell", "-v", "0", "-c", WAIT)
    _assert_each_job_answered_once(finished, log)
    assert all(line.split()[2] == "1" for line in finished.splitlines()), "one attempt each"


@pytest.mark.redis
@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
    reason="CELERY_BROKER_URL does not point at Redis (redis://…)",
)
def test_jobs_survive_a_broker_that_loses_its_messages(tmp_path, models_dir, media_files):
    import redis

    with throwaway_database(tmp_path) as database_url:
        env = _environment(tmp_path, database_url, models_dir)
        _manage(env, "migrate", "-v", "0")
        _manage(env, "shell", "-v", "0", "-c", SUBMIT.format(data=str(media_files), jobs=JOBS))
        broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])
        assert broker.dbsize() > 0, "the jobs' messages are waiting in Redis"
        broker.flushall()  # what a Redis restart without persistence does
        swept = _manage(
            {**env, "TESSERA_JOB_STALE_AFTER": "0"},
            "shell",
            "-v",
            "0",
            "-c",
            "from tessera.jobs.tasks import sweep; print(sweep())",
        )
        assert f"'republished': {JOBS}" in swept
        log = tmp_path / "worker.log"
        with worker_process(env, log):
            finished = _manage(env, "shell", "-v", "0", "-c", WAIT)
    _assert_each_job_answered_once(finished, log)


def _query(database_url: str, sql: str) -> list[tuple]:
    """Read the job table straight from the database, without starting Django (fast polling)."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute(sql).fetchall()


def test_a_worker_killed_mid_job_loses_no_job_and_duplicates_none(
    tmp_path, models_dir, media_files
):
    with throwaway_database(tmp_path) as database_url:
        env = {
            **_environment(tmp_path, database_url, models_dir),
            "TESSERA_JOB_LEASE_SECONDS": "2",
            "TESSERA_SWEEP_EVERY": "1",
        }
        _manage(env, "migrate", "-v", "0")
        _manage(env, "shell", "-v", "0", "-c", SUBMIT.format(data=str(media_files), jobs=JOBS))
        holding = "select id, status from jobs_analysisjob where lease_owner <> ''"
        with worker_process(env, tmp_path / "first.log") as first:
            deadline = time.monotonic() + 120
            while not (held := _query(database_url, holding)) and time.monotonic() < deadline:
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert held, "the first worker never took a job"
        victim = held[0][0]
        unfinished = _query(
            database_url,
            f"select status from jobs_analysisjob where id = '{victim}' "
            "and status not in ('succeeded', 'failed', 'cancelled')",
        )
        log = tmp_path / "second.log"
        with worker_process(env, log, beat=True):
            finished = _manage(env, "shell", "-v", "0", "-c", WAIT)
        if unfinished:
            (attempts,) = _query(
                database_url, f"select attempts from jobs_analysisjob where id = '{victim}'"
            )[0]
            assert attempts >= 2, "the killed worker's job was taken over"
    _assert_each_job_answered_once(finished, log)
