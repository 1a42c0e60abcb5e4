"""Brute-force answers for the property tests: every answer of `check`, recomputed by enumeration.

A condition only mentions finitely many value sets, so for each field the values that matter are
cut into *cells* by the boundaries of those sets (every `lo` and `hi + 1`); two flows whose fields
lie in the same cells get the same answer from every condition. Enumerating one or two values of
every cell, for every field some condition (or some reported region box) mentions, is therefore
an exhaustive check. A field nothing mentions cannot change any answer, so it is fixed at 0.

Conditions are evaluated on the whole grid at once with numpy: an atom `field in S` is computed
once per representative value, then spread over the grid by the representative index.

The semantics used here come from a `Semantics` object: one is built from the checked policy
(`dsl.typed.evaluate` / `decide` / `outcome_values` / `expectation`, vectorised), the property
test builds another, independently, from the tree it rendered into policy text. `verify` checks
that every semantics agrees on the grid and that the report agrees with them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field as dc_field
from typing import Callable, Iterable, Mapping

import numpy as np

from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Schema

GRID_BOTH_ENDS_LIMIT = 60_000     # above this many flows, one value per cell (still exhaustive)


# ----- the grid ------------------------------------------------------------------------------

class Env:
    """Columns of flows: for each field its representative values and, per flow, an index into them.

    A field with one value has index None (the value is broadcast). Outcome fields are added by
    `with_outcome` once the deciding entry of every flow is known.
    """

    def __init__(self, size: int, values: dict[str, list[int]], index: dict[str, np.ndarray | None]):
        self.size, self.values, self.index = size, values, index

    @staticmethod
    def grid(schema: Schema, reps: Mapping[str, list[int]]) -> "Env":
        names = [f.name for f in schema.flow_fields if len(reps.get(f.name, [0])) > 1]
        sizes = [len(reps[n]) for n in names]
        size = math.prod(sizes)
        values = {f.name: list(reps.get(f.name, [0])) for f in schema.flow_fields}
        index: dict[str, np.ndarray | None] = {f.name: None for f in schema.flow_fields}
        if names:
            grid = np.indices(sizes, dtype=np.int32).reshape(len(names), -1)
            for k, name in enumerate(names):
                index[name] = grid[k]
        return Env(size, values, index)

    @staticmethod
    def single(flow: Mapping[str, int]) -> "Env":
        return Env(1, {k: [v] for k, v in flow.items()}, {k: None for k in flow})

    def with_outcome(self, entries: list[dict[str, int]], decided: np.ndarray) -> "Env":
        values, index = dict(self.values), dict(self.index)
        for name in entries[0]:
            values[name] = [e[name] for e in entries]
            index[name] = decided
        return Env(self.size, values, index)

    def mask(self, name: str, pred: Callable[[int], bool]) -> np.ndarray:
        table = np.fromiter((bool(pred(v)) for v in self.values[name]), dtype=bool,
                            count=len(self.values[name]))
        idx = self.index[name]
        return np.full(self.size, table[0]) if idx is None else table[idx]

    def flow(self, k: int, names: Iterable[str]) -> dict[str, int]:
        out = {}
        for name in names:
            idx = self.index[name]
            out[name] = self.values[name][0 if idx is None else int(idx[k])]
        return out


def representatives(hi: int, sets: Iterable[Iterable[tuple[int, int]]], both_ends: bool) -> list[int]:
    """Values of [0, hi] meeting every cell cut by the boundaries of `sets` (and 0 and hi)."""
    cuts = {0}
    for intervals in sets:
        for lo, top in intervals:
            if 0 <= lo <= hi:
                cuts.add(lo)
            if 0 <= top + 1 <= hi:
                cuts.add(top + 1)
    starts = sorted(cuts)
    out: set[int] = set()
    for k, start in enumerate(starts):
        end = starts[k + 1] - 1 if k + 1 < len(starts) else hi
        out.add(start)
        if both_ends:
            out.add(end)
    return sorted(out)


# ----- semantics -----------------------------------------------------------------------------

Mask = Callable[[Env], np.ndarray]


@dataclass
class Item:
    """One invariant or test: `forall` (when/require), `exists` (cond) or `test` (given/expect)."""
    kind: str
    name: str
    when: Mask | None = None
    require: Mask | None = None     # for a test: the expectation on the outcome
    exists: Mask | None = None
    raw: dict[str, typed.Cond] = dc_field(default_factory=dict)    # dsl.typed conditions, when known
    same: typed.Same | None = None  # kind `same`: `when` and `require same PARTS across FIELDS`


@dataclass
class Semantics:
    """What a policy means: rule conditions in order, the outcome of each entry, the spec items."""
    label: str
    rules: list[Mask]
    names: list[str]                          # rule names, then "default"
    outcomes: list[dict[str, int]]            # per entry, the outcome variables
    items: dict[str, Item]
    intervals: dict[str, list[list[tuple[int, int]]]] = dc_field(default_factory=dict)  # field -> value sets

    def decide(self, env: Env) -> np.ndarray:
        decided = np.full(env.size, len(self.rules), dtype=np.int32)
        for i in range(len(self.rules) - 1, -1, -1):
            decided[self.rules[i](env)] = i
        return decided


def typed_mask(cond: typed.Cond) -> Mask:
    match cond:
        case typed.Atom(name, values):
            return lambda env: env.mask(name, values.__contains__)
        case typed.Not(operand):
            inner = typed_mask(operand)
            return lambda env: ~inner(env)
        case typed.All(operands):
            parts = [typed_mask(c) for c in operands]
            return lambda env: np.logical_and.reduce([p(env) for p in parts] + [np.ones(env.size, bool)])
        case typed.Any_(operands):
            parts = [typed_mask(c) for c in operands]
            return lambda env: np.logical_or.reduce([p(env) for p in parts] + [np.zeros(env.size, bool)])
        case typed.Const(value):
            return lambda env: np.full(env.size, value)
    raise TypeError(cond)


def typed_atoms(cond: typed.Cond) -> Iterable[typed.Atom]:
    match cond:
        case typed.Atom():
            yield cond
        case typed.Not(operand):
            yield from typed_atoms(operand)
        case typed.All(operands) | typed.Any_(operands):
            for c in operands:
                yield from typed_atoms(c)


def typed_semantics(policy: typed.Policy) -> Semantics:
    """The checked policy's meaning, as `dsl.typed` defines it (decide, outcome_values, expectation)."""
    schema = policy.schema
    conds = [r.cond for r in policy.rules]
    items: dict[str, Item] = {}
    for inv in policy.invariants:
        if inv.exists is not None:
            items[inv.name] = Item("exists", inv.name, exists=typed_mask(inv.exists), raw={"exists": inv.exists})
            conds.append(inv.exists)
        elif inv.same is not None:
            items[inv.name] = Item("same", inv.name, when=typed_mask(inv.when), raw={"when": inv.when}, same=inv.same)
            conds.append(inv.when)
        else:
            items[inv.name] = Item("forall", inv.name, when=typed_mask(inv.when), require=typed_mask(inv.require),
                                   raw={"when": inv.when, "require": inv.require})
            conds += [inv.when, inv.require]
    for test in policy.tests:
        expect = typed.expectation(schema, test.expect)
        items[test.name] = Item("test", test.name, when=typed_mask(test.given), require=typed_mask(expect),
                                raw={"when": test.given, "require": expect})
        conds += [test.given, expect]
    intervals: dict[str, list] = {}
    for cond in conds:
        for atom in typed_atoms(cond):
            intervals.setdefault(atom.field, []).append(list(atom.values.intervals))
    names = [r.origin.name for r in policy.rules] + ["default"]
    actions = [r.action for r in policy.rules] + [policy.default]
    return Semantics("dsl.typed", [typed_mask(r.cond) for r in policy.rules], names,
                     [typed.outcome_values(schema, a, n) for a, n in zip(actions, names)], items, intervals)


