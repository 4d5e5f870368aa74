"""What each modality contributed to each task's answer: exact Shapley values over the
modalities (at most four, so every subset is evaluated), per case and per task.

For a task, the value of a set S of the case's modalities is the probability the model gives
its answer (a finding's probability; the probability of the affect it chose) with only S
present. A modality's Shapley value is its average marginal change to that value over the
orders in which modalities could be added, so the values sum to the answer's probability with
everything minus its probability with nothing. A modality the case lacks contributes exactly 0.

The encoders run once; only fusion and heads run for each of the 2^M subsets, batched. These
are the contributions shown as "what the model used": attention weights are not.
"""

from itertools import product
from math import factorial

import torch

from mlcore.data import Batch
from mlcore.model import MultimodalModel


def _subset_weights(modalities: int) -> dict[tuple[bool, ...], float]:
    """Shapley weight |S|! (M - |S| - 1)! / M! of each subset S that excludes a given player."""
    return {
        subset: factorial(sum(subset))
        * factorial(modalities - sum(subset) - 1)
        / factorial(modalities)
        for subset in product((False, True), repeat=modalities)
        if sum(subset) < modalities
    }


def answer_keys(model: MultimodalModel, task: str) -> list[str]:
    """The answers of a task, as contributions name them: each finding for a diagnosis."""
    return list(model.config.tasks.diagnosis_labels) if task == "diagnosis" else [task]


def shapley_contributions(
    model: MultimodalModel, batch: Batch, *, hidden: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """{task: (B, M) Shapley values in probability units}, tasks being each diagnosis label
    and "emotion" (of the affect the model chose with everything present). `hidden`: task →
    (B, M) inputs its answers may not read, which then contribute 0 to them. Call in eval mode
    under no_grad/inference_mode."""
    tokens, present = model.encode(batch)  # once, whatever each task may read
    values = _subset_values(model, tokens, present)
    for task, inputs in (hidden or {}).items():
        apart = _subset_values(model, tokens, present & ~inputs)
        values.update({key: apart[key] for key in answer_keys(model, task) if key in apart})
    modalities = len(model.modalities)
    subsets = list(product((False, True), repeat=modalities))
    cases = len(batch)
    index = {subset: row for row, subset in enumerate(subsets)}
    weights = _subset_weights(modalities)
    result = {}
    for task, value in values.items():
        contribution = torch.zeros(cases, modalities, device=value.device)
        for player in range(modalities):
            for subset in subsets:
                if subset[player]:
                    continue
                joined = tuple(True if i == player else flag for i, flag in enumerate(subset))
                gain = value[index[joined]] - value[index[subset]]
                contribution[:, player] += weights[subset] * gain
        result[task] = contribution
    return result


def _subset_values(
    model: MultimodalModel, tokens: torch.Tensor, present: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Answer → (2^M, B) the value of each subset of the present modalities: fusion and heads
    over every subset of every case in one pass ((2^M * B) rows)."""
    subsets = list(product((False, True), repeat=len(model.modalities)))
    cases = len(present)
    masks = torch.tensor(subsets, device=present.device).repeat_interleave(cases, dim=0)
    output = model.decide(
        tokens.repeat(len(subsets), 1, 1),
        present.repeat(len(subsets), 1) & masks,
    )
    values: dict[str, torch.Tensor] = {}
    if output.diagnosis is not None:
        probabilities = model.diagnosis.probabilities(output.diagnosis.float())
        for column, label in enumerate(model.config.tasks.diagnosis_labels):
            values[label] = probabilities[:, column].reshape(len(subsets), cases)
    if output.emotion is not None:
        probabilities = model.emotion.probabilities(output.emotion.float())
        probabilities = probabilities.reshape(len(subsets), cases, -1)
        chosen = probabilities[-1].argmax(dim=-1)  # the last subset is everything
        values["emotion"] = probabilities.gather(
            2, chosen.expand(len(subsets), cases).unsqueeze(-1)
        ).squeeze(-1)
    return values
