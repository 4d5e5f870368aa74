"""Tutoring suggestions ranked by the library's tags (mlcore.suggestions), for a head that has
not learnt: never against the affect read where the library has something for it, each with a
reason, never a percentage."""

import itertools
import json
import re

import numpy as np
import pytest

from mlcore.errors import ConfigError
from mlcore.library import SHIPPED_LIBRARY, InterventionLibrary
from mlcore.suggestions import Verdicts, rank_interventions
from mlcore.synthetic import SCHOOL_AFFECTS

SHIPPED = InterventionLibrary.load(SHIPPED_LIBRARY)
SUBJECTS = ("Mathematics", "English", "Science", None)


def library(*entries: dict) -> InterventionLibrary:
    return InterventionLibrary.from_dict({"version": "1", "interventions": list(entries)})


def entry(identifier: str, *, affects=(), subjects=(), grades=None) -> dict:
    data = {"id": identifier, "title": identifier.title(), "affects": list(affects)}
    data["subjects"] = list(subjects)
    if grades is not None:
        data["grades"] = grades
    return data


def test_tag_match_never_suggests_against_the_affect_read_when_a_match_exists():
    rng = np.random.default_rng(0)
    checked = 0
    for affect, subject in itertools.product(SCHOOL_AFFECTS, SUBJECTS):
        for _ in range(25):
            noise = rng.dirichlet(np.ones(len(SCHOOL_AFFECTS)))
            probabilities = (
                0.5 * noise + 0.5 * np.eye(len(SCHOOL_AFFECTS))[SCHOOL_AFFECTS.index(affect)]
            )
            estimate = dict(zip(SCHOOL_AFFECTS, probabilities.tolist(), strict=True))
            suggestions = rank_interventions(SHIPPED, affect=estimate, subject=subject)
            matching = [
                item
                for item in SHIPPED.interventions
                if (not item.affects or affect in item.affects)
                and (not item.subjects or subject is None or subject in item.subjects)
            ]
            assert matching, f"the shipped library has something for {affect}, {subject}"
            by_id = {item.id: item for item in SHIPPED.interventions}
            for suggestion in suggestions:
                tags = by_id[suggestion.id].affects
                assert not tags or affect in tags, (affect, subject, suggestion)
                assert affect in suggestion.matches
            assert [s.rank for s in suggestions] == list(range(1, len(suggestions) + 1))
            checked += 1
    assert checked == len(SCHOOL_AFFECTS) * len(SUBJECTS) * 25


def test_a_suggestion_says_why_and_carries_no_percentage():
    suggestions = rank_interventions(
        SHIPPED, affect={"confused": 0.7, "frustrated": 0.2, "bored": 0.1}, subject="Mathematics"
    )
    # For confusion in Mathematics in particular, then for confusion (and frustration too) in
    # any subject.
    assert [(s.id, s.reason) for s in suggestions[:2]] == [
        ("worked-example", "matches: confused, Mathematics"),
        ("concept-check", "matches: confused"),
    ]
    uncertain = rank_interventions(
        SHIPPED, affect={"confused": 0.5, "frustrated": 0.45, "bored": 0.05}, subject="Mathematics"
    )
    assert uncertain[0].id == "concept-check", "for both affects, when the reading is unsure"
    for suggestion in suggestions:
        text = json.dumps(suggestion.to_dict())
        assert "%" not in text
        assert "score" not in text
        assert not re.search(r"\b0\.\d", text), "no probability-like number"


def test_the_subject_and_the_grade_leave_out_what_does_not_fit():
    lib = library(
        entry("maths-only", affects=["bored"], subjects=["Mathematics"]),
        entry("little-ones", affects=["bored"], grades=[1, 3]),
        entry("anyone", affects=["bored"]),
    )
    bored = {"bored": 1.0}
    ids = [s.id for s in rank_interventions(lib, affect=bored, subject="English", grade=7)]
    assert ids == ["anyone"]
    ranked = rank_interventions(lib, affect=bored, subject="mathematics", grade=2)
    ids = [s.id for s in ranked]
    assert ids[0] == "maths-only", "its own subject (in any case) ranks above one for any subject"
    assert ranked[0].reason == "matches: bored, Mathematics"
    assert set(ids) == {"maths-only", "little-ones", "anyone"}
    assert {s.id for s in rank_interventions(lib, affect=bored)} == {
        "maths-only",
        "little-ones",
        "anyone",
    }, "an unknown subject or grade leaves nothing out"


