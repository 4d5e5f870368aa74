"""Tutoring suggestions. Until a school's head has learnt from its teachers' verdicts
(mlcore.learnt_ranking), they are ranked by a transparent match: the interventions the library
tags for the affect the model reads come first, then by how well they fit: the probability of
the affect they are for (the likeliest, if several, and a quarter of the others'), a subject of
their own, and what the teachers said of them before. Each suggestion says why, in words a
teacher can check ("matches: confused, Mathematics"); none carries a made-up percentage. Once
the head has learnt, it orders the same candidates (the rule below still holds), and each
suggestion says so.

An intervention tagged for other affects than the one read is never suggested while one tagged
for it (or for any affect) is left: a worked example, for confusion, is not offered to a
frustrated learner when the library has something for frustration.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mlcore.learnt_ranking import LearntRanker, Session
from mlcore.library import Intervention, InterventionLibrary

SUGGESTIONS = 3
# What adds to the probability of the likeliest affect an intervention is for: a share of the
# other affects it is for (it suits an uncertain reading too), a subject of its own (made for
# this lesson rather than any), and the teachers' earlier verdicts.
OTHER_AFFECTS_WEIGHT = 0.25
SUBJECT_WEIGHT = 0.1
VERDICT_WEIGHT = 0.2


@dataclass(frozen=True)
class Verdicts:
    """What teachers said of an intervention: useful, or that it helped at the learner's next
    session (`useful`), or the opposite (`not_useful`)."""

    useful: int = 0
    not_useful: int = 0

    @property
    def balance(self) -> float:
        """In (-1, 1): (useful - not useful) over the verdicts and two, so one verdict moves
        the rank a little and many move it more."""
        return (self.useful - self.not_useful) / (self.useful + self.not_useful + 2)


@dataclass(frozen=True)
class Suggestion:
    rank: int
    id: str
    title: str
    description: str
    matches: tuple[str, ...]  # the affect and the subject it was chosen for
    reason: str
    # Why this one for this learner, from the evidence alone: what the library says it is for,
    # and what the session showed (the affect read, the learner's sentence that shows it, the
    # subject). Nothing in it is generated beyond joining those.
    rationale: str = ""
    basis: str = "tags"  # "tags": the transparent match; "learnt": the school's learnt head

    def to_dict(self) -> dict:
        return {**asdict(self), "matches": list(self.matches)}


def rank_interventions(
    library: InterventionLibrary,
    *,
    affect: Mapping[str, float],
    subject: str | None = None,
    grade: int | None = None,
    verdicts: Mapping[str, Verdicts] | None = None,
    learnt: LearntRanker | None = None,
    quotes: Mapping[str, str] | None = None,
    affect_unsure: bool = False,
    count: int = SUGGESTIONS,
) -> list[Suggestion]:
    """The library's best `count` interventions for a session whose affect the model estimated
    as `affect` (label → probability; empty when unknown), on `subject` for a learner in
    `grade` (either None when unknown). An intervention for other subjects or grades is left
    out; one for other affects only where nothing suits the affect read. With `learnt`, the
    school's learnt head orders them (an intervention it has no verdicts on, by its tags).
    `quotes`: per input (text, speech_text), the learner's sentence that held the affect read
    up most, the strongest first (mlcore.evidence.quoted_sentences), for the rationale;
    `affect_unsure`: the affect estimate needs a person, which each rationale then says."""
    verdicts = verdicts or {}
    read = max(affect, key=affect.get) if affect else None
    candidates = [
        item
        for item in library.interventions
        if (not item.subjects or subject is None or _for_subject(item, subject))
        and _suits_grade(item.grades, grade)
    ]
    fitting = [
        item for item in candidates if read is None or not item.affects or read in item.affects
    ]
    chosen = fitting or candidates
    session = Session(affect=affect, subject=subject, grade=grade)

    def order(item: Intervention) -> float:
        fit = tag_fit(item, affect=affect, subject=subject)
        if learnt is not None:
            return learnt.score(session, item, fit)
        return fit + VERDICT_WEIGHT * verdicts.get(item.id, Verdicts()).balance

    ordered = sorted(chosen, key=lambda item: (-order(item), item.id))[:count]
    return [
        _suggestion(
            rank,
            item,
            read=read,
            subject=subject,
            verdicts=verdicts.get(item.id, Verdicts()),
            nothing_for=None if fitting else read,
            learnt=learnt,
            quotes=quotes or {},
            affect_unsure=affect_unsure,
        )
        for rank, item in enumerate(ordered, start=1)
    ]


def rank_session(
    library: InterventionLibrary,
    session: Session,
    *,
    verdicts: Mapping[str, Verdicts] | None = None,
    learnt: LearntRanker | None = None,
    count: int = SUGGESTIONS,
) -> list[str]:
    """The ids `rank_interventions` suggests, best first, for a session as the learnt head
    describes one (what training and the benchmark rank)."""
    ranked = rank_interventions(
        library,
        affect=session.affect,
        subject=session.subject,
        grade=session.grade,
        verdicts=verdicts,
        learnt=learnt,
        count=count,
    )
    return [suggestion.id for suggestion in ranked]


def tag_fit(item: Intervention, *, affect: Mapping[str, float], subject: str | None) -> float:
    """How well `item`'s tags fit the session: the probability of the likeliest affect it is
    for, a share of the others', and a subject of its own."""
    for_affects = [affect.get(tag, 0.0) for tag in item.affects]
    likeliest = max(for_affects, default=0.0)
    others = OTHER_AFFECTS_WEIGHT * (sum(for_affects) - likeliest)
    own_subject = SUBJECT_WEIGHT if subject and _for_subject(item, subject) else 0.0
    return likeliest + others + own_subject


