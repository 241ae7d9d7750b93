"""The bench's table: each figure's runs by key, with the notes of what could not be
measured; printed as min / median / max and the ratio of medians to its baseline, and
returned for the JSON file. Measures nothing itself.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    target: str
    measure: str
    runs: list[float] = field(default_factory=list)
    unit: str = ""
    ratio_to: str | None = None

    def stats(self) -> tuple[float, float, float]:
        return min(self.runs), statistics.median(self.runs), max(self.runs)


class Bench:
    """The run's rows and notes, and the work folder the figures make their files in."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rows: dict[str, Row] = {}
        self.notes: list[str] = []
        self._turns: dict[str, int] = {}

    def add(
        self,
        key: str,
        target: str,
        measure: str,
        value: float,
        unit: str,
        ratio_to: str | None = None,
    ) -> None:
        row = self.rows.setdefault(key, Row(target, measure, unit=unit, ratio_to=ratio_to))
        row.runs.append(value)

    def runs(self, key: str) -> int:
        """How many runs row `key` has so far (0 before its first)."""
        return len(self.rows[key].runs) if key in self.rows else 0

    def next_turn(self, name: str) -> int:
        """0, 1, 2... on each call with `name`: whose turn it is to go first."""
        turn = self._turns.get(name, 0)
        self._turns[name] = turn + 1
        return turn

    def report(self) -> dict:
        out = {}
        wide = max([len("target"), *(len(row.target) for row in self.rows.values())])
        lines = [
            f"{'target':<{wide}} {'measure':<44} {'min':>9} {'median':>9} {'max':>9}"
            "  unit      ratio"
        ]
        for key, row in self.rows.items():
            lo, med, hi = row.stats()
            lines.append(
                f"{row.target:<{wide}} {row.measure:<44} {lo:9.2f} {med:9.2f} {hi:9.2f}"
                f"  {row.unit:<9} {self._ratio(row, med)}"
            )
            out[key] = {
                "target": row.target,
                "measure": row.measure,
                "unit": row.unit,
                "runs": row.runs,
                "median": med,
                "ratio_to": row.ratio_to,
            }
        print("\n".join(lines))
        for note in self.notes:
            print("note:", note)
        return out

    def _ratio(self, row: Row, median: float) -> str:
        if not row.ratio_to or row.ratio_to not in self.rows:
            return ""
        base = statistics.median(self.rows[row.ratio_to].runs)
        # For times, smaller is better: the ratio says how many times the baseline.
        return f"{median / base:6.2f}x" if base else ""
