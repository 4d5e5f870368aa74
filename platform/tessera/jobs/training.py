"""Learning from feedback: a training run gathers the results professionals confirmed or
corrected, fine-tunes the active model on them, and promotes the new version only if it is not
worse on held-out cases (macro-F1). Every version stays listed with its metrics, and the run
records who asked for it and what it decided."""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mlcore.data import Case, Features, Preprocessor
from mlcore.device import select_device
from mlcore.errors import ConfigError, InputError
from mlcore.model import MultimodalModel
from mlcore.registry import load_bundle, save_bundle
from mlcore.train import TrainingConfig, evaluate_model, preprocess, train
from tessera.celery import TaskName, enqueue
from tessera.jobs import features as job_features
from tessera.jobs.models import AnalysisResult, Feedback, ModelVersion, TrainingRun
from tessera.jobs.selectors import active_model_version
from tessera.jobs.services import (
    json_safe,
    promote_model_version,
    register_model_version,
)
from tessera.records.kinds import TO_VISITS
from tessera.refusals import RefusalCode, Refused

logger = logging.getLogger(__name__)
LABELLING = (Feedback.Kind.CONFIRM, Feedback.Kind.CORRECT)


def _labelling_feedback(serves: str):
    return Feedback.objects.filter(kind__in=LABELLING, result__job__organization__kind=serves)


def labelled_results(*, serves: str) -> list[tuple[AnalysisResult, Feedback]]:
    """Results of `serves` organizations that a professional confirmed or corrected, each with
    its latest such verdict."""
    feedback = (
        _labelling_feedback(serves)
        .select_related(
            "result__job__model_version", *(f"result__job__{path}" for path in TO_VISITS)
        )
        .order_by("result_id", "-created_at", "-pk")
    )
    latest: dict[int, Feedback] = {}
    for verdict in feedback:
        latest.setdefault(verdict.result_id, verdict)
    return [(verdict.result, verdict) for verdict in latest.values()]


def request_training(*, serves: str, requested_by: AbstractBaseUser | None = None) -> TrainingRun:
    """Queue a training run on the gpu queue (published after commit). Refused, with nothing
    written, when no model serves `serves` yet or feedback is too scarce to learn from."""
    base = active_model_version(serves=serves)
    if base is None:
        raise Refused(f"no active {serves} model to fine-tune", code=RefusalCode.NO_MODEL)
    available = _labelling_feedback(serves).values("result_id").distinct().count()
    needed = settings.TESSERA_TRAINING_MIN_CASES
    if available < needed:
        raise Refused(
            f"only {available} results have been confirmed or corrected; training needs at "
            f"least {needed}",
            code=RefusalCode.TOO_LITTLE_FEEDBACK,
        )
    with transaction.atomic():
        run = TrainingRun.objects.create(
            serves=serves, base_version=base, requested_by=requested_by
        )
        transaction.on_commit(partial(_publish, run_id=run.pk))
    return run


def _publish(*, run_id: int) -> None:
    enqueue(TaskName.TRAIN, run_id)


def claim_run(*, run_id: int) -> bool:
    """Take a queued run, or one whose worker died long ago (a run is not split across
    workers: the message comes back only if its worker died)."""
    now = timezone.now()
    abandoned = now - timedelta(seconds=settings.TESSERA_TRAINING_TIMEOUT)
    return (
        TrainingRun.objects.filter(pk=run_id)
        .filter(
            Q(status=TrainingRun.Status.QUEUED)
            | Q(status=TrainingRun.Status.RUNNING, started_at__lt=abandoned)
        )
        .update(status=TrainingRun.Status.RUNNING, started_at=now)
        == 1
    )


def run_training(*, run_id: int) -> TrainingRun:
    """Build the manifest, fine-tune, evaluate against the base model, promote or reject."""
    run = TrainingRun.objects.select_related("base_version", "requested_by").get(pk=run_id)
    try:
        _train_and_decide(run)
    except (InputError, ConfigError, Refused) as error:
        run.status, run.message = TrainingRun.Status.FAILED, str(error)
    run.finished_at = timezone.now()
    run.save()
    return run


