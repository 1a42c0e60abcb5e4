"""Equal treatment (language.md, section 10): `when C require same PARTS across FIELDS`.

Two flows x and y violate it iff both satisfy C, agree on every field outside FIELDS (the
*shared* fields), and the rules deciding them give different PARTS. Every such pair has x
decided by some rule i in a box a of C (under i's outcome, as for any invariant), and y by
some rule j in a box b, with i and j giving different parts. So the question is asked per
pair of such *candidates* (i, box_i ∩ a) and (j, box_j ∩ b), and only for pairs whose
projections on the shared fields meet (an index over those projections finds them) and
whose earlier rule's values of FIELDS do not hold the later candidate's (if they did, the
later flow would lie in the earlier rule and not be decided by the later one; most rules
test no field of FIELDS, so few rules are partners at all). The pair's flows are then
A = box_i ∩ a and B = box_j ∩ b, each cut to the shared values both allow. A pair is

1. skipped when an earlier rule than i holds all of A, or an earlier rule than j all of B
   (box containment: exact);
2. a violation when a realistic x of A and the realistic y with x's shared values in B are
   decided by i and j (the index tests both exactly), with no solver call;
3. else settled by exact subtraction of the earlier rules from A and from B, when that
   takes little work (SUBTRACTIONS): the pair boxes below, or none;
4. otherwise decided by z3 over two copies of the flow: one variable per shared field and
   two per field of FIELDS, x in A and in no earlier rule than i, y in B and in no earlier
   rule than j. `UNSAT` means no such pair; `UNKNOWN` makes the result unknown.

The complete set of violating pairs is, per violating candidate pair, A minus the rules
before i and B minus the rules before j (exact disjoint boxes): every two pieces whose shared
values meet give the pair box (shared values, x's FIELDS, y's FIELDS), all of whose pairs
violate. Capped at REGION_BOX_CAP pair boxes, with `region_complete: false`.

Under an engine profile the table matches on `dpi.app`: varying `app` varies it too, and each
flow of a pair meets the profile's relation by itself (it is part of C), so each gets a label
its profile allows.
"""
from __future__ import annotations

import bisect
import dataclasses

from dpipolicy.compiler.boxes import Box, contains, hull, intersect, subtract_all
from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import ENGINE_VIEWS, Field

from . import encode
from .index import BoxIndex
from .properties import REGION_BOX_CAP, InternalError, TableModel, candidates
from .results import HOLDS, UNKNOWN, VIOLATED, PairBox, Result
from .solve import Answer, Limits, Scope
from .witness import realistic_point

SECOND = "@2"          # suffix of the second flow's variables for the fields that may differ
SUBTRACTIONS = 2_000   # work allowed for a candidate pair's exact boxes before z3 decides it


# A field of the flow's truth, and the field of the engine's label for it under a profile.
LABELLED = {real: view for view, real in ENGINE_VIEWS.items()}     # app: dpi.app, flow.tethered: dpi.tethered


def varied_fields(model: TableModel, across: tuple[str, ...]) -> tuple[str, ...]:
    """The fields that may differ: `across`, with the engine's view beside what it sees
    (`dpi.app` beside `app`, `dpi.tethered` beside `flow.tethered`) under a profile."""
    labels = tuple(LABELLED[n] for n in across if n in LABELLED and LABELLED[n] in model.fields)
    return across + tuple(label for label in labels if label not in across)


def check_same(model: TableModel, inv: typed.Invariant, limits: Limits, meeting: typed.Cond | None = None) -> Result:
    """Equal treatment of every two flows of `inv.when` that differ only in `inv.same.across`;
    with `meeting`, of those pairs only one flow of which (at least) satisfies `meeting` too."""
    found = _Pairs(model, inv.same, limits).run(inv.when, meeting)
    location = inv.span.location()
    if found.witness is not None:
        first, second = found.witness
        return Result("invariant", inv.name, inv.description, VIOLATED, location,
                      counterexample=model.decision(first), pair=model.decision(second),
                      pair_region=tuple(found.boxes[:REGION_BOX_CAP]), across=found.across,
                      region_complete=found.complete and not found.unknown, queries=found.queries)
    if found.unknown:
        return Result("invariant", inv.name, inv.description, UNKNOWN, location,
                      reason="; ".join(found.unknown[:3]), queries=found.queries)
    return Result("invariant", inv.name, inv.description, HOLDS, location, queries=found.queries)


