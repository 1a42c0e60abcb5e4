"""Coordinate compression for solver queries.

Whether a value lies in a set of boxes depends only on where it falls among the bounds of their
intervals, so each field can be renumbered to the segments those bounds cut its domain into:
the query keeps its answer, with far fewer bits (a 128-bit address becomes a few bits), which
is what makes z3 fast on queries over thousands of boxes. A model maps back to a real flow by
taking each segment's first value.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Iterable, Mapping

from dpipolicy.compiler.boxes import Box
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field


class Compression:
    def __init__(self, fields: Mapping[str, Field], bounds: Mapping[str, Iterable[int]]):
        """`bounds`: per field, where the boxes' intervals start and where they stop (one past
        each interval's last value): the places the field is cut."""
        self.starts = {name: sorted(v for v in {0, *bounds.get(name, ())} if v <= f.hi) for name, f in fields.items()}
        self.fields = {name: dataclasses.replace(f, hi=len(self.starts[name]) - 1) for name, f in fields.items()}
        self.hi = {name: f.hi for name, f in fields.items()}

    def box(self, b: Mapping[str, IntervalSet]) -> Box:
        """The same box over segment numbers (each bound of `b` must be one of the cuts)."""
        out: Box = {}
        for name, values in b.items():
            starts = self.starts[name]
            out[name] = IntervalSet.of((bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi + 1) - 1)
                                       for lo, hi in values.intervals)
        return out

    def flow(self, model: Mapping[str, int]) -> dict[str, int]:
        """A real flow in the segments of a model over segment numbers."""
        return {name: self.starts[name][v] for name, v in model.items()}

    def span(self, name: str, first: int, last: int) -> IntervalSet:
        """The real values of segments first..last of a field."""
        starts = self.starts[name]
        end = starts[last + 1] - 1 if last + 1 < len(starts) else self.hi[name]
        return IntervalSet.span(starts[first], end)
