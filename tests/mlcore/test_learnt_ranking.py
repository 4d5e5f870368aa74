"""The tutoring head that learns from a school's verdicts (mlcore.learnt_ranking) and the
decision to use it (mlcore.tutoring_training): verdicts change its ranking on sessions it never
saw, an intervention without verdicts stays where its tags put it, the library's affect rule
still holds, and a head is used only when held-out verdicts say it is not worse."""

import json

import numpy as np
import pytest

from mlcore.learnt_ranking import LearntRanker, Session, Verdict, hit_and_ndcg
from mlcore.library import InterventionLibrary
from mlcore.suggestions import rank_interventions
from mlcore.tutoring_training import fit_on, is_held_out, train_and_judge

CONFUSED = {"confused": 0.8, "frustrated": 0.1, "bored": 0.1}


def library(*entries: tuple[str, list[str]]) -> InterventionLibrary:
    return InterventionLibrary.from_dict(
        {
            "version": "1",
            "interventions": [
                {"id": key, "title": key.title(), "affects": affects, "subjects": []}
                for key, affects in entries
            ],
        }
    )


LIBRARY = library(
    ("alpha", ["confused"]),
    ("beta", ["confused"]),
    ("gamma", ["confused"]),
    ("delta", ["confused"]),
    ("for-bored", ["bored"]),
)


def class_verdicts(count: int, *, seed: int = 0) -> list[Verdict]:
    """A teacher for whom "delta" helps in Reading and "alpha" in Mathematics, and nothing
    else does: the opposite of nothing the tags can tell apart."""
    random = np.random.default_rng(seed)
    verdicts = []
    for number in range(count):
        subject = ["Reading", "Mathematics"][number % 2]
        session = Session(affect=CONFUSED, subject=subject, grade=5, id=f"s{number}")
        favourite = "delta" if subject == "Reading" else "alpha"
        for key in ("alpha", "beta", "gamma", "delta"):
            useful = key == favourite if random.random() < 0.9 else key != favourite
            verdicts.append(Verdict(session=session, intervention=key, useful=useful))
    return verdicts


def ids(ranked) -> list[str]:
    return [suggestion.id for suggestion in ranked]


def test_verdicts_change_the_ranking_on_sessions_the_head_never_saw():
    before = ids(rank_interventions(LIBRARY, affect=CONFUSED, subject="Reading", grade=5))
    assert before[0] == "alpha", "the tags tie, and the id breaks the tie"
    head = fit_on(LIBRARY, class_verdicts(40))
    reading = rank_interventions(LIBRARY, affect=CONFUSED, subject="Reading", grade=6, learnt=head)
    maths = rank_interventions(
        LIBRARY, affect=CONFUSED, subject="Mathematics", grade=4, learnt=head
    )
    assert ids(reading)[0] == "delta"
    assert ids(maths)[0] == "alpha"
    assert {suggestion.basis for suggestion in reading} == {"learnt"}
    assert "ordered by what 160 verdicts of this school's teachers taught" in reading[0].reason


def test_an_intervention_nobody_judged_is_placed_by_its_tags():
    head = fit_on(LIBRARY, class_verdicts(40))
    grown = library(
        *[(item.id, list(item.affects)) for item in LIBRARY.interventions],
        ("new-one", ["confused"]),
        ("newer", ["confused", "frustrated"]),
    )
    uncertain = {"confused": 0.5, "frustrated": 0.4, "bored": 0.1}
    ranked = rank_interventions(grown, affect=uncertain, subject="Reading", count=10, learnt=head)
    order = ids(ranked)
    assert order.index("newer") < order.index("new-one"), "for both affects read, as tags say"
    assert head.score(Session(affect=uncertain), grown.interventions[-1], 0.6) > head.score(
        Session(affect=uncertain), grown.interventions[-2], 0.5
    )
    new = next(suggestion for suggestion in ranked if suggestion.id == "new-one")
    assert "placed by its tags until teachers judge it" in new.reason


def test_the_learnt_head_never_suggests_against_the_affect_read_when_a_match_exists():
    head = LearntRanker(
        weights={"intercept": 0.0, "tags": 1.0, "for-bored": 50.0},
        verdicts=3,
        judged=("for-bored",),
    )
    ranked = rank_interventions(LIBRARY, affect=CONFUSED, learnt=head, count=10)
    assert "for-bored" not in ids(ranked)


def test_a_head_survives_json_and_carries_no_percentage():
    head = fit_on(LIBRARY, class_verdicts(10))
    again = LearntRanker.from_dict(json.loads(json.dumps(head.to_dict())))
    session = Session(affect=CONFUSED, subject="Reading", grade=3)
    item = LIBRARY.interventions[3]
    expected = pytest.approx(head.score(session, item, 0.8), abs=1e-5)
    assert again.score(session, item, 0.8) == expected
    for suggestion in rank_interventions(LIBRARY, affect=CONFUSED, subject="Reading", learnt=again):
        assert "%" not in json.dumps(suggestion.to_dict())


def test_no_verdicts_leave_the_tags_order():
    head = fit_on(LIBRARY, [])
    maths = {"confused": 0.6, "frustrated": 0.4}
    assert ids(rank_interventions(LIBRARY, affect=maths, learnt=head)) == ids(
        rank_interventions(LIBRARY, affect=maths)
    )


def test_verdicts_that_all_agree_still_fit():
    session = Session(affect=CONFUSED, id="only")
    head = fit_on(LIBRARY, [Verdict(session=session, intervention="beta", useful=True)] * 4)
    assert np.isfinite(list(head.weights.values())).all()
    assert ids(rank_interventions(LIBRARY, affect=CONFUSED, learnt=head))[0] == "beta"


def test_a_head_is_used_only_when_held_out_verdicts_say_it_is_not_worse():
    verdicts = class_verdicts(80)
    held_out = {v.session.id for v in verdicts if is_held_out(v.session.id)}
    assert 10 <= len(held_out) <= 30, "about a quarter of the sessions are held out"
    decision = train_and_judge(LIBRARY, verdicts, active=None)
    assert decision.use_it, decision.message
    assert decision.scores["candidate"].ndcg > decision.scores["tags"].ndcg
    assert decision.candidate.verdicts == len(verdicts) - 4 * len(held_out)
    again = train_and_judge(LIBRARY, verdicts, active=decision.candidate)
    assert again.use_it, "as good as the head in use is not worse"
    # Taught the opposite of what the held-out sessions show, a candidate is worse than the
    # head in use and than the tags: kept out, and the message says by whom.
    misled = [
        v if is_held_out(v.session.id) else Verdict(v.session, v.intervention, not v.useful)
        for v in verdicts
    ]
    rejected = train_and_judge(LIBRARY, misled, active=decision.candidate)
    assert not rejected.use_it
    assert rejected.scores["active"].ndcg > rejected.scores["candidate"].ndcg
    assert "kept the ranking in use (tags and active did better)" in rejected.message
    assert set(rejected.metrics()) >= {"verdicts", "candidate", "tags", "active"}


def test_too_few_held_out_sessions_keep_the_ranking_in_use():
    decision = train_and_judge(LIBRARY, class_verdicts(6), active=None)
    assert not decision.use_it
    assert "judging needs 5" in decision.message


def test_hit_and_ndcg():
    hit, ndcg, sessions = hit_and_ndcg(
        [(["a", "b", "c"], {"a"}), (["a", "b", "c"], {"c"}), (["a"], set())]
    )
    assert sessions == 2
    assert hit == 1.0
    assert ndcg == pytest.approx((1.0 + 0.5) / 2)