def _for_subject(item: Intervention, subject: str) -> str | None:
    """The subject of `item` that `subject` names, whatever its case ("mathematics" names
    "Mathematics"; "maths" does not: a library lists subjects as the sessions name them)."""
    return next((own for own in item.subjects if own.casefold() == subject.casefold()), None)


def _suits_grade(grades: tuple[int, int] | None, grade: int | None) -> bool:
    return grades is None or grade is None or grades[0] <= grade <= grades[1]


def _suggestion(
    rank: int,
    item: Intervention,
    *,
    read: str | None,
    subject: str | None,
    verdicts: Verdicts,
    nothing_for: str | None,
    learnt: LearntRanker | None,
    quotes: Mapping[str, str],
    affect_unsure: bool,
) -> Suggestion:
    matches = []
    if read is not None and read in item.affects:
        matches.append(read)
    if subject and (own := _for_subject(item, subject)):
        matches.append(own)
    parts = []
    if matches:
        parts.append(f"matches: {', '.join(matches)}")
    elif not item.affects and not item.subjects:
        parts.append("suits any affect and subject")
    if nothing_for is not None:
        parts.append(
            f"nothing in the library is for {nothing_for}; this is for {', '.join(item.affects)}"
        )
    said = verdicts.useful + verdicts.not_useful
    if said:
        parts.append(f"teachers found it useful {verdicts.useful} of {said} times")
    if learnt is not None:
        parts.append(
            f"ordered by what {learnt.verdicts} verdicts of this school's teachers taught"
            if item.id in learnt.judged
            else "new to the learnt ranking: placed by its tags until teachers judge it"
        )
    return Suggestion(
        rank=rank,
        id=item.id,
        title=item.title,
        description=item.description,
        matches=tuple(matches),
        reason="; ".join(parts) or "fits this subject and grade",
        rationale=_rationale(
            item, read=read, quotes=quotes, subject=subject, affect_unsure=affect_unsure
        ),
        basis="tags" if learnt is None else "learnt",
    )


def _rationale(
    item: Intervention,
    *,
    read: str | None,
    quotes: Mapping[str, str],
    subject: str | None,
    affect_unsure: bool,
) -> str:
    """'For a learner who seems confused, in Mathematics. This learner seems confused (they
    wrote "…"), in Mathematics.' The library's tags, then the evidence; the learner's sentence
    (written, or said in the recording) is quoted only beside the affect it showed. Where the
    affect estimate needs a person, the read is a "may" and the rationale says why, so a
    suggestion never sounds surer than the estimate it rests on."""
    own = _for_subject(item, subject) if subject else None
    purpose = (
        f"For a learner who seems {' or '.join(item.affects)}"
        if item.affects
        else "For any learner"
    )
    if own:
        purpose += f", in {own}"
    if read:
        shown = ""
        if strongest := next(iter(quotes.items()), None):  # the sentence that showed it most
            name, sentence = strongest
            shown = f' (they {"said" if name == "speech_text" else "wrote"} "{sentence}")'
        lesson = f", in {subject}" if subject else ""
        if affect_unsure:
            return (
                f"{purpose}. This learner may seem {read}{shown}{lesson}; "
                "the affect estimate is unsure and needs a person."
            )
        return f"{purpose}. This learner seems {read}{shown}{lesson}."
    return f"{purpose}. This session is in {subject}." if subject else f"{purpose}."
