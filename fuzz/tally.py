"""The figures of a run: inputs and exit codes per kind and command, times, and every finding.

One place counts, so the table the command prints, the JSON record docs/reliability.md quotes
and the CI slice's assertion all read the same numbers.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

SLOWEST = 10


@dataclass
class Tally:
    seed: int
    inputs: int = 0
    by_row: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    codes: collections.Counter = field(default_factory=collections.Counter)     # diagnostic codes seen
    seconds: float = 0.0
    slowest: list = field(default_factory=list)
    findings: list = field(default_factory=list)

    def add(self, record: dict) -> None:
        self.inputs += 1
        row = self.by_row[(record["kind"], record["command"])]
        row["inputs"] += 1
        row[f"exit {record['code']}" if record["code"] is not None else "no verdict"] += 1
        self.codes.update(set(record["codes"]))
        if record["seconds"] is not None:
            self.seconds += record["seconds"]
            row["ms"] += record["seconds"] * 1000
            self.slowest = sorted(self.slowest + [(record["seconds"], record["number"], record["label"],
                                                   record["command"])], reverse=True)[:SLOWEST]
        if record["problems"]:
            row["findings"] += 1
            self.findings.append(record)

    def figures(self) -> dict:
        rows = []
        for (kind, command), row in sorted(self.by_row.items()):
            rows.append(dict(kind=kind, command=command, **{k: round(v) for k, v in row.items()}))
        return {"seed": self.seed, "inputs": self.inputs, "findings": len(self.findings),
                "cpu_seconds_in_main": round(self.seconds, 1), "rows": rows,
                "diagnostic_codes": dict(sorted(self.codes.items())),
                "slowest": [{"seconds": round(s, 2), "number": n, "label": label, "command": c}
                            for s, n, label, c in self.slowest],
                "finding_records": self.findings}

    def table(self) -> str:
        columns = ("inputs", "exit 0", "exit 1", "exit 2", "exit 3", "findings")
        lines = [f"{'kind':<10} {'command':<8} " + " ".join(f"{c:>8}" for c in columns) + f" {'mean ms':>8}"]
        total = collections.Counter()
        for (kind, command), row in sorted(self.by_row.items()):
            total.update(row)
            lines.append(_row(kind, command, row, columns))
        lines.append(_row("all", "", total, columns))
        return "\n".join(lines)


def _row(kind: str, command: str, row, columns) -> str:
    mean = row["ms"] / row["inputs"] if row["inputs"] else 0
    return f"{kind:<10} {command:<8} " + " ".join(f"{round(row[c]):>8}" for c in columns) + f" {mean:>8.1f}"
