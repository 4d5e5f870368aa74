"""Synthetic clinical notes and learner writing, from a small grammar.

Each concept a note can carry (a strong or a mild symptom, none; distressed, mixed or calm
wording; an agitated or a slowed manner) has phrasing *families*: a sentence frame, and words
for the concept. Seen families are what training sees; unseen families say the same things
with other frames and other words, and make the paraphrase split, so a test can tell reading
from recall. Every concept has at least 30 phrasings (`phrasings`).
"""

from dataclasses import dataclass
from itertools import product

import numpy as np


@dataclass(frozen=True)
class Concept:
    seen_frames: tuple[str, ...]
    seen_words: tuple[str, ...]
    unseen_frames: tuple[str, ...]
    unseen_words: tuple[str, ...]

    def families(self, phrasing: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if phrasing == "seen":
            return self.seen_frames, self.seen_words
        if phrasing == "unseen":
            return self.unseen_frames, self.unseen_words
        raise ValueError(f"phrasing must be seen or unseen, not {phrasing!r}")


CLINICAL_CONCEPTS = {
    "symptom_strong": Concept(
        seen_frames=(
            "Reports {x} for {weeks} weeks.",
            "Presents with {x}.",
            "Complains of {x} over the last {weeks} weeks.",
            "History of {x}, getting worse.",
            "Describes {x} since last month.",
        ),
        seen_words=(
            "coughing up blood",
            "blood-streaked sputum and night sweats",
            "a persistent cough with unintended weight loss",
            "{kilos} kg weight loss and a worsening cough",
            "progressive shortness of breath and weight loss",
            "a cough that brings up blood most mornings",
            "severe fatigue, sweats at night and a poor appetite",
            "chest pain and a cough that will not settle",
            "marked weight loss over a few months",
            "breathlessness at rest and a productive cough",
        ),
        unseen_frames=(
            "Worried by {x}; it began {weeks} weeks ago.",
            "Her daughter has noticed {x}.",
            "Main problem today: {x}.",
        ),
        unseen_words=(
            "bringing up bright red blood when clearing the throat",
            "losing a lot of weight without trying and drenching sweats at night",
            "a hacking cough that has not let up and clothes becoming loose",
            "breathlessness climbing the stairs that is much worse than before",
            "haemoptysis with marked loss of appetite",
        ),
    ),
    "symptom_mild": Concept(
        seen_frames=(
            "Mentions {x}.",
            "Has had {x} for {weeks} weeks.",
            "Reports {x}, otherwise well.",
            "Notes {x} on and off.",
            "Describes {x}, nothing more.",
        ),
        seen_words=(
            "an occasional dry cough",
            "a mild cough in the mornings",
            "slight breathlessness on hills",
            "some tiredness",
            "a tickly throat",
            "a slight wheeze now and then",
            "a runny nose and a bit of a cough",
            "mild tiredness in the afternoons",
            "an irritating cough at night",
            "a little breathlessness when hurrying",
        ),
        unseen_frames=(
            "Bit of {x} lately, not troubling.",
            "Only complaint is {x}.",
            "Partner says there has been {x}.",
        ),
        unseen_words=(
            "a light cough that comes and goes",
            "feeling a little run down",
            "a minor wheeze when it is cold",
            "a croaky voice after a cold",
            "getting puffed a touch sooner than usual",
        ),
    ),
    "symptom_none": Concept(
        seen_frames=(
            "Denies {x}.",
            "No {x}.",
            "Negative for {x}.",
            "Specifically asked: no {x}.",
            "Reports no {x}; weight stable over {weeks} weeks.",
        ),
        seen_words=(
            "cough, haemoptysis or weight loss",
            "respiratory complaints",
            "chest symptoms",
            "breathlessness or night sweats",
            "change in cough or appetite",
            "fever, cough or weight change",
            "shortness of breath at rest or on exertion",
            "sputum, wheeze or chest pain",
            "new symptoms of any kind",
            "fatigue or loss of appetite",
        ),
        unseen_frames=(
            "Chest has been fine: {x}.",
            "Came in for a routine check; {x}.",
            "On direct questioning, {x}.",
        ),
        unseen_words=(
            "breathing is as it always was",
            "eating well and not losing any weight",
            "nothing coughed up and sleeping through",
            "no trouble with the lungs at all",
            "feels physically well in herself",
        ),
    ),
    "distress_distressed": Concept(
        seen_frames=(
            "Patient says {x}.",
            "Tearful at times; {x}.",
            "During the consultation {x}.",
            "Explains that {x}.",
            "Mood: {x}.",
        ),
        seen_words=(
            "things have been very hard and she feels overwhelmed",
            "she worries constantly about what the results will show",
            "he feels hopeless and unable to cope at home",
            "she cannot stop thinking the worst",
            "he is frightened and not sleeping for worry",
            "she feels desperate and keeps crying",
            "he is terrified about the future",
            "she is in despair and cannot face the day",
            "he feels helpless and very low",
            "she is panicking about the diagnosis",
        ),
        unseen_frames=(
            "Broke down when asked how she was; {x}.",
            "In their words, {x}.",
            "Struggling: {x}.",
        ),
        unseen_words=(
            "everything feels too much to bear right now",
            "life seems to be falling apart",
            "there is a constant dread about being seriously ill",
            "nothing brings any joy any more",
            "panic sets in every night",
        ),
    ),
    "distress_mixed": Concept(
        seen_frames=(
            "Patient says {x}.",
            "Mood: {x}.",
            "When asked, {x}.",
            "Explains that {x}.",
            "Emotionally, {x}.",
        ),
        seen_words=(
            "she is a little worried but coping",
            "he has good days and bad days",
            "things are up and down",
            "she is somewhat anxious about the scan",
            "he is managing, mostly",
            "she has some worries but is holding up",
            "he is a bit low at times but copes",
            "she feels mildly uneasy",
            "he is partly reassured, partly concerned",
            "she is fine most days with the odd wobble",
        ),
        unseen_frames=(
            "Hard to read today; {x}.",
            "In their words, {x}.",
            "Admits {x}.",
        ),
        unseen_words=(
            "some nights are rough though the days are fine",
            "there is a bit of nervousness about the future",
            "spirits dip now and then",
            "coping, although it is wearing",
            "a few worries, nothing overwhelming",
        ),
    ),
    "distress_calm": Concept(
        seen_frames=(
            "Patient is {x}.",
            "Mood: {x}.",
            "Throughout the visit {x}.",
            "Appears {x}.",
            "Presents as {x}.",
        ),
        seen_words=(
            "calm and in good spirits",
            "relaxed and engages well",
            "cheerful, with plans for the coming weeks",
            "settled and unworried",
            "content and at ease",
            "happy and optimistic",
            "untroubled and chatty",
            "composed and reassured",
            "peaceful and comfortable",
            "positive about the treatment",
        ),
        unseen_frames=(
            "Chatted happily; {x}.",
            "In their words, {x}.",
            "Nothing on their mind: {x}.",
        ),
        unseen_words=(
            "life is good at the moment",
            "looking forward to a holiday",
            "no concerns about the results whatsoever",
            "sleeping well and enjoying the garden",
            "feeling positive and hopeful",
        ),
    ),
    "arousal_agitated": Concept(
        seen_frames=(
            "Noted to be {x}.",
            "{X} throughout.",
            "Observed: {x}.",
            "Manner: {x}.",
            "Was {x} in the waiting room.",
        ),
        seen_words=(
            "restless and fidgeting",
            "agitated, speaking quickly",
            "pacing and unable to sit still",
            "tense and keyed up",
            "jumpy and on edge",
            "animated and talking fast",
            "wired and unable to settle",
            "hyperalert and twitchy",
            "loud and excitable",
            "shaking with nervous energy",
        ),
        unseen_frames=(
            "Could barely stay in the chair; {x}.",
            "Staff remarked on how {x} the patient was.",
            "Energy high: {x}.",
        ),
        unseen_words=(
            "wired",
            "worked up",
            "hyper and talkative",
            "wound up tight",
            "buzzing with nervous energy",
        ),
    ),
    "arousal_slowed": Concept(
        seen_frames=(
            "Noted to be {x}.",
            "{X} throughout.",
            "Observed: {x}.",
            "Manner: {x}.",
            "Was {x} in the waiting room.",
        ),
        seen_words=(
            "slowed and quiet",
            "flat, speaking slowly",
            "listless and tired",
            "subdued with little movement",
            "withdrawn and lethargic",
            "sluggish and slow to answer",
            "exhausted and barely moving",
            "drowsy and monotonous",
            "weary, with a quiet voice",
            "low in energy and still",
        ),
        unseen_frames=(
            "Hardly moved in the chair; {x}.",
            "Staff remarked on how {x} the patient was.",
            "Energy low: {x}.",
        ),
        unseen_words=(
            "drained",
            "sluggish",
            "worn out and monotone",
            "sapped of energy",
            "heavy and unhurried",
        ),
    ),
}

LEARNER_CONCEPTS = {
    "struggle_struggling": Concept(
        seen_frames=(
            "I {x}.",
            "Honestly I {x}.",
            "With the {topic} questions I {x}.",
            "Today I {x}.",
            "In the end I {x}.",
        ),
        seen_words=(
            "don't get why the method works and kept getting it wrong",
            "tried three times but still can't see where I go wrong",
            "gave up on the last part because it made no sense",
            "got stuck on nearly every question",
            "felt lost the whole lesson",
            "could not follow any of the steps",
            "made the same mistake again and again",
            "did not understand the question at all",
            "was confused from start to finish",
            "had no idea how to begin",
        ),
        unseen_frames=(
            "No idea what happened, I {x}.",
            "My partner had to help because I {x}.",
            "Ugh, I {x}.",
        ),
        unseen_words=(
            "was totally confused by all of it",
            "kept messing it up no matter what",
            "couldn't work out a single answer",
            "went round in circles for ages",
            "just stared at the page",
        ),
    ),
    "struggle_unsure": Concept(
        seen_frames=(
            "I {x}.",
            "I think I {x}.",
            "With the {topic} questions I {x}.",
            "Today I {x}.",
            "Mostly I {x}.",
        ),
        seen_words=(
            "got some right but I'm not sure about the rest",
            "understood the first part but not the second",
            "needed a hint for the harder ones",
            "am getting there slowly",
            "could do the easy ones",
            "half understood it",
            "got there in the end with some help",
            "managed most of it but not all",
            "was unsure about a few answers",
            "think I mostly get it",
        ),
        unseen_frames=(
            "Kind of, I {x}.",
            "Half the time I {x}.",
            "So-so: I {x}.",
        ),
        unseen_words=(
            "followed it until the last step",
            "checked with a friend to be safe",
            "guessed a couple and hoped",
            "sort of see it now",
            "managed with the worked example open",
        ),
    ),
    "struggle_confident": Concept(
        seen_frames=(
            "I {x}.",
            "This time I {x}.",
            "With the {topic} questions I {x}.",
            "Today I {x}.",
            "Finally I {x}.",
        ),
        seen_words=(
            "worked out the problems step by step and checked each answer",
            "understood why the method works and tried a harder example too",
            "explained it to my partner and we both got the last question right",
            "finished early and helped someone else",
            "got every question right",
            "found it easy and finished quickly",
            "really understood it this time",
            "solved all of them without help",
            "felt sure of every answer",
            "could explain each step",
        ),
        unseen_frames=(
            "Easy today, I {x}.",
            "Proud because I {x}.",
            "Nailed it: I {x}.",
        ),
        unseen_words=(
            "breezed through the whole sheet",
            "could teach it to anyone now",
            "spotted the trick straight away",
            "sailed through the extension task",
            "made zero mistakes",
        ),
    ),
    "arousal_agitated": Concept(
        seen_frames=(
            "I was {x}.",
            "I felt {x}.",
            "Today I was {x}.",
            "Honestly I was {x}.",
            "The whole lesson I was {x}.",
        ),
        seen_words=(
            "really excited",
            "buzzing",
            "worked up",
            "so wound up",
            "full of energy",
            "really hyped",
            "restless and excited",
            "super energetic",
            "bursting with energy",
            "keen and lively",
        ),
        unseen_frames=(
            "Couldn't sit still, {x}.",
            "Everyone said I was {x}.",
            "Energy: {x}.",
        ),
        unseen_words=(
            "hyper all morning",
            "fired up",
            "bouncing off the walls",
            "jittery",
            "totally pumped",
        ),
    ),
    "arousal_slowed": Concept(
        seen_frames=(
            "I was {x}.",
            "I felt {x}.",
            "Today I was {x}.",
            "Honestly I was {x}.",
            "The whole lesson I was {x}.",
        ),
        seen_words=(
            "really tired",
            "sleepy",
            "bored",
            "so slow today",
            "low on energy",
            "exhausted",
            "half awake",
            "drowsy",
            "worn out",
            "lethargic",
        ),
        unseen_frames=(
            "Could barely keep my eyes open, {x}.",
            "Everyone said I was {x}.",
            "Energy: {x}.",
        ),
        unseen_words=(
            "half asleep",
            "zoned out",
            "dragging myself along",
            "yawning the whole time",
            "flat",
        ),
    ),
}

_PLANS = (
    "Plan: review imaging and follow up in {weeks} weeks.",
    "Plan: bloods today; discuss results at next visit.",
    "Plan: continue current medication; safety-netting advice given.",
    "Plan: see again after the scan.",
    "Plan: routine follow-up.",
)
_CONTEXT = (
    "Today we practised {topic} in {subject}.",
    "In {subject} we looked at {topic}.",
    "Our {subject} task was about {topic}.",
    "The {subject} lesson was on {topic}.",
)
TOPICS = {
    "Mathematics": ("fractions", "linear equations", "percentages", "area and perimeter"),
    "English": ("persuasive writing", "poetry analysis", "reported speech", "paragraph structure"),
    "Science": ("photosynthesis", "electric circuits", "states of matter", "forces"),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def sentence(concept: Concept, *, phrasing: str, rng: np.random.Generator, **values) -> str:
    """One sentence that says `concept` in a family of `phrasing` (seen or unseen)."""
    frames, words = concept.families(phrasing)
    frame, word = _pick(rng, frames), _pick(rng, words)
    filled = word.format(**values)
    text = frame.format(x=filled, X=filled[:1].upper() + filled[1:], **values)
    return text[:1].upper() + text[1:]


def phrasings(concept: Concept) -> set[str]:
    """Every sentence the concept can be said in (numbers fixed), over both phrasings."""
    values = {"weeks": 3, "kilos": 5, "topic": "fractions"}
    return {
        frame.format(x=word.format(**values), X=word.format(**values).capitalize(), **values)
        for frames, words in (
            (concept.seen_frames, concept.seen_words),
            (concept.unseen_frames, concept.unseen_words),
        )
        for frame, word in product(frames, words)
    }


def clinical_note(
    *, symptom: str, wording: str, manner: str | None, phrasing: str, rng: np.random.Generator
) -> str:
    """A note: the symptom sentence (`symptom` strong, mild or none), the wording of the
    patient's mood (distressed, mixed or calm), perhaps their manner (agitated or slowed),
    and a plan, in the families of `phrasing`."""
    values = {"weeks": int(rng.integers(2, 12)), "kilos": int(rng.integers(3, 9))}
    parts = [
        sentence(CLINICAL_CONCEPTS[f"symptom_{symptom}"], phrasing=phrasing, rng=rng, **values),
        sentence(CLINICAL_CONCEPTS[f"distress_{wording}"], phrasing=phrasing, rng=rng, **values),
    ]
    if manner is not None:
        concept = CLINICAL_CONCEPTS[f"arousal_{manner}"]
        parts.append(sentence(concept, phrasing=phrasing, rng=rng, **values))
    parts.append(_pick(rng, _PLANS).format(**values))
    return " ".join(parts) + "\n"


def learner_text(
    *, subject: str, level: str, manner: str | None, phrasing: str, rng: np.random.Generator
) -> str:
    """A learner's reflection: the lesson, how it went (`level` struggling, unsure or
    confident) and perhaps how they felt (agitated or slowed)."""
    values = {"subject": subject, "topic": _pick(rng, TOPICS[subject])}
    parts = [
        _pick(rng, _CONTEXT).format(**values),
        sentence(LEARNER_CONCEPTS[f"struggle_{level}"], phrasing=phrasing, rng=rng, **values),
    ]
    if manner is not None:
        concept = LEARNER_CONCEPTS[f"arousal_{manner}"]
        parts.append(sentence(concept, phrasing=phrasing, rng=rng, **values))
    return " ".join(parts) + "\n"


_REPORT_OPENINGS = ("Axial chest CT.", "CT chest, single slice.", "Chest CT reviewed.")


def radiology_report(lesion, *, rng: np.random.Generator) -> str:
    """A short report of what the slice shows; `lesion` is a Lesion or None."""
    opening = _pick(rng, _REPORT_OPENINGS)
    if lesion is None:
        return f"{opening} Lungs are clear. No focal lesion."
    size = "large" if lesion.large else "small"
    return f"{opening} A {size} nodule in the {lesion.side} {lesion.level} lobe."
