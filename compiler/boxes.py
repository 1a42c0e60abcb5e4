"""Boxes: one value set per field (a field left out is unconstrained). Exact set algebra on them.

A match rule is a box; so is a region of violating flows. Boxes are plain dicts from field name
to IntervalSet, never holding an empty or a full set.
"""
from __future__ import annotations

from bisect import bisect_left
from itertools import chain
from typing import Mapping

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field

Box = dict[str, IntervalSet]


def intersect(a: Mapping[str, IntervalSet], b: Mapping[str, IntervalSet]) -> Box | None:
    """The common part of two boxes, or None when they are disjoint."""
    out = dict(a)
    for name, values in b.items():
        mine = out.get(name)
        if mine is None:
            out[name] = values
            continue
        both = mine.intersect(values)
        if both.is_empty():
            return None
        out[name] = both
    return out


def disjoint(a: Mapping[str, IntervalSet], b: Mapping[str, IntervalSet]) -> bool:
    """No flow is in both boxes: `intersect(a, b) is None`, without building the common part."""
    for name, values in b.items():
        mine = a.get(name)
        if mine is not None and not mine.overlaps(values):
            return True
    return False


def contains(outer: Mapping[str, IntervalSet], inner: Mapping[str, IntervalSet]) -> bool:
    for name, values in outer.items():
        other = inner.get(name)
        if other is None or not other.issubset(values):
            return False
    return True


def subtract(a: Mapping[str, IntervalSet], b: Mapping[str, IntervalSet],
             fields: Mapping[str, Field]) -> list[Box]:
    """a minus b as disjoint boxes: peel off, field by field, the part of a outside b."""
    if disjoint(a, b):
        return [dict(a)]
    pieces: list[Box] = []
    rest = dict(a)
    for name, values in b.items():
        current = rest.get(name, fields[name].domain)
        outside = current.difference(values)
        if not outside.is_empty():
            piece = dict(rest)
            piece[name] = outside
            pieces.append(piece)
        rest[name] = current.intersect(values)
    return [normalized(p, fields) for p in pieces]


def normalized(box: Mapping[str, IntervalSet], fields: Mapping[str, Field]) -> Box:
    """Drop fields whose set is the whole domain (compared as plain tuples, which is faster)."""
    return {n: v for n, v in box.items() if v.intervals != fields[n].domain.intervals}


def merge(boxes: list[Box], fields: Mapping[str, Field]) -> list[Box]:
    """Fewer boxes for the same union: fuse boxes equal on every field but one, until none are.

    Each round groups the boxes by all fields but one, so a round is linear in the boxes.
    """
    boxes = list(boxes)
    changed = True
    while changed and len(boxes) > 1:
        changed = False
        keyed = [(_items(b), b) for b in boxes]
        for name in sorted({n for b in boxes for n in b}):
            groups: dict[tuple, list[Box]] = {}
            for items, b in keyed:
                groups.setdefault(_without(items, name), []).append(b)
            if len(groups) == len(boxes):
                continue
            changed = True
            boxes = []
            for members in groups.values():
                fused = dict(members[0])
                if any(name not in m for m in members):
                    fused.pop(name, None)
                else:
                    union = members[0][name]
                    for m in members[1:]:
                        union = union.union(m[name])
                    fused[name] = union
                boxes.append(normalized(fused, fields))
            keyed = [(_items(b), b) for b in boxes]
    return boxes


def _items(box: Mapping[str, IntervalSet]) -> tuple:
    """A box as a sorted tuple of (field, intervals): plain tuples, which hash and compare fast."""
    return tuple(sorted((name, values.intervals) for name, values in box.items()))


def _without(items: tuple, name: str) -> tuple:
    """`items` (of _items) less the field `name`."""
    i = bisect_left(items, (name,))
    return items[:i] + items[i + 1:] if i < len(items) and items[i][0] == name else items


def subtract_all(region: Box, others: list[Mapping[str, IntervalSet]], fields: Mapping[str, Field],
                 cap: int, budget: int = 20_000) -> tuple[list[Box], bool]:
    """region minus every box of `others`, as disjoint boxes.

    Depth first, so every box returned is finished (disjoint from all of `others`) even when the
    result is cut short: at `cap` boxes, or after `budget` subtractions. The flag says whether
    the result is complete.
    """
    finished: list[Box] = []
    stack = [(region, 0)]
    work = 0
    while stack:
        box, k = stack.pop()
        while k < len(others) and disjoint(box, others[k]):
            k += 1
        if k == len(others):
            finished.append(box)
            if len(finished) >= cap:
                return merge(finished, fields), not stack
            continue
        work += 1
        if work > budget:
            return merge(finished, fields), False
        stack.extend((piece, k + 1) for piece in subtract(box, others[k], fields))
    return merge(finished, fields), True


def hull(boxes: list[Mapping[str, IntervalSet]]) -> Box:
    """The smallest box holding all of `boxes`: per field, the union of their sets."""
    out: Box = {}
    for name in set(boxes[0]).intersection(*boxes[1:]):
        union = boxes[0][name]
        for b in boxes[1:]:
            union = union.union(b[name])
        out[name] = union
    return out


def hull_within(box: Mapping[str, IntervalSet], others: list[Mapping[str, IntervalSet]]) -> Box:
    """hull([intersect(box, o) for o in others]) for boxes `others` that all meet `box`, with each
    field's union taken once over all of them: a fan-out's box over thousands of rules."""
    out: Box = {}
    for name in dict.fromkeys(chain(box, *others)):     # in a fixed order: a report's fields do not move between runs
        if any(name not in o for o in others):      # some box leaves the field free
            if name in box:
                out[name] = box[name]
            continue
        # rules share their value sets: each is read once (by identity, which needs no hash)
        sets = {id(values): values for values in (o[name] for o in others)}.values()
        union = IntervalSet.of(pair for values in sets for pair in values.intervals)
        out[name] = union.intersect(box[name]) if name in box else union
    return out


def point_in(box: Mapping[str, IntervalSet], flow: Mapping[str, int]) -> bool:
    return all(flow[name] in values for name, values in box.items())
