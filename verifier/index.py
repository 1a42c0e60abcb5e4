"""An index of rule boxes: which earlier rules overlap a region, which rules hold a point,
which of some rules hold all of a region.

Every question is answered exactly. Meeting and holding are and-ed bitsets over the fields
(rulebits.py), made when first asked. Holding all of a region is vectorised with numpy: small
fields (enums, booleans, hours, protocols: at most 256 values) are bitmasks, wide fields
(addresses, ports, volumes) flattened lists of (rule, interval) pairs, with values split into
62-bit chunks so that 129-bit addresses compare exactly.
"""
from __future__ import annotations

from itertools import chain
from typing import Mapping, Sequence

import numpy as np

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field

from .rulebits import SmallFieldBits, WideFieldBits, below, rules_of

_SMALL = 256
_WORDS = _SMALL // 64
_CHUNK = 62
_CHUNK_MASK = (1 << _CHUNK) - 1


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
        self._sets = (small, wide)
        self._field_bits: dict[str, SmallFieldBits | WideFieldBits] | None = None

    def _bits(self) -> dict[str, SmallFieldBits | WideFieldBits]:
        """Each field's bitsets (small fields first: they are cheaper to ask), made when first needed."""
        if self._field_bits is None:
            small, wide = self._sets
            n = len(self.boxes)
            self._field_bits = {name: SmallFieldBits(self.fields[name].hi, rules_by_set, n)
                                for name, rules_by_set in small.items()}
            self._field_bits.update((name, WideFieldBits(per_rule)) for name, per_rule in wide.items())
        return self._field_bits

    def overlapping(self, region: Mapping[str, IntervalSet], before: int | None = None) -> list[int]:
        """Indices j (< before, if given) whose box shares at least one point with `region` (exact)."""
        return self.meeting(region, before).tolist()

    def meeting(self, region: Mapping[str, IntervalSet], before: int | None = None) -> np.ndarray:
        """`overlapping`, as an array."""
        return rules_of(self.meeting_bits(region, before), len(self.boxes))

    def meeting_bits(self, region: Mapping[str, IntervalSet], before: int | None = None) -> int:
        """`overlapping`, as a bitset."""
        fields = self._bits()
        found = below(len(self.boxes) if before is None else min(before, len(self.boxes)))
        for name, values in region.items():
            if not found:
                break
            found &= fields[name].meeting(values)
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

    def first_containing(self, region: Mapping[str, IntervalSet], rules: int) -> int | None:
        """The first of `rules` (a bitset) whose box contains the region: it constrains no field
        the region leaves open and holds all of the region's set on each field (exact). Small
        fields narrow the bitset, wide ones by their first and last values; the few rules left
        are checked on the wide ones."""
        for name, bits in self._bits().items():
            if not rules:
                return None
            values = region.get(name)
            if values is None:
                rules &= bits.open
            elif isinstance(bits, SmallFieldBits):
                rules &= bits.holding_all(values)
            else:
                lo, hi = values.hull()
                rules &= bits.holding(lo) & bits.holding(hi)
        left = rules_of(rules, len(self.boxes))
        held = left[self.holding_all(region, left)]
        return int(held[0]) if len(held) else None

    def apart_twice(self, region: Mapping[str, IntervalSet]) -> int:
        """Rules (a bitset) whose sets leave out part of the region's on two fields at least, as
        far as seen from the small fields' sets and the wide fields' first and last values: not
        all such rules, but only such rules."""
        once = twice = 0
        for name, values in region.items():
            bits = self._bits()[name]
            if isinstance(bits, SmallFieldBits):
                held = bits.holding_all(values)
            else:
                lo, hi = values.hull()
                held = bits.holding(lo) & bits.holding(hi)
            apart = below(len(self.boxes)) & ~held
            twice |= once & apart
            once |= apart
        return twice

    def _holding_all_of(self, name: str, values: IntervalSet, rules: np.ndarray) -> np.ndarray:
        if name in self.bits:
            wanted, used = _used_words(values)
            return ((self.bits[name][np.ix_(rules, used)] & wanted) == wanted).all(axis=1)
        return self.wide[name].holding_all(values, rules)

    def first_holding(self, flow: Mapping[str, int], before: int, start: int = 0) -> int | None:
        """The first rule j, start <= j < before, whose box holds the point, or None (exact)."""
        found = self.holding_bits(flow, before, start)
        return (found & -found).bit_length() - 1 if found else None

    def holding_bits(self, flow: Mapping[str, int], before: int, start: int = 0) -> int:
        """The rules j, start <= j < before, whose box holds the point, as a bitset."""
        found = below(min(before, len(self.boxes))) & ~below(start)
        for name, bits in self._bits().items():
            if not found:
                break
            found &= bits.holding(flow[name])
        return found