def test_teachers_verdicts_move_an_intervention_among_equals():
    lib = library(entry("a", affects=["confused"]), entry("b", affects=["confused"]))
    confused = {"confused": 0.9, "bored": 0.1}
    assert [s.id for s in rank_interventions(lib, affect=confused)] == ["a", "b"]
    verdicts = {"a": Verdicts(useful=0, not_useful=3), "b": Verdicts(useful=2, not_useful=0)}
    ranked = rank_interventions(lib, affect=confused, verdicts=verdicts)
    assert [s.id for s in ranked] == ["b", "a"]
    assert "found it useful 2 of 2 times" in ranked[0].reason
    assert "found it useful 0 of 3 times" in ranked[1].reason


def test_where_nothing_suits_the_affect_the_reason_says_so():
    lib = library(entry("for-bored", affects=["bored"]), entry("for-engaged", affects=["engaged"]))
    ranked = rank_interventions(lib, affect={"frustrated": 0.6, "bored": 0.3, "engaged": 0.1})
    assert [s.id for s in ranked] == ["for-bored", "for-engaged"]
    assert "nothing in the library is for frustrated" in ranked[0].reason


def test_grades_round_trip_and_a_reversed_range_is_refused():
    lib = library(entry("x", affects=["bored"], grades=[3, 6]))
    assert lib.interventions[0].grades == (3, 6)
    again = InterventionLibrary.from_dict(lib.to_dict())
    assert again == lib
    with pytest.raises(ConfigError, match="lowest comes first"):
        library(entry("x", grades=[6, 3]))


def test_no_text_is_shown_that_the_library_and_the_evidence_do_not_ground():
    """Guardrail: a suggestion's words are the library entry's (title, description, tags) and
    the session's evidence (the affect read, the learner's own sentence, the subject), joined by
    fixed words; nothing is generated."""
    rng = np.random.default_rng(1)
    essay = ["I do not get why the sign flips.", "Fractions are fine.", "Can we stop now?"]
    by_id = {item.id: item for item in SHIPPED.interventions}
    checked = unsure_checked = 0
    for affect, subject in itertools.product(SCHOOL_AFFECTS, SUBJECTS):
        estimate = dict(zip(SCHOOL_AFFECTS, rng.dirichlet(np.ones(4)).tolist(), strict=True))
        estimate[affect] = 2.0  # the affect read
        quote = essay[int(rng.integers(len(essay)))] if rng.random() < 0.7 else None
        heard = ("speech_text", "text") if rng.random() < 0.5 else ("text", "speech_text")
        quotes = dict.fromkeys(heard, quote) if quote else {}
        unsure = bool(rng.random() < 0.3)
        for suggestion in rank_interventions(
            SHIPPED, affect=estimate, subject=subject, quotes=quotes, affect_unsure=unsure
        ):
            item = by_id[suggestion.id]
            assert (suggestion.title, suggestion.description) == (item.title, item.description)
            purpose = (
                f"For a learner who seems {' or '.join(map(re.escape, item.affects))}"
                if item.affects
                else "For any learner"
            )
            own = [s for s in item.subjects if subject and s.casefold() == subject.casefold()]
            purpose += f", in {re.escape(own[0])}" if own else ""
            verb = "said" if heard[0] == "speech_text" else "wrote"  # the strongest, first
            shown = f' \\(they {verb} "{re.escape(quote)}"\\)' if quote else ""
            lesson = f", in {re.escape(subject)}" if subject else ""
            pattern = (
                f"{purpose}\\. This learner may seem {affect}{shown}{lesson}; "
                "the affect estimate is unsure and needs a person\\."
                if unsure
                else f"{purpose}\\. This learner seems {affect}{shown}{lesson}\\."
            )
            assert re.fullmatch(pattern, suggestion.rationale), suggestion.rationale
            checked += 1
            unsure_checked += unsure
    assert checked >= len(SCHOOL_AFFECTS) * len(SUBJECTS)
    assert 0 < unsure_checked < checked
