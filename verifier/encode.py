"""SMT-LIB text for fields, value sets, boxes and conditions (pure functions, no solver).

Terms are emitted as text and parsed by z3 in one call: building them through z3's Python API
costs tens of microseconds per node, which dominates at 10k rules.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping

from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field


def var(field: Field) -> str:
    return "|" + field.name + "|"


def declarations(fields: Iterable[Field]) -> str:
    """Declare one bit-vector per field, bounded to its domain."""
    out = []
    for f in fields:
        out.append(f"(declare-const {var(f)} (_ BitVec {f.bits}))")
        if f.hi < (1 << f.bits) - 1:
            out.append(f"(assert (bvule {var(f)} {_const(f.hi, f.bits)}))")
    return "\n".join(out)


def _const(value: int, bits: int) -> str:
    return f"(_ bv{value} {bits})"


@lru_cache(maxsize=200_000)
def member(field: Field, values: IntervalSet) -> str:
    """`field in values` (cached: the same constraint recurs across many rules)."""
    x, w = var(field), field.bits
    parts = []
    for lo, hi in values.intervals:
        if lo == hi:
            parts.append(f"(= {x} {_const(lo, w)})")
        elif lo == 0 and hi >= field.hi:
            return "true"
        elif lo == 0:
            parts.append(f"(bvule {x} {_const(hi, w)})")
        elif hi >= field.hi:
            parts.append(f"(bvule {_const(lo, w)} {x})")
        else:
            parts.append(f"(and (bvule {_const(lo, w)} {x}) (bvule {x} {_const(hi, w)}))")
    return _or(parts)


def _or(parts: list[str]) -> str:
    if not parts:
        return "false"
    return parts[0] if len(parts) == 1 else "(or " + " ".join(parts) + ")"


def _and(parts: list[str]) -> str:
    if not parts:
        return "true"
    return parts[0] if len(parts) == 1 else "(and " + " ".join(parts) + ")"


def box(fields: Mapping[str, Field], b: Mapping[str, IntervalSet]) -> str:
    return _and([member(fields[name], values) for name, values in b.items()])


def boxes(fields: Mapping[str, Field], bs: Iterable[Mapping[str, IntervalSet]]) -> str:
    return _or([box(fields, b) for b in bs])


def condition(fields: Mapping[str, Field], cond: typed.Cond) -> str:
    """A checked condition, straight from its tree: independent of the compiler's normal form."""
    match cond:
        case typed.Atom(name, values):
            return member(fields[name], values)
        case typed.Not(operand):
            return f"(not {condition(fields, operand)})"
        case typed.All(operands):
            return _and([condition(fields, c) for c in operands])
        case typed.Any_(operands):
            return _or([condition(fields, c) for c in operands])
        case typed.Const(value):
            return "true" if value else "false"
    raise TypeError(cond)
