"""Shared fixtures: isolated media storage, organizations, users and generated test files."""

import io
import logging
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from mlcore.synthetic import chest_ct_slice, ct_dicom_bytes, synthetic_voice, wav_bytes
from tessera.accounts.models import Organization, Role
from tessera.accounts.services import create_organization, set_membership
from tessera.logs import ContextFilter, JsonLinesFormatter

# A patient's name that tests seed (test_security) and that no log line of the whole run may
# carry: logs leave the building (aggregators, support tickets), records must not.
PHI_CANARY = "Quillon Marrowfield-Esterhaze"


class _PhiWatch(logging.Handler):
    """Reads every record as production writes it: JSON lines with the context's ids."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonLinesFormatter())
        self.addFilter(ContextFilter())
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if PHI_CANARY.lower() in line.lower():
            self.leaks.append(line[:500])


@pytest.fixture(scope="session", autouse=True)
def logs_never_carry_phi():
    """Fails the run (an error after its last test) if any log record named the canary."""
    watch = _PhiWatch()
    logging.getLogger().addHandler(watch)
    yield watch
    logging.getLogger().removeHandler(watch)
    assert not watch.leaks, f"a log line carried a patient's name: {watch.leaks}"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests make many users: a deliberately slow hash (0.3 s each here) would dominate."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test stores media in its own folder, never in the developer's var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def own_cache(settings, tmp_path):
    """Every test counts rate limits in its own cache, never in var/ or a shared Redis, where an
    earlier run's counters (for the same token ids) would still be."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }


def stored_files(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.fixture
def clinic(db) -> Organization:
    return create_organization(
        name="Test Clinic", slug="test-clinic", kind="clinic", jurisdiction="US"
    )


@pytest.fixture
def school(db) -> Organization:
    return create_organization(
        name="Test School", slug="test-school", kind="school", jurisdiction="EU"
    )


@pytest.fixture
def other_clinic(db) -> Organization:
    return create_organization(
        name="Other Clinic", slug="other-clinic", kind="clinic", jurisdiction="US"
    )


@pytest.fixture
def make_user(db):
    def make(
        username: str,
        *,
        organization: Organization | None = None,
        role: str = Role.CLINICIAN,
        **extra,
    ):
        user = get_user_model().objects.create_user(
            username=username, password="correct-horse-42", **extra
        )
        if organization is not None:
            set_membership(user=user, organization=organization, role=role)
        return user

    return make


@pytest.fixture(scope="session")
def dicom_bytes() -> bytes:
    rng = np.random.default_rng(7)
    return ct_dicom_bytes(
        chest_ct_slice(lesion=True, rng=rng, size=64),
        patient_name="Test^Patient",
        patient_id="T-1",
        birth_date=date(1980, 5, 17),
        sex="female",
        study_date=date(2026, 10, 1),
        uid_seed="test",
    )


@pytest.fixture(scope="session")
def wav_audio() -> bytes:
    return wav_bytes(synthetic_voice(high_arousal=True, rng=np.random.default_rng(3), seconds=2.0))


def spoken(text: str, *, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """`text` spoken by espeak-ng, as a WAV file; the test skips, naming the program, where it
    is not installed (`.ci/run` installs it)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng): no speech to test with")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spoken.wav"  # a file: --stdout leaves the WAV header's sizes open
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
            check=True,
            capture_output=True,
        )
        return path.read_bytes()


def slice_bytes(number: int) -> bytes:
    """A small CT slice of one patient, distinct per `number` (for series and zips)."""
    return ct_bytes(
        chest_ct_slice(lesion=number == 2, rng=np.random.default_rng(number), size=32),
        uid_seed=f"series-{number}",
        patient_name="Series^Patient",
        patient_id="S-1",
        birth_date=date(1970, 1, 1),
        study_date=date(2026, 10, 1),
    )


def ct_bytes(
    hounsfield: np.ndarray,
    *,
    uid_seed: str,
    patient_name: str = "A^B",
    patient_id: str = "1",
    birth_date: date | None = None,
    study_date: date = date(2026, 1, 1),
) -> bytes:
    """A CT slice in HU as a DICOM file, with test identities."""
    return ct_dicom_bytes(
        hounsfield,
        patient_name=patient_name,
        patient_id=patient_id,
        birth_date=birth_date,
        sex="male",
        study_date=study_date,
        uid_seed=uid_seed,
    )


def upload(content: bytes) -> io.BytesIO:
    return io.BytesIO(content)
