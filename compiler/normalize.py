"""Conditions to disjunctive normal form over boxes: negation pushed into value-set complements."""
from __future__ import annotations

from typing import Mapping

from dpipolicy.dsl import typed
from dpipolicy.dsl.schema import Field

from .boxes import Box, intersect, merge, normalized

MAX_BOXES = 4096   # documented bound on the match rules one source rule may expand into


class ExpansionTooLarge(Exception):
    def __init__(self, count: int):
        super().__init__(count)
        self.count = count


def to_boxes(cond: typed.Cond, fields: Mapping[str, Field], limit: int = MAX_BOXES) -> list[Box]:
    """The condition as a union of boxes (empty list: unsatisfiable). Raises ExpansionTooLarge."""
    boxes = _dnf(cond, False, fields, limit)
    return merge(boxes, fields) if len(boxes) <= 64 else boxes


def _dnf(cond: typed.Cond, negate: bool, fields: Mapping[str, Field], limit: int) -> list[Box]:
    match cond:
        case typed.Const(value):
            return [{}] if value != negate else []
        case typed.Atom(field, values):
            f = fields[field]
            if negate:
                values = values.complement(0, f.hi)
            return [normalized({field: values}, fields)] if not values.is_empty() else []
        case typed.Not(operand):
            return _dnf(operand, not negate, fields, limit)
        case typed.All(operands) | typed.Any_(operands):
            conjunctive = isinstance(cond, typed.All) != negate
            parts = [_dnf(c, negate, fields, limit) for c in operands]
            if not conjunctive:
                out = [b for part in parts for b in part]
                if len(out) > limit:
                    raise ExpansionTooLarge(len(out))
                return out
            out: list[Box] = [{}]
            for part in parts:
                nxt = []
                for left in out:
                    for right in part:
                        both = intersect(left, right)
                        if both is not None:
                            nxt.append(both)
                if len(nxt) > limit:
                    raise ExpansionTooLarge(len(nxt))
                out = nxt
                if not out:
                    break
            return out
    raise TypeError(cond)
