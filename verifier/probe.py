"""Batched point probes over the boxes of one diff walk.

Inside a changed rule's box, the boxes a walk looks at (the earlier rules of its own side,
then the other side's rules that meet it) cut each field into a few segments (compress.py).
A flow is then one segment per field, and "which boxes hold it" is one boolean-matrix lookup
per field, for thousands of flows at once. A walk uses this to find most of its regions
without the solver, and to check witnesses and name earlier rules without the whole-table
index; z3 is left the proof that no other region exists.
"""
from __future__ import annotations

import bisect
from typing import Mapping

import numpy as np

from dpipolicy.compiler.boxes import Box
from dpipolicy.dsl.intervals import IntervalSet

from .compress import Compression

class Grid:
    """The boxes of one walk (rows) over the segments of `within` (its changed rule's box).

    Only fields that `within` spans more than one segment of are kept: every box of the walk
    meets `within`, so it holds the whole of a field's single segment. Per field and segment,
    the rows holding it are a packed bit vector, so a lookup of many flows moves few bytes.
    """

    def __init__(self, squeeze: Compression, within: Mapping[str, IntervalSet], rows: list[Mapping[str, IntervalSet]]):
        self.squeeze = squeeze
        self.base = {name: within[name].intervals[0][0] if name in within else 0 for name in squeeze.fields}
        self.segments: dict[str, list[int]] = {}
        self.member: dict[str, np.ndarray] = {}     # (rows x segments) booleans
        self.packed: dict[str, np.ndarray] = {}     # (segments x row bytes), rows as bits
        self.constrained: dict[str, np.ndarray] = {}    # per row: does it leave out some segment?
        self.full: dict[str, np.ndarray] = {}           # packed: the rows that do not
        for name, f in squeeze.fields.items():
            inside = within.get(name, IntervalSet.span(0, f.hi))
            segments = [s for lo, hi in inside.intervals for s in range(lo, hi + 1)]
            if len(segments) < 2:
                continue
            member = np.ones((len(rows), len(segments)), dtype=bool)
            for i, box in enumerate(rows):
                values = box.get(name)
                if values is not None:
                    member[i] = False
                    for lo, hi in values.intervals:
                        member[i, bisect.bisect_left(segments, lo):bisect.bisect_right(segments, hi)] = True
            self.segments[name], self.member[name] = segments, member
            self.packed[name] = np.packbits(member.T, axis=1, bitorder="little")
            self.constrained[name] = ~member.all(axis=1)
            self.full[name] = np.packbits(~self.constrained[name], bitorder="little")
        self.names = list(self.member)
        self.rows = len(rows)

    def _rows_mask(self, lo: int, hi: int) -> np.ndarray:
        """Packed bits of rows lo..hi-1."""
        bits = np.zeros(self.rows, dtype=bool)
        bits[lo:hi] = True
        return np.packbits(bits, bitorder="little")

    def _held(self, flows: np.ndarray) -> np.ndarray:
        """(flows x row bytes): the rows holding each flow (a row of segment positions), as bits."""
        out = np.full((len(flows), (self.rows + 7) // 8), 0xFF, dtype=np.uint8)
        for j, name in enumerate(self.names):
            out &= self.packed[name][flows[:, j]]
        return out

    def first_rows(self, flows: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Per flow: is it held by a row before `start`, and the first row from `start` holding it."""
        held = self._held(flows)
        blocked = (held & self._rows_mask(0, start)).any(axis=1)
        later = held & self._rows_mask(start, self.rows)
        nonzero = later != 0
        if not nonzero.any(axis=1).all():
            raise AssertionError("a probe flow is held by no later row; the last row must contain the walk's box")
        byte = nonzero.argmax(axis=1)
        return blocked, byte * 8 + _LOWEST_BIT[later[np.arange(len(flows)), byte]]

    def holds_first(self, flow: np.ndarray, row: int) -> bool:
        """Is `row` the first row holding the flow?"""
        held = np.unpackbits(self._held(flow[None, :])[0], bitorder="little")[:row + 1]
        return bool(held[row]) and not held[:row].any()

    def candidates(self, rows: list[int], order: Mapping[str, np.ndarray]) -> np.ndarray:
        """One flow per row inside that row's box: per field, the row's first segment in `order`."""
        flows = np.zeros((len(rows), len(self.names)), dtype=np.int64)
        for j, name in enumerate(self.names):
            flows[:, j] = order[name][self.member[name][rows][:, order[name]].argmax(axis=1)]
        return flows

    def least_covered(self) -> dict[str, np.ndarray]:
        """Per field, the segments from the one the fewest rows hold (earlier rules are least
        likely to take a flow there)."""
        return {name: np.argsort(self.member[name].sum(axis=0), kind="stable") for name in self.names}

    def shuffled(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {name: rng.permutation(len(self.segments[name])) for name in self.names}

    def position(self, flow: Mapping[str, int]) -> np.ndarray | None:
        """A real flow as segment positions, or None when it lies outside `within`."""
        model = {name: bisect.bisect_right(self.squeeze.starts[name], v) - 1 for name, v in flow.items()}
        if any(model[name] != self.base[name] for name in self.base if name not in self.member):
            return None
        out = []
        for name in self.names:
            segments = self.segments[name]
            at = bisect.bisect_left(segments, model[name])
            if at == len(segments) or segments[at] != model[name]:
                return None
            out.append(at)
        return np.array(out, dtype=np.int64)

    def cell(self, flow: np.ndarray) -> Box:
        """The real flows of one grid flow (every one is held by the same boxes)."""
        model = dict(self.base)
        model.update((name, self.segments[name][int(flow[j])]) for j, name in enumerate(self.names))
        return self.squeeze.cell(model)

    def covered_before(self, target: int) -> bool:
        """Does one row before `target` hold every flow of row `target`'s box?"""
        holders = self._rows_mask(0, target)
        for name in self.names:
            if self.constrained[name][target]:
                holders &= np.bitwise_and.reduce(self.packed[name][self.member[name][target]], axis=0)
            else:
                holders &= self.full[name]
        return bool(holders.any())

    def meeting_before(self, target: int) -> np.ndarray:
        """The rows before `target` whose box shares a flow with row `target`'s box. Only the
        fields the target constrains can keep a row out."""
        meets = self._rows_mask(0, target)
        for name in self.names:
            if self.constrained[name][target]:
                meets &= np.bitwise_or.reduce(self.packed[name][self.member[name][target]], axis=0)
        return np.flatnonzero(np.unpackbits(meets, bitorder="little")[:target])


_LOWEST_BIT = np.array([(b & -b).bit_length() - 1 if b else 0 for b in range(256)], dtype=np.int64)
