"""Batched inference: load a bundle once, predict lists of cases of any size.

Cases are bucketed by text length so padding stays small, run in batches under
`torch.inference_mode` (and bf16 autocast on GPU), and returned in the order given. On CPU the
linear layers' weights can be quantised to int8 (torchao).
"""

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlcore.abstention import diagnosis_confidence, emotion_confidence, needs_person
from mlcore.contributions import answer_keys, shapley_contributions
from mlcore.data import Case, Features, Preprocessor, collate
from mlcore.device import autocast, select_device
from mlcore.evidence import (
    heatmap_zone,
    moving_sentences,
    quoted_sentences,
    rationale,
    sentence_variants,
)
from mlcore.explain import coarsen, diagnosis_heatmaps
from mlcore.input_checks import concerns
from mlcore.model import MultimodalModel
from mlcore.pointing import heatmaps_trusted

CONTRIBUTION = "contribution/"
HEATMAP_CELLS = 32  # a prediction's heatmap is kept as at most this many cells a side


@dataclass
class Prediction:
    modalities_used: list[str]
    # Per task (each finding, and "emotion"), each used modality's Shapley value: how much it
    # moved the probability of the answer (mlcore.contributions).
    contributions: dict[str, dict[str, float]]
    uncertainty: float  # normalised entropy in [0, 1]: 0 certain, 1 no idea
    abstain: bool  # some task needs a person (`needs_person` says which, and why)
    confidence: dict[str, float] = field(default_factory=dict)  # task → its least sure answer's
    needs_person: dict[str, dict] = field(default_factory=dict)  # task → {reason, detail}
    # Each way the case is unlike the training data (mlcore.input_checks, mlcore.novelty), and
    # its novelty: its largest scaled Mahalanobis distance (mlcore.novelty; 0 when unfitted).
    unlike: list[str] = field(default_factory=list)
    novelty: float = 0.0
    diagnosis: dict[str, float] = field(default_factory=dict)  # label -> probability
    findings: list[str] = field(default_factory=list)  # labels with probability >= 0.5
    emotion: dict[str, float] = field(default_factory=dict)  # label -> probability
    emotion_label: str | None = None
    rationale: str | None = None  # written by the frozen language model, when configured
    # Per task, one sentence from the evidence the model used (mlcore.evidence).
    rationales: dict[str, str] = field(default_factory=dict)
    # Per task, per input (text, speech_text), the sentence that held the answer up most, as
    # the rationale quotes it, the strongest first (mlcore.evidence.quoted_sentences); {} where
    # no sentence did.
    quotes: dict[str, dict[str, str]] = field(default_factory=dict)
    # Where in the image the top finding came from: {method, finding, zone, heatmap (a grid of
    # at most HEATMAP_CELLS a side)}; {} without an image or findings.
    explanation: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def forward_in_batches(
    model: MultimodalModel,
    features: Sequence[Features],
    *,
    batch_size: int,
    device: torch.device,
    pad_id: int,
    contributions: bool = False,
) -> dict[str, np.ndarray]:
    """Run the (eval-mode) model over `features` in length-bucketed batches; arrays in input order:
    calibrated probabilities (`diagnosis`, `emotion`), their logits, modality
    weights and presence, the fused embedding, and its novelty with the detector that gave it
    (mlcore.novelty); with `contributions`, each task's (B, M)
    Shapley values as `contribution/<task>`."""
    order = sorted(range(len(features)), key=lambda i: _text_length(features[i]))
    chunks: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode(), autocast(device):
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            chunk = [features[i] for i in indices]
            batch = collate(chunk, model.config, pad_id=pad_id).to(device)
            withheld = _withheld(chunk, model.modalities, device)
            tokens, present = model.encode(batch)
            output = model.decide(tokens, present)
            for task, hidden in withheld.items():
                # the task's answer from the inputs it may read (rows without any hidden
                # input give the same answer as above)
                setattr(
                    output,
                    task,
                    getattr(model.decide(tokens, present & ~hidden), task),
                )
            novelty, novelty_source = model.novelty(tokens, present, output.embedding)
            values = {
                "weights": output.weights,
                "present": output.present,
                "embedding": output.embedding,
                "novelty": novelty,
                "novelty_source": novelty_source,
            }
            for task in ("diagnosis", "emotion"):
                logits = getattr(output, task)
                if logits is not None:
                    values[f"{task}_logits"] = logits
                    values[task] = getattr(model, task).probabilities(logits.float())
            if contributions:
                for task, shares in shapley_contributions(model, batch, hidden=withheld).items():
                    values[f"{CONTRIBUTION}{task}"] = shares
            for name, value in values.items():
                if value is not None:
                    chunks.setdefault(name, []).append(value.float().cpu().numpy())
    restore = np.argsort(order)
    return {name: np.concatenate(parts)[restore] for name, parts in chunks.items()}


