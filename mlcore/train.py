"""Training: AdamW with warm-up and cosine decay, gradient clipping, early stopping on the
validation score, bf16 autocast on GPU, seedable and deterministic on CPU; then temperature
calibration of the probability heads on a calibration split of their own (mlcore.calibration),
and the returned model's metrics on the most independent split given.

Three or four splits, each with one job: train (the weights), validation (the epoch),
calibration (the temperatures), test (the figures that are reported). A metric is never taken
on a split that tuned what it measures: without a test split the figures come from the
calibration split, whose calibration error is then flattering, and the metrics say so."""

import copy
import math
import random
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

import mlcore
from mlcore.abstention import diagnosis_confidence, emotion_confidence, needs_person
from mlcore.calibration import calibrate
from mlcore.config import ModelConfig
from mlcore.data import Batch, Case, Features, Preprocessor, collate
from mlcore.device import autocast, select_device
from mlcore.engine import forward_in_batches, unlike_training
from mlcore.errors import InputError
from mlcore.evaluate import classification_metrics, diagnosis_metrics, score
from mlcore.input_checks import profile
from mlcore.model import MultimodalModel, Output, build_model
from mlcore.novelty import fit_novelty


@dataclass
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    patience: int = 6  # epochs without a better held-out score before stopping
    # Weight of each modality's own answer in the loss (`training_loss`); 0 trains the fused
    # answer alone.
    single_modality_weight: float = 1.0
    # Mirror each training image left to right with probability 1/2. Anatomy is nearly
    # symmetric and a nodule reads the same in either lung, so the image network must find the
    # nodule rather than learn where one side's borders lie. Turn off for findings that name
    # a side.
    mirror_images: bool = True
    # Hear each training recording as another microphone might have taken it (`_re_recorded`):
    # another gain, another room's noise floor, sometimes a narrower band. A voice's loudness
    # carries arousal, so a model that never heard another microphone reads a quieter one's
    # as a calmer voice.
    vary_microphones: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True


@dataclass
class TrainingResult:
    model: MultimodalModel
    # Metrics of the returned (best, calibrated) model on `metrics["split"]`, with the
    # calibration report under "calibration".
    metrics: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def preprocess(cases: list[Case], preprocessor: Preprocessor) -> list[Features]:
    features = []
    for case in cases:
        try:
            features.append(preprocessor(case))
        except InputError as error:
            raise InputError(f"case {case.id}: {error}") from error
    return features


