"""Which results depend on what an imported rule set's table holds only approximately
(docs/import.md, "Approximations in results").

A table read with --approximate carries, per approximation, the flows whose outcome may differ
from the kernel's (compiler/table.py). Every other flow is decided exactly. So a result depends
on an approximation when the flows it speaks of meet that region: an invariant's `when`, a
test's `given`, a flow `explain` is asked about, a rule lint judges, a region `diff` finds.
Conditions are read as boxes over the flow fields (a condition on the outcome too is read as
every flow the outcome could be had by, which is larger, never smaller); one too large to
expand is taken to meet every approximation. Larger than it need be is the documented
conservative side: a result is called approximate when it might not hold of the kernel.

A diff of such tables proves what the tables do; every changed region that meets an
approximation says so, and the whole diff is approximate (a region the tables agree on may be
one the kernels do not).

Such a result is never a plain pass: one that holds or passes on the table is APPROXIMATE,
and so is a violation or failure whose counterexample lies in an approximated region (the
kernel may decide that flow otherwise). What a flow outside every region shows is exact: such
a counterexample is a real violation, such a witness of `exists` a real one, and they stay
violated and holds.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

from dpipolicy.compiler.boxes import intersect, point_in
from dpipolicy.compiler.normalize import ExpansionTooLarge, to_boxes
from dpipolicy.compiler.table import Approximation, RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet

from .diff import Diff
from .results import APPROXIMATE, FAILED, HOLDS, PASSED, VIOLATED, Result

Box = Mapping[str, IntervalSet]


def meeting(table: RuleTable, boxes: Iterable[Box]) -> tuple[Approximation, ...]:
    """The table's approximations whose flows meet any of these boxes."""
    boxes = list(boxes)
    return tuple(a for a in table.approximations
                 if any(intersect(region, box) is not None for region in a.region for box in boxes))


def at_flow(table: RuleTable, flow: Mapping[str, int]) -> tuple[Approximation, ...]:
    """The approximations whose flows hold this one."""
    return tuple(a for a in table.approximations if any(point_in(region, flow) for region in a.region))


def condition_boxes(cond: typed.Cond, table: RuleTable) -> list[Box]:
    """The flows a condition speaks of, as boxes over the flow fields (see the module's text)."""
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields + schema.outcome_fields}
    flow = {f.name for f in schema.flow_fields}
    try:
        boxes = to_boxes(cond, fields)
    except ExpansionTooLarge:
        return [{}]
    return [{n: v for n, v in box.items() if n in flow} for box in boxes]


def spoken_of(spec: typed.Policy) -> dict[tuple[str, str], typed.Cond]:
    """Each invariant's and test's condition on the flows it checks, by (kind, name)."""
    out: dict[tuple[str, str], typed.Cond] = {("invariant", i.name): i.when for i in spec.invariants}
    out.update({("test", t.name): t.given for t in spec.tests})
    return out


def marked(results: list[Result], table: RuleTable, spec: typed.Policy) -> list[Result]:
    """The results, each with the approximations it depends on, and APPROXIMATE where the
    table's answer might not be the kernel's."""
    if not table.approximations:
        return results
    conditions = spoken_of(spec)
    out = []
    for r in results:
        cond = conditions.get((r.kind, r.name))
        met = meeting(table, condition_boxes(cond, table)) if cond is not None else table.approximations
        if not met:
            out.append(r)
            continue
        status = r.status
        shown = [d.flow for d in (r.counterexample, r.pair, r.witness) if d is not None]
        exact_flow = bool(shown) and not any(at_flow(table, flow) for flow in shown)
        if (status in (HOLDS, PASSED) and not (r.witness is not None and exact_flow)) or (
                status in (VIOLATED, FAILED) and not exact_flow):
            status = APPROXIMATE
        out.append(dataclasses.replace(r, status=status, approximations=met,
                                       table_status=r.status if status == APPROXIMATE else None))
    return out


def diff_marked(diff: Diff, old: RuleTable, new: RuleTable) -> Diff:
    """The diff, each changed region with the approximations of either table it meets."""
    if not (old.approximations or new.approximations):
        return diff
    changes = [dataclasses.replace(c, approximations=_once(meeting(old, [c.box]) + meeting(new, [c.box])))
               for c in diff.changes]
    return dataclasses.replace(diff, changes=changes, approximations=_once(old.approximations + new.approximations))


def _once(approximations: tuple[Approximation, ...]) -> tuple[Approximation, ...]:
    """Each approximation once, where both versions have it (the same file diffed with itself)."""
    return tuple({a.text(): a for a in approximations}.values())