def _withheld(
    items: Sequence[Features], modalities: list[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """Task → (B, M) the inputs each case's answer to it may not read, for tasks where any
    case withholds one."""
    tasks = sorted({task for item in items for task, hidden in item.withheld.items() if hidden})
    return {
        task: torch.tensor(
            [[m in item.withheld.get(task, ()) for m in modalities] for item in items],
            device=device,
        )
        for task in tasks
    }


def unlike_training(
    model: MultimodalModel, arrays: dict[str, np.ndarray], row: int, features: Features
) -> list[str]:
    """Each way case `row` of `forward_in_batches`' arrays is unlike the model's training data:
    its inputs' concerns, then the novelty detector's finding when it is past its limit."""
    found = concerns(features.facts, model.config.inputs)
    detector = model.novelty
    if detector.fitted and float(arrays["novelty"][row]) > float(detector.limit):
        found.append(detector.describe(int(arrays["novelty_source"][row]), model.modalities))
    return found


def _text_length(item: Features) -> int:
    return len(item.text_ids) if item.text_ids is not None else 0


class InferenceEngine:
    def __init__(
        self,
        bundle_dir: str | Path,
        *,
        device: str = "auto",
        batch_size: int = 16,
        quantize: bool = False,
    ) -> None:
        from mlcore.registry import load_bundle

        self.device = select_device(device)
        self.bundle = load_bundle(bundle_dir, device=self.device)
        self.model = self.bundle.model
        self.config = self.bundle.config
        self.batch_size = batch_size
        self.preprocessor = Preprocessor(self.config)
        if quantize:
            if self.device.type != "cpu":
                raise ValueError("int8 quantisation is for CPU inference")
            quantize_int8(self.model)

    def prepare(self, case: Case) -> Features:
        """Decode and preprocess one case (CPU work); raises InputError for bad input."""
        return self.preprocessor(case)

    def predict(self, cases: Sequence[Case], *, explain: bool = True) -> list[Prediction]:
        return self.predict_features([self.prepare(case) for case in cases], explain=explain)

    def forward(
        self, features: Sequence[Features], *, contributions: bool = False
    ) -> dict[str, np.ndarray]:
        """The model's raw outputs for `features` (see `forward_in_batches`)."""
        return forward_in_batches(
            self.model,
            features,
            batch_size=self.batch_size,
            device=self.device,
            pad_id=self.preprocessor.pad_id,
            contributions=contributions,
        )

    def predict_features(
        self,
        features: Sequence[Features],
        *,
        explain: bool = True,
        timings: dict[str, float] | None = None,
    ) -> list[Prediction]:
        """Predictions for preprocessed cases. `timings`, when given, gets the seconds of the
        batch's forward pass ("forward") and of what explains it ("explanation": Grad-CAM, the
        sentences' leave-one-out pass, rationales) added to it."""
        if not features:
            return []
        started = time.perf_counter()
        arrays = self.forward(features, contributions=True)
        forwarded = time.perf_counter()
        predictions = self.predictions_from(arrays, features, explain=explain)
        if timings is not None:
            timings["forward"] = timings.get("forward", 0.0) + forwarded - started
            spent = time.perf_counter() - forwarded
            timings["explanation"] = timings.get("explanation", 0.0) + spent
        return predictions

    def predictions_from(
        self, arrays: dict[str, np.ndarray], features: Sequence[Features], *, explain: bool = True
    ) -> list[Prediction]:
        """Predictions from `forward(features, contributions=True)`'s arrays, for a caller that
        needs the arrays too (validation) without running the model twice. With `explain`,
        each has its heatmap and its rationales from the evidence (mlcore.evidence)."""
        predictions = [
            self._prediction(arrays, row, features[row]) for row in range(len(arrays["present"]))
        ]
        if self.bundle.rationale is not None:
            self._write_rationales(predictions, arrays["embedding"])
        if explain:
            self._write_evidence(predictions, features)
        return predictions

    def _write_evidence(self, predictions: list[Prediction], features: Sequence[Features]) -> None:
        """Each prediction's rationales from the evidence, and its heatmap of the top finding
        when the bundle's heatmaps passed the pointing game (mlcore.pointing)."""
        trusted = heatmaps_trusted(self.bundle.metrics)
        variants, owners = sentence_variants(features)
        moved = moving_sentences(
            predictions,
            owners,
            self.forward(variants) if variants else {},
            self.config.tasks,
        )
        drawn = [
            row
            for row, (prediction, item) in enumerate(zip(predictions, features, strict=True))
            if trusted and item.image is not None and prediction.diagnosis and item.image.ndim == 3
        ]
        findings = {
            row: max(predictions[row].diagnosis, key=predictions[row].diagnosis.get)
            for row in drawn
        }
        heatmaps = dict(
            zip(
                drawn,
                self.explain(
                    [features[row] for row in drawn], labels=[findings[row] for row in drawn]
                ),
                strict=True,
            )
        )
        for row, (prediction, sentences) in enumerate(zip(predictions, moved, strict=True)):
            zone = None
            if row in heatmaps:
                zone = heatmap_zone(heatmaps[row])
                prediction.explanation = {
                    "method": "grad-cam",
                    "finding": findings[row],
                    "zone": zone,
                    "heatmap": coarsen(heatmaps[row], cells=HEATMAP_CELLS),
                }
            prediction.rationales = rationale(prediction, zone=zone, sentences=sentences)
            prediction.quotes = quoted_sentences(prediction, sentences)

    def explain(self, features: Sequence[Features], *, labels: Sequence[str]) -> list[np.ndarray]:
        """Grad-CAM heatmaps in [0, 1] over each case's (preprocessed) image of what raised the
        probability of its finding (`labels[i]` for `features[i]`), in batches of the engine's
        size, one backward pass each; see `mlcore.explain`."""
        heatmaps: list[np.ndarray] = []
        for start in range(0, len(features), self.batch_size):
            heatmaps += diagnosis_heatmaps(
                self.model,
                features[start : start + self.batch_size],
                labels=labels[start : start + self.batch_size],
                device=self.device,
                pad_id=self.preprocessor.pad_id,
            )
        return heatmaps

    def _write_rationales(self, predictions: list[Prediction], embeddings: np.ndarray) -> None:
        generator, limit = self.bundle.rationale, self.config.prefix.max_new_tokens
        for start in range(0, len(predictions), self.batch_size):
            batch = torch.from_numpy(embeddings[start : start + self.batch_size]).to(self.device)
            texts = generator.generate(batch, max_new_tokens=limit)
            for prediction, text in zip(
                predictions[start : start + self.batch_size], texts, strict=True
            ):
                prediction.rationale = text

    def _prediction(
        self, arrays: dict[str, np.ndarray], row: int, features: Features
    ) -> Prediction:
        model, config = self.model, self.config
        modalities = config.modalities
        used = [m for m, present in zip(modalities, arrays["present"][row], strict=True) if present]
        # what each answer could not read, by contribution key (each finding, or emotion): what
        # the case withholds from it, and what its head never reads
        hidden = {
            key: {*features.withheld.get(task, ()), *(set(modalities) - set(model.reads(task)))}
            for task in ("diagnosis", "emotion")
            for key in answer_keys(model, task)
        }
        unlike = unlike_training(model, arrays, row, features)
        entropies = []
        prediction = Prediction(
            modalities_used=used,
            contributions={
                name.removeprefix(CONTRIBUTION): {
                    m: round(float(v), 4)
                    for m, v in zip(modalities, values[row], strict=True)
                    if m in used and m not in hidden.get(name.removeprefix(CONTRIBUTION), ())
                }
                for name, values in arrays.items()
                if name.startswith(CONTRIBUTION)
            },
            uncertainty=0.0,
            abstain=False,
            unlike=unlike,
            novelty=round(float(arrays["novelty"][row]), 3),
        )
        if model.diagnosis is not None:
            probabilities = arrays["diagnosis"][row]
            prediction.diagnosis = dict(
                zip(config.tasks.diagnosis_labels, map(float, probabilities), strict=True)
            )
            prediction.findings = [label for label, p in prediction.diagnosis.items() if p >= 0.5]
            prediction.confidence["diagnosis"] = round(diagnosis_confidence(probabilities), 4)
            entropies += [_binary_entropy(p) for p in probabilities]
        if model.emotion is not None:
            probabilities = arrays["emotion"][row]
            labels = config.tasks.emotion_labels
            prediction.emotion = dict(zip(labels, map(float, probabilities), strict=True))
            prediction.emotion_label = labels[int(probabilities.argmax())]
            prediction.confidence["emotion"] = round(emotion_confidence(probabilities), 4)
            entropies.append(_entropy(probabilities) / math.log(len(labels)))
        prediction.uncertainty = round(float(np.mean(entropies)), 4) if entropies else 0.0
        self.review(prediction)
        return prediction

    def review(self, prediction: Prediction, *, abstain_below: float | None = None) -> None:
        """Decide which of the prediction's tasks need a person: at the bundle's thresholds, or
        at `abstain_below` for every task (an organization's own choice)."""
        tasks = self.config.tasks
        thresholds = (
            dict(tasks.abstain_below)
            if abstain_below is None
            else dict.fromkeys(prediction.confidence, abstain_below)
        )
        verdicts = needs_person(
            confidence=prediction.confidence,
            used=prediction.modalities_used,
            requires=tasks.requires,
            thresholds=thresholds,
            unlike=prediction.unlike,
        )
        prediction.needs_person = {task: verdict.to_dict() for task, verdict in verdicts.items()}
        prediction.abstain = bool(verdicts)


def quantize_int8(model: MultimodalModel) -> None:
    """int8 weights for the linear layers (torchao), in place.

    Weight-only: with the pinned torch and torchao, the dynamic int8 activation kernels run
    eager on the CPU at a twentieth of fp32's speed (bench/inference.py measured it); int8
    weights keep fp32's speed."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())


def _entropy(p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1.0)
    return float(-(p * np.log(p)).sum())


def _binary_entropy(p: float) -> float:
    return _entropy(np.array([p, 1.0 - p])) / math.log(2)