def _train_and_decide(run: TrainingRun) -> None:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = f"{run.serves}-{stamp}-run{run.pk}"
    bundle_dir = Path(settings.MLCORE_MODELS_DIR) / name
    cases = feedback_cases(serves=run.serves)
    splits = split(cases)
    test_cases = splits.test
    run.cases = len(cases)
    device = select_device(settings.MLCORE_DEVICE)
    base = load_bundle(run.base_version.bundle_dir, device=device)
    result = train(
        base.config,
        splits.train,
        splits.validation,
        TrainingConfig(
            epochs=settings.TESSERA_TRAINING_EPOCHS,
            batch_size=16,
            learning_rate=settings.TESSERA_TRAINING_LEARNING_RATE,
            device=str(device),
            progress=False,
        ),
        calibration_cases=splits.calibration,
        test_cases=test_cases,
        start_from=base.model,
    )
    result.model.config.training_data_hash = training_data_hash(cases)
    result.model.config.training_data = (
        f"{base.config.training_data or run.base_version.name}, then fine-tuned on "
        f"{len(splits.train)} cases that professionals confirmed or corrected"
    )
    # Fine-tuned from the base, the candidate reads its inputs the same way: decode them once.
    preprocessor = Preprocessor(base.config)
    test_features = preprocess(test_cases, preprocessor)
    candidate_score = held_out_score(
        result.model, test_features, test_cases, pad_id=preprocessor.pad_id, device=device
    )
    base_score = held_out_score(
        base.model, test_features, test_cases, pad_id=preprocessor.pad_id, device=device
    )
    save_bundle(bundle_dir, result.model, metrics=result.metrics, history=result.history)
    run.metrics = json_safe(
        {
            "held_out_cases": len(test_cases),
            "candidate_macro_f1": candidate_score,
            "base_macro_f1": base_score,
        }
    )
    version = register_model_version(
        name=name,
        serves=run.serves,
        bundle_path=name,
        metrics={**result.metrics, "held_out": run.metrics, "base_version": run.base_version.name},
        # fine-tuning keeps what the base learnt from its data
        trained_on_synthetic_data=run.base_version.trained_on_synthetic_data,
    )
    run.candidate = version
    if candidate_score >= base_score:
        promote_model_version(version=version, promoted_by=run.requested_by)
        run.status = TrainingRun.Status.PROMOTED
        run.message = (
            f"promoted: held-out macro-F1 {candidate_score:.3f} against "
            f"{base_score:.3f} for {run.base_version.name}"
        )
    else:
        version.status = ModelVersion.Status.REJECTED
        version.save(update_fields=["status"])
        run.status = TrainingRun.Status.REJECTED
        run.message = (
            f"kept {run.base_version.name}: held-out macro-F1 {candidate_score:.3f} is below "
            f"its {base_score:.3f}"
        )
    logger.info("training run %s: %s", run.pk, run.message)


def feedback_cases(*, serves: str) -> list[Case]:
    """The labelled results as mlcore cases, with their files' content read (checked, and
    decrypted where needed) from the content store."""
    cases = []
    for result, verdict in labelled_results(serves=serves):
        labels = labels_from(result, verdict)
        case = job_features.case_for(result.job)
        if "speech_text" in job_features.withheld_from(result.job).get("emotion", []):
            # the labels teach affect: never from words the policy kept out of affect
            case.speech_text = None
        case.diagnosis, case.emotion = labels.get("diagnosis"), labels.get("emotion")
        cases.append(case)
    return cases


def training_data_hash(cases: list[Case]) -> str:
    """sha256 over every case's labels and content: identifies the training data."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda case: case.id):
        labels = {"id": case.id, "diagnosis": case.diagnosis, "emotion": case.emotion}
        digest.update(json.dumps(labels, sort_keys=True).encode())
        for content in (case.image, case.text, case.audio, case.speech_text, case.subject):
            content = content.encode() if isinstance(content, str) else content or b""
            digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def labels_from(result: AnalysisResult, verdict: Feedback) -> dict:
    """A confirmation labels the case with what the model said; a correction with what the
    professional said (a field they did not correct stays unknown)."""
    if verdict.kind == Feedback.Kind.CONFIRM:
        labels = {}
        if result.diagnosis:
            labels["diagnosis"] = list(result.findings)
        if result.emotion_label:
            labels["emotion"] = result.emotion_label
        return labels
    labels = {}
    if verdict.diagnosis is not None:
        labels["diagnosis"] = list(verdict.diagnosis)
    if verdict.emotion_label:
        labels["emotion"] = verdict.emotion_label
    return labels


@dataclass(frozen=True)
class Splits:
    train: list[Case]
    validation: list[Case]  # chooses the epoch
    calibration: list[Case]  # fits the probability temperatures
    test: list[Case]  # decides promotion, and gives the figures


def split(cases: list[Case]) -> Splits:
    """A quarter of the cases for test, an eighth each for validation and calibration, the rest
    to train, by a hash of each case's id: the same case always lands in the same split."""
    ordered = sorted(cases, key=lambda case: hashlib.sha256(case.id.encode()).hexdigest())
    return Splits(
        train=[case for index, case in enumerate(ordered) if index % 8 in (2, 3, 6, 7)],
        validation=ordered[1::8],
        calibration=ordered[5::8],
        test=ordered[0::4],
    )


def held_out_score(
    model: MultimodalModel, features: list[Features], cases: list[Case], *, pad_id: int, device
) -> float:
    metrics = evaluate_model(model, features, cases, pad_id=pad_id, device=device)
    return round(metrics["score"], 4)
