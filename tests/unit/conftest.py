"""Fixtures of the pipeline tests: a tiny trained clinic model, eager tasks, a visit with
an image, a note and a recording."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlcore.config import FusionConfig, TaskConfig
from mlcore.data import read_manifest
from mlcore.registry import save_bundle
from mlcore.synthetic import SCHOOL_AFFECTS, write_dataset
from mlcore.train import TrainingConfig, train
from tessera.accounts.models import Role
from tessera.celery import app as celery_app
from tessera.jobs.models import AnalysisJob, AnalysisResult
from tessera.jobs.services import complete_job, promote_model_version, register_model_version
from tessera.records.models import MediaKind
from tessera.records.services import add_media, create_encounter, create_patient
from tests.conftest import upload
from tests.mlcore.conftest import tiny_config

WHEN = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    cases = read_manifest(
        write_dataset(
            root / "data", kind="clinic", cases=24, seed=2, image_size=32, voice_seconds=2.0
        )
    )
    config = tiny_config(fusion=FusionConfig(kind="attention", dim=32))
    result = train(
        config, cases[:16], cases[16:], TrainingConfig(epochs=1, batch_size=8, progress=False)
    )
    # Declared to have passed the pointing game (mlcore.pointing), so that its heatmaps are
    # shown: what the platform does with a heatmap is tested here, not the heatmap itself.
    pointing = {"cases": 10, "hit_rate": 1.0, "interval": [1.0, 1.0], "trusted_from": 0.8}
    save_bundle(
        root / "clinic-v1", result.model, metrics={**result.metrics, "pointing_game": pointing}
    )
    return root / "clinic-v1"


def tiny_school_bundle(
    root: Path, name: str, *, modalities: list[str], cases: int, seed: int, train_on: int, **data
) -> Path:
    """A tiny school model (affect, by which tutoring suggestions rank, from `modalities`),
    trained for one epoch on the first `train_on` of `cases` synthetic sessions, saved as
    `root / name`."""
    labelled = read_manifest(
        write_dataset(root / f"{name}-data", kind="school", cases=cases, seed=seed, **data)
    )
    config = tiny_config(
        modalities=modalities,
        tasks=TaskConfig(emotion_labels=list(SCHOOL_AFFECTS)),
    )
    result = train(
        config,
        labelled[:train_on],
        labelled[train_on:],
        TrainingConfig(epochs=1, batch_size=8, progress=False),
    )
    return save_bundle(root / name, result.model, metrics=result.metrics)


@pytest.fixture(scope="module")
def school_bundle_dir(tmp_path_factory):
    """A tiny school model: learner text and audio → affect and tutoring suggestions."""
    return tiny_school_bundle(
        tmp_path_factory.mktemp("school-models"),
        "school-v1",
        modalities=["text", "audio"],
        cases=24,
        seed=3,
        train_on=16,
        voice_seconds=2.0,
    )


@pytest.fixture
def trained_school_model(school_bundle_dir, settings):
    settings.MLCORE_MODELS_DIR = school_bundle_dir.parent
    version = register_model_version(
        name="school-v1", serves="school", bundle_path="school-v1", metrics={}
    )
    return promote_model_version(version=version, promoted_by=None)


@pytest.fixture
def clinic_model(bundle_dir, settings):
    settings.MLCORE_MODELS_DIR = bundle_dir.parent
    version = register_model_version(
        name="clinic-v1", serves="clinic", bundle_path="clinic-v1", metrics={}
    )
    return promote_model_version(version=version, promoted_by=None)


@pytest.fixture
def eager(settings, tmp_path):
    """Tasks run inline, as a worker would run them, when the request's transaction commits."""
    settings.TESSERA_FEATURE_CACHE = tmp_path / "features"
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def encounter(clinic, dicom_bytes, wav_audio):
    patient = create_patient(organization=clinic, mrn="J-1", full_name="Job Patient")
    visit = create_encounter(patient=patient, occurred_at=WHEN)
    add_media(attached_to=visit, kind=MediaKind.DICOM, file=upload(dicom_bytes))
    add_media(
        attached_to=visit,
        kind=MediaKind.CLINICAL_NOTE,
        file=upload(b"Persistent cough, weight loss."),
    )
    add_media(attached_to=visit, kind=MediaKind.SPEECH, file=upload(wav_audio))
    return visit


@pytest.fixture
def people(clinic, other_clinic, make_user):
    """A user for every role of the clinic, and a clinician of another clinic."""
    return {
        "admin": make_user("admin", organization=clinic, role=Role.ORG_ADMIN),
        "clinician": make_user("clinician", organization=clinic, role=Role.CLINICIAN),
        "analyst": make_user("analyst", organization=clinic, role=Role.ANALYST),
        "viewer": make_user("viewer", organization=clinic, role=Role.VIEWER),
        "stranger": make_user("stranger", organization=other_clinic, role=Role.CLINICIAN),
    }


def prediction(*, mass: float = 0.0, affect: str = "", abstain: bool = False) -> dict:
    return {
        "diagnosis": {"suspicious_mass": mass},
        "findings": ["suspicious_mass"] if mass >= 0.5 else [],
        "emotion": {affect: 1.0} if affect else {},
        "emotion_label": affect or None,
        "modalities_used": ["text"],
        "contributions": {"suspicious_mass": {"text": 0.3}},
        "uncertainty": 0.2,
        "abstain": abstain,
        "needs_person": {"diagnosis": UNSURE} if abstain else {},
    }


UNSURE = {
    "reason": "low_confidence",
    "detail": "The model is 55% sure of the findings, below the 60% asked for.",
}


def finished(visit, version, **predicted) -> AnalysisResult:
    """A job of `visit` run to its result through `complete_job`, as a worker ends one."""
    is_encounter = hasattr(visit, "patient")
    job = AnalysisJob.objects.create(
        organization=(visit.patient if is_encounter else visit.student).organization,
        visit_key=visit.visit_key,
        task="all",
        status="running",
        model_version=version,
    )
    return complete_job(job_id=job.pk, worker="gpu", prediction=prediction(**predicted))
