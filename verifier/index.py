"""An index of rule boxes: which earlier rules overlap a region, which rules hold a point.

Both questions are answered exactly and vectorised with numpy. Small fields (enums, booleans,
hours, protocols: at most 256 values) are bitmasks. Wide fields (addresses, ports, volumes) are
flattened lists of (rule, interval) pairs, with values split into 62-bit chunks so that 129-bit
addresses compare exactly.
"""
from __future__ import annotations

from itertools import chain
from typing import Mapping, Sequence

import numpy as np

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field

_SMALL = 256
_WORDS = _SMALL // 64
_CHUNK = 62
_CHUNK_MASK = (1 << _CHUNK) - 1
_MAX_REGION_INTERVALS = 64     # above this a region's field is tested by its hull, then exactly


def _mask_words(values: IntervalSet) -> np.ndarray:
    mask = 0
    for lo, hi in values.intervals:
        mask |= ((1 << (hi - lo + 1)) - 1) << lo
    return np.array([(mask >> (64 * w)) & ((1 << 64) - 1) for w in range(_WORDS)], dtype=np.uint64)


def _used_words(values: IntervalSet) -> tuple[np.ndarray, np.ndarray]:
    """A small field's value set as its non-zero words and their places among the four: most
    sets lie in one word, and a query over all rules reads only the words it needs."""
    words = _mask_words(values)
    used = np.flatnonzero(words)
    return words[used], used


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """starts[0], starts[0]+1, ... (lengths[0] of them), then the same from starts[1], ...: the
    positions of many short runs, with no loop in Python."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)


class _WideField:
    """All intervals of one wide field across the rules, as chunked arrays."""

    def __init__(self, field: Field, per_rule: list[IntervalSet | None]):
        self.chunks = -(-field.bits // _CHUNK)
        whole = ((0, field.hi),)
        spans = [whole if values is None else values.intervals for values in per_rule]
        self.owner = np.repeat(np.arange(len(spans)), [len(s) for s in spans])
        pairs = list(chain.from_iterable(spans))
        self.lo = self._split([lo for lo, _ in pairs])
        self.hi = self._split([hi for _, hi in pairs])
        self.n = len(per_rule)
        # rule i's intervals are first[i]:last[i] (owners are in rule order)
        self.first = np.searchsorted(self.owner, np.arange(self.n))
        self.last = np.searchsorted(self.owner, np.arange(self.n), side="right")

    def _split(self, values: list[int]) -> list[np.ndarray]:
        if self.chunks == 1:
            return [np.array(values, dtype=np.int64)]      # ports, volumes: one chunk as they are
        return [np.array([(v >> (_CHUNK * (self.chunks - 1 - t))) & _CHUNK_MASK for v in values], dtype=np.int64)
                for t in range(self.chunks)]

    def _parts(self, v: int) -> list[int]:
        return [(v >> (_CHUNK * (self.chunks - 1 - t))) & _CHUNK_MASK for t in range(self.chunks)]

    @staticmethod
    def _le(a: list, b: list) -> np.ndarray:
        """Lexicographic a <= b over chunk lists (arrays or scalars)."""
        result = a[-1] <= b[-1]
        for t in range(len(a) - 2, -1, -1):
            result = (a[t] < b[t]) | ((a[t] == b[t]) & result)
        return result

    def rules_meeting(self, values: IntervalSet) -> np.ndarray:
        """Per rule: does the rule's set of this field share a value with `values`?"""
        intervals = values.intervals
        if len(intervals) > _MAX_REGION_INTERVALS:
            intervals = (values.hull(),)    # over-approximation; callers confirm exactly
        hit = np.zeros(len(self.owner), dtype=bool)
        for lo, hi in intervals:
            hit |= self._le(self.lo, self._parts(hi)) & self._le(self._parts(lo), self.hi)
        out = np.zeros(self.n, dtype=bool)
        out[self.owner[hit]] = True
        return out

    def holding_all(self, values: IntervalSet, rules: np.ndarray) -> np.ndarray:
        """Per rule of `rules`: does its set of this field hold all of `values`? A rule's
        intervals are apart, so each interval of `values` lies in one of them or in none."""
        first, lengths = self.first[rules], self.last[rules] - self.first[rules]
        at = ranges(first, lengths)
        which = np.repeat(np.arange(len(rules)), lengths)
        lo, hi = [chunk[at] for chunk in self.lo], [chunk[at] for chunk in self.hi]
        count = np.zeros(len(rules), dtype=np.int64)
        for a, b in values.intervals:
            hit = self._le(lo, self._parts(a)) & self._le(self._parts(b), hi)
            count += np.bincount(which[hit], minlength=len(rules))
        return count == len(values.intervals)

    def rules_holding(self, v: int, before: int) -> np.ndarray:
        """Per rule j < before: does its set of this field hold v? Only those rules' intervals
        are read (owners are in rule order)."""
        end = int(self.first[before]) if before < self.n else len(self.owner)
        parts = self._parts(v)
        hit = self._le([c[:end] for c in self.lo], parts) & self._le(parts, [c[:end] for c in self.hi])
        out = np.zeros(before, dtype=bool)
        out[self.owner[:end][hit]] = True
        return out


