"""An index of rule boxes by per-field hull, to find the earlier rules that may overlap a region.

Hulls over-approximate (a rule's set may have holes; wide fields are compared on their top 62
bits), so the index only narrows; exact overlap is then tested on the candidates' value sets.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dpipolicy.compiler.boxes import intersect
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field

_KEY_BITS = 62


class BoxIndex:
    def __init__(self, fields: Sequence[Field], boxes: Sequence[Mapping[str, IntervalSet]]):
        self.fields = tuple(fields)
        self.boxes = list(boxes)
        self.shift = {f.name: max(0, f.bits - _KEY_BITS) for f in self.fields}
        n = len(self.boxes)
        self.lo = {f.name: np.zeros(n, dtype=np.int64) for f in self.fields}
        self.hi = {f.name: np.full(n, f.hi >> self.shift[f.name], dtype=np.int64) for f in self.fields}
        for i, b in enumerate(self.boxes):
            for name, values in b.items():
                lo, hi = values.hull()
                self.lo[name][i] = lo >> self.shift[name]
                self.hi[name][i] = hi >> self.shift[name]

    def overlapping(self, region: Mapping[str, IntervalSet], before: int) -> list[int]:
        """Indices j < before whose box shares at least one point with `region`."""
        if before == 0:
            return []
        mask = np.ones(before, dtype=bool)
        for name, values in region.items():
            lo, hi = values.hull()
            s = self.shift[name]
            mask &= self.lo[name][:before] <= (hi >> s)
            mask &= self.hi[name][:before] >= (lo >> s)
        return [int(j) for j in np.flatnonzero(mask) if intersect(self.boxes[j], region) is not None]

    def first_containing(self, flow: Mapping[str, int], candidates: Sequence[int]) -> int | None:
        """The first candidate whose box holds the point (exact)."""
        for j in candidates:
            if all(flow[name] in values for name, values in self.boxes[j].items()):
                return j
        return None
