"""Reads for jobs and models."""

from functools import lru_cache
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from mlcore.card import card_sections
from mlcore.config import ModelConfig
from mlcore.errors import ConfigError
from tessera.accounts.permissions import model_kinds_readable_by
from tessera.jobs.models import ModelVersion


def active_model_version(*, serves: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(serves=serves, status=ModelVersion.Status.ACTIVE).first()


def serving_versions() -> QuerySet[ModelVersion]:
    """The versions that serve organizations now (one per kind)."""
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)


def model_versions_for(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[ModelVersion]:
    """The versions `user` may read: those serving their kinds of organization (pages and API
    alike)."""
    return ModelVersion.objects.filter(serves__in=model_kinds_readable_by(user=user))


def model_card(*, version: ModelVersion) -> list[tuple[str, list[str]]]:
    """The version's model card as (heading, lines): intended use, inputs, data, held-out
    metrics, limits; [] when its bundle is not on this host."""
    return card_sections(version.bundle_dir)


def model_labels(*, version: ModelVersion) -> tuple[list[str], list[str]]:
    """The finding and affect labels a model version predicts (from its bundle)."""
    return _labels(version.bundle_dir)


@lru_cache(maxsize=32)
def _labels(bundle_dir: Path) -> tuple[list[str], list[str]]:
    tasks = ModelConfig.load(bundle_dir / "config.json").tasks
    return list(tasks.diagnosis_labels), list(tasks.emotion_labels)


def model_inputs(*, version: ModelVersion) -> tuple[str, ...]:
    """The inputs (modalities) a model version reads, from its bundle; () when the bundle
    cannot be read here (its jobs then fail, saying so)."""
    try:
        return _inputs(version.bundle_dir)
    except (OSError, ConfigError):
        return ()


@lru_cache(maxsize=32)
def _inputs(bundle_dir: Path) -> tuple[str, ...]:
    return tuple(ModelConfig.load(bundle_dir / "config.json").modalities)
