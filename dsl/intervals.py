"""Sets of integers as sorted, disjoint, non-adjacent closed intervals.

Every field of a flow is an integer dimension (addresses, ports, enum indices, booleans), so
one value-set type serves rules, invariants, boxes and regions alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class IntervalSet:
    """INVARIANT: intervals are sorted, each lo <= hi, and consecutive ones are separated by a gap."""

    intervals: tuple[tuple[int, int], ...]

    @staticmethod
    def of(pairs: Iterable[tuple[int, int]]) -> "IntervalSet":
        merged: list[list[int]] = []
        for lo, hi in sorted(p for p in pairs if p[0] <= p[1]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return IntervalSet(tuple((lo, hi) for lo, hi in merged))

    @staticmethod
    def point(value: int) -> "IntervalSet":
        return IntervalSet(((value, value),))

    @staticmethod
    def span(lo: int, hi: int) -> "IntervalSet":
        return IntervalSet(((lo, hi),) if lo <= hi else ())

    def is_empty(self) -> bool:
        return not self.intervals

    def __contains__(self, value: int) -> bool:
        for lo, hi in self.intervals:
            if value < lo:
                return False
            if value <= hi:
                return True
        return False

    def size(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.intervals)

    def min(self) -> int:
        return self.intervals[0][0]

    def hull(self) -> tuple[int, int]:
        return self.intervals[0][0], self.intervals[-1][1]

    def union(self, other: "IntervalSet") -> "IntervalSet":
        return IntervalSet.of(self.intervals + other.intervals)

    def intersect(self, other: "IntervalSet") -> "IntervalSet":
        a, b = self.intervals, other.intervals
        if len(a) == 1 and len(b) == 1:         # most sets are one interval, and most of these nest
            (alo, ahi), (blo, bhi) = a[0], b[0]
            if blo <= alo and ahi <= bhi:
                return self
            if alo <= blo and bhi <= ahi:
                return other
        out, i, j = [], 0, 0
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return IntervalSet(tuple(out))

    def complement(self, lo: int, hi: int) -> "IntervalSet":
        """The values of [lo, hi] not in this set."""
        out, cursor = [], lo
        for a, b in self.intervals:
            if a > cursor:
                out.append((cursor, min(a - 1, hi)))
            cursor = max(cursor, b + 1)
        if cursor <= hi:
            out.append((cursor, hi))
        return IntervalSet(tuple(p for p in out if p[0] <= p[1]))

    def difference(self, other: "IntervalSet") -> "IntervalSet":
        if not self.intervals:
            return self
        a, b = self.intervals, other.intervals
        if len(a) == 1 and len(b) == 1:         # one interval within or apart from another: nothing new to build
            (alo, ahi), (blo, bhi) = a[0], b[0]
            if blo <= alo and ahi <= bhi:
                return EMPTY
            if bhi < alo or ahi < blo:
                return self
        lo, hi = self.hull()
        return self.intersect(other.complement(lo, hi))

    def issubset(self, other: "IntervalSet") -> bool:
        theirs, j = other.intervals, 0
        for lo, hi in self.intervals:
            while j < len(theirs) and theirs[j][1] < lo:
                j += 1
            if j == len(theirs) or theirs[j][0] > lo or theirs[j][1] < hi:
                return False
        return True

    def overlaps(self, other: "IntervalSet") -> bool:
        a, b, i, j = self.intervals, other.intervals, 0, 0
        while i < len(a) and j < len(b):
            if a[i][1] < b[j][0]:
                i += 1
            elif b[j][1] < a[i][0]:
                j += 1
            else:
                return True
        return False


EMPTY = IntervalSet(())