class BoxIndex:
    def __init__(self, fields: Sequence[Field], boxes: Sequence[Mapping[str, IntervalSet]]):
        self.fields = {f.name: f for f in fields}
        self.boxes = list(boxes)
        n = len(self.boxes)
        # Each field's sets, read from the boxes once: a box names a few fields of the thirty.
        small = {f.name: {} for f in fields if f.hi < _SMALL}     # set -> the rules with it (sets repeat: tcp, a plan)
        wide = {f.name: [None] * n for f in fields if f.hi >= _SMALL}
        for i, b in enumerate(self.boxes):
            for name, values in b.items():
                if name in small:
                    small[name].setdefault(values, []).append(i)
                elif name in wide:
                    wide[name][i] = values
        self.bits: dict[str, np.ndarray] = {}
        for name, rules_by_set in small.items():
            words = self.bits[name] = np.full((n, _WORDS), np.uint64((1 << 64) - 1), dtype=np.uint64)
            for values, rules in rules_by_set.items():
                words[rules] = _mask_words(values)
        self.wide = {name: _WideField(self.fields[name], per_rule) for name, per_rule in wide.items()}
        self._open: dict[str, np.ndarray] = {}     # per field, made when first asked: see holding_all

    def overlapping(self, region: Mapping[str, IntervalSet], before: int | None = None) -> list[int]:
        """Indices j (< before, if given) whose box shares at least one point with `region` (exact)."""
        return self.meeting(region, before).tolist()

    def meeting(self, region: Mapping[str, IntervalSet], before: int | None = None) -> np.ndarray:
        """`overlapping`, as an array."""
        if before == 0:
            return np.zeros(0, dtype=np.int64)
        mask = np.ones(len(self.boxes), dtype=bool)
        approximate = False
        for name, values in region.items():
            if name in self.bits:
                wanted, used = _used_words(values)
                mask &= (self.bits[name][:, used] & wanted).any(axis=1)
            else:
                mask &= self.wide[name].rules_meeting(values)
                approximate |= len(values.intervals) > _MAX_REGION_INTERVALS
        found = np.flatnonzero(mask[:before])
        if approximate:
            found = found[[_meets(self.boxes[j], region) for j in found.tolist()]]
        return found

    def holding_all(self, region: Mapping[str, IntervalSet], rules: np.ndarray) -> np.ndarray:
        """Per rule of `rules`: does its box hold every point of `region` (exact)?"""
        out = np.ones(len(rules), dtype=bool)
        for name in self.fields:
            values = region.get(name)
            if values is None:      # the region spans the field: the rule must too
                if name not in self._open:
                    self._open[name] = self._holding_all_of(name, self.fields[name].domain, np.arange(len(self.boxes)))
                out &= self._open[name][rules]
            else:
                out &= self._holding_all_of(name, values, rules)
        return out

    def _holding_all_of(self, name: str, values: IntervalSet, rules: np.ndarray) -> np.ndarray:
        if name in self.bits:
            wanted, used = _used_words(values)
            return ((self.bits[name][np.ix_(rules, used)] & wanted) == wanted).all(axis=1)
        return self.wide[name].holding_all(values, rules)

    def first_holding(self, flow: Mapping[str, int], before: int) -> int | None:
        """The first rule j < before whose box holds the point, or None (exact)."""
        if before == 0:
            return None
        before = min(before, len(self.boxes))     # only the rules before it are read
        mask = np.ones(before, dtype=bool)
        for name, bits in self.bits.items():
            v = flow[name]
            mask &= ((bits[:before, v // 64] >> np.uint64(v % 64)) & np.uint64(1)).astype(bool)
        for name, wide in self.wide.items():
            mask &= wide.rules_holding(flow[name], before)
        hits = np.flatnonzero(mask)
        return int(hits[0]) if len(hits) else None


def _meets(box: Mapping[str, IntervalSet], region: Mapping[str, IntervalSet]) -> bool:
    for name, values in box.items():
        other = region.get(name)
        if other is not None and not values.overlaps(other):
            return False
    return True
