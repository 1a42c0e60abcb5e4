"""A policy as a DPI engine with a given profile runs it (language.md, section 8).

Rules see the engine's label, the spec speaks of the application really in use. So under a
profile the table's `app` becomes the field `dpi.app`, the spec keeps `app` (and may name
`dpi.app`), and every invariant and test is restricted to the flows the profile allows: the
(application, label) pairs of its entries, as boxes over app, dpi.app, proto, dst.port, tls.

A real application may get every label whose entry's `when` holds for the flow; where no
entry holds (and for an application the profile does not list) it is labelled as itself.
"""
from __future__ import annotations

import dataclasses

from dpipolicy.compiler.boxes import Box, merge, normalized, subtract_all
from dpipolicy.compiler.retarget import joint_schema, retarget
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.profiles import Profile
from dpipolicy.dsl import domains
from dpipolicy.dsl.schema import LABEL, NEW_LABEL, OLD_LABEL, SNI, Schema, build_schema, parts_of
from dpipolicy.dsl.typed import Action, All, Any_, Atom, Cond, Not, Origin, Policy

from .properties import InternalError


def labelled_schema(schema: Schema) -> Schema:
    """The schema with `dpi.app` (the engine's label) next to `app` (the real application)."""
    return schema if schema.field(LABEL) is not None else _with_labels(schema, (LABEL,))


def _with_labels(schema: Schema, labels) -> Schema:
    """Label fields (enums over the applications) inserted right after `app`."""
    fields = list(schema.flow_fields)
    at = [f.name for f in fields].index("app") + 1
    fields[at:at] = [dataclasses.replace(schema.field("app"), name=label) for label in labels]
    return dataclasses.replace(schema, flow_fields=tuple(fields))


def _relabelled(table: RuleTable, label: str, schema: Schema, before: tuple[MatchRule, ...] = ()) -> RuleTable:
    """The table on `schema` with its rules' `app` (the engine's label) renamed `label`, after
    the rules `before`, each rule renumbered."""
    rules = tuple(dataclasses.replace(r, matches=tuple((label if n == "app" else n, v) for n, v in r.matches))
                  for r in table.rules)
    numbered = tuple(dataclasses.replace(r, index=i) for i, r in enumerate(before + rules))
    named = tuple((n, label if f == "app" else f, v) for n, f, v in table.named_sets)
    return dataclasses.replace(table, schema=schema, rules=numbered, named_sets=named)


def relation(profile: Profile, schema: Schema) -> list[Box]:
    """The (application, label) pairs the profile allows, with the flows each needs, as boxes."""
    fields = {f.name: f for f in schema.flow_fields}
    members = schema.field("app").members
    index = schema.member_index("app")
    boxes: list[Box] = []
    for a, name in enumerate(members):
        real = IntervalSet.point(a)
        entries = [e for e in profile.entries(name) if e.label in index] if _listed(profile, name) else []
        conditions = []
        for entry in entries:
            condition = entry.condition()
            conditions.append(condition)
            boxes.append(normalized({"app": real, LABEL: IntervalSet.point(index[entry.label]), **condition}, fields))
        boxes += [dict(piece, **{LABEL: real}) for piece in _minus({"app": real}, conditions, fields)]
    return merge(boxes, fields)


def _listed(profile: Profile, app: str) -> bool:
    return any(name == app for name, _ in profile.labels)


def _as_cond(boxes: list[Box]) -> Cond:
    return Any_(tuple(All(tuple(Atom(n, v) for n, v in box.items())) for box in boxes))


def _renamed(cond: Cond, old: str, new: str) -> Cond:
    match cond:
        case Atom(field, values) if field == old:
            return Atom(new, values)
        case Not(operand):
            return Not(_renamed(operand, old, new))
        case All(operands):
            return All(tuple(_renamed(c, old, new) for c in operands))
        case Any_(operands):
            return Any_(tuple(_renamed(c, old, new) for c in operands))
    return cond


def without_profile(spec: Policy) -> Policy:
    """The exact engine: the label is the application, so `dpi.app` in the spec means `app`."""
    def exact(c: Cond) -> Cond:
        return _renamed(c, LABEL, "app")
    invariants = tuple(dataclasses.replace(i, when=exact(i.when), require=exact(i.require) if i.require else None,
                                           exists=exact(i.exists) if i.exists else None)
                       for i in spec.invariants)
    tests = tuple(dataclasses.replace(t, given=exact(t.given)) for t in spec.tests)
    return dataclasses.replace(spec, invariants=invariants, tests=tests)


