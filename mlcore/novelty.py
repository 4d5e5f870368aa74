"""How unlike its training data a case is, as Mahalanobis distances in the model's own spaces.

Detectors, each a set of class means with one shared covariance taken from the training split:
- one per modality, on its encoder's vector: is this image, note or recording like those the
  model learned from?
- one per set of modalities, on the fused embedding the model decides from with just those
  present: is the case as a whole like the training cases?

The classes are the affect labels when the model has an affect head, else one class. The
covariance is Ledoit-Wolf shrunk, since a training split has few cases per dimension. Each
detector's squared distance is divided by its own 90th percentile over held-out cases (the
validation and calibration splits), so detectors compare tail for tail; a case's novelty is the
largest of its detectors'. A case is unlike the training data when its novelty exceeds the level
that FLAGGED_SHARE of those held-out cases (with each subset of their modalities) would exceed,
read from a log-normal fitted to them: the threshold comes from splits that tuned no weights,
never from the cases it is reported on.
"""

from collections.abc import Sequence
from itertools import product
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mlcore.data import Case, Features, collate

if TYPE_CHECKING:  # the model holds a detector: a run-time import would go in a circle
    from mlcore.model import MultimodalModel

# The share of in-distribution (calibration) cases that the threshold flags.
FLAGGED_SHARE = 0.01
# Each detector's distances are divided by this quantile of its calibration distances: its own
# tail, so that one detector with a long tail (a small image network's, say) does not set the
# level at which another's far cases (a text about the stock market) go unflagged.
SCALE_QUANTILE = 0.9
MODALITY_NOUNS = {
    "image": "image",
    "text": "text",
    "audio": "recording",
    "speech_text": "transcript",
}


def patterns(modalities: int) -> list[tuple[bool, ...]]:
    """Every non-empty set of modalities, as presence flags, in a fixed order."""
    return [flags for flags in product((False, True), repeat=modalities) if any(flags)]


