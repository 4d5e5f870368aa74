"""Encryption at rest: an organization that turns it on has its media stored as Fernet tokens
under the server's key — the pipeline, pages, API and exports read them as before — and may keep
each DICOM original (encrypted, for its admins only). Without the opt-in, the original is never
written to disk, not even as a temporary upload file."""

import io
import os
import string
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.files import uploadedfile
from django.core.management import CommandError, call_command
from django.urls import reverse

from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes
from tessera.accounts.models import Role
from tessera.jobs.features import case_for, prepare
from tessera.jobs.models import AnalysisJob
from tessera.records.models import MediaAsset, MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
from tessera.records.storage import StoredContentCorrupted, content_store
from tests.conftest import stored_files, upload
from tests.unit.api import assert_problem, client_for
from tests.unit.conftest import WHEN

pytestmark = pytest.mark.django_db

NOTE = b"Reports chest pain radiating to the left arm since Tuesday."


@pytest.fixture
def key(settings) -> str:
    key = Fernet.generate_key().decode()
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [key]
    return key


@pytest.fixture
def encrypting(clinic, key):
    clinic.encrypt_media = True
    clinic.full_clean()
    clinic.save()
    return clinic


@pytest.fixture
def visit(clinic):
    patient = create_patient(organization=clinic, mrn="ENC-1", full_name="Marguerite Oduya")
    return create_encounter(patient=patient, occurred_at=WHEN)


@pytest.fixture
def clinician(clinic, make_user):
    return make_user("enc-doc", organization=clinic)


@pytest.fixture
def admin(clinic, make_user):
    return make_user("enc-admin", organization=clinic, role=Role.ORG_ADMIN)


def on_disk(media_root) -> bytes:
    return b"".join(path.read_bytes() for path in stored_files(media_root))


def test_media_of_an_encrypting_organization_is_stored_encrypted_and_read_as_before(
    encrypting, visit, clinician, client, media_root, dicom_bytes, wav_audio
):
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    image = add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    speech = add_media(attached_to=visit, kind=MediaKind.SPEECH, file=upload(wav_audio))

    assert all(asset.encrypted for asset in (note, image, speech))
    assert all(path.name.endswith(".fernet") for path in stored_files(media_root))
    stored = on_disk(media_root)
    assert b"chest pain" not in stored
    # "DICM" or "RIFF" can turn up in base64 by chance; binary content cannot.
    tokens_only = set(string.ascii_letters.encode() + string.digits.encode() + b"-_=\n")
    assert set(stored) <= tokens_only, "no file's content in the clear, only Fernet tokens"

    client.force_login(clinician)
    assert b"".join(client.get(reverse("media_file", args=[note.pk])).streaming_content) == NOTE
    assert client.get(reverse("media_preview", args=[image.pk]))["Content-Type"] == "image/png"
    assert (
        b"chest pain radiating" in client.get(reverse("patient", args=[visit.patient_id])).content
    )
    api = client_for(clinician).get(f"/api/v1/media/{speech.pk}/download/")
    assert b"".join(api.streaming_content) == wav_audio
    assert client_for(clinician).get(f"/api/v1/media/{note.pk}/").json()["encrypted"] is True


def test_the_pipeline_reads_encrypted_media_like_plain_media_and_caches_none_of_it(
    encrypting, other_clinic, visit, clinic_model, dicom_bytes, wav_audio, settings, tmp_path
):
    settings.TESSERA_FEATURE_CACHE = tmp_path / "features"
    other_patient = create_patient(organization=other_clinic, mrn="P-1", full_name="Plain Case")
    plain_visit = create_encounter(patient=other_patient, occurred_at=WHEN)
    jobs = []
    for where in (visit, plain_visit):
        for kind, content in [
            (MediaKind.DICOM, dicom_bytes),
            (MediaKind.CLINICAL_NOTE, NOTE),
            (MediaKind.SPEECH, wav_audio),
        ]:
            add_media(attached_to=where, kind=kind, file=upload(content))
        job = AnalysisJob.objects.create(
            organization=where.patient.organization,
            visit_key=where.visit_key,
            task="all",
            model_version=clinic_model,
        )
        job.media.set(where.media.all())
        jobs.append(job)
    encrypted_job, plain_job = jobs

    assert case_for(encrypted_job).text == NOTE.decode()
    encrypted, plain = prepare(encrypted_job), prepare(plain_job)
    assert (encrypted.image == plain.image).all()
    assert (encrypted.audio == plain.audio).all()
    assert (encrypted.text_ids == plain.text_ids).all()
    cached = list(settings.TESSERA_FEATURE_CACHE.glob("*.npz"))
    assert len(cached) == 1, "only the plain organization's features are cached"


def test_a_tampered_or_undecryptable_file_is_never_served(
    encrypting, visit, clinician, client, settings
):
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    path = content_store().path(note.sha256, encrypted=True)
    token = path.read_bytes()

    path.write_bytes(token[:-20] + b"A" * 20)
    client.force_login(clinician)
    assert client.get(reverse("media_file", args=[note.pk])).status_code == 500
    assert_problem(client_for(clinician).get(f"/api/v1/media/{note.pk}/download/"), 500, "damaged")

    path.write_bytes(token)
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(StoredContentCorrupted, match="key"):
        content_store().read_media(note)


def test_turning_encryption_on_and_off_converts_the_stored_files(
    clinic, key, visit, media_root, clinician, client
):
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    assert not note.encrypted
    assert NOTE in on_disk(media_root)

    clinic.encrypt_media = True
    clinic.save()
    call_command("sync_media_encryption", stdout=io.StringIO())
    note.refresh_from_db()
    assert note.encrypted
    assert note.storage_path.endswith(".fernet")
    assert NOTE not in on_disk(media_root), "the plain copy is gone"
    assert len(stored_files(media_root)) == 1
    client.force_login(clinician)
    assert b"".join(client.get(reverse("media_file", args=[note.pk])).streaming_content) == NOTE

    clinic.encrypt_media = False
    clinic.save()
    call_command("sync_media_encryption", stdout=io.StringIO())
    note.refresh_from_db()
    assert not note.encrypted
    assert on_disk(media_root) == NOTE