# ----- the check -----------------------------------------------------------------------------

class Disagreement(AssertionError):
    pass


def _fail(text: str, message: str) -> None:
    raise Disagreement(f"{message}\n--- policy and spec ---\n{text}")


def box_mask(env: Env, box: Mapping[str, IntervalSet]) -> np.ndarray:
    out = np.ones(env.size, bool)
    for name, values in box.items():
        out &= env.mask(name, values.__contains__)
    return out


def build_grid(schema: Schema, sems: list[Semantics], report) -> Env:
    """Representatives of every field some semantics or some region box mentions."""
    sets: dict[str, list] = {}
    for sem in sems:
        for name, lists in sem.intervals.items():
            sets.setdefault(name, []).extend(lists)
    for r in report.results:
        boxes = [box for box, _rule in r.region] + [b for p in r.pair_region for b in (p.shared, p.first, p.second)]
        for box in boxes:
            for name, values in box.items():
                sets.setdefault(name, []).append(list(values.intervals))
    flow_fields = {f.name: f for f in schema.flow_fields}
    mentioned = [n for n in sets if n in flow_fields]
    for both in (True, False):
        reps = {n: representatives(flow_fields[n].hi, sets[n], both) for n in mentioned}
        if math.prod(len(v) for v in reps.values()) <= GRID_BOTH_ENDS_LIMIT:
            break
    return Env.grid(schema, reps)


