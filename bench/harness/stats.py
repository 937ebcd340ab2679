"""Summaries of repeated measurements: percentiles and medians."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median of each member of the ``runs`` pairs."""
    firsts, seconds = zip(*runs, strict=True)
    return statistics.median(firsts), statistics.median(seconds)


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over ``runs`` (all with the keys of the first)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}
