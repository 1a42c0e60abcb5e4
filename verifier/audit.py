"""An audit: the results of a check mapped onto the clauses of published terms (dsl/terms.py).

A clause holds only when every invariant and test stating it was proved (holds, passed) on a
table proved equal to its policy; it is violated when any of them is violated or failed; else
it is unknown. The reports are rendered by dpipolicy/auditformats.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dpipolicy.dsl.terms import Clause, Terms

from .auditupgrade import Upgrade
from .trace import Trace
from .results import APPROXIMATE, FAILED, HOLDS, UNKNOWN, VIOLATED, Report, Result

if TYPE_CHECKING:
    from .waivers import Review


@dataclass(frozen=True)
class ClauseVerdict:
    clause: Clause
    verdict: str                   # holds, violated or unknown (or waived: verifier/waivers.py)
    items: tuple[Result, ...]      # its invariants, then its tests, in the order the terms list them
    reason: str | None = None      # why unknown, when no item is


@dataclass(frozen=True)
class Audit:
    terms: Terms
    report: Report
    clauses: tuple[ClauseVerdict, ...]
    uncited: tuple[Result, ...]    # invariants and tests no clause names: shown, never dropped
    trace: Trace | None = None     # traceability and coverage (verifier/trace.py)
    upgrade: Upgrade | None = None  # with two engine profiles: the verdicts under the old one
    waivers: Review | None = None   # with a waiver file: how its waivers meet the violations

    def summary(self) -> dict[str, int]:
        verdicts = [c.verdict for c in self.clauses]
        return {"clauses": len(verdicts), "holds": verdicts.count(HOLDS), "violated": verdicts.count(VIOLATED),
                "unknown": verdicts.count(UNKNOWN),
                **({"waived": verdicts.count("waived")} if self.waivers is not None else {})}

    def exit_code(self, strict: bool = False) -> int:
        """As `check`'s on the same policy and specs (with waivers, verifier/waivers.py's); with
        `strict`, a traceability finding counts as a violation."""
        if self.waivers is not None:
            from .waivers import exit_code
            code = exit_code(self)
        else:
            code = self.report.exit_code()
        return 1 if strict and code in (0, 3) and self.trace is not None and self.trace.findings else code


def audit(terms: Terms, report: Report, trace: Trace | None = None) -> Audit:
    """Each clause's verdict from the results of its invariants and tests (names checked by
    dsl.terms.check_names before the check)."""
    by_name = {(r.kind, r.name): r for r in report.results}
    validated = report.validation is None or report.validation.status == "proved"
    verdicts = []
    cited: set[tuple[str, str]] = set()
    for clause in terms.clauses:
        keys = [("invariant", c.name) for c in clause.invariants] + [("test", c.name) for c in clause.tests]
        cited.update(keys)
        items = tuple(by_name[k] for k in keys)
        verdicts.append(_verdict(clause, items, validated, report))
    uncited = tuple(r for r in report.results if (r.kind, r.name) not in cited)
    return Audit(terms, report, tuple(verdicts), uncited, trace)


def _verdict(clause: Clause, items: tuple[Result, ...], validated: bool, report: Report) -> ClauseVerdict:
    if any(r.status in (VIOLATED, FAILED) for r in items):
        return ClauseVerdict(clause, VIOLATED, items)
    if any(r.status == UNKNOWN for r in items):
        return ClauseVerdict(clause, UNKNOWN, items)
    approximate = [r.name for r in items if r.status == APPROXIMATE]
    if approximate:        # an imported rule set read with --approximate: never a plain holds
        verb = "depends" if len(approximate) == 1 else "depend"
        return ClauseVerdict(clause, UNKNOWN, items, f"{', '.join(approximate)} {verb} on what the imported table "
                             "holds only approximately (--approximate)")
    if not validated:      # every item holds, but of a table that may not be the policy
        return ClauseVerdict(clause, UNKNOWN, items, report.validation.text())
    return ClauseVerdict(clause, HOLDS, items)