class NoveltyDetector(nn.Module):
    """The fitted detectors, as buffers saved with the model's weights; unfitted (as in bundles
    saved before there was one) it finds nothing unlike."""

    def __init__(self, dim: int, modalities: int, classes: int) -> None:
        super().__init__()
        self.modalities = modalities
        self.patterns = patterns(modalities)
        count = modalities + len(self.patterns)
        self.register_buffer("means", torch.zeros(count, classes, dim))
        self.register_buffer("precision", torch.zeros(count, dim, dim))
        self.register_buffer("scale", torch.ones(count))
        self.register_buffer("usable", torch.zeros(count, dtype=torch.bool))
        self.register_buffer("limit", torch.tensor(float("inf")))

    @property
    def fitted(self) -> bool:
        return bool(torch.isfinite(self.limit))

    def pattern_index(self, present: torch.Tensor) -> torch.Tensor:
        """(B,) the detector index of each row's set of modalities (-1: none present)."""
        bits = 2 ** torch.arange(self.modalities - 1, -1, -1, device=present.device)
        number = (present.long() * bits).sum(dim=1)
        return torch.where(number > 0, self.modalities + number - 1, -1)

    def squared_distance(self, detector: int, vectors: torch.Tensor) -> torch.Tensor:
        """(N,) each vector's squared Mahalanobis distance to its nearest class mean."""
        difference = vectors.float().unsqueeze(1) - self.means[detector].unsqueeze(0)
        distance = torch.einsum("ncd,de,nce->nc", difference, self.precision[detector], difference)
        return distance.min(dim=1).values

    def distances(
        self, tokens: torch.Tensor, present: torch.Tensor, embedding: torch.Tensor
    ) -> torch.Tensor:
        """(B, detectors) each case's scaled squared distances; NaN where a detector does not
        apply (a modality the case lacks, another set of modalities) or was never fitted."""
        result = torch.full((len(present), len(self.scale)), float("nan"), device=present.device)
        for modality in range(self.modalities):
            rows = present[:, modality]
            if rows.any() and self.usable[modality]:
                result[rows, modality] = (
                    self.squared_distance(modality, tokens[rows, modality]) / self.scale[modality]
                )
        own = self.pattern_index(present)
        for detector in own.unique().tolist():
            if detector >= 0 and self.usable[detector]:
                rows = own == detector
                result[rows, detector] = (
                    self.squared_distance(detector, embedding[rows]) / self.scale[detector]
                )
        return result

    def forward(
        self, tokens: torch.Tensor, present: torch.Tensor, embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) novelty (0 where nothing applies) and (B,) the detector that gave it: the input
        whose own detector is furthest past the limit, where one is (it says which input to look
        at), else the furthest of all."""
        distances = self.distances(tokens, present, embedding).nan_to_num(0.0)
        novelty, source = distances.max(dim=1)
        furthest_input, input_source = distances[:, : self.modalities].max(dim=1)
        source = torch.where(furthest_input > self.limit, input_source, source)
        return novelty, source

    def describe(self, source: int, modalities: Sequence[str]) -> str:
        """What detector `source` found unlike the training data, as a phrase."""
        if source < self.modalities:
            return (
                f"the {MODALITY_NOUNS[modalities[source]]} is unlike those the model learned from"
            )
        return "the case as a whole is unlike the cases the model learned from"


def _views(
    model: "MultimodalModel",
    features: Sequence[Features],
    *,
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> tuple[dict[int, list[np.ndarray]], dict[int, list[int]]]:
    """Every detector's input vectors over `features`, with the row each came from: each present
    modality's encoder vector, and the fused embedding for each subset of the case's modalities
    (the encoders run once per case)."""
    detector = model.novelty
    vectors: dict[int, list[np.ndarray]] = {}
    rows_of: dict[int, list[int]] = {}
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            chunk = list(features[start : start + batch_size])
            batch = collate(chunk, model.config, pad_id=pad_id).to(device)
            tokens, present = model.encode(batch)
            rows = torch.arange(start, start + len(chunk))
            for modality in range(detector.modalities):
                mask = present[:, modality].cpu()
                vectors.setdefault(modality, []).append(
                    tokens[mask.to(device), modality].cpu().numpy()
                )
                rows_of.setdefault(modality, []).extend(rows[mask].tolist())
            for index, flags in enumerate(detector.patterns):
                wanted = torch.tensor(flags, device=device)
                mask = (present | ~wanted).all(dim=1)  # the case has every modality of the set
                if not mask.any():
                    continue
                subset = wanted.expand(int(mask.sum()), -1)
                embedding = model.decide(tokens[mask], subset).embedding
                key = detector.modalities + index
                vectors.setdefault(key, []).append(embedding.float().cpu().numpy())
                rows_of.setdefault(key, []).extend(rows[mask.cpu()].tolist())
    return vectors, rows_of


def fit_novelty(
    model: "MultimodalModel",
    train_features: Sequence[Features],
    train_cases: Sequence[Case],
    held_out_features: Sequence[Features],
    *,
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> dict:
    """Fit `model.novelty` on the training split and set its threshold on held-out features
    (training passes its validation and calibration splits); returns the report kept in the
    metrics."""
    from sklearn.covariance import LedoitWolf

    model.eval()
    detector = model.novelty
    labels = model.config.tasks.emotion_labels
    classes = np.array(
        [
            labels.index(case.emotion) if labels and case.emotion in labels else 0
            for case in train_cases
        ]
    )
    vectors, rows_of = _views(
        model, train_features, pad_id=pad_id, device=device, batch_size=batch_size
    )
    with torch.no_grad():
        detector.usable.zero_()
        for key, parts in vectors.items():
            points = np.concatenate(parts).astype(np.float64)
            if len(points) < 2:
                continue
            owners = classes[rows_of[key]]
            overall = points.mean(axis=0)
            means = np.stack(
                [
                    points[owners == c].mean(axis=0) if (owners == c).any() else overall
                    for c in range(detector.means.shape[1])
                ]
            )
            residuals = points - means[owners]
            precision = LedoitWolf(assume_centered=True).fit(residuals).precision_
            detector.means[key] = torch.as_tensor(means, dtype=torch.float32)
            detector.precision[key] = torch.as_tensor(precision, dtype=torch.float32)
            detector.usable[key] = True
        detector.scale.fill_(1.0)
        scores = _held_out_scores(model, held_out_features, pad_id, device, batch_size)
        detector.limit.fill_(tail_quantile(scores, 1.0 - FLAGGED_SHARE))
    return {
        "split": "validation and calibration",
        "views": len(scores),
        "flagged_share": FLAGGED_SHARE,
        "limit": round(float(detector.limit), 4),
    }


def tail_quantile(scores: np.ndarray, level: float) -> float:
    """The `level` quantile of a log-normal fitted to `scores`: a held-out split of a few dozen
    cases puts its empirical 99th percentile wherever its largest case happens to fall; the
    fitted tail moves far less from one split to the next."""
    logs = np.log(np.maximum(scores, 1e-12))
    return float(np.exp(logs.mean() + NormalDist().inv_cdf(level) * logs.std()))


def _held_out_scores(
    model: "MultimodalModel",
    features: Sequence[Features],
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """Set each detector's scale (the SCALE_QUANTILE of its squared distances over the held-out
    `features`) and return the novelty of every held-out case under each subset of its
    modalities."""
    detector = model.novelty
    vectors, rows_of = _views(model, features, pad_id=pad_id, device=device, batch_size=batch_size)
    distance_of: dict[int, dict[int, float]] = {}
    for key, parts in vectors.items():
        if not detector.usable[key]:
            continue
        distances = detector.squared_distance(
            key, torch.as_tensor(np.concatenate(parts)).to(device)
        )
        distances = distances.cpu().numpy()
        detector.scale[key] = float(np.quantile(distances, SCALE_QUANTILE)) or 1.0
        distance_of[key] = dict(
            zip(rows_of[key], distances / float(detector.scale[key]), strict=True)
        )
    scores = []
    for index, flags in enumerate(detector.patterns):
        key = detector.modalities + index
        for row, pattern_distance in distance_of.get(key, {}).items():
            own = [
                distance_of[m][row]
                for m in range(detector.modalities)
                if flags[m] and row in distance_of.get(m, {})
            ]
            scores.append(max([pattern_distance, *own]))
    return np.array(scores)
