"""Per field, the rules holding a value or meeting a set of values, as bitsets.

A bitset is a Python int with bit j set when rule j is in it. The rules holding a point are
the AND over the fields of each field's rules holding its value; the rules meeting a box, the
AND of each field's rules meeting its set. Bit operations run in C over n/64 words, so a
question costs a few ANDs of the table's width instead of a numpy pass per field over every
interval of every rule; the set of rules is only listed where it is needed.

A field's rules are those leaving it open (in every answer) and those constraining it. For a
small field the rules holding each value are kept whole. For a wide one, the constraining
rules' intervals are cut at their bounds into pieces and filed in a segment tree over the
pieces (each interval in the few nodes that cover it exactly), so that the intervals holding
a value are those of the nodes on its piece's path to the root.
"""
from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from dpipolicy.dsl.intervals import IntervalSet

FEW = 64                # fewer rules than this are set one by one, more with numpy
HELD_KEPT = 4096        # per wide field, the pieces whose holding rules are kept (then all are dropped)


def bits_of(rules: np.ndarray, n: int) -> int:
    """The bitset of some of n rules (repeats allowed)."""
    if len(rules) < FEW:
        packed = bytearray((n + 7) // 8)
        for j in rules.tolist():
            packed[j >> 3] |= 1 << (j & 7)
        return int.from_bytes(packed, "little")
    present = np.zeros(n, dtype=bool)
    present[rules] = True
    return int.from_bytes(np.packbits(present, bitorder="little").tobytes(), "little")


def rules_of(bits: int, n: int) -> np.ndarray:
    """The rules of a bitset of n rules, in order."""
    return np.flatnonzero(flags_of(bits, n))


def flags_of(bits: int, n: int) -> np.ndarray:
    """Per rule of n: is it in the bitset?"""
    packed = np.frombuffer(bits.to_bytes((n + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(packed, count=n, bitorder="little").view(bool)


def below(bound: int) -> int:
    """The bitset of the rules before `bound`."""
    return (1 << bound) - 1


class SmallFieldBits:
    """A field of at most a few hundred values: the rules holding each value."""

    def __init__(self, hi: int, rules_by_set: dict[IntervalSet, list[int]], n: int):
        constrained = [bits_of(np.array(rules, dtype=np.int64), n) for rules in rules_by_set.values()]
        self.open = below(n)       # the rules leaving the field open
        for bits in constrained:
            self.open &= ~bits
        self.by_value = [self.open] * (hi + 1)
        for values, bits in zip(rules_by_set, constrained):
            for v in _values(values):
                self.by_value[v] |= bits

    def holding(self, v: int) -> int:
        return self.by_value[v]

    def meeting(self, values: IntervalSet) -> int:
        out = 0
        for v in _values(values):
            out |= self.by_value[v]
        return out

    def holding_all(self, values: IntervalSet) -> int:
        out = -1
        for v in _values(values):
            out &= self.by_value[v]
        return out


class WideFieldBits:
    """A field of wide values (addresses, ports, volumes): the rules leaving it open, and the
    constraining rules' intervals in a segment tree over the pieces their bounds cut."""

    def __init__(self, per_rule: Sequence[IntervalSet | None]):
        self.n = len(per_rule)
        owners, los, his = [], [], []
        for i, values in enumerate(per_rule):
            if values is not None:
                for lo, hi in values.intervals:
                    owners.append(i)
                    los.append(lo)
                    his.append(hi)
        self.open = below(self.n) & ~bits_of(np.array(owners, dtype=np.int64), self.n)
        self.cuts = sorted(set(los) | {hi + 1 for hi in his})     # piece p is [cuts[p], cuts[p + 1])
        pieces = max(len(self.cuts) - 1, 1)
        self.leaves = 1 << (pieces - 1).bit_length()
        owner = np.array(owners, dtype=np.int64)
        first = np.array([bisect.bisect_left(self.cuts, lo) for lo in los], dtype=np.int64)
        end = np.array([bisect.bisect_left(self.cuts, hi + 1) for hi in his], dtype=np.int64)
        self.nodes, starts = _segment_tree(owner, first + self.leaves, end + self.leaves, 2 * self.leaves)
        self.node_start = starts.tolist()
        self.held: dict[int, int] = {}      # piece -> the rules holding its values: points recur
        by_lo = sorted(range(len(los)), key=los.__getitem__)
        self.sorted_lo = [los[k] for k in by_lo]        # for the intervals starting inside a range
        self.owner_by_lo = owner[np.array(by_lo, dtype=np.int64)] if by_lo else owner

    def _piece(self, v: int) -> int | None:
        piece = bisect.bisect_right(self.cuts, v) - 1
        return piece if 0 <= piece < len(self.cuts) - 1 else None

    def _stabbing(self, v: int) -> list[np.ndarray]:
        """The owners of the intervals holding v, as pieces of arrays."""
        piece = self._piece(v)
        return [] if piece is None else self._filed(piece)

    def _filed(self, piece: int) -> list[np.ndarray]:
        out, node = [], piece + self.leaves
        while node:
            a, b = self.node_start[node], self.node_start[node + 1]
            if a < b:
                out.append(self.nodes[a:b])
            node >>= 1
        return out

    def holding(self, v: int) -> int:
        piece = self._piece(v)
        if piece is None:
            return self.open
        if piece not in self.held:
            if len(self.held) >= HELD_KEPT:
                self.held.clear()
            found = self._filed(piece)
            self.held[piece] = self.open | bits_of(np.concatenate(found), self.n) if found else self.open
        return self.held[piece]

    def meeting(self, values: IntervalSet) -> int:
        """An interval meets [lo, hi] when it holds lo or starts after lo and by hi."""
        if values.is_empty():
            return 0
        found = []
        for lo, hi in values.intervals:
            found += self._stabbing(lo)
            a, b = bisect.bisect_right(self.sorted_lo, lo), bisect.bisect_right(self.sorted_lo, hi)
            if a < b:
                found.append(self.owner_by_lo[a:b])
        return self.open | bits_of(np.concatenate(found), self.n) if found else self.open


def _segment_tree(owner: np.ndarray, left: np.ndarray, right: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each interval (leaves left..right-1 of a tree laid out as an array, root 1) filed in the
    nodes covering exactly those leaves, level by level for all intervals at once: the owners
    sorted by node, and where each node's run starts."""
    nodes, filed = [], []
    while len(owner):
        live = left < right
        owner, left, right = owner[live], left[live], right[live]
        odd = (left & 1).astype(bool)
        nodes.append(left[odd])
        filed.append(owner[odd])
        left = left + odd
        odd = (right & 1).astype(bool)
        right = right - odd
        nodes.append(right[odd])
        filed.append(owner[odd])
        left, right = left >> 1, right >> 1
    node = np.concatenate(nodes) if nodes else np.zeros(0, dtype=np.int64)
    owners = np.concatenate(filed) if filed else np.zeros(0, dtype=np.int64)
    order = np.argsort(node, kind="stable")
    return owners[order], np.searchsorted(node[order], np.arange(size + 1))


def _values(values: IntervalSet):
    for lo, hi in values.intervals:
        yield from range(lo, hi + 1)
