"""The tutoring head that learns from a school's teachers: a logistic model of "this teacher
finds this intervention useful for this session", fitted on their verdicts (useful / not
useful, helped / did not help).

Its score is the transparent match's fit (mlcore.suggestions) times a learnt weight, plus, for
an intervention the teachers have judged, what they taught: a bias of its own, and how that
bias moves with the affect read, the lesson's subject and the learner's grade. An intervention
nobody has judged yet (one a new library version adds) has none of those and is ranked by its
tags alone, on the same scale. The per-intervention terms are pulled towards zero (L2), so a
handful of verdicts moves a ranking a little and many move it more.

Plain numpy, no torch: the web process ranks with it. Weights are named ("<id>|subject=Reading"),
so a saved head is readable JSON and survives a library's next version.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlcore.library import Intervention

# Centre and scale of the grade term: grades 1 to 12 map to about -1.1 to 1.1.
GRADE_CENTRE, GRADE_SCALE = 6.5, 5.0
# Strength of the pull of an intervention's own terms towards zero: a Gaussian prior of
# variance 1 / DEFAULT_L2 on each, against the verdicts' log-likelihood.
DEFAULT_L2 = 1.0
NEWTON_STEPS = 50
# The weight of the tag fit is pulled towards TAG_PRIOR (a fit better by a quarter: odds of
# "useful" 2.7 times higher), with the strength of l2, and kept at least MIN_TAG_WEIGHT: where
# every verdict was on equally fitting interventions the data cannot tell it, and an
# intervention nobody judged must still be placed in its tags' order.
TAG_PRIOR = 4.0
MIN_TAG_WEIGHT = 0.5


@dataclass(frozen=True)
class Session:
    """What a suggestion was made for: the affect estimate (label → probability), the lesson's
    subject and the learner's grade (either None when unknown)."""

    affect: Mapping[str, float]
    subject: str | None = None
    grade: int | None = None
    id: str = ""  # which session: its verdicts are judged together


@dataclass(frozen=True)
class Verdict:
    session: Session
    intervention: str  # its id
    useful: bool  # useful or helped (True); not useful or did not help (False)


def _terms(session: Session, item: Intervention, fit: float) -> dict[str, float]:
    """The named features of suggesting `item` for `session`, whose tag fit is `fit`."""
    terms = {"intercept": 1.0, "tags": fit, item.id: 1.0}
    for label, probability in session.affect.items():
        terms[f"{item.id}|affect={label}"] = float(probability)
    if session.subject:
        terms[f"{item.id}|subject={session.subject.casefold()}"] = 1.0
    if session.grade is not None:
        terms[f"{item.id}|grade"] = (session.grade - GRADE_CENTRE) / GRADE_SCALE
    return terms


@dataclass
class LearntRanker:
    """Named weights of the logistic model, and how many verdicts taught them."""

    weights: dict[str, float] = field(default_factory=dict)
    verdicts: int = 0
    judged: tuple[str, ...] = ()  # the interventions with verdicts: those with terms of their own

    def score(self, session: Session, item: Intervention, fit: float) -> float:
        """The logit of "useful" for `item` in `session` (tag fit `fit`)."""
        return sum(
            self.weights.get(name, 0.0) * value
            for name, value in _terms(session, item, fit).items()
        )

    def to_dict(self) -> dict:
        return {
            "weights": {name: round(value, 6) for name, value in sorted(self.weights.items())},
            "verdicts": self.verdicts,
            "judged": list(self.judged),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "LearntRanker":
        return cls(
            weights={str(name): float(value) for name, value in data["weights"].items()},
            verdicts=int(data["verdicts"]),
            judged=tuple(data.get("judged", ())),
        )


def fit_ranker(
    examples: Sequence[tuple[Verdict, Intervention, float]], *, l2: float = DEFAULT_L2
) -> LearntRanker:
    """Fit on `examples`: each verdict with the intervention it judged and that one's tag fit
    for the session. Newton's method on the penalised log-likelihood (convex: one answer).
    Without examples, the prior: the tags' order."""
    if not examples:
        return LearntRanker(weights={"intercept": 0.0, "tags": TAG_PRIOR})
    rows = [_terms(verdict.session, item, fit) for verdict, item, fit in examples]
    names = sorted({name for row in rows for name in row})
    index = {name: column for column, name in enumerate(names)}
    design = np.zeros((len(rows), len(names)))
    for row_number, row in enumerate(rows):
        for name, value in row.items():
            design[row_number, index[name]] = value
    target = np.array([float(verdict.useful) for verdict, _, _ in examples])
    penalty = np.full(len(names), l2)
    penalty[index["intercept"]] = 1e-3  # barely pulled: keeps the system solvable when all agree
    prior = np.zeros(len(names))
    prior[index["tags"]] = TAG_PRIOR

    def loss(candidate: np.ndarray) -> float:
        logits = design @ candidate
        # log(1 + e^z) - y z, written to stay finite for large |z|
        fit = np.logaddexp(0.0, logits) - target * logits
        return float(fit.sum() + 0.5 * (penalty * (candidate - prior) ** 2).sum())

    weights = prior.copy()
    for _ in range(NEWTON_STEPS):
        probability = 0.5 * (1.0 + np.tanh(0.5 * (design @ weights)))  # the sigmoid, overflow-free
        gradient = design.T @ (probability - target) + penalty * (weights - prior)
        curvature = design.T @ (design * (probability * (1 - probability))[:, None])
        step = np.linalg.solve(curvature + np.diag(penalty), gradient)
        length, before = 1.0, loss(weights)
        while loss(weights - length * step) > before and length > 1e-4:
            length /= 2  # a full Newton step can overshoot where verdicts all agree
        weights -= length * step
        if np.abs(length * step).max() < 1e-8:
            break
    weights[index["tags"]] = max(weights[index["tags"]], MIN_TAG_WEIGHT)
    return LearntRanker(
        weights=dict(zip(names, weights.tolist(), strict=True)),
        verdicts=len(examples),
        judged=tuple(sorted({verdict.intervention for verdict, _, _ in examples})),
    )


def hit_and_ndcg(
    rankings: Iterable[tuple[Sequence[str], set[str]]], *, k: int = 3
) -> tuple[float, float, int]:
    """Mean hit@k and NDCG@k over (ranked ids, ids judged useful) pairs, counting only sessions
    with something judged useful; and how many those were."""
    hits, gains = [], []
    for ranked, useful in rankings:
        if not useful:
            continue
        top = list(ranked)[:k]
        hits.append(float(any(item in useful for item in top)))
        dcg = sum(_discount(position) for position, item in enumerate(top) if item in useful)
        ideal = sum(_discount(position) for position in range(min(k, len(useful))))
        gains.append(dcg / ideal)
    if not hits:
        return 0.0, 0.0, 0
    return float(np.mean(hits)), float(np.mean(gains)), len(hits)


def _discount(position: int) -> float:
    return float(1.0 / np.log2(position + 2))
