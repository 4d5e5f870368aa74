"""Temperature scaling on a calibration split: one temperature per diagnosis label and one for
the emotion head, each the minimum of the negative log-likelihood on cases that neither trained
the weights nor picked the epoch. Decisions do not change (a temperature keeps the sign of a
logit and the order of a distribution); probabilities become honest.

The same split then proposes each task's "needs a person" threshold (mlcore.abstention).

No bound is put on a temperature: where the likelihood has no minimum the head is left as
trained, and the report says why. That happens when the calibration cases are separated
perfectly (every one on the right side of the decision: a sharper temperature is then always
"better") or hold one class only.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from mlcore.abstention import proposed_thresholds
from mlcore.data import Case, Features
from mlcore.engine import forward_in_batches
from mlcore.model import MultimodalModel


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    fitted: bool
    cases: int
    nll_before: float | None = None
    nll_after: float | None = None
    reason: str = ""


def calibrate(
    model: MultimodalModel,
    features: list[Features],
    cases: list[Case],
    *,
    pad_id: int,
    device: torch.device,
    proposing_on: list[Features] | None = None,
) -> dict:
    """Fit and set every probability head's temperatures on `cases`, and propose the tasks'
    thresholds on `proposing_on` (held-out features; these by default); returns the report
    ({"diagnosis": {label: fit}, "emotion": fit, "abstain_below": {task: threshold}}, fits as
    dicts) that the bundle keeps."""
    model.eval()
    arrays = forward_in_batches(model, features, batch_size=64, device=device, pad_id=pad_id)
    tasks = model.config.tasks
    report: dict = {"cases": len(cases)}
    if model.diagnosis is not None:
        known = [i for i, case in enumerate(cases) if case.diagnosis is not None]
        logits = torch.from_numpy(arrays["diagnosis_logits"][known])
        report["diagnosis"] = {}
        for column, label in enumerate(tasks.diagnosis_labels):
            truth = torch.tensor([float(label in cases[i].diagnosis) for i in known])
            fit = fit_binary_temperature(logits[:, column], truth)
            model.diagnosis.temperature[column] = fit.temperature
            report["diagnosis"][label] = asdict(fit)
    if model.emotion is not None:
        known = [i for i, case in enumerate(cases) if case.emotion is not None]
        logits = torch.from_numpy(arrays["emotion_logits"][known])
        truth = torch.tensor([tasks.emotion_labels.index(cases[i].emotion) for i in known])
        fit = fit_multiclass_temperature(logits, truth)
        model.emotion.temperature.fill_(fit.temperature)
        report["emotion"] = asdict(fit)
    calibrated = forward_in_batches(
        model, proposing_on or features, batch_size=64, device=device, pad_id=pad_id
    )
    tasks.abstain_below = proposed_thresholds(calibrated)
    report["abstain_below"] = dict(tasks.abstain_below)
    return report


def fit_binary_temperature(logits: torch.Tensor, truth: torch.Tensor) -> TemperatureFit:
    """`logits` (N,) of one yes/no label, `truth` (N,) in {0, 1}."""
    cases = len(truth)
    if cases == 0 or truth.min() == truth.max():
        return TemperatureFit(1.0, False, cases, reason="the calibration cases hold one class only")
    if bool(((2 * truth - 1) * logits > 0).all()):
        return TemperatureFit(1.0, False, cases, reason=_SEPARATED)
    return _fit(lambda t: F.binary_cross_entropy_with_logits(logits / t, truth), cases)


def fit_multiclass_temperature(logits: torch.Tensor, truth: torch.Tensor) -> TemperatureFit:
    """`logits` (N, classes), `truth` (N,) class indices."""
    cases = len(truth)
    if cases == 0 or truth.min() == truth.max():
        return TemperatureFit(1.0, False, cases, reason="the calibration cases hold one class only")
    if bool((logits.argmax(dim=1) == truth).all()):
        return TemperatureFit(1.0, False, cases, reason=_SEPARATED)
    return _fit(lambda t: F.cross_entropy(logits / t, truth), cases)


_SEPARATED = (
    "the model separates every calibration case perfectly, so no temperature is best; "
    "calibrate on more (or harder) cases"
)


def _fit(loss_at: Callable[[torch.Tensor], torch.Tensor], cases: int) -> TemperatureFit:
    log_temperature = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_temperature], lr=1.0, max_iter=200, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_at(log_temperature.exp())
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(loss_at(torch.ones(())))
    optimizer.step(closure)
    temperature = float(log_temperature.detach().exp())
    with torch.no_grad():
        after = float(loss_at(torch.tensor(temperature)))
    if not (0.0 < temperature < float("inf")) or after != after or after > before:
        return TemperatureFit(
            1.0, False, cases, before, before, reason="the likelihood fit did not converge"
        )
    return TemperatureFit(temperature, True, cases, round(before, 5), round(after, 5))
