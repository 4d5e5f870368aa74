"""Distributions over time: pure functions, fed by database aggregates."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class WeekCounts:
    week: date  # the Monday that starts it
    counts: dict[str, int]  # label → results, in the order of the labels asked for

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def weekly_distribution(
    rows: Iterable[tuple[date, str, int]], *, labels: Sequence[str], weeks: Sequence[date]
) -> list[WeekCounts]:
    """(week, label, count) aggregates → one entry per week of `weeks` (empty weeks included, so
    a chart shows the gap) with a count for every label of `labels` (others are left out)."""
    table = {week: dict.fromkeys(labels, 0) for week in weeks}
    for week, label, count in rows:
        if week in table and label in table[week]:
            table[week][label] += count
    return [WeekCounts(week=week, counts=table[week]) for week in weeks]


def mondays(*, weeks: int, until: date) -> list[date]:
    """The Mondays that start the `weeks` weeks up to and including the one holding `until`."""
    last = until - timedelta(days=until.weekday())
    return [last - timedelta(weeks=back) for back in reversed(range(weeks))]


def weeks_between(start: date, end: date) -> list[date]:
    """The Mondays of every week that overlaps `start`…`end` (both included)."""
    first = start - timedelta(days=start.weekday())
    return mondays(weeks=(end - first).days // 7 + 1, until=end)
