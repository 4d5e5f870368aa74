"""The models page: every version that serves the user's kinds of organization, its card and
metrics, how professionals judged it; promoting one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from tessera.accounts.permissions import (
    Capability,
    may_promote,
    model_kinds_promotable_by,
    organizations_where,
)
from tessera.dashboards.views.common import sentence
from tessera.jobs.models import ModelVersion
from tessera.jobs.selectors import (
    model_card,
    model_labels,
    model_versions_for,
)
from tessera.jobs.services import promote_model_version
from tessera.jobs.statistics import affect_agreement
from tessera.refusals import Refused


@login_required
@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    """Every member reads the models that answer them; admins promote."""
    versions = list(model_versions_for(user=request.user).order_by("serves", "-created_at"))
    organizations = organizations_where(user=request.user, capability=Capability.READ)
    for version in versions:
        version.card = model_card(version=version)
        version.metric_tables = _metric_tables(version.metrics)
        version.agreement = _agreement(version, organizations)
    return render(
        request,
        "dashboards/models.html",
        {"versions": versions, "promotable": model_kinds_promotable_by(user=request.user)},
    )


def _agreement(version: ModelVersion, organizations) -> dict | None:
    """How the version's affect suggestions fared with the professionals of `organizations`;
    None before anyone confirmed or corrected one."""
    try:
        _, labels = model_labels(version=version)
    except OSError:  # the bundle is not on this host: nothing to name the labels by
        return None
    matrix, metrics, share_right = affect_agreement(
        version=version, organizations=organizations, labels=labels
    )
    if share_right is None:
        return None
    return {
        "accuracy": share_right,
        "verdicts": sum(map(sum, matrix)),
        "labels": labels,
        "rows": list(zip(labels, matrix, metrics, strict=True)),
    }


def _metric_tables(metrics: dict) -> list[dict]:
    """One table per task of `mlcore.evaluate`'s metrics: affect, and each finding."""
    tasks = []
    if "emotion" in metrics:
        tasks.append(("Affect", metrics["emotion"]))
    for finding, values in metrics.get("diagnosis", {}).get("per_label", {}).items():
        tasks.append((f"Finding: {finding.replace('_', ' ')}", values))
    return [
        {
            "title": title,
            "metrics": values,
            "rows": list(zip(values["labels"], values["confusion_matrix"], strict=True)),
        }
        for title, values in tasks
        if "confusion_matrix" in values
    ]


@login_required
@require_POST
def promote(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(model_versions_for(user=request.user), pk=pk)
    if not may_promote(user=request.user, serves=version.serves):
        raise PermissionDenied("Only organization admins promote models.")
    try:
        promote_model_version(version=version, promoted_by=request.user)
    except Refused as refusal:
        messages.error(request, f"{version.name}: {sentence(str(refusal))}")
    else:
        messages.success(
            request, f"{version.name} now serves every {version.get_serves_display().lower()}."
        )
    return redirect("models")
