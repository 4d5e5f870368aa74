"""Model versions: registering a trained bundle, and promoting one to serve its kind of
organization (the previous one retires)."""

import math

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tessera.jobs.models import (
    ModelVersion,
)
from tessera.refusals import RefusalCode, Refused


def register_model_version(
    *,
    name: str,
    serves: str,
    bundle_path: str,
    metrics: dict,
    trained_on_synthetic_data: bool = False,
) -> ModelVersion:
    return ModelVersion.objects.create(
        name=name,
        serves=serves,
        bundle_path=bundle_path,
        metrics=json_safe(metrics),
        trained_on_synthetic_data=trained_on_synthetic_data,
    )


def json_safe(value):
    """Metrics as JSON allows them: an undefined score (NaN, say F1 of a class never seen in a
    small held-out set) becomes null."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def promote_model_version(
    *, version: ModelVersion, promoted_by: AbstractBaseUser | None
) -> ModelVersion:
    """Make `version` the one that serves its kind of organization; the previous one retires.
    Raises Refused (code `rejected`) for a version its evaluation rejected."""
    if version.status == ModelVersion.Status.REJECTED:
        raise Refused(
            "this version was rejected by its evaluation and cannot serve",
            code=RefusalCode.REJECTED,
        )
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(
            serves=version.serves, status=ModelVersion.Status.ACTIVE
        ).exclude(pk=version.pk).update(status=ModelVersion.Status.RETIRED)
        version.status = ModelVersion.Status.ACTIVE
        version.promoted_at = timezone.now()
        version.promoted_by = promoted_by
        version.save(update_fields=["status", "promoted_at", "promoted_by"])
    return version
