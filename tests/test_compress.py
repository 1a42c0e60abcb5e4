"""Coordinate compression (verifier/compress.py): renumbering fields to segments keeps every
membership, and a model's cell holds only flows that every box treats alike."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from dpipolicy.compiler.boxes import point_in
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field
from dpipolicy.verifier.compress import Compression

FIELDS = {"a": Field("a", "port", 63), "b": Field("b", "ip", (1 << 129) - 1)}


def _sets(hi: int):
    bound = st.integers(0, hi)
    return st.lists(st.tuples(bound, bound).map(sorted), min_size=1, max_size=3).map(IntervalSet.of)


_boxes = st.lists(st.fixed_dictionaries({}, optional={"a": _sets(63), "b": _sets((1 << 129) - 1)}),
                  min_size=1, max_size=6)


def compression(boxes) -> Compression:
    """The compression that the bounds of `boxes` cut."""
    return Compression(FIELDS, {name: [v for box in boxes if name in box for lo, hi in box[name].intervals
                                       for v in (lo, hi + 1)] for name in FIELDS})


@settings(max_examples=300, deadline=None)
@given(_boxes, st.integers(0, 63), st.integers(0, (1 << 129) - 1))
def test_membership_is_kept(boxes, a, b):
    squeeze = compression(boxes)
    small = [squeeze.box(box) for box in boxes]
    segment = {name: sum(1 for s in squeeze.starts[name] if s <= v) - 1 for name, v in (("a", a), ("b", b))}
    flow = squeeze.flow(segment)
    cell = {name: squeeze.span(name, v, v) for name, v in segment.items()}
    assert point_in(cell, {"a": a, "b": b}) and point_in(cell, flow)
    for box, compressed in zip(boxes, small):
        assert point_in(box, {"a": a, "b": b}) == point_in(compressed, segment) == point_in(box, flow)
    assert all(squeeze.fields[name].hi == len(squeeze.starts[name]) - 1 for name in FIELDS)


def test_an_address_field_shrinks_to_a_few_bits():
    boxes = [{"b": IntervalSet.span(10 << 100, (11 << 100) - 1)}, {"b": IntervalSet.point(7)}]
    squeeze = compression(boxes)
    assert squeeze.fields["b"].bits == 3          # 5 segments: [0,6] [7] [8,..) [10<<100,..) [11<<100,..]
    assert squeeze.box(boxes[1]) == {"b": IntervalSet.point(1)}
