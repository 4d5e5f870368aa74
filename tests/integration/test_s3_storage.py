"""TESSERA_STORAGE=s3 against a real S3 API server (moto's server mode, in its own process): an
upload, an analysis by a real worker whose model bundle comes from the bucket, a report and
an erasure all work, and their objects appear in the bucket and disappear from it. Media of an
organization that encrypts at rest reach the bucket encrypted; a backup of the bucket restores
into an installation on local disk."""

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.integration.processes import (
    free_port,
    manage,
    pipeline_environment,
    shell,
    started,
    stopped,
    submit,
    throwaway_database,
    wait_for_jobs,
    wait_for_page,
    worker_process,
)

pytestmark = pytest.mark.worker
BUCKET = "tessera-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto-secret"}
# the same in the installation backed up and in the one it is restored into
SECRETS = {"TESSERA_MEDIA_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
NOTE = b"Cough for six weeks; patient feels overwhelmed.\n"


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:
    """moto's S3 server on a free port, with an empty bucket."""
    port = free_port()
    server = started(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        tmp_path / "moto.log",
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for_page(f"{endpoint}/moto-api/data.json", seconds=60, server=server)
        bucket(endpoint).create()
        yield endpoint
    finally:
        stopped(server)


def bucket(endpoint: str):
    import boto3

    return boto3.resource(
        "s3", endpoint_url=endpoint, region_name="us-east-1", **_boto_credentials()
    ).Bucket(BUCKET)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def keys(endpoint: str, area: str) -> set[str]:
    return {summary.key for summary in bucket(endpoint).objects.filter(Prefix=f"{area}/")}


def s3_settings(endpoint: str) -> dict[str, str]:
    return {
        "TESSERA_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        **CREDENTIALS,
    }


def publish(models_dir: Path, endpoint: str, name: str) -> None:
    """A bundle trained elsewhere, put into the bucket as an IT team would (`aws s3 sync`)."""
    for path in sorted((models_dir / name).rglob("*")):
        if path.is_file():
            key = f"models/{name}/{path.relative_to(models_dir / name).as_posix()}"
            bucket(endpoint).upload_file(str(path), key)


REPORT_AND_ERASE = """
import time
from tessera.jobs.features import cache_name
from tessera.jobs.models import AnalysisJob
from tessera.records.kinds import kind_of
from tessera.records.models import Patient
from tessera.reports.models import Report
from tessera.reports.services import request_report
patient = Patient.objects.get(mrn="0")
report = request_report(organization=patient.organization, requested_by=None, subject=patient)
deadline = time.monotonic() + 180
while time.monotonic() < deadline and Report.objects.get(pk=report.pk).status != "ready":
    time.sleep(0.5)
report.refresh_from_db()
print(report.status, report.file_path)
print(cache_name(AnalysisJob.objects.get(**{kind_of(patient).from_visit: patient})))
"""

ERASE = """
from tessera.records.models import Patient
from tessera.privacy.services import erase_subject
print(erase_subject(subject=Patient.objects.get(mrn="0"), erased_by=None))
"""

READ_BACK = """
import hashlib, json
from django.conf import settings
from tessera.records.models import MediaAsset
from tessera.records.storage import content_store
print(json.dumps({
    "media": [
        hashlib.sha256(content_store().read_media(asset)).hexdigest()
        for asset in MediaAsset.objects.all()
    ],
    "models": sum(1 for path in settings.MLCORE_MODELS_DIR.rglob("*") if path.is_file()),
}))
"""

ENCRYPTED_UPLOAD = """
import io
from django.utils import timezone
from tessera.accounts.models import Organization
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.records.storage import content_store
clinic = Organization.objects.get(slug="pipeline")
clinic.encrypt_media = True
clinic.save()
patient = create_patient(organization=clinic, mrn="SEALED-1", full_name="Sealed Patient")
visit = create_encounter(patient=patient, occurred_at=timezone.now())
note = io.BytesIO({note!r}); note.name = "note.txt"
asset = add_media(attached_to=visit, kind="clinical_note", file=note)
assert content_store().read_media(asset) == {note!r}
print(asset.storage_path)
"""


def test_uploads_analyses_reports_and_erasure_keep_their_files_in_the_bucket(
    tmp_path, models_dir, media_files, s3_endpoint
):
    with throwaway_database(tmp_path) as database_url:
        host_cache = tmp_path / "this-host-models"  # empty: the bundle comes from the bucket
        env = pipeline_environment(
            tmp_path, database_url, host_cache, **s3_settings(s3_endpoint), **SECRETS
        )
        manage(env, "migrate", "-v", "0")
        publish(models_dir, s3_endpoint, "tiny")
        jobs = submit(env, media_files, 2)
        uploaded = keys(s3_endpoint, "media")
        files = {
            hashlib.sha256((media_files / name).read_bytes()).hexdigest()
            for name in ("note.txt", "speech.wav")
        }
        assert files <= {key.rsplit("/", 1)[-1] for key in uploaded}, uploaded
        # the note and the recording once, however many share them; each one's own DICOM
        assert len(uploaded) == 4, uploaded
        assert not (tmp_path / "var" / "media").exists(), "nothing on this host's disk"

        log = tmp_path / "worker.log"
        with worker_process(env, log):
            outcomes = wait_for_jobs(env, seconds=240)
            assert [outcomes[job].status for job in jobs] == ["succeeded"] * 2, log.read_text()[
                -3000:
            ]
            assert (host_cache / "tiny" / "config.json").is_file(), "fetched from the bucket"
            assert len(keys(s3_endpoint, "features")) == 2, "one per job: their images differ"
            status, report_path, cached = shell(env, REPORT_AND_ERASE, timeout=240).split()
        assert status == "ready", log.read_text()[-3000:]
        pdf = bucket(s3_endpoint).Object(f"media/{report_path}").get()["Body"].read()
        assert pdf.startswith(b"%PDF")
        assert f"features/{cached}" in keys(s3_endpoint, "features")

        erased = shell(env, ERASE)
        assert "'reports': 1" in erased, erased
        left = keys(s3_endpoint, "media")
        assert f"media/{report_path}" not in left, "the report went with the patient"
        assert len(keys(s3_endpoint, "features")) == 1
        assert f"features/{cached}" not in keys(s3_endpoint, "features")
        assert files <= {key.rsplit("/", 1)[-1] for key in left}, "those patient 1 shares stay"
        assert len(left) == 3, "patient 0's own (de-identified) DICOM went"

        sealed_path = shell(env, ENCRYPTED_UPLOAD.format(note=NOTE)).strip()
        assert sealed_path.endswith(".fernet")
        sealed = bucket(s3_endpoint).Object(f"media/{sealed_path}").get()["Body"].read()
        assert b"overwhelmed" not in sealed, "sealed before it left this host"

        backup = tmp_path / "backup"
        assert "backed up" in manage(env, "backup", "--to", str(backup))
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["files"]["media"]["count"] == len(keys(s3_endpoint, "media"))
    assert manifest["files"]["models"]["count"] == len(keys(s3_endpoint, "models"))
    (tmp_path / "local").mkdir()
    with throwaway_database(tmp_path / "local") as local_url:
        local = pipeline_environment(
            tmp_path / "local", local_url, tmp_path / "local" / "models", **SECRETS
        )
        manage(local, "restore", "--from", str(backup))
        read_back = json.loads(shell(local, READ_BACK))
    assert read_back["models"] == manifest["files"]["models"]["count"]
    assert hashlib.sha256(NOTE).hexdigest() in read_back["media"]
    assert len(read_back["media"]) == 4, "patient 1's three files and the sealed note"


READY = """
from health_check.exceptions import ServiceUnavailable
from tessera.operations.checks import MediaStore
try:
    MediaStore().run()
    print("ready")
except ServiceUnavailable as error:
    print(error)
"""


def test_readiness_writes_to_the_bucket_and_names_a_missing_one(tmp_path, s3_endpoint):
    with throwaway_database(tmp_path) as database_url:
        env = pipeline_environment(
            tmp_path, database_url, tmp_path / "models", **s3_settings(s3_endpoint)
        )
        assert shell(env, READY).strip() == "ready"
        assert keys(s3_endpoint, "media") == set(), "the probe's own object is gone"
        missing = shell({**env, "AWS_STORAGE_BUCKET_NAME": "no-such-bucket"}, READY)
    assert "the media store cannot be written (NoSuchBucket)" in missing, missing
