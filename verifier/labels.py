"""A policy as a DPI engine with a given profile runs it (language.md, sections 3 and 8).

Rules see what the engine says, the spec speaks of what is true. So under a profile the
table's `app` becomes the field `dpi.app` (the engine's label) and, when the profile lists
mistakes in detecting tethering, its `flow.tethered` becomes `dpi.tethered` (the engine's
detection); the spec keeps `app` and `flow.tethered` (and may name `dpi.app`, `dpi.tethered`),
and every invariant and test is restricted to the flows the profile allows: the (application,
label) pairs of its label entries, as boxes over app, dpi.app, proto, dst.port, tls, and the
(truth, detection) pairs of its tethering entries, over flow.tethered, dpi.tethered and the
same traffic fields.

A real application may get every label whose entry's `when` holds for the flow; where no
entry holds (and for an application the profile does not list) it is labelled as itself.
Tethering is detected as it is, except on the flows of a `missed` (a tethered flow taken for
the phone's own) or `flagged` (the reverse) entry, where the detection may be either.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping

from dpipolicy.compiler.boxes import Box, merge, normalized, subtract_all
from dpipolicy.compiler.retarget import joint_schema, retarget
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.profiles import Profile
from dpipolicy.dsl.schema import (DETECTED_FIELDS, ENGINE_VIEWS, LABEL, LABEL_FIELDS, TETHERED, Schema, build_schema,
                                  optional_of, parts_of)
from dpipolicy.dsl.typed import Action, All, Any_, Atom, Cond, Not, Origin, Policy
from dpipolicy.dsl.waivers import REGION_PREFIX

from .properties import InternalError


def labelled_schema(schema: Schema) -> Schema:
    """The schema with `dpi.app` (the engine's label) next to `app` (the real application)."""
    return _with_views(schema, {"app": (LABEL,)})


def _with_views(schema: Schema, views: Mapping[str, tuple[str, ...]]) -> Schema:
    """Fields for the engine's view of a real field (copies of it, renamed), each inserted right
    after the real field; one the schema has already is kept."""
    fields = list(schema.flow_fields)
    for real, names in views.items():
        at = [f.name for f in fields].index(real) + 1
        fields[at:at] = [dataclasses.replace(schema.field(real), name=n) for n in names if schema.field(n) is None]
    return dataclasses.replace(schema, flow_fields=tuple(fields))


def _relabelled(table: RuleTable, views: Mapping[str, str], schema: Schema,
                before: tuple[MatchRule, ...] = ()) -> RuleTable:
    """The table on `schema` with its rules' real fields (`app`: the engine's label) renamed to
    their view (`views`: real field -> view field), after the rules `before`, each rule renumbered."""
    rules = tuple(dataclasses.replace(r, matches=tuple((views.get(n, n), v) for n, v in r.matches))
                  for r in table.rules)
    numbered = tuple(dataclasses.replace(r, index=i) for i, r in enumerate(before + rules))
    named = tuple((n, views.get(f, f), v) for n, f, v in table.named_sets)
    return dataclasses.replace(table, schema=schema, rules=numbered, named_sets=named)


def relation(profile: Profile, schema: Schema, label: str = LABEL) -> list[Box]:
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
            boxes.append(normalized({"app": real, label: IntervalSet.point(index[entry.label]), **condition}, fields))
        boxes += [dict(piece, **{label: real}) for piece in _minus({"app": real}, conditions, fields)]
    return merge(boxes, fields)


def tethering_relation(profile: Profile, schema: Schema, detected: str = DETECTED_FIELDS[0]) -> list[Box]:
    """The (truth, detection) pairs of tethering the profile allows, with the flows each needs:
    the detection is right on every flow, and wrong on the flows of each of its mistakes."""
    fields = {f.name: f for f in schema.flow_fields}
    boxes = [{TETHERED: IntervalSet.point(t), detected: IntervalSet.point(t)} for t in (0, 1)]
    boxes += [normalized({TETHERED: IntervalSet.point(e.truth), detected: IntervalSet.point(1 - e.truth),
                          **e.condition()}, fields) for e in profile.tethering]
    return merge(boxes, fields)


@dataclass(frozen=True)
class _View:
    """What the engine says about a real field: rules read it, specs name it `names[0]`; in a
    diff of two engines each may have its own field (`names[1]`, `names[2]`)."""
    real: str
    names: tuple[str, str, str]
    uncertain: Callable[[Profile], bool]            # may the engine's view differ from the truth?
    relation: Callable[[Profile, Schema, str], list[Box]]
    complement: Callable[[list[Box], Mapping], list[Box]]
    guard: str                     # in a diff of two engines, the rule taking what an engine never says


def _listed(profile: Profile, app: str) -> bool:
    return any(name == app for name, _ in profile.labels)


def _as_cond(boxes: list[Box]) -> Cond:
    return Any_(tuple(All(tuple(Atom(n, v) for n, v in box.items())) for box in boxes))


def _renamed(cond: Cond, names: Mapping[str, str]) -> Cond:
    match cond:
        case Atom(field, values) if field in names:
            return Atom(names[field], values)
        case Not(operand):
            return Not(_renamed(operand, names))
        case All(operands):
            return All(tuple(_renamed(c, names) for c in operands))
        case Any_(operands):
            return Any_(tuple(_renamed(c, names) for c in operands))
    return cond


def _spec_renamed(spec: Policy, names: Mapping[str, str], allowed: Cond | None = None,
                  schema: Schema | None = None) -> Policy:
    """The spec with fields renamed, each invariant's `when` and test's `given` conjoined with
    `allowed` (when given), on `schema` (when given). A waiver's region (dsl/waivers.py) is only
    renamed: it narrows items already restricted, and its negation, restricted, would expand the
    profile's whole relation into boxes."""
    def renamed(c: Cond) -> Cond:
        return _renamed(c, names) if names else c

    def restricted(c: Cond) -> Cond:
        return All((allowed, renamed(c))) if allowed is not None else renamed(c)
    invariants = tuple(dataclasses.replace(i, when=restricted(i.when),
                                           require=renamed(i.require) if i.require else None,
                                           exists=renamed(i.exists) if i.exists else None)
                       for i in spec.invariants)
    tests = tuple(dataclasses.replace(t, given=renamed(t.given) if t.name.startswith(REGION_PREFIX) else
                                      restricted(t.given)) for t in spec.tests)
    return dataclasses.replace(spec, invariants=invariants, tests=tests, schema=schema or spec.schema)


def without_profile(spec: Policy) -> Policy:
    """The exact engine: the label is the application and the detection of tethering the truth,
    so `dpi.app` in the spec means `app`, and `dpi.tethered` means `flow.tethered`."""
    return _spec_renamed(spec, ENGINE_VIEWS)


def under_profile(table: RuleTable, spec: Policy, profile: Profile) -> tuple[RuleTable, Policy]:
    """The table matching on the engine's view and the spec restricted to the flows the profile
    allows (check `unobservable_rules` first: a rule on a field the engine cannot see means
    nothing here). What the profile is exact on keeps one field for the view and the truth."""
    views = [v for v in _VIEWS if v.uncertain(profile)]
    schema = _with_views(table.schema, {v.real: v.names[:1] for v in views})
    conditions = tuple(_as_cond(v.relation(profile, schema, v.names[0])) for v in views)
    allowed = conditions[0] if len(conditions) == 1 else All(conditions)
    relabelled = _relabelled(table, {v.real: v.names[0] for v in views}, schema)
    exact = {v.names[0]: v.real for v in _VIEWS if v not in views}
    return relabelled, _spec_renamed(spec, exact, allowed, schema)


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
NO_SUCH_DETECTION = "(detection of tethering the engine never gives)"


def under_two_profiles(old_table: RuleTable, new_table: RuleTable, old: Profile,
                       new: Profile) -> tuple[RuleTable, RuleTable]:
    """Two versions, each run by its own engine profile, as two tables over the same flows.

    A flow carries the real application and the label each engine gives it (one label when
    both run the same profile), and, when a profile lists mistakes in detecting tethering,
    each engine's detection likewise. Both tables start with the same rules taking every flow
    with a label or detection its engine never gives; the diff reports only differing
    outcomes, so it speaks of flows the engines can produce only.
    """
    for table, profile in ((old_table, old), (new_table, new)):
        unobservable_rules(table, profile)
    base = joint_schema(old_table.schema, new_table.schema)
    # the label always (each engine's, even an exact one's); the detection of tethering when it may be wrong
    views = [v for v in _VIEWS if v.real == "app" or v.uncertain(old) or v.uncertain(new)]
    rules = base.field("rule").members[:-1] + tuple(v.guard for v in views)
    schema = build_schema(base.catalogue, base.declared_enums(), rules, base.field("target").members[1:],
                          parts=parts_of(base), optional=optional_of(base))
    same = old.source == new.source
    sides = {v.real: (v.names[0], v.names[0]) if same else v.names[1:] for v in views}
    schema = _with_views(schema, {real: tuple(dict.fromkeys(names)) for real, names in sides.items()})
    one = _with_views(base, {v.real: v.names[:1] for v in views})
    fields = {f.name: f for f in one.flow_fields}
    guard = tuple(MatchRule(0, tuple(_renamed_box(box, v.names[0], name).items()), Action("block"),
                            Origin(v.guard, None))
                  for v in views for name, profile in dict(zip(sides[v.real], (old, new))).items()
                  for box in v.complement(v.relation(profile, one, v.names[0]), fields))
    return tuple(_relabelled(retarget(table, base), {real: names[k] for real, names in sides.items()}, schema, guard)
                 for k, table in enumerate((old_table, new_table)))


def _renamed_box(box: Box, old: str, new: str) -> Box:
    return {new if n == old else n: v for n, v in box.items()}


def _label_complement(boxes: list[Box], fields) -> list[Box]:
    """The flows outside the relation, per real application (each application's part is small)."""
    out: list[Box] = []
    for a in range(fields["app"].hi + 1):
        mine = [b for b in boxes if a in b.get("app", fields["app"].domain)]
        out += _minus({"app": IntervalSet.point(a)}, mine, fields)
    return merge(out, fields)


def _tethering_complement(boxes: list[Box], fields) -> list[Box]:
    """The flows outside the relation: a few boxes of wrong detections, less the mistakes."""
    return merge(_minus({}, boxes, fields), fields)


_VIEWS = (_View("app", LABEL_FIELDS, lambda p: bool(p.labels), relation, _label_complement, NO_SUCH_FLOW),
          _View(TETHERED, DETECTED_FIELDS, lambda p: bool(p.tethering), tethering_relation, _tethering_complement,
                NO_SUCH_DETECTION))


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
