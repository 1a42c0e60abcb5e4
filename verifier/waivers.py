"""Waivers applied to an audit (dsl/waivers.py reads them). A waiver accepts the flows decided by
the rule it names and (or) inside its region. Whether the unexpired waivers naming a clause or
one of its items accept every violation of a violated item is decided by z3: the item is
checked again on the flows none of them accepts, its `when` (or `given`) conjoined with
`not (W1 or W2 ...)`. It is waived only when that check proves it (holds, passed). Violated,
what the check finds is the part not waived, with its counterexample and violating boxes;
unknown, the item is not waived, and the report says the solver gave no answer. For an
equal-treatment invariant the narrowed `when` keeps both flows of a pair outside the waivers,
so a pair is accepted when a waiver accepts either of its flows.

A waiver matches a violation when the item checked on the violations it accepts (the flows it
accepts; for equal treatment, the pairs with a flow it accepts) is violated. One proved to
match no violation of any item it names (those checks hold, or the items hold) is a finding;
one that z3 could not decide for some item, and matches none of the others, is said as not
known to match. An expired waiver does not apply and is a finding. Findings fail the run (exit
1); a waiver not known to match makes it unknown (3) when nothing fails."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.typed import Policy
from dpipolicy.dsl.waivers import REGION_PREFIX, Waiver, Waivers

from .audit import Audit, ClauseVerdict
from .properties import TableModel, check_property
from .results import FAILED, HOLDS, PASSED, UNKNOWN, VIOLATED, Result
from .solve import Limits

WAIVED = "waived"
NOT_FLOWS = ("an `exists` invariant is violated by the lack of a flow, not by flows: a waiver accepts flows, so it "
             "cannot waive it")


@dataclass(frozen=True)
class ItemWaiver:
    """How the waivers that apply meet one violated item."""
    result: Result                 # the item as the audit checked it
    waivers: tuple[Waiver, ...]    # those proved to accept some of its violations
    rest: Result | None = None     # the item checked on the flows no waiver accepts (None: no waiver applies)
    why_not: str | None = None     # why no waiver can accept it at all

    @property
    def waived(self) -> bool:
        return self.why_not is None and self.rest is not None and self.rest.status in (HOLDS, PASSED)

    @property
    def left(self) -> Result:
        """The violations not waived: the item on the flows no waiver accepts, or all of it."""
        return self.rest if self.rest is not None and self.why_not is None else self.result


@dataclass(frozen=True)
class Review:
    """The waivers of an audit: per clause, its violated items as waived or not; the findings."""
    where: str
    today: datetime.date
    items: dict[str, tuple[ItemWaiver, ...]]   # clause id -> its violated items
    expired: tuple[Waiver, ...]
    unmatched: tuple[Waiver, ...]
    unsure: tuple[tuple[Waiver, str], ...] = ()   # not known to match a violation, and why


def split_regions(spec: Policy) -> tuple[Policy, dict[str, typed.Cond]]:
    """The spec without the waiver regions' tests, and each region's condition by its test's name."""
    regions = {t.name: t.given for t in spec.tests if t.name.startswith(REGION_PREFIX)}
    return replace(spec, tests=tuple(t for t in spec.tests if t.name not in regions)), regions


def check_waiver_names(waivers: Waivers, clauses: tuple[str, ...], invariants: tuple[str, ...],
                       tests: tuple[str, ...], rules: tuple[str, ...]) -> None:
    """Every clause, invariant, test and rule a waiver names exists (E637)."""
    errors = []
    known = {"clause": clauses, "invariant": invariants, "test": tests}
    for w in waivers.waivers:
        if w.name not in known[w.kind]:
            errors.append(Diagnostic("E637", f"a waiver names {w.kind} `{w.name}`, which the audit does not have", None,
                                     location_text=w.location,
                                     help=did_you_mean(w.name, known[w.kind]) or
                                     f"the {w.kind}s: {', '.join(known[w.kind]) or 'none'}"))
        if w.rule is not None and w.rule not in rules:
            errors.append(Diagnostic("E637", f"a waiver names rule `{w.rule}`, which the policy does not have", None,
                                     location_text=w.location,
                                     help=did_you_mean(w.rule, rules) or
                                     f"the rules: {', '.join(rules)} (`default` is the default action)"))
    if errors:
        raise DiagnosticError(errors)


