"""Reads for jobs and models."""

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from mlcore.card import card_sections
from mlcore.config import ModelConfig
from mlcore.errors import ConfigError
from mlcore.suggestions import Verdicts
from tessera.accounts.models import Organization
from tessera.accounts.permissions import model_kinds_readable_by
from tessera.jobs.models import AnalysisResult, Feedback, ModelVersion
from tessera.records.kinds import kind_of, subject_of
from tessera.tutoring.selectors import intervention_titles


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


def tutoring_verdicts(*, organization_id: int) -> dict[str, Verdicts]:
    """Intervention id → what the organization's teachers said of it: judged useful, or found
    to have helped at the learner's next session, against the opposite."""
    good, bad = (
        (Feedback.Kind.USEFUL, Feedback.Kind.HELPED),
        (
            Feedback.Kind.NOT_USEFUL,
            Feedback.Kind.DID_NOT_HELP,
        ),
    )
    rows = (
        Feedback.objects.filter(result__organization_id=organization_id, kind__in=good + bad)
        .values("intervention")
        .annotate(
            useful=Count("pk", filter=Q(kind__in=good)),
            not_useful=Count("pk", filter=Q(kind__in=bad)),
        )
    )
    return {
        row["intervention"]: Verdicts(useful=row["useful"], not_useful=row["not_useful"])
        for row in rows
    }


def affects_estimated(*, serves: str) -> list[str]:
    """The affect labels the model serving `serves` estimates: what a library's interventions
    may be tagged with; [] when no model serves them, or its bundle is not on this host."""
    version = active_model_version(serves=serves)
    if version is None:
        return []
    try:
        return model_labels(version=version)[1]
    except (OSError, ConfigError):
        return []


def said_of_suggestions(verdicts: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Intervention id → the kinds of feedback given on it, from (intervention, kind) pairs
    (feedback on no suggestion left out)."""
    said: dict[str, set[str]] = {}
    for intervention, kind in verdicts:
        if intervention:
            said.setdefault(intervention, set()).add(kind)
    return said


def tried_before(*, result: AnalysisResult) -> tuple[AnalysisResult | None, list[dict]]:
    """The person's analysis before `result`'s session, and its suggestions a teacher tried
    without saying yet whether they helped: what to ask at the learner's next session."""
    if not kind_of(result.job).suggests_tutoring:
        return None, []
    path = kind_of(result.job).from_result
    earlier = (
        AnalysisResult.objects.filter(
            **{path: subject_of(result.job)}, created_at__lt=result.created_at
        )
        .exclude(job__visit_key=result.job.visit_key_id)
        .exclude(tutoring=[])
        .order_by("-created_at")
        .first()
    )
    if earlier is None:
        return None, []
    said = said_of_suggestions(earlier.feedback.values_list("intervention", "kind"))
    open_trials = [
        suggestion
        for suggestion in earlier.tutoring
        if Feedback.Kind.TRIED in said.get(suggestion["id"], set())
        and not said[suggestion["id"]] & {Feedback.Kind.HELPED, Feedback.Kind.DID_NOT_HELP}
    ]
    return earlier, open_trials


def intervention_outcomes(*, organization: Organization) -> list[dict]:
    """Per intervention the organization's teachers tried: its title, how often it was tried,
    and how often it helped or did not (the rest: not said yet), most tried first."""
    titles = intervention_titles(organization=organization)
    rows = (
        Feedback.objects.filter(
            result__organization=organization,
            kind__in=(Feedback.Kind.TRIED, Feedback.Kind.HELPED, Feedback.Kind.DID_NOT_HELP),
        )
        .values("intervention")
        .annotate(
            tried=Count("pk", filter=Q(kind=Feedback.Kind.TRIED)),
            helped=Count("pk", filter=Q(kind=Feedback.Kind.HELPED)),
            did_not_help=Count("pk", filter=Q(kind=Feedback.Kind.DID_NOT_HELP)),
        )
        .order_by("-tried", "intervention")
    )
    return [
        {
            **row,
            "title": titles.get(row["intervention"], row["intervention"]),
            "not_said": row["tried"] - row["helped"] - row["did_not_help"],
        }
        for row in rows
        if row["tried"]
    ]