class _Pairs:
    """The search over candidate pairs, in rule order, for one invariant."""

    def __init__(self, model: TableModel, same: typed.Same, limits: Limits) -> None:
        self.model, self.limits = model, limits
        self.across = varied_fields(model, same.across)
        self.parts = same.parts
        self.schema = model.table.schema
        self.fields = model.fields
        # the second flow's variables: its own copy of each field that may differ
        self.second: dict[str, Field] = dict(self.fields)
        for name in self.across:
            self.second[name] = dataclasses.replace(self.fields[name], name=name + SECOND)
        self.declarations = "\n".join((model.declarations, encode.declarations(
            self.second[name] for name in self.across)))
        self.solved = tuple(self.schema.flow_fields) + tuple(self.second[name] for name in self.across)
        self.scope = Scope()
        self.boxes: list[PairBox] = []
        self.witness: tuple[dict[str, int], dict[str, int]] | None = None
        self.unknown: list[str] = []
        self.complete = True
        self.queries = 0

    def treatment(self, i: int) -> tuple[int, ...]:
        outcome = self.model.outcomes[i]
        return tuple(outcome[p] for p in self.parts)

    def shared(self, box: Box) -> Box:
        return {n: v for n, v in box.items() if n not in self.across}

    def run(self, when: typed.Cond, meeting: typed.Cond | None) -> "_Pairs":
        model = self.model

        def found(cond: typed.Cond) -> list[tuple[int, Box]]:
            return [(i, part) for i, target in candidates(model, cond)
                    for part in model.seen(intersect(model.boxes[i], target))]
        every = found(when)
        if len({self.treatment(i) for i, _ in every}) < 2:
            return self             # one treatment for every flow of `when`
        if meeting is None:
            self._search(every, every)
            return self
        # the pairs with a flow in `meeting`, each once: the earlier flow in it, or else the later
        inside = found(typed.All((when, meeting)))
        if not self._search(inside, every):
            self._search(found(typed.All((when, typed.Not(meeting)))), inside)
        return self

    def _search(self, early: list[tuple[int, Box]], late: list[tuple[int, Box]]) -> bool:
        """The pairs of a flow of an `early` candidate and one of a `late` candidate of a later
        rule (candidates in rule order); True once the region is capped."""
        model = self.model
        if not early or not late:
            return False
        # A flow y of a later candidate whose shared values an earlier rule e allows lies in e's box
        # when e's values of the fields across hold y's, and so is not decided by the later rule.
        # So the earlier flow of a pair comes from a rule whose values across do not hold those
        # of every later candidate (their hull): only those candidates are partners.
        every = hull([self._varied(region) for _, region in late])
        partners = [d for d, (j, region) in enumerate(early)
                    if not contains(self._varied(model.boxes[j]), every) and not self._covered(j, region)]
        if not partners:
            return False
        rules = [early[d][0] for d in partners]
        projections = BoxIndex(self.schema.flow_fields, [self.shared(early[d][1]) for d in partners])
        for i, region in late:
            mine, live = self.treatment(i), None
            varied = self._varied(region)
            for k in projections.overlapping(self.shared(region), bisect.bisect_left(rules, i)):
                j, other = early[partners[k]]
                if self.treatment(j) == mine or contains(self._varied(model.boxes[j]), varied):
                    continue
                live = not self._covered(i, region) if live is None else live
                if not live:
                    break
                if self._pair(j, other, i, region):
                    return True     # capped: enough to show
        return False

    def _covered(self, i: int, region: Box) -> bool:
        """Does one rule before i hold every flow of `region` (exact)?"""
        index = self.model.index
        earlier = index.meeting(region, i)
        return bool(len(earlier)) and bool(index.holding_all(region, earlier).any())

    def _pair(self, i: int, first: Box, j: int, second: Box) -> bool:
        """The pairs of flows of `first` decided by rule i and of `second` decided by rule j
        that share every field outside `across`; True once the region is capped."""
        shared = intersect(self.shared(first), self.shared(second))
        a, b = intersect(first, shared), intersect(second, shared)
        if self._covered(i, a) or self._covered(j, b):
            return False
        model = self.model
        x = realistic_point(self.schema, a)
        y = self._partner(x, b)
        boxes, complete = None, True
        if model.index.first_holding(x, i) is not None or model.index.first_holding(y, j) is not None:
            boxes, complete = self._pair_boxes(i, a, j, b)
            if boxes:
                x = realistic_point(self.schema, dict(boxes[0].shared, **boxes[0].first))
                y = self._partner(x, dict(boxes[0].shared, **boxes[0].second))
            elif complete:
                return False            # the rules before i and j take every such pair
            else:
                found = self._solve(i, a, j, b)
                if found is None:
                    return False
                x, y = found
        return self._record(i, j, x, y, *((boxes, complete) if boxes else self._pair_boxes(i, a, j, b)))

    def _solve(self, i: int, a: Box, j: int, b: Box) -> tuple[dict[str, int], dict[str, int]] | None:
        """z3 over two copies of the flow: x of `a` that rule i decides, y of `b` that rule j
        decides, equal outside `across`; None when there is none (or no answer, noted)."""
        model = self.model
        text = "\n".join((
            self.declarations,
            f"(assert {encode.box(self.fields, a)})",
            f"(assert {encode.box(self.second, b)})",
            f"(assert (not {encode.boxes(self.fields, (model.boxes[k] for k in model.index.overlapping(a, i)))}))",
            f"(assert (not {encode.boxes(self.second, (model.boxes[k] for k in model.index.overlapping(b, j)))}))",
        ))
        answer = self.scope.solve(text, self.solved, self.limits)
        self.queries += 1
        if answer.answer is Answer.UNSAT:
            return None
        if answer.answer is Answer.UNKNOWN:
            self.unknown.append(f"{answer.reason} on the pairs of flows {model.rule_words(i)} and "
                                f"{model.rule_words(j)} decide")
            return None
        x = {f.name: answer.model[f.name] for f in self.schema.flow_fields}
        return x, dict(x, **{n: answer.model[n + SECOND] for n in self.across})

    def _partner(self, x: dict[str, int], region: Box) -> dict[str, int]:
        """The realistic flow of `region` with x's shared values (region's shared values hold them)."""
        pinned = {n: IntervalSet.point(v) for n, v in x.items() if n not in self.across}
        return realistic_point(self.schema, intersect(region, pinned))

    def _pair_boxes(self, i: int, a: Box, j: int, b: Box) -> tuple[list[PairBox], bool]:
        """Every pair of a flow of `a` that rule i decides and one of `b` that rule j decides,
        equal outside `across`, as pair boxes (exact, at most the room left under the cap)."""
        model = self.model
        room = REGION_BOX_CAP - len(self.boxes)
        firsts, complete_a = subtract_all(a, [model.boxes[k] for k in model.index.overlapping(a, i)],
                                          self.fields, room, budget=SUBTRACTIONS)
        seconds, complete_b = subtract_all(b, [model.boxes[k] for k in model.index.overlapping(b, j)],
                                           self.fields, room, budget=SUBTRACTIONS)
        rule_x, rule_y = model.entries[i][1], model.entries[j][1]
        out = []
        for p in firsts:
            for q in seconds:
                shared = intersect(self.shared(p), self.shared(q))
                if shared is not None:
                    out.append(PairBox(shared, self._varied(p), self._varied(q), rule_x, rule_y))
        return out, complete_a and complete_b

    def _record(self, i: int, j: int, x: dict[str, int], y: dict[str, int], boxes: list[PairBox],
                complete: bool) -> bool:
        """Check the pair (x, y) on the table and note it with its candidate pair's pair boxes;
        True once the region is capped."""
        model = self.model
        if model.decide(x) != i or model.decide(y) != j:
            raise InternalError(f"a pair of flows for {model.rule_words(i)} and {model.rule_words(j)} is decided "
                                f"by {model.rule_words(model.decide(x))} and {model.rule_words(model.decide(y))}")
        if any(x[n] != y[n] for n in x if n not in self.across):
            raise InternalError("the two flows of a pair differ outside the fields that may")
        if self.witness is None:
            self.witness = (x, y)
        room = REGION_BOX_CAP - len(self.boxes)
        self.boxes += boxes[:room]
        self.complete &= complete and len(boxes) <= room
        if len(self.boxes) >= REGION_BOX_CAP:
            self.complete = False       # enough to show; the list says it was capped
            return True
        return False

    def _varied(self, box: Box) -> Box:
        return {n: v for n, v in box.items() if n in self.across}
