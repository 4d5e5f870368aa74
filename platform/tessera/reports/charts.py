"""Charts of a report, drawn by matplotlib to PNG for the PDF. Figures are made directly, not
through pyplot: no global state, no display, safe in a threaded worker."""

import io
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analytics.trends import WeekCounts

PALETTE = ["#1f5f8b", "#d1495b", "#edae49", "#66a182", "#8d6a9f", "#00798c", "#6c757d"]
SIZE = (6.4, 2.6)  # inches: the text width of an A4 page


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def _axes(title: str, *, height: float = SIZE[1]):
    figure = Figure(figsize=(SIZE[0], height))
    axes = figure.subplots()
    axes.set_title(title, fontsize=10, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    return figure, axes


def probabilities_over_time(
    times: Sequence[datetime], series: dict[str, Sequence[float]], *, title: str
) -> bytes:
    """One line per finding: its probability at each analysis."""
    figure, axes = _axes(title)
    for colour, (label, values) in zip(PALETTE * 3, series.items(), strict=False):
        axes.plot(times, values, marker="o", markersize=3, color=colour, label=label)
    axes.axhline(0.5, color="#999999", linewidth=0.8, linestyle="--")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("probability", fontsize=8)
    if len(set(times)) == 1:  # one analysis (a report of one day): a day either side of it
        axes.set_xlim(times[0] - timedelta(days=1), times[0] + timedelta(days=1))
    locator = AutoDateLocator(maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def stacked_weeks(weeks: Sequence[WeekCounts], labels: Sequence[str], *, title: str) -> bytes:
    """A bar per week, stacked by label."""
    figure, axes = _axes(title)
    positions = range(len(weeks))
    bottoms = [0] * len(weeks)
    for colour, label in zip(PALETTE * 3, labels, strict=False):
        heights = [week.counts.get(label, 0) for week in weeks]
        axes.bar(positions, heights, bottom=bottoms, color=colour, label=label, width=0.7)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_xticks(list(positions), [_week_label(week.week) for week in weeks], fontsize=7)
    axes.set_ylabel("analyses", fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def bars(counts: dict[str, int], *, title: str, unit: str) -> bytes:
    names = list(counts)
    figure, axes = _axes(title, height=0.9 + 0.3 * len(names))
    axes.barh(names, [counts[name] for name in names], color=PALETTE[0], height=0.6)
    axes.invert_yaxis()
    axes.set_xlabel(unit, fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(figure)


def _week_label(week: date) -> str:
    return f"{week.day} {week:%b}"
