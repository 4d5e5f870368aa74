"""Learning from feedback: a training run gathers the results professionals confirmed or
corrected, fine-tunes the active model on them, and promotes the new version only if it is not
worse on held-out cases (macro-F1). Every version stays listed with its metrics, and the run
records who asked for it and what it decided.

For schools it also teaches each school's tutoring head from its teachers' verdicts on
suggestions (mlcore.tutoring_training), where a school has enough of them: the head is used
only if held-out verdicts find it worse than neither the tag match nor the head in use. Either
part runs when it has enough feedback."""

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
from mlcore.learnt_ranking import Session, Verdict
from mlcore.model import MultimodalModel
from mlcore.registry import load_bundle, save_bundle
from mlcore.train import TrainingConfig, evaluate_model, preprocess, train
from mlcore.tutoring_training import train_and_judge
from tessera.accounts.models import Organization
from tessera.celery import TaskName, enqueue
from tessera.jobs import features as job_features
from tessera.jobs.models import AnalysisResult, Feedback, ModelVersion, TrainingRun
from tessera.jobs.selectors import active_model_version
from tessera.jobs.services import (
    json_safe,
    promote_model_version,
    register_model_version,
)
from tessera.records.kinds import TO_VISITS, kind_for, level_of, subject_of, topic_of, visit_of
from tessera.refusals import RefusalCode, Refused
from tessera.storage import publish_bundle
from tessera.tutoring.selectors import head_in_use
from tessera.tutoring.services import library_in_effect, record_head

logger = logging.getLogger(__name__)
LABELLING = (Feedback.Kind.CONFIRM, Feedback.Kind.CORRECT)
# A teacher's verdict on a suggestion: was it useful (or did it help, which outranks it)?
SAID_USEFUL = {Feedback.Kind.USEFUL: True, Feedback.Kind.NOT_USEFUL: False}
SAID_IT_HELPED = {Feedback.Kind.HELPED: True, Feedback.Kind.DID_NOT_HELP: False}


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
    available = labelled_count(serves=serves)
    needed = settings.TESSERA_TRAINING_MIN_CASES
    if available < needed and not schools_ready_for_tutoring(serves=serves):
        tutoring = (
            f", and no school has the {settings.TESSERA_TUTORING_MIN_VERDICTS} verdicts on "
            "suggestions a tutoring head needs"
            if kind_for(serves).suggests_tutoring
            else ""
        )
        raise Refused(
            f"only {available} results have been confirmed or corrected; training needs at "
            f"least {needed}{tutoring}",
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
    decisions = []
    if labelled_count(serves=run.serves) >= settings.TESSERA_TRAINING_MIN_CASES:
        decisions.append(_train_model(run))
    schools = schools_ready_for_tutoring(serves=run.serves)
    if schools:
        run.metrics = {**run.metrics, "tutoring": {}}
    for school in schools:
        decisions.append(_teach_tutoring_head(run, school))
    if not decisions:
        raise Refused("the feedback that made this run worth queueing is gone")
    run.status = (
        TrainingRun.Status.PROMOTED
        if any(promoted for promoted, _ in decisions)
        else TrainingRun.Status.REJECTED
    )
    run.message = "; ".join(message for _, message in decisions)
    logger.info("training run %s: %s", run.pk, run.message)


def labelled_count(*, serves: str) -> int:
    """How many results of `serves` organizations a professional confirmed or corrected."""
    return _labelling_feedback(serves).values("result_id").distinct().count()


def _train_model(run: TrainingRun) -> tuple[bool, str]:
    """Fine-tune the base on the labelled results; (promoted, what was decided)."""
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
    publish_bundle(name)  # before its version exists, so no host looks for it in vain
    run.metrics = json_safe(
        {
            **run.metrics,
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
        return True, (
            f"promoted: held-out macro-F1 {candidate_score:.3f} against "
            f"{base_score:.3f} for {run.base_version.name}"
        )
    version.status = ModelVersion.Status.REJECTED
    version.save(update_fields=["status"])
    return False, (
        f"kept {run.base_version.name}: held-out macro-F1 {candidate_score:.3f} is below "
        f"its {base_score:.3f}"
    )


def _tutoring_verdict_feedback(organization_id: int):
    return Feedback.objects.filter(
        result__organization_id=organization_id,
        kind__in=[*SAID_USEFUL, *SAID_IT_HELPED],
    ).exclude(intervention="")


def tutoring_training_verdicts(*, organization_id: int) -> list[Verdict]:
    """Per suggestion the organization's teachers judged (a result's intervention), their
    word on it: whether it helped at the learner's next session, else whether it looked
    useful. The session is the one the suggestion was made for."""
    said: dict[tuple[int, str], tuple[AnalysisResult, list[str]]] = {}
    feedback = _tutoring_verdict_feedback(organization_id).select_related(
        *(f"result__job__{path}" for path in TO_VISITS)
    )
    for verdict in feedback.order_by("created_at", "pk"):
        _, kinds = said.setdefault((verdict.result_id, verdict.intervention), (verdict.result, []))
        kinds.append(verdict.kind)
    verdicts = []
    for (_, intervention), (result, kinds) in sorted(said.items()):
        outcome = [SAID_IT_HELPED[kind] for kind in kinds if kind in SAID_IT_HELPED]
        looked = [SAID_USEFUL[kind] for kind in kinds if kind in SAID_USEFUL]
        session = Session(
            affect=result.emotion,
            subject=topic_of(visit_of(result.job)),
            grade=level_of(subject_of(result.job)),
            id=str(result.job.visit_key_id),
        )
        useful = (outcome or looked)[-1]
        verdicts.append(Verdict(session=session, intervention=intervention, useful=useful))
    return verdicts


def schools_ready_for_tutoring(*, serves: str) -> list[Organization]:
    """Organizations of kind `serves` (schools) whose teachers have judged enough suggestions
    to teach a tutoring head."""
    if not kind_for(serves).suggests_tutoring:
        return []
    needed = settings.TESSERA_TUTORING_MIN_VERDICTS
    return [
        organization
        for organization in Organization.objects.filter(kind=serves).order_by("pk")
        if _tutoring_verdict_feedback(organization.pk)
        .values("result_id", "intervention")
        .distinct()
        .count()
        >= needed
    ]


def _teach_tutoring_head(run: TrainingRun, school: Organization) -> tuple[bool, str]:
    """Teach `school`'s tutoring head from its verdicts and decide whether to use it."""
    library = library_in_effect(organization=school)
    decision = train_and_judge(
        library.library,
        tutoring_training_verdicts(organization_id=school.pk),
        active=head_in_use(organization_id=school.pk),
    )
    head = record_head(organization=school, library=library, decision=decision)
    run.metrics["tutoring"][school.slug] = {**decision.metrics(), "used": head.in_use}
    return head.in_use, f"{school.name}'s tutoring head: {decision.message}"


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