def review(audit: Audit, waivers: Waivers, regions: dict[str, typed.Cond], deployed: tuple[RuleTable, Policy],
           limits: Limits, today: datetime.date) -> Audit:
    """The audit with its waivers applied, decided on the table and spec the audit checked
    (`deployed`: as the engine of its profile runs them; `regions` read under the same profile),
    each query bounded by `limits`: a clause whose violated items are all waived (and none
    unknown) is `waived`."""
    live = [w for w in waivers.waivers if w.expires >= today]
    prover = _Prover(deployed, regions, limits)
    items: dict[str, tuple[ItemWaiver, ...]] = {}
    verdicts = []
    for c in audit.clauses:
        reviewed = []
        for r in c.items:
            mine = tuple(w for w in live if (w.kind, w.name) in (("clause", c.clause.id), (r.kind, r.name)))
            if r.status in (VIOLATED, FAILED):
                reviewed.append(prover.item(r, mine))
            elif r.status == UNKNOWN:
                prover.unknown(mine, f"{r.kind} {r.name} is unknown: {r.reason}")
        items[c.clause.id] = tuple(reviewed)
        if reviewed and all(i.waived for i in reviewed) and not any(r.status == UNKNOWN for r in c.items):
            c = ClauseVerdict(c.clause, WAIVED, c.items, c.reason)
        verdicts.append(c)
    unsure = tuple((w, prover.unsure[id(w)]) for w in live if id(w) not in prover.matched and id(w) in prover.unsure)
    unmatched = tuple(w for w in live if id(w) not in prover.matched and id(w) not in prover.unsure)
    expired = tuple(w for w in waivers.waivers if w.expires < today)
    return replace(audit, clauses=tuple(verdicts),
                   waivers=Review(waivers.where, today, items, expired, unmatched, unsure))


class _Prover:
    """The checks of the violated items on the flows the waivers accept and leave."""

    def __init__(self, deployed: tuple[RuleTable, Policy], regions: dict[str, typed.Cond], limits: Limits):
        table, self.spec = deployed
        self.model = TableModel(table)
        self.regions, self.limits = regions, limits
        self.place = {("invariant", inv.name): k for k, inv in enumerate(self.spec.invariants)}
        self.place.update({("test", t.name): len(self.spec.invariants) + k for k, t in enumerate(self.spec.tests)})
        self.matched: set[int] = set()        # waivers proved to accept a violation
        self.unsure: dict[int, str] = {}      # waivers z3 could not decide for some item, and why
        self.done: dict[tuple, ItemWaiver] = {}   # an item two clauses name, with the same waivers

    def item(self, r: Result, waivers: tuple[Waiver, ...]) -> ItemWaiver:
        key = (r.kind, r.name, tuple(id(w) for w in waivers))
        if key not in self.done:
            self.done[key] = self._item(r, waivers)
        return self.done[key]

    def _item(self, r: Result, waivers: tuple[Waiver, ...]) -> ItemWaiver:
        k = self.place[(r.kind, r.name)]
        if k < len(self.spec.invariants) and self.spec.invariants[k].exists is not None:
            return ItemWaiver(r, (), None, NOT_FLOWS)
        if not waivers:
            return ItemWaiver(r, ())
        accepted = {id(w): self.accepted(w) for w in waivers}
        rest = check_property(self.model, self.spec, k, self.limits,
                              within=typed.Not(typed.Any_(tuple(accepted.values()))))
        meeting = []
        for w in waivers:
            seen = check_property(self.model, self.spec, k, self.limits, meeting=accepted[id(w)])
            if seen.status in (VIOLATED, FAILED):
                meeting.append(w)
                self.matched.add(id(w))
            elif seen.status == UNKNOWN:
                self.unknown((w,), f"{r.kind} {r.name}: {seen.reason}")
        return ItemWaiver(r, tuple(meeting), rest)

    def unknown(self, waivers: tuple[Waiver, ...], why: str) -> None:
        for w in waivers:
            self.unsure.setdefault(id(w), why)

    def accepted(self, w: Waiver) -> typed.Cond:
        """The flows a waiver accepts: decided by its rule, and (or) in its region."""
        parts = []
        if w.rule is not None:
            rule = self.model.table.schema.member_index("rule")[w.rule]
            parts.append(typed.Atom("rule", IntervalSet.point(rule)))
        if w.region_test is not None:
            parts.append(self.regions[w.region_test])
        return parts[0] if len(parts) == 1 else typed.All(tuple(parts))


def exit_code(audit: Audit) -> int:
    """1 when a clause or an item no clause names is violated, or a waiver expired or matches no
    violation; else 3 when something is unknown (a waiver not known to match a violation too);
    else 0. Waived clauses do not fail the run."""
    rv = audit.waivers
    verdicts = {c.verdict for c in audit.clauses} | {r.status for r in audit.uncited}
    if verdicts & {VIOLATED, FAILED} or rv.expired or rv.unmatched:
        return 1
    validated = audit.report.validation is None or audit.report.validation.status == "proved"
    return 3 if UNKNOWN in verdicts or not validated or rv.unsure else 0
