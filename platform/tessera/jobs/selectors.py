"""Reads for jobs and models."""

from functools import lru_cache
from pathlib import Path

from mlcore.config import ModelConfig
from tessera.jobs.models import ModelVersion


def active_model_version(*, serves: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(serves=serves, status=ModelVersion.Status.ACTIVE).first()


def model_labels(*, version: ModelVersion) -> tuple[list[str], list[str]]:
    """The finding and affect labels a model version predicts (from its bundle)."""
    return _labels(version.bundle_dir)


@lru_cache(maxsize=32)
def _labels(bundle_dir: Path) -> tuple[list[str], list[str]]:
    tasks = ModelConfig.load(bundle_dir / "config.json").tasks
    return list(tasks.diagnosis_labels), list(tasks.emotion_labels)
