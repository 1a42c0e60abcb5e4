"""Waivers applied to an audit (dsl/waivers.py reads them). A violated item of a clause is waived
only when every flow that violates it is accepted by unexpired waivers naming the clause or the
item: decided by the rule a waiver names, and inside its region, proved by box algebra on the
item's complete list of violating boxes. Partial coverage stays a violation and keeps the part
not waived. An expired waiver does not apply; it and a waiver that accepts no violating flow
are findings, and fail the run (exit 1)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

from dpipolicy.compiler.boxes import Box, intersect, subtract_all
from dpipolicy.compiler.normalize import to_boxes
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from dpipolicy.dsl.typed import Policy
from dpipolicy.dsl.waivers import REGION_PREFIX, Waiver, Waivers

from .audit import Audit, ClauseVerdict
from .results import FAILED, UNKNOWN, VIOLATED, Report, Result

WAIVED = "waived"
_CAP = 64                              # boxes of an item's part not waived, at most


@dataclass(frozen=True)
class ItemWaiver:
    """How the waivers that apply meet one violated item."""
    result: Result
    waivers: tuple[Waiver, ...]        # those that accept some of its violating flows
    rest: tuple[tuple[Box, str], ...]  # the violating boxes (with their rule) no waiver accepts
    why_not: str | None = None         # why the item cannot be waived at all

    @property
    def waived(self) -> bool:
        return self.why_not is None and not self.rest


@dataclass(frozen=True)
class Review:
    """The waivers of an audit: per clause, its violated items as waived or not; the findings."""
    where: str
    today: datetime.date
    items: dict[str, tuple[ItemWaiver, ...]]   # clause id -> its violated items
    expired: tuple[Waiver, ...]
    unmatched: tuple[Waiver, ...]


def split_regions(spec: Policy) -> tuple[Policy, dict[str, object]]:
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


def review(audit: Audit, waivers: Waivers, regions: dict[str, object], fields, today: datetime.date) -> Audit:
    """The audit with its waivers applied: a clause whose violated items are all waived (and none
    unknown) is `waived`."""
    boxes = {name: to_boxes(cond, fields) for name, cond in regions.items()}
    live = [w for w in waivers.waivers if w.expires >= today]
    used: set[int] = set()
    items: dict[str, tuple[ItemWaiver, ...]] = {}
    verdicts = []
    for c in audit.clauses:
        bad = [r for r in c.items if r.status in (VIOLATED, FAILED)]
        mine = [w for w in live if (w.kind, w.name) == ("clause", c.clause.id)]
        reviewed = tuple(_item(r, mine + [w for w in live if (w.kind, w.name) == (r.kind, r.name)], boxes, fields,
                               used) for r in bad)
        items[c.clause.id] = reviewed
        if bad and all(i.waived for i in reviewed) and not any(r.status == UNKNOWN for r in c.items):
            c = ClauseVerdict(c.clause, WAIVED, c.items, c.reason)
        verdicts.append(c)
    unmatched = tuple(w for w in live if id(w) not in used)
    expired = tuple(w for w in waivers.waivers if w.expires < today)
    return replace(audit, clauses=tuple(verdicts),
                   waivers=Review(waivers.where, today, items, expired, unmatched))


def _item(r: Result, waivers: list[Waiver], boxes: dict[str, list[Box]], fields, used: set[int]) -> ItemWaiver:
    if r.pair is not None:
        return ItemWaiver(r, (), (), "a violated equal-treatment invariant is a pair of flows: it cannot be waived")
    if not r.region or not r.region_complete:
        return ItemWaiver(r, (), (), "its violating flows are not all listed, so no waiver is proved to cover them")
    rest, accepting = [], []
    for box, rule in r.region:
        left = [box]
        for w in waivers:
            if w.rule is not None and w.rule != rule:
                continue
            region = boxes[w.region_test] if w.region_test is not None else None
            if region is not None and not any(intersect(b, g) for b in left for g in region):
                continue
            accepting.append(w)
            used.add(id(w))
            left = [] if region is None else [p for b in left for p in _outside(b, region, fields)]
            if not left:
                break
        rest += [(b, rule) for b in left]
    return ItemWaiver(r, tuple({id(w): w for w in accepting}.values()), tuple(rest))


def _outside(box: Box, region: list[Box], fields) -> list[Box]:
    """The part of `box` outside `region`; the whole box when the difference is too large to
    list, since only a complete difference proves what is covered."""
    parts, complete = subtract_all(box, region, fields, _CAP)
    return parts if complete else [box]


def exit_code(audit: Audit) -> int:
    """1 when a clause or an uncited item is violated, or a waiver expired or matches nothing;
    else 3 when something is unknown; else 0. Waived clauses do not fail the run."""
    rv = audit.waivers
    waived = {(r.kind, r.name) for ii in rv.items.values() for i in ii if i.waived for r in (i.result,)}
    failing = [r for r in audit.report.results if r.status in (VIOLATED, FAILED) and (r.kind, r.name) not in waived]
    if failing or rv.expired or rv.unmatched:
        return 1
    rest = Report(audit.report.policy_name, [r for r in audit.report.results if (r.kind, r.name) not in waived],
                  audit.report.validation)
    return rest.exit_code()
