"""Real processes for the integration tests: workers, `manage.py` commands, a database that
the test and its worker processes share, the scripts that submit and await jobs, and a local
HTTP server standing in for a system at the edge (a PACS's DICOMweb, a FHIR server, a
collector)."""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULTY_WORKER = Path(__file__).with_name("faulty_worker.py")


@contextmanager
def worker_process(
    env: dict[str, str],
    log: Path,
    *,
    beat: bool = False,
    faulty: bool = False,
    queues: str | None = None,
    concurrency: int | None = None,
) -> Iterator[subprocess.Popen]:
    """`manage.py worker` (every queue unless `queues`; the sweeper too with `beat`; with the
    simulated GPU faults of faulty_worker.py if `faulty`), output into `log`; stopped (killed
    if it will not stop) when the block ends."""
    launcher = [str(FAULTY_WORKER)] if faulty else [str(REPO / "manage.py"), "worker"]
    command = [sys.executable, *launcher, "--loglevel", "info"]
    command += ["--beat"] if beat else []
    command += ["--queues", queues] if queues else []
    command += ["--concurrency", str(concurrency)] if concurrency else []
    with log.open("a") as output:
        worker = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass  # the test says what matters


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` answering on a free local port, in a thread; yields the server's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def started(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("a") as output:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)


def stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def web_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """The platform as production serves it: gunicorn, one worker, on 127.0.0.1:`port`."""
    return started(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            "platform",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "tessera.wsgi:application",
        ],
        log,
        env,
    )


def wait_for_page(url: str, *, seconds: float, server: subprocess.Popen | None = None) -> str:
    """The body of `url` once it answers; fails after `seconds`, or as soon as `server` (the
    process meant to answer) has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@contextmanager
def throwaway_database(tmp_path: Path) -> Iterator[str]:
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


def pipeline_environment(
    tmp_path: Path, database_url: str, models_dir: Path, **settings: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "TESSERA_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": database_url,
        "MLCORE_MODELS_DIR": str(models_dir),
        "MLCORE_DEVICE": "cpu",
        # its own rate-limit counters, also in a Redis that outlives the run
        "TESSERA_CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        **settings,
    }
    if not env.get("CELERY_BROKER_URL", "").startswith("redis://"):
        env.pop("CELERY_BROKER_URL", None)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
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


def shell(env: dict[str, str], script: str, timeout: float = 300) -> str:
    return manage(env, "shell", "-v", "0", "-c", script, timeout=timeout)


def query(database_url: str, sql: str) -> list[tuple]:
    """Read the job table straight from the database, without starting Django (fast polling)."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute(sql).fetchall()


SUBMIT = """
from pathlib import Path
from django.utils import timezone
from tessera.accounts.models import Organization
from tessera.accounts.services import create_organization
from tessera.jobs.models import ModelVersion
from tessera.jobs.services import promote_model_version, register_model_version, request_analysis
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.records.storage import content_store
data = Path({data!r})
clinic = Organization.objects.filter(slug="pipeline").first() or create_organization(
    name="Clinic", slug="pipeline", kind="clinic", jurisdiction="US"
)
if not ModelVersion.objects.filter(status="active").exists():
    version = register_model_version(name="tiny", serves="clinic", bundle_path="tiny", metrics={{}})
    promote_model_version(version=version, promoted_by=None)
for number in range({jobs}):
    patient = create_patient(
        organization=clinic, mrn=f"{prefix}{{number}}", full_name=f"Patient {{number}}"
    )
    visit = create_encounter(patient=patient, occurred_at=timezone.now())
    files = (("dicom", {image!r}), ("clinical_note", {note!r}), ("speech", "speech.wav"))
    for kind, name in files:
        with (data / name).open("rb") as file:
            asset = add_media(attached_to=visit, kind=kind, file=file)
        if kind == "dicom" and {corrupt!r}:
            stored = content_store().path(asset.sha256)
            stored.chmod(0o644)
            stored.write_bytes(b"damaged on disk")
    job = request_analysis(attached_to=visit, task="all")
    print(job.pk)
"""

WAIT = """
import time
from tessera.jobs.models import FINISHED, AnalysisJob
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline and AnalysisJob.objects.exclude(status__in=FINISHED).exists():
    time.sleep(0.5)
for job in AnalysisJob.objects.all():
    print(
        job.pk, job.status, job.results.count(), job.attempts, job.error_code or "-",
        job.error_message or "-",
    )
"""


@dataclass
class Outcome:
    job: str
    status: str
    results: int
    attempts: int
    error_code: str
    error: str


def submit(
    env: dict[str, str],
    media_files: Path,
    jobs: int,
    *,
    prefix: str = "",
    image: str = "ct.dcm",
    note: str = "note.txt",
    corrupt: bool = False,
) -> list[str]:
    """Request `jobs` analyses (each its own patient and visit); returns their ids. With
    `corrupt`, the stored image is damaged after its upload was accepted (the store holds one
    copy per content: choose an image no other job uses)."""
    script = SUBMIT.format(
        data=str(media_files), jobs=jobs, prefix=prefix, image=image, note=note, corrupt=corrupt
    )
    return shell(env, script).split()


def wait_for_jobs(env: dict[str, str], seconds: float = 240) -> dict[str, Outcome]:
    """Every job once none is unfinished (or the time is up)."""
    outcomes = {}
    for line in shell(env, WAIT.format(seconds=seconds), timeout=seconds + 60).splitlines():
        job, status, results, attempts, code, error = line.split(" ", 5)
        outcomes[job] = Outcome(job, status, int(results), int(attempts), code, error)
    return outcomes
