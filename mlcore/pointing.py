"""The pointing game: does a finding's Grad-CAM heatmap peak on the lesion?

On cases with a known lesion (centre and radius in the original image's pixels, as the
synthetic generator records them in `truth.jsonl`) that the model finds (probability at least
0.5), a hit is a heatmap peak within the lesion's radius plus 2 pixels of its centre. A bundle
whose heatmaps have not passed the game (HEATMAPS_TRUSTED_FROM, on at least
HEATMAPS_TRUSTED_AFTER found lesions) shows none, and its rationales
do not say where in the image the finding came from: an explanation is checked against ground
truth before it is shown.
"""

from collections.abc import Sequence

import numpy as np
import torch

from mlcore.data import Features
from mlcore.evaluate import bootstrap_interval
from mlcore.explain import diagnosis_heatmap, occlusion_heatmap
from mlcore.model import MultimodalModel

HEATMAPS_TRUSTED_FROM = 0.8  # the share of hits from which heatmaps are shown
HEATMAPS_TRUSTED_AFTER = 10  # found lesions played at least: a rate on fewer says too little
TOLERANCE_PIXELS = 2.0


def heatmaps_trusted(metrics: dict) -> bool:
    """Whether a bundle's metrics say its heatmaps passed the pointing game."""
    game = metrics.get("pointing_game", {})
    return (
        game.get("hit_rate", 0.0) >= HEATMAPS_TRUSTED_FROM
        and game.get("cases", 0) >= HEATMAPS_TRUSTED_AFTER
    )


def pointing_game(
    model: MultimodalModel,
    features: Sequence[Features],
    lesions: Sequence[dict | None],
    *,
    label: str,
    pad_id: int,
    device: torch.device | str = "cpu",
    method: str = "grad-cam",
) -> dict:
    """The game over `features` with their `lesions` ({row, column, radius, size}: size is the
    original image's side; None: no lesion), for finding `label`, with the heatmaps of `method`:
    grad-cam (what cards show) or occlusion (MONAI's occlusion sensitivity, to cross-check)."""
    draw = {"grad-cam": diagnosis_heatmap, "occlusion": occlusion_heatmap}[method]
    device = torch.device(device)
    from mlcore.engine import forward_in_batches  # the engine imports this module's gate

    column = model.config.tasks.diagnosis_labels.index(label)
    probabilities = forward_in_batches(
        model, features, batch_size=64, device=device, pad_id=pad_id
    )["diagnosis"][:, column]
    hits = []
    for item, lesion, probability in zip(features, lesions, probabilities, strict=True):
        if lesion is None or item.image is None:
            continue
        if probability < 0.5:
            continue  # the game is played on the lesions the model finds
        heatmap = draw(model, item, label=label, device=device, pad_id=pad_id)
        scale = heatmap.shape[0] / lesion["size"]
        row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        distance = np.hypot(
            (row + 0.5) / scale - lesion["row"], (col + 0.5) / scale - lesion["column"]
        )
        hits.append(float(distance <= lesion["radius"] + TOLERANCE_PIXELS))
    if not hits:
        return {"cases": 0, "reason": "the model found none of the lesions"}
    values = np.array(hits)
    low, high = bootstrap_interval(lambda rows: float(values[rows].mean()), len(values))
    return {
        "cases": len(hits),
        "hit_rate": round(float(values.mean()), 4),
        "interval": [round(low, 4), round(high, 4)],
        "method": method,
        "trusted_from": HEATMAPS_TRUSTED_FROM,
        "trusted_after": HEATMAPS_TRUSTED_AFTER,
    }
