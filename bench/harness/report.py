"""The results table shared by bench/memory.py and bench/sched.py, and the JSON report.

A row holds our figure, the baseline's measured in the same run, and the target;
the table prints one line per row with the ratio and the verdict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table: our figure, the baseline's, and the target."""

    metric: str
    unit: str
    llmos: float
    baseline: float | None
    target: str = "-"
    passed: bool | None = None
    other_cpu: float = 0.0

    @property
    def ratio(self) -> float | None:
        """Ours over the baseline's; None without a baseline."""
        return self.llmos / self.baseline if self.baseline else None

    @property
    def verdict(self) -> str:
        """PASS or MISS against the target; ``-`` where there is none."""
        return "-" if self.passed is None else "PASS" if self.passed else "MISS"


@dataclass(frozen=True)
class Columns:
    """How a table is laid out: the baseline column's name, the widths, the numbers."""

    baseline: str = "baseline"
    metric_width: int = 52
    target_width: int = 10
    is_small_exact: bool = True  # figures under 0.1 with two significant digits


def number(value: float | None, is_small_exact: bool = True) -> str:
    """A figure with fewer decimals the larger it is; ``-`` for none."""
    if value is None:
        return "-"
    if is_small_exact and value and abs(value) < 0.1:
        return f"{value:.2g}"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def print_table(rows: list[Row], columns: Columns = Columns()) -> None:
    """The header, then one line per row."""
    width, target_width = columns.metric_width, columns.target_width
    print(
        f"\n{'metric':<{width}} {'unit':>6} {'llmos':>9} {columns.baseline:>9} {'ratio':>7} "
        f"{'target':>{target_width}} {'result':>6} {'other-cpu':>9}"
    )
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x"
        ours, base = (number(x, columns.is_small_exact) for x in (row.llmos, row.baseline))
        print(
            f"{row.metric:<{width}} {row.unit:>6} {ours:>9} {base:>9} "
            f"{ratio:>7} {row.target:>{target_width}} {row.verdict:>6} {row.other_cpu:>9.2f}"
        )


def row_dicts(rows: list[Row], value_key: str = "llmos") -> list[dict[str, Any]]:
    """The rows for the JSON report, ratio and verdict included; our figure under
    ``value_key``."""
    return [
        {
            **{value_key if k == "llmos" else k: v for k, v in asdict(r).items()},
            "ratio": r.ratio,
            "verdict": r.verdict,
        }
        for r in rows
    ]


def write_json(path: Path | None, report: dict[str, Any], gap: str = "\n") -> None:
    """Write ``report`` to ``path`` where one is given, and say so after ``gap``."""
    if path is None:
        return
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"{gap}wrote {path}")