def test_a_new_key_put_first_re_encrypts_everything_and_the_old_key_can_go(
    encrypting, visit, settings
):
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    old = settings.TESSERA_MEDIA_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new, old]
    output = io.StringIO()
    call_command("sync_media_encryption", "--rotate", stdout=output)
    assert "1 re-encrypted" in output.getvalue()

    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [new]
    assert content_store().read_media(note) == NOTE


def test_the_sync_reports_files_it_cannot_decrypt_and_leaves_them(encrypting, visit, settings):
    note = add_media(attached_to=visit, kind=MediaKind.CLINICAL_NOTE, file=upload(NOTE))
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match=f"media ids: {note.pk}"):
        call_command("sync_media_encryption", "--rotate", stdout=io.StringIO())
    assert content_store().exists(note.sha256, encrypted=True)


def test_encryption_needs_a_key_and_originals_need_encryption(clinic, settings):
    settings.TESSERA_MEDIA_ENCRYPTION_KEYS = []
    clinic.encrypt_media = True
    with pytest.raises(ValidationError, match="TESSERA_MEDIA_ENCRYPTION_KEYS"):
        clinic.full_clean()
    clinic.encrypt_media, clinic.keep_dicom_originals = False, True
    with pytest.raises(ValidationError, match="encryption at rest"):
        clinic.full_clean()


def test_without_the_opt_in_no_original_dicom_reaches_the_disk(
    visit, clinician, media_root, dicom_bytes
):
    asset = add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    assert asset.original_sha256 == ""
    assert len(stored_files(media_root)) == 1
    assert b"Test^Patient" not in on_disk(media_root)
    response = client_for(clinician).get(f"/api/v1/media/{asset.pk}/original/")
    assert response.status_code == 403, "the original is for admins"


def test_kept_originals_are_encrypted_and_only_the_organizations_admins_get_them(
    encrypting, visit, clinician, admin, media_root, dicom_bytes, django_capture_on_commit_callbacks
):
    encrypting.keep_dicom_originals = True
    encrypting.save()
    file = io.BytesIO(dicom_bytes)
    file.name = "chest.dcm"
    created = client_for(clinician).post(
        "/api/v1/media/", {"kind": "dicom", "encounter": visit.pk, "file": file}, format="multipart"
    )
    assert created.status_code == 201, created.content
    assert created.json()["original_kept"] is True
    asset = MediaAsset.objects.get(pk=created.json()["id"])
    assert len(stored_files(media_root)) == 2
    assert b"Test^Patient" not in on_disk(media_root), "the original is kept encrypted"

    assert_problem(client_for(clinician).get(f"/api/v1/media/{asset.pk}/original/"), 403)
    original = client_for(admin).get(f"/api/v1/media/{asset.pk}/original/")
    assert original.status_code == 200
    assert b"".join(original.streaming_content) == dicom_bytes, "exactly as uploaded"

    archive = zipfile.ZipFile(
        io.BytesIO(client_for(admin).get(f"/api/v1/patients/{visit.patient_id}/export/").content)
    )
    assert archive.read(f"originals/{asset.pk}-chest.dcm") == dicom_bytes

    with django_capture_on_commit_callbacks(execute=True):
        asset.delete()
    assert stored_files(media_root) == [], "the original goes with its file"


def test_an_image_uploaded_without_an_original_says_so(encrypting, visit, admin, dicom_bytes):
    asset = add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    response = client_for(admin).get(f"/api/v1/media/{asset.pk}/original/")
    assert "no original" in assert_problem(response, 404, "no_original")["detail"]


def test_a_large_dicom_upload_never_passes_through_a_temporary_file(
    visit, clinician, monkeypatch, wav_audio, settings
):
    spooled = []
    real = uploadedfile.TemporaryUploadedFile.__init__

    def spy(self, name, *args, **kwargs):
        spooled.append(name)
        real(self, name, *args, **kwargs)

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", spy)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # both uploads count as large
    large_scan = ct_dicom_bytes(
        chest_ct_slice(lesion=False, rng=np.random.default_rng(5), size=256),
        patient_name="Large^Scan",
        patient_id="L-1",
        birth_date=date(1990, 2, 2),
        sex="male",
        study_date=date(2026, 10, 2),
        uid_seed="large",
    )
    assert len(large_scan) > 2 * 65536, "arrives in several chunks"
    api = client_for(clinician)
    for name, kind, content in [("big.dcm", "dicom", large_scan), ("big.wav", "speech", wav_audio)]:
        file = io.BytesIO(content)
        file.name = name
        response = api.post(
            "/api/v1/media/",
            {"kind": kind, "encounter": visit.pk, "file": file},
            format="multipart",
        )
        assert response.status_code == 201, response.content
    assert spooled == ["big.wav"], "audio spools to disk as usual; the DICOM original never does"
    scan = MediaAsset.objects.get(original_filename="big.dcm")
    assert scan.metadata["rows"] == 256, "every chunk arrived"
    speech = MediaAsset.objects.get(original_filename="big.wav")
    assert content_store().read_media(speech) == wav_audio


def test_a_malformed_key_stops_the_server_from_starting():
    started = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": "platform:.", "TESSERA_MEDIA_ENCRYPTION_KEYS": "secret"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode != 0
    assert "TESSERA_MEDIA_ENCRYPTION_KEYS holds a key that is not a Fernet key" in started.stderr
