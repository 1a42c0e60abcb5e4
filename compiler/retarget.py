"""Moving rule tables onto a common schema, so two versions of a policy can be compared.

Two versions may declare different plans, add-ons, zones, APNs, charges or priorities; enum
values are member indices, so a table is rewritten onto a joint schema whose members are the
union (old order first). The fields of declared names and patterns (`tls.sni`, `iface.in`,
`iface.out`) take the union of both versions' patterns: a value of the joint schema is a
pattern (or a special value: none, other), and the table's value for it is the most specific
of the table's own patterns it falls under, so a table's value set becomes the joint values
that map into it. A field only one version has (ct.state, ...) is free in the other.
"""
from __future__ import annotations

import dataclasses

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of, union
from dpipolicy.dsl.schema import DECLARABLE, PATTERN_FIELDS, Field, Schema, build_schema, optional_of, parts_of

from .table import RuleTable


def _union(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if a is None and b is None:
        return None
    return tuple(dict.fromkeys((a or ()) + (b or ())))


def joint_schema(a: Schema, b: Schema) -> Schema:
    enums = {enum: _union(a.declared(enum), b.declared(enum)) for enum in DECLARABLE}
    rules = _union(a.field("rule").members[:-1], b.field("rule").members[:-1])
    targets = _union(a.field("target").members[1:], b.field("target").members[1:])
    parts = {part: _union(parts_of(a).get(part), parts_of(b).get(part)) for part in parts_of(a) | parts_of(b)}
    return build_schema(a.catalogue, {enum: m for enum, m in enums.items() if m is not None}, rules, targets,
                        parts=parts, optional=union(optional_of(a), optional_of(b)))


def pattern_values(own: Field, joint: Field) -> list[list[int]]:
    """For each value of a pattern field `own`, the values of the same field of the joint
    schema whose patterns have it as their most specific pattern in `own`."""
    mine = encoding_of(own)
    out: list[list[int]] = [[] for _ in own.members]
    for value, text in enumerate(joint.members):
        out[value if value < mine.first else mine.encode(text)].append(value)
    return out


def retarget(table: RuleTable, schema: Schema) -> RuleTable:
    """The same table with enum values renumbered for `schema` (which must contain its members)."""
    remaps = {}
    for f in table.schema.flow_fields:
        joint = schema.field(f.name)
        if f.kind == "enum" and joint.members != f.members:
            index = schema.member_index(f.name)
            remaps[f.name] = [[index[m]] for m in f.members]
        if f.name in PATTERN_FIELDS and joint is not None and joint.members != f.members:
            remaps[f.name] = pattern_values(f, joint)
    if not remaps and schema.flow_fields == table.schema.flow_fields:
        return dataclasses.replace(table, schema=schema)

    def moved(name: str, values: IntervalSet) -> IntervalSet:
        mapping = remaps.get(name)
        if mapping is None:
            return values
        return IntervalSet.of((w, w) for lo, hi in values.intervals for v in range(lo, hi + 1) for w in mapping[v])

    rules = tuple(dataclasses.replace(r, matches=tuple((n, moved(n, v)) for n, v in r.matches))
                  for r in table.rules)
    # an imported table's approximated flows move with its rules (verifier/approximated.py)
    approximations = tuple(dataclasses.replace(a, region=tuple({n: moved(n, v) for n, v in box.items()}
                                                               for box in a.region))
                           for a in table.approximations)
    return dataclasses.replace(table, schema=schema, rules=rules, approximations=approximations)
