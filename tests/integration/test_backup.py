"""Backup and restore (`manage.py backup`, `manage.py restore`): an installation with records,
an encrypted DICOM, a note and a model bundle is backed up while it runs, and restored into an
empty installation, on SQLite or on PostgreSQL as DATABASE_URL says (`.ci/run` runs both).
Every record and file is found there, read back through the platform; a restore refuses a
damaged backup and an installation that is not empty, changing nothing."""

import json
import subprocess
import sys

from cryptography.fernet import Fernet

from tests.integration.processes import (
    REPO,
    manage,
    pipeline_environment,
    shell,
    throwaway_database,
)

SEED = """
import io, hashlib
from datetime import datetime, UTC
from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes
from tessera.accounts.services import create_organization
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
clinic = create_organization(name="Kept Clinic", slug="kept", kind="clinic", jurisdiction="US")
clinic.encrypt_media = True
clinic.save()
patient = create_patient(organization=clinic, mrn="MRN-KEPT", full_name="Eleanor Whitmore")
encounter = create_encounter(patient=patient, occurred_at=datetime(2026, 9, 1, tzinfo=UTC))
import numpy as np
dicom = ct_dicom_bytes(chest_ct_slice(lesion=True, rng=np.random.default_rng(1), size=32),
    patient_name="Whitmore^Eleanor", patient_id="MRN-KEPT", birth_date=None, sex="female",
    study_date=datetime(2026, 9, 1).date(), uid_seed="kept")
scan = io.BytesIO(dicom); scan.name = "scan.dcm"
note = io.BytesIO(b"Dry cough for three weeks."); note.name = "note.txt"
add_media(attached_to=encounter, kind=MediaKind.DICOM, file=scan)
add_media(attached_to=encounter, kind=MediaKind.CLINICAL_NOTE, file=note)
"""

READ_BACK = """
import hashlib, json
from tessera.records.models import MediaAsset, Patient
from tessera.records.storage import content_store
store = content_store()
print(json.dumps({
    "patients": list(Patient.objects.values_list("mrn", flat=True)),
    "media": sorted(
        (asset.kind, hashlib.sha256(store.read_media(asset)).hexdigest())
        for asset in MediaAsset.objects.all()
    ),
}))
"""


def restore(env: dict[str, str], source) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "restore", "--from", str(source)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_backup_restores_into_an_empty_installation_with_every_record_and_file(tmp_path):
    keys = {"TESSERA_MEDIA_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    backup = tmp_path / "backup"
    with throwaway_database(tmp_path / "a") as first_url:
        first = pipeline_environment(tmp_path / "a", first_url, tmp_path / "a" / "models", **keys)
        manage(first, "migrate", "--noinput")
        shell(first, SEED)
        (tmp_path / "a" / "models" / "clinic-v3").mkdir(parents=True)
        (tmp_path / "a" / "models" / "clinic-v3" / "config.json").write_text('{"tasks": []}')
        before = json.loads(shell(first, READ_BACK))
        assert "backed up" in manage(first, "backup", "--to", str(backup))
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["rows"]["records_patient"] == 1
    assert manifest["files"]["models"]["count"] == 1

    with throwaway_database(tmp_path / "b") as second_url:
        second = pipeline_environment(tmp_path / "b", second_url, tmp_path / "b" / "models", **keys)
        restored = restore(second, backup)
        assert restored.returncode == 0, restored.stderr
        after = json.loads(shell(second, READ_BACK))
        assert after == before, "every record, and every file read back (decrypted) the same"
        assert len(after["media"]) == 2
        assert (tmp_path / "b" / "models" / "clinic-v3" / "config.json").is_file()
        again = restore(second, backup)
        assert again.returncode == 1
        assert "a restore goes into an empty installation" in again.stderr


def test_a_damaged_backup_is_refused_before_anything_is_touched(tmp_path):
    with throwaway_database(tmp_path / "a") as url:
        env = pipeline_environment(tmp_path / "a", url, tmp_path / "a" / "models")
        manage(env, "migrate", "--noinput")
        manage(env, "backup", "--to", str(tmp_path / "backup"))
    media = tmp_path / "backup" / "media.tar.gz"
    media.write_bytes(media.read_bytes()[:-10])
    with throwaway_database(tmp_path / "b") as url:
        env = pipeline_environment(tmp_path / "b", url, tmp_path / "b" / "models")
        refused = restore(env, tmp_path / "backup")
        assert refused.returncode == 1
        assert "media.tar.gz is missing or damaged" in refused.stderr
        tables = (
            "from django.db import connection; print(len(connection.introspection.table_names()))"
        )
        assert shell(env, tables).split() == ["0"], "nothing restored"
