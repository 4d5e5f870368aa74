"""Teaching a school's tutoring head from its teachers' verdicts, and deciding whether to use
it: the candidate is scored with ranking metrics (hit@3, NDCG@3) on held-out sessions' verdicts
beside the transparent match and the head in use, and is used only if it is worse than
neither. The match it is compared with knows the training verdicts only, as the candidate does.

Verdicts exist only on what was suggested: scored over the whole library, an intervention
nobody judged would count as a miss, and the ranking that made the suggestions would win by
construction. So each ranking is scored on the interventions judged in each held-out session:
does it put the ones the teacher found useful first? The simulated classes of
bench/tutoring.py measure against the teacher's hidden preferences instead."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from mlcore.learnt_ranking import LearntRanker, Verdict, fit_ranker, hit_and_ndcg
from mlcore.library import InterventionLibrary
from mlcore.suggestions import Verdicts, rank_session, tag_fit

TOP = 3


@dataclass(frozen=True)
class HeldOut:
    hit: float  # hit@3
    ndcg: float  # NDCG@3
    sessions: int  # held-out sessions with a verdict of useful

    def to_dict(self) -> dict:
        return {"hit_at_3": round(self.hit, 4), "ndcg_at_3": round(self.ndcg, 4)}


@dataclass(frozen=True)
class Decision:
    candidate: LearntRanker
    use_it: bool
    scores: dict[str, HeldOut]  # "candidate", "tags" and, when there is one, "active"
    message: str

    def metrics(self) -> dict:
        return {
            "verdicts": self.candidate.verdicts,
            "held_out_sessions": self.scores["candidate"].sessions,
            **{name: score.to_dict() for name, score in self.scores.items()},
        }


def is_held_out(session_id: str) -> bool:
    """A quarter of the sessions, by a hash of their id: the same session always lands on the
    same side, in every run."""
    return hashlib.sha256(session_id.encode()).digest()[0] % 4 == 0


def balances(verdicts: Sequence[Verdict]) -> dict[str, Verdicts]:
    """What the transparent match knows of `verdicts`: useful against not, per intervention."""
    counts: dict[str, list[int]] = {}
    for verdict in verdicts:
        counts.setdefault(verdict.intervention, [0, 0])[0 if verdict.useful else 1] += 1
    return {key: Verdicts(useful=good, not_useful=bad) for key, (good, bad) in counts.items()}


def fit_on(library: InterventionLibrary, verdicts: Sequence[Verdict]) -> LearntRanker:
    """The head fitted on `verdicts` (those on interventions `library` no longer has left out)."""
    items = {item.id: item for item in library.interventions}
    return fit_ranker(
        [
            (
                verdict,
                items[verdict.intervention],
                tag_fit(
                    items[verdict.intervention],
                    affect=verdict.session.affect,
                    subject=verdict.session.subject,
                ),
            )
            for verdict in verdicts
            if verdict.intervention in items
        ]
    )


def held_out_score(
    library: InterventionLibrary,
    verdicts: Sequence[Verdict],
    *,
    learnt: LearntRanker | None,
    known: dict[str, Verdicts],
) -> HeldOut:
    """hit@3 and NDCG@3 of a ranking (`learnt`, or the transparent match knowing `known`) of
    the interventions judged in each held-out session of `verdicts`, those judged useful
    counting as relevant."""
    sessions: dict[str, tuple] = {}
    for verdict in verdicts:
        session, judged, useful = sessions.setdefault(
            verdict.session.id, (verdict.session, set(), set())
        )
        judged.add(verdict.intervention)
        if verdict.useful:
            useful.add(verdict.intervention)
    rankings = []
    for session, judged, useful in sessions.values():
        ranked = rank_session(
            library, session, verdicts=known, learnt=learnt, count=len(library.interventions)
        )
        rankings.append(([key for key in ranked if key in judged], useful))
    hit, ndcg, count = hit_and_ndcg(rankings, k=TOP)
    return HeldOut(hit=hit, ndcg=ndcg, sessions=count)


def train_and_judge(
    library: InterventionLibrary,
    verdicts: Sequence[Verdict],
    *,
    active: LearntRanker | None,
    minimum_held_out: int = 5,
) -> Decision:
    """Fit a candidate on the training sessions' verdicts and compare it, on the held-out
    sessions', with the transparent match and `active`: use it only if neither is better on
    hit@3 or NDCG@3, and there are at least `minimum_held_out` held-out sessions to tell."""
    training = [verdict for verdict in verdicts if not is_held_out(verdict.session.id)]
    held_out = [verdict for verdict in verdicts if is_held_out(verdict.session.id)]
    candidate = fit_on(library, training)
    known = balances(training)
    scores = {
        "candidate": held_out_score(library, held_out, learnt=candidate, known=known),
        "tags": held_out_score(library, held_out, learnt=None, known=known),
    }
    if active is not None:
        scores["active"] = held_out_score(library, held_out, learnt=active, known=known)
    mine = scores["candidate"]
    if mine.sessions < minimum_held_out:
        return Decision(
            candidate,
            False,
            scores,
            f"kept the ranking in use: only {mine.sessions} held-out sessions have a verdict of "
            f"useful, and judging needs {minimum_held_out}",
        )
    better = [
        name
        for name, score in scores.items()
        if name != "candidate" and (score.hit > mine.hit or score.ndcg > mine.ndcg)
    ]
    summary = ", ".join(
        f"{name} hit@3 {score.hit:.2f} NDCG@3 {score.ndcg:.2f}" for name, score in scores.items()
    )
    if better:
        message = f"kept the ranking in use ({' and '.join(better)} did better): {summary}"
        return Decision(candidate, False, scores, message)
    return Decision(candidate, True, scores, f"uses the learnt head: {summary}")