def verify(loaded, report, sems: list[Semantics], text: str, sample: int = 40) -> dict[str, str]:
    """Check the report against brute force under every semantics in `sems` (the first one is
    the reference). Returns each item's brute-force status. Raises Disagreement."""
    schema = loaded.table.schema
    flow_names = [f.name for f in schema.flow_fields]
    policy = loaded.policy
    ref = sems[0]

    # (7) translation validation proved
    if report.validation is None or not report.validation.text().startswith("compiled table proved"):
        _fail(text, f"translation validation not proved: {report.validation}")

    env = build_grid(schema, sems, report)
    decided = ref.decide(env)
    outcome_env = env.with_outcome(ref.outcomes, decided)

    def flow_at(k: int) -> dict[str, int]:
        return env.flow(k, flow_names)

    # every semantics decides and evaluates every condition alike on the grid
    for sem in sems[1:]:
        if sem.names != ref.names or sem.outcomes != ref.outcomes:
            _fail(text, f"{sem.label}: entries {sem.names} {sem.outcomes} != {ref.names} {ref.outcomes}")
        other = sem.decide(env)
        if not np.array_equal(other, decided):
            k = int(np.flatnonzero(other != decided)[0])
            _fail(text, f"{sem.label} decides {flow_at(k)} by {sem.names[other[k]]}, "
                        f"{ref.label} by {ref.names[decided[k]]}")
        if set(sem.items) != set(ref.items):
            _fail(text, f"{sem.label}: items {sorted(sem.items)} != {sorted(ref.items)}")
        for name, item in ref.items.items():
            mine = sem.items[name]
            for part in ("when", "require", "exists"):
                a, b = getattr(item, part), getattr(mine, part)
                if a is None:
                    continue
                x, y = a(outcome_env), b(outcome_env)
                if not np.array_equal(x, y):
                    k = int(np.flatnonzero(x != y)[0])
                    _fail(text, f"`{part}` of {name} differs on {flow_at(k)} "
                                f"(outcome of {ref.names[decided[k]]}): {ref.label} {x[k]}, {sem.label} {y[k]}")

    # the scalar functions of dsl.typed agree with the vectorised reference on a sample of flows
    if policy is not None:
        step = max(1, env.size // sample)
        for k in range(0, env.size, step):
            flow = flow_at(k)
            name, action = typed.decide(policy, flow)
            if name != ref.names[decided[k]]:
                _fail(text, f"typed.decide gives {name} on {flow}, the grid {ref.names[decided[k]]}")
            full = {**flow, **typed.outcome_values(schema, action, name)}
            for item_name, item in ref.items.items():
                for part, cond in item.raw.items():
                    got = typed.evaluate(cond, full)
                    if got != bool(getattr(item, part)(outcome_env)[k]):
                        _fail(text, f"typed.evaluate gives {got} for `{part}` of {item_name} on {full}")

    # (8) the compiled table decides every grid flow as the policy does
    table_decided = np.full(env.size, -1, dtype=np.int64)
    undecided = np.ones(env.size, bool)
    for m in loaded.table.rules:
        hit = undecided & box_mask(env, m.box())
        table_decided[hit] = ref.names.index(m.origin.name)
        undecided &= ~hit
    table_decided[undecided] = len(ref.names) - 1
    if not np.array_equal(table_decided, decided):
        k = int(np.flatnonzero(table_decided != decided)[0])
        _fail(text, f"compiled table decides {flow_at(k)} by {ref.names[table_decided[k]]}, "
                    f"policy by {ref.names[decided[k]]}")

    def scalar(sem: Semantics, mask: Mask, flow: Mapping[str, int]) -> bool:
        """A condition (with outcome variables) on one full flow, decided by `sem`."""
        single = Env.single(flow)
        entry = int(sem.decide(single)[0])
        return bool(mask(single.with_outcome(sem.outcomes, np.array([entry])))[0])

    def check_decision(name: str, decision, what: str) -> None:
        flow = decision.flow
        if set(flow) != set(flow_names):
            _fail(text, f"{name}: {what} has fields {sorted(flow)}, expected {flow_names}")
        for f in schema.flow_fields:
            if not 0 <= flow[f.name] <= f.hi:
                _fail(text, f"{name}: {what} {flow} has {f.name} out of its domain")
        for sem in sems:
            entry = int(sem.decide(Env.single(flow))[0])
            if decision.rule != sem.names[entry]:
                _fail(text, f"{name}: {what} {flow} reported decided by {decision.rule}, "
                            f"{sem.label} says {sem.names[entry]}")
            if typed.outcome_values(schema, decision.action, decision.rule) != sem.outcomes[entry]:
                _fail(text, f"{name}: {what} reports action {decision.action}, {sem.label} says "
                            f"{sem.outcomes[entry]}")
        if policy is not None:
            rule, action = typed.decide(policy, flow)
            if (rule, action) != (decision.rule, decision.action):
                _fail(text, f"{name}: {what} reported ({decision.rule}, {decision.action}), "
                            f"typed.decide gives ({rule}, {action})")

    statuses: dict[str, str] = {}
    by_name = {r.name: r for r in report.results}
    if set(by_name) != set(ref.items) or len(report.results) != len(ref.items):
        _fail(text, f"results {sorted(by_name)} for items {sorted(ref.items)}")
    for name, item in ref.items.items():
        result = by_name[name]
        # (6) never unknown
        if result.status == "unknown":
            _fail(text, f"{name}: unknown ({result.reason})")
        if item.kind == "same":
            statuses[name] = verify_same(env, ref, decided, item.when(outcome_env), item.same, result,
                                         check_decision, text)
            continue
        if item.kind == "exists":
            sat = item.exists(outcome_env)
            expected = "holds" if sat.any() else "violated"
            statuses[name] = expected
            if result.status != expected:                      # (4)
                example = f" e.g. {flow_at(int(np.flatnonzero(sat)[0]))}" if sat.any() else ""
                _fail(text, f"{name}: reported {result.status}, brute force {expected}{example}")
            if expected == "holds":
                if result.witness is None:
                    _fail(text, f"{name}: holds without a witness")
                check_decision(name, result.witness, "witness")
                for sem in sems:
                    if not scalar(sem, sem.items[name].exists, result.witness.flow):
                        _fail(text, f"{name}: witness {result.witness.flow} does not satisfy the condition "
                                    f"({sem.label})")
            continue
        bad = item.when(outcome_env) & ~item.require(outcome_env)
        ok, fail = ("holds", "violated") if item.kind == "forall" else ("passed", "failed")
        expected = fail if bad.any() else ok
        statuses[name] = expected
        if result.status != expected:                          # (1), (5)
            example = f" e.g. {flow_at(int(np.flatnonzero(bad)[0]))}" if bad.any() else ""
            _fail(text, f"{name}: reported {result.status}, brute force {expected}{example}")
        if expected == ok:
            if result.counterexample is not None or result.region:
                _fail(text, f"{name}: {ok} but carries a counterexample or region")
            continue
        # (2) the counterexample really violates, and its deciding rule is right
        cex = result.counterexample
        if cex is None:
            _fail(text, f"{name}: {fail} without a counterexample")
        check_decision(name, cex, "counterexample")
        for sem in sems:
            mine = sem.items[name]
            if not scalar(sem, mine.when, cex.flow) or scalar(sem, mine.require, cex.flow):
                _fail(text, f"{name}: counterexample {cex.flow} does not violate ({sem.label})")
        # (3) the region: every box holds only violations decided by its rule; complete => exact
        if not result.region:
            _fail(text, f"{name}: {fail} with an empty region")
        covered = np.zeros(env.size, bool)
        for box, rule in result.region:
            inside = box_mask(env, box)
            if not inside.any():
                _fail(text, f"{name}: region box {box} holds no flow of the grid")
            if (inside & ~bad).any():
                k = int(np.flatnonzero(inside & ~bad)[0])
                _fail(text, f"{name}: region box {box} ({rule}) holds the non-violating flow {flow_at(k)}")
            wrong = inside & (decided != ref.names.index(rule))
            if wrong.any():
                k = int(np.flatnonzero(wrong)[0])
                _fail(text, f"{name}: region box {box} says {rule}, but {flow_at(k)} is decided by "
                            f"{ref.names[decided[k]]}")
            covered |= inside
        if result.region_complete and not np.array_equal(covered, bad):
            k = int(np.flatnonzero(covered != bad)[0])
            _fail(text, f"{name}: complete region misses the violating flow {flow_at(k)}")
    return statuses


def verify_same(env: Env, ref: Semantics, decided: np.ndarray, when: np.ndarray, same: typed.Same, result,
                check_decision, text: str, meeting: Mask | None = None) -> str:
    """`require same PARTS across FIELDS` by enumeration: flows of the grid with the same values
    outside FIELDS (the same representatives) form a group; the invariant is violated iff some
    group holds two flows of `when` given different PARTS. The pair, and each pair box (every
    pair of it violates; a complete list covers every violating pair), are checked too. With
    `meeting`, only the pairs with a flow in it count (equal.check_same's `meeting`)."""
    name = result.name

    def met(e: Env, entries: np.ndarray) -> np.ndarray:
        return np.ones(e.size, bool) if meeting is None else meeting(e.with_outcome(ref.outcomes, entries))
    counts = met(env, decided)
    treatment = {}
    entry_class = np.array([treatment.setdefault(tuple(o[p] for p in same.parts), len(treatment))
                            for o in ref.outcomes], dtype=np.int64)
    cls = entry_class[decided]
    key = np.zeros(env.size, dtype=np.int64)
    for field_name, idx in env.index.items():
        if idx is not None and field_name not in same.across and field_name in env.values:
            key = key * len(env.values[field_name]) + idx
    groups: dict[int, np.ndarray] = {}
    inside = np.flatnonzero(when)
    order = inside[np.argsort(key[inside], kind="stable")]
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    violating = {}
    for members in np.split(order, bounds):
        differ = cls[members][:, None] != cls[members][None, :]
        if (differ & (counts[members][:, None] | counts[members][None, :])).any():
            violating[int(key[members[0]])] = members
    expected = "violated" if violating else "holds"
    if result.status != expected:
        example = ""
        if violating:
            members = next(iter(violating.values()))
            flows = [env.flow(int(k), env.values) for k in members[:2]]
            example = f" e.g. {flows}"
        _fail(text, f"{name}: reported {result.status}, brute force {expected}{example}")
    if expected == "holds":
        if result.counterexample is not None or result.pair is not None or result.pair_region:
            _fail(text, f"{name}: holds but carries a pair or region")
        return expected
    first, second = result.counterexample, result.pair
    if first is None or second is None:
        _fail(text, f"{name}: violated without a pair of flows")
    check_decision(name, first, "first flow")
    check_decision(name, second, "second flow")
    if any(first.flow[n] != second.flow[n] for n in first.flow if n not in same.across):
        _fail(text, f"{name}: the pair {first.flow} / {second.flow} differs outside {same.across}")
    single = [Env.single(d.flow) for d in (first, second)]
    entries = [int(ref.decide(e)[0]) for e in single]
    if entry_class[entries[0]] == entry_class[entries[1]]:
        _fail(text, f"{name}: the pair's flows get the same {same.parts}")
    if not any(met(e, np.array([entry]))[0] for e, entry in zip(single, entries)):
        _fail(text, f"{name}: neither flow of the pair {first.flow} / {second.flow} meets the condition")
    for e, entry, d in zip(single, entries, (first, second)):
        out = e.with_outcome(ref.outcomes, np.array([entry]))
        if not ref.items[name].when(out)[0]:
            _fail(text, f"{name}: the pair's flow {d.flow} does not satisfy `when`")
    if not result.pair_region and result.region_complete:
        _fail(text, f"{name}: violated with no pair boxes, said complete")
    covered = {k: np.zeros((len(m), len(m)), bool) for k, m in violating.items()}
    for pair in result.pair_region:
        f = box_mask(env, {**pair.shared, **pair.first})
        g = box_mask(env, {**pair.shared, **pair.second})
        common = set(key[f].tolist()) & set(key[g].tolist())
        if not common:
            _fail(text, f"{name}: pair box {pair} holds no pair of the grid")
        x_side = f & np.isin(key, list(common))
        y_side = g & np.isin(key, list(common))
        for side, rule, what in ((x_side, pair.first_rule, "first"), (y_side, pair.second_rule, "second")):
            wrong = side & (~when | (decided != ref.names.index(rule)))
            if wrong.any():
                _fail(text, f"{name}: pair box {pair}: its {what} flow {env.flow(int(np.flatnonzero(wrong)[0]), env.values)} "
                            f"is not a flow of `when` decided by {rule}")
        if entry_class[ref.names.index(pair.first_rule)] == entry_class[ref.names.index(pair.second_rule)]:
            _fail(text, f"{name}: pair box {pair} pairs two rules with the same treatment")
        for k in common:
            members = violating.get(k)
            if members is None:
                _fail(text, f"{name}: pair box {pair} holds a group with no violation")
            both_sides = f[members][:, None] & g[members][None, :]
            if (both_sides & ~(counts[members][:, None] | counts[members][None, :])).any():
                _fail(text, f"{name}: pair box {pair} holds a pair with no flow meeting the condition")
            covered[k] |= both_sides
    if result.region_complete:
        for k, members in violating.items():
            both = covered[k] | covered[k].T
            wanted = (cls[members][:, None] != cls[members][None, :]) & \
                (counts[members][:, None] | counts[members][None, :])
            if (wanted & ~both).any():
                a, b = np.argwhere(wanted & ~both)[0]
                _fail(text, f"{name}: complete pair region misses the pair "
                            f"{env.flow(int(members[a]), env.values)} / {env.flow(int(members[b]), env.values)}")
    return expected

