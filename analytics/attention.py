"""Who needs a person's attention: pure functions over what the model suggested."""

from collections.abc import Iterable, Sequence

CONCERNING_AFFECTS = frozenset({"frustrated", "confused"})


def persistently_concerning(
    latest_first: Sequence[str],
    *,
    concerning: Iterable[str] = CONCERNING_AFFECTS,
    window: int = 3,
    at_least: int = 2,
) -> bool:
    """Whether at least `at_least` of a subject's last `window` affect labels (newest first)
    are concerning: one frustrated afternoon is not a pattern, two of the last three are."""
    recent = latest_first[:window]
    return sum(label in set(concerning) for label in recent) >= at_least
