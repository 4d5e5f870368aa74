"""Who needs a person's attention: pure functions over what the model suggested."""

from collections.abc import Iterable, Sequence
from datetime import datetime

CONCERNING_AFFECTS = frozenset({"frustrated", "confused"})
WINDOW = 3
AT_LEAST = 2
RECENT_WEEKS = 4  # a pattern older than this is history, not a reason to act now


def persistently_concerning(
    latest_first: Sequence[str],
    *,
    concerning: Iterable[str] = CONCERNING_AFFECTS,
    window: int = WINDOW,
    at_least: int = AT_LEAST,
) -> bool:
    """Whether at least `at_least` of a subject's last `window` affect labels (newest first)
    are concerning: one frustrated afternoon is not a pattern, two of the last three are."""
    recent = latest_first[:window]
    return sum(label in set(concerning) for label in recent) >= at_least


def concern_since(
    latest_first: Sequence[tuple[str, datetime]],
    *,
    concerning: Iterable[str] = CONCERNING_AFFECTS,
    window: int = WINDOW,
    at_least: int = AT_LEAST,
) -> datetime | None:
    """When a subject's persistent concern began, given their last affect labels with their
    times (newest first): the time of the `at_least`-th newest concerning label among the last
    `window`, or None when there is no such pattern.

    Counting only analyses since a cutoff, the subject is persistently concerning exactly when
    this time is at or after the cutoff; so a database can answer "who needs attention in the
    last four weeks" with one indexed comparison instead of reading every recent result."""
    concerning = set(concerning)
    times = [at for label, at in latest_first[:window] if label in concerning]
    return times[at_least - 1] if len(times) >= at_least else None