def under_profile(table: RuleTable, spec: Policy, profile: Profile) -> tuple[RuleTable, Policy]:
    """The table matching on labels and the spec restricted to the flows the profile allows
    (check `unobservable_rules` first: a rule on a field the engine cannot see means nothing here)."""
    schema = labelled_schema(table.schema)
    allowed = _as_cond(relation(profile, schema))
    relabelled = _relabelled(table, LABEL, schema)
    invariants = tuple(dataclasses.replace(i, when=All((allowed, i.when))) for i in spec.invariants)
    tests = tuple(dataclasses.replace(t, given=All((allowed, t.given))) for t in spec.tests)
    return relabelled, dataclasses.replace(spec, schema=schema, invariants=invariants, tests=tests)


def unobservable_rules(table: RuleTable, profile: Profile) -> None:
    """A rule that matches a field the engine cannot observe would never match as written."""
    problems = []
    seen = set()
    for rule in table.rules:
        for name, _ in rule.matches:
            if name in profile.unobservable and (rule.origin.name, name) not in seen:
                seen.add((rule.origin.name, name))
                problems.append(Diagnostic(
                    "E410", f"rule `{rule.origin.name}` matches `{name}`, which engine profile "
                            f"`{profile.name}` cannot observe",
                    span=rule.origin.span, location_text=rule.origin.location() or None,
                    help=f"the engine never sees `{name}` ({profile.source}); match on what it observes, "
                         "or check with a profile that observes it"))
    if problems:
        raise DiagnosticError(problems)


NO_SUCH_FLOW = "(label the engine never gives)"


def under_two_profiles(old_table: RuleTable, new_table: RuleTable, old: Profile,
                       new: Profile) -> tuple[RuleTable, RuleTable]:
    """Two versions, each run by its own engine profile, as two tables over the same flows.

    A flow carries the real application and the label each engine gives it (one label when
    both run the same profile). Both tables start with the same rules taking every flow with
    a label its engine never gives; the diff reports only differing outcomes, so it speaks of
    flows the engines can produce only.
    """
    for table, profile in ((old_table, old), (new_table, new)):
        unobservable_rules(table, profile)
    base = joint_schema(old_table.schema, new_table.schema)
    rules = base.field("rule").members[:-1] + (NO_SUCH_FLOW,)
    schema = build_schema(base.catalogue, getattr(base.field("subscriber.plan"), "members", None), base.addons,
                          rules, base.field("target").members[1:], parts=parts_of(base),
                          domains=base.field(SNI).members[domains.FIRST_PATTERN:] if base.field(SNI) else None)
    sides = ((LABEL, old), (LABEL, new)) if old.source == new.source else ((OLD_LABEL, old), (NEW_LABEL, new))
    schema = _with_labels(schema, dict(sides))
    labelled = labelled_schema(base)
    labelled_fields = {f.name: f for f in labelled.flow_fields}
    impossible = [_renamed_box(b, LABEL, label) for label, profile in dict(sides).items()
                  for b in _complement(relation(profile, labelled), labelled_fields)]
    guard = tuple(MatchRule(0, tuple(box.items()), Action("block"), Origin(NO_SUCH_FLOW, None)) for box in impossible)
    return tuple(_relabelled(retarget(table, base), label, schema, guard)
                 for table, (label, _) in zip((old_table, new_table), sides))


def _renamed_box(box: Box, old: str, new: str) -> Box:
    return {new if n == old else n: v for n, v in box.items()}


def _complement(boxes: list[Box], fields) -> list[Box]:
    """The flows outside the relation, per real application (each application's part is small)."""
    out: list[Box] = []
    for a in range(fields["app"].hi + 1):
        mine = [b for b in boxes if a in b.get("app", fields["app"].domain)]
        out += _minus({"app": IntervalSet.point(a)}, mine, fields)
    return merge(out, fields)


def _minus(region: Box, others: list[Box], fields) -> list[Box]:
    """region minus others, exactly: one application's label entries are a handful of boxes."""
    pieces, complete = subtract_all(region, others, fields, cap=1 << 16)
    if not complete:
        raise InternalError(f"the label entries of {region} did not reduce to boxes")
    return pieces


def possible_labels(profile: Profile, schema: Schema, pinned: dict[str, int]) -> list[tuple[int, str]]:
    """The labels the engine may give a flow whose application and other known fields are
    `pinned`, each with how it reaches it (an entry's `how`, or `itself`)."""
    app = schema.field("app").members[pinned["app"]]
    index = schema.member_index("app")
    out = []
    for label in profile.possible_labels(app, pinned):
        hows = [e.how for e in profile.entries(app) if e.label == label and e.applies(pinned)] if _listed(profile, app) else []
        out.append((index[label], "/".join(dict.fromkeys(hows)) or "itself"))
    return out
