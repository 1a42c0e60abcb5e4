"""Moving rule tables onto a common schema, so two versions of a policy can be compared.

Two versions may declare different plans, add-ons, zones or APNs; enum values are member
indices, so a table is rewritten onto a joint schema whose members are the union (old order
first).
"""
from __future__ import annotations

import dataclasses

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import DECLARABLE, Schema, build_schema

from .table import RuleTable


def _union(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if a is None and b is None:
        return None
    return tuple(dict.fromkeys((a or ()) + (b or ())))


def joint_schema(a: Schema, b: Schema) -> Schema:
    enums = {enum: _union(a.declared(enum), b.declared(enum)) for enum in DECLARABLE}
    rules = _union(a.field("rule").members[:-1], b.field("rule").members[:-1])
    targets = _union(a.field("target").members[1:], b.field("target").members[1:])
    return build_schema(a.catalogue, {enum: m for enum, m in enums.items() if m is not None}, rules, targets)


def retarget(table: RuleTable, schema: Schema) -> RuleTable:
    """The same table with enum values renumbered for `schema` (which must contain its members)."""
    remaps = {}
    for f in table.schema.flow_fields:
        joint = schema.field(f.name)
        if f.kind == "enum" and joint.members != f.members:
            index = schema.member_index(f.name)
            remaps[f.name] = [index[m] for m in f.members]
    if not remaps and schema.flow_fields == table.schema.flow_fields:
        return dataclasses.replace(table, schema=schema)

    def moved(name: str, values: IntervalSet) -> IntervalSet:
        mapping = remaps.get(name)
        if mapping is None:
            return values
        return IntervalSet.of((mapping[v], mapping[v]) for lo, hi in values.intervals for v in range(lo, hi + 1))

    rules = tuple(dataclasses.replace(r, matches=tuple((n, moved(n, v)) for n, v in r.matches))
                  for r in table.rules)
    return dataclasses.replace(table, schema=schema, rules=rules)