def task_loss(output: Output, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = output.embedding.new_zeros(())
    if output.diagnosis is not None:
        known = targets["diagnosis_known"]
        if known.any():
            loss = loss + F.binary_cross_entropy_with_logits(
                output.diagnosis[known].float(), targets["diagnosis"][known]
            )
    if output.emotion is not None and (targets["emotion"] >= 0).any():
        loss = loss + F.cross_entropy(output.emotion.float(), targets["emotion"], ignore_index=-100)
    return loss


def _mirrored(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`images` with about half of them flipped left to right (the last axis)."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip.view(-1, *[1] * (images.dim() - 1)), images.flip(-1), images)


# Ranges of `_re_recorded`, in the log-mel's units (dB / 20, mlcore.io.audio): gain within
# ±3 dB; a noise floor between -42 and -20 dB (a quiet room's hiss sits near -40 dB); with
# probability 1/2, the lowest bins up to an eighth and the highest from three fifths of the
# band up muffled by 40 dB.
GAIN_DB = 3.0
NOISE_FLOOR = (-2.1, -1.0)
MUFFLED = 2.0


def _re_recorded(audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Log-mel `audio` (B, 1, mels, frames) as other microphones would have taken it."""
    count, mels = len(audio), audio.shape[-2]

    def draw(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand((count, 1, 1, 1), generator=generator)

    level = audio + draw(-GAIN_DB, GAIN_DB) / 20.0
    band = torch.arange(mels).view(1, 1, mels, 1)
    low_cut, high_cut = draw(0, mels / 8).floor(), draw(3 * mels / 5, mels).ceil()
    narrow = torch.rand((count, 1, 1, 1), generator=generator) < 0.5
    outside = narrow & ((band < low_cut) | (band >= high_cut))
    level = level - MUFFLED * outside
    floor = draw(*NOISE_FLOOR)
    # powers add: 10^(2x) is a log-mel value's power
    return torch.log10(10.0 ** (2 * level) + 10.0 ** (2 * floor)) / 2


def training_loss(
    model: MultimodalModel, batch: Batch, *, single_modality_weight: float
) -> torch.Tensor:
    """The tasks' loss on the fused answer, plus `single_modality_weight` times the loss of
    each modality's findings and affect from that modality alone (on the cases that have it).

    Trained on the fused answer only, a network learns the modality that pays first and
    leaves the slower one under-trained (Wang et al., 2020, "What makes training multi-modal
    classification networks hard?"): here the text, read by a pretrained encoder, while the
    image network has yet to find the nodule. Each modality's own loss keeps a gradient on
    every encoder, and the answer from one modality, which contributions and abstention
    read, is trained rather than extrapolated.
    """
    tokens, present = model.encode(batch)
    loss = task_loss(model.decide(tokens, present), batch.targets)
    if single_modality_weight <= 0 or len(model.modalities) < 2:
        return loss
    for column in range(len(model.modalities)):
        rows = present[:, column]
        if not rows.any():
            continue
        alone = torch.zeros_like(present[rows])
        alone[:, column] = True
        output = model.decide(tokens[rows], alone)
        targets = {key: value[rows] for key, value in batch.targets.items()}
        loss = loss + single_modality_weight * task_loss(output, targets)
    return loss


def evaluate_model(
    model: MultimodalModel,
    features: list[Features],
    cases: list[Case],
    *,
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> dict:
    model.eval()
    arrays = forward_in_batches(
        model, features, batch_size=batch_size, device=device, pad_id=pad_id
    )
    return metrics_from_arrays(arrays, cases, model.config)


def needs_person_rates(
    model: MultimodalModel,
    features: list[Features],
    *,
    pad_id: int,
    device: torch.device,
    missing_evidence: bool = False,
) -> dict[str, float]:
    """Per task, the share of these cases that would go to a person, for want of confidence or
    as unlike the training data, at the model's thresholds; with `missing_evidence`, also for
    want of an input the task requires (on labelled splits that is a fact of the case, not of
    the model, and is not counted)."""
    arrays = forward_in_batches(model, features, batch_size=64, device=device, pad_id=pad_id)
    tasks = model.config.tasks
    confidences = {
        task: [confidence(row) for row in arrays[task]]
        for task, confidence in (
            ("diagnosis", diagnosis_confidence),
            ("emotion", emotion_confidence),
        )
        if task in arrays
    }
    counts = dict.fromkeys(confidences, 0)
    for row, item in enumerate(features):
        verdicts = needs_person(
            confidence={task: values[row] for task, values in confidences.items()},
            used=item.modalities(),
            requires=tasks.requires if missing_evidence else {},
            thresholds=tasks.abstain_below,
            unlike=unlike_training(model, arrays, row, item),
        )
        for task in verdicts:
            counts[task] += 1
    return {task: round(count / max(1, len(features)), 4) for task, count in counts.items()}


def out_of_distribution(
    model: MultimodalModel,
    preprocessor: Preprocessor,
    in_distribution: list[Case],
    *,
    device: torch.device,
) -> dict:
    """How often each task goes to a person on inputs unlike any training data
    (mlcore.probes); probes that preprocessing refuses (as the platform refuses their upload)
    are counted apart."""
    from mlcore.probes import probes, quiet_pydicom

    features, refused = [], 0
    with quiet_pydicom():
        for probe in probes(model.config.modalities, in_distribution):
            try:
                features.append(preprocessor(probe.case))
            except InputError:
                refused += 1
    return {
        "cases": len(features),
        "refused": refused,
        "needs_person_rate": needs_person_rates(
            model, features, pad_id=preprocessor.pad_id, device=device, missing_evidence=True
        ),
    }


def metrics_from_arrays(
    arrays: dict[str, np.ndarray], cases: list[Case], config: ModelConfig
) -> dict:
    metrics: dict = {}
    tasks = config.tasks
    if tasks.diagnosis_labels:
        known = [i for i, case in enumerate(cases) if case.diagnosis is not None]
        if known:
            truth = np.array(
                [[label in cases[i].diagnosis for label in tasks.diagnosis_labels] for i in known],
                dtype=int,
            )
            metrics["diagnosis"] = diagnosis_metrics(
                truth, arrays["diagnosis"][known], tasks.diagnosis_labels
            )
    if tasks.emotion_labels:
        known = [i for i, case in enumerate(cases) if case.emotion is not None]
        if known:
            truth = np.array([tasks.emotion_labels.index(cases[i].emotion) for i in known])
            metrics["emotion"] = classification_metrics(
                truth, arrays["emotion"][known], tasks.emotion_labels
            )
    metrics["score"] = score(metrics)
    return metrics


def _texts_embedded_once(model: MultimodalModel):
    """A frozen text encoder embeds each distinct text once for the whole training run."""
    stack = ExitStack()
    for modality in ("text", "speech_text"):
        if modality in model.encoders:
            stack.enter_context(model.encoders[modality].remembering())
    return stack


def _schedule(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(
    config: ModelConfig,
    train_cases: list[Case],
    validation_cases: list[Case],
    training: TrainingConfig | None = None,
    *,
    calibration_cases: list[Case] | None = None,
    test_cases: list[Case] | None = None,
    log: Callable[[dict], None] | None = None,
    start_from: MultimodalModel | None = None,
) -> TrainingResult:
    """Train a model for `config`, or fine-tune a copy of `start_from` (whose configuration
    then applies; the original is left as it was). Without `calibration_cases` the
    probability heads keep the temperatures they had (1 for a new model), and the metrics say
    so."""
    training = training or TrainingConfig()
    seed_everything(training.seed)
    device = select_device(training.device)
    if start_from is not None:
        model = copy.deepcopy(start_from).to(device)
        config = model.config
    else:
        model = build_model(config).to(device)
    config.mlcore_version = mlcore.__version__
    preprocessor = Preprocessor(config)
    train_features = preprocess(train_cases, preprocessor)
    validation_features = preprocess(validation_cases, preprocessor)
    config.inputs = profile([item.facts for item in train_features], start=config.inputs)

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=training.learning_rate, weight_decay=training.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_features) / training.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(steps_per_epoch * training.epochs, training.warmup_fraction)
    )
    shuffler = torch.Generator().manual_seed(training.seed)
    augmentation = torch.Generator().manual_seed(training.seed + 1)
    best_state, best_score, best_epoch, history = None, -1.0, 0, []

    with _texts_embedded_once(model):
        epochs = tqdm(
            range(1, training.epochs + 1),
            desc=config.name,
            disable=not training.progress,
            leave=False,
        )
        for epoch in epochs:
            model.train()
            order = torch.randperm(len(train_features), generator=shuffler).tolist()
            total = 0.0
            for start in range(0, len(order), training.batch_size):
                indices = order[start : start + training.batch_size]
                batch = collate(
                    [train_features[i] for i in indices],
                    config,
                    pad_id=preprocessor.pad_id,
                    cases=[train_cases[i] for i in indices],
                )
                if training.mirror_images and batch.image is not None:
                    batch.image = _mirrored(batch.image, augmentation)
                if training.vary_microphones and batch.audio is not None:
                    batch.audio = _re_recorded(batch.audio, augmentation)
                batch = batch.to(device)
                with autocast(device):
                    loss = training_loss(
                        model, batch, single_modality_weight=training.single_modality_weight
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, training.grad_clip)
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(indices)
            held_out = evaluate_model(
                model,
                validation_features,
                validation_cases,
                pad_id=preprocessor.pad_id,
                device=device,
            )
            entry = {
                "epoch": epoch,
                "train_loss": round(total / len(order), 5),
                "validation_score": round(held_out["score"], 5),
            }
            history.append(entry)
            if log:
                log(entry)
            epochs.set_postfix(loss=entry["train_loss"], score=entry["validation_score"])
            if held_out["score"] > best_score:
                best_state, best_score, best_epoch = (
                    copy.deepcopy(model.state_dict()),
                    held_out["score"],
                    epoch,
                )
            elif epoch - best_epoch >= training.patience:
                break

        model.load_state_dict(best_state)
        if calibration_cases:
            calibration_features = preprocess(calibration_cases, preprocessor)
            # Thresholds and the novelty limit are tail quantiles: both held-out splits that
            # tuned no weights set them, steadier than the calibration split's cases alone.
            untuned = validation_features + calibration_features
            calibration = calibrate(
                model,
                calibration_features,
                calibration_cases,
                pad_id=preprocessor.pad_id,
                device=device,
                proposing_on=untuned,
            )
            novelty = fit_novelty(
                model,
                train_features,
                train_cases,
                untuned,
                pad_id=preprocessor.pad_id,
                device=device,
            )
        else:
            reason = "no calibration split: the temperatures were not fitted"
            calibration = {"cases": 0, "reason": reason}
            novelty = {"reason": "no calibration split: novelty detection was not fitted"}
        split, reported = next(
            (name, chosen)
            for name, chosen in (
                ("test", test_cases),
                ("calibration", calibration_cases),
                ("validation", validation_cases),
            )
            if chosen
        )
        features = (
            validation_features if split == "validation" else preprocess(reported, preprocessor)
        )
        metrics = evaluate_model(
            model, features, reported, pad_id=preprocessor.pad_id, device=device
        )
        metrics.update(
            split=split,
            calibration=calibration,
            novelty=novelty,
            needs_person_rate=needs_person_rates(
                model, features, pad_id=preprocessor.pad_id, device=device
            ),
        )
        if test_cases and calibration_cases:
            metrics["out_of_distribution"] = out_of_distribution(
                model, preprocessor, test_cases, device=device
            )
        model.eval()
    return TrainingResult(model=model, metrics=metrics, history=history, best_epoch=best_epoch)
