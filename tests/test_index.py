"""The rule index (verifier/index.py) against the box operations it stands in for: which rules
meet a region, which rules hold all of one, the first rule containing one, the first rule
holding a flow. One field is a bitmask field; the other is wide, with values of 129 bits so
that the 62-bit chunks matter. Meeting, holding and containing are answered with bitsets
(verifier/rulebits.py), holding all with numpy."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from dpipolicy.compiler.boxes import contains, intersect, point_in
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field
from dpipolicy.verifier.index import BoxIndex
from dpipolicy.verifier.rulebits import bits_of

WIDE_HI = (1 << 129) - 1
FIELDS = [Field("s", "port", 31), Field("w", "ip", WIDE_HI)]
# values around the chunk boundaries, so that comparisons across chunks are exercised
_WIDE_VALUES = sorted({v for b in (0, 1 << 62, 1 << 64, 1 << 124, 1 << 128) for v in (b, b + 1, b + 5)
                       if v <= WIDE_HI} | {WIDE_HI})


def _sets(values: st.SearchStrategy):
    return st.lists(st.tuples(values, values).map(sorted), min_size=1, max_size=3).map(IntervalSet.of)


_box = st.fixed_dictionaries({}, optional={"s": _sets(st.integers(0, 31)), "w": _sets(st.sampled_from(_WIDE_VALUES))})
_flow = st.fixed_dictionaries({"s": st.integers(0, 31), "w": st.sampled_from(_WIDE_VALUES)})


def _holds(box, region) -> bool:
    """Does `box` hold every point of `region` (a field it leaves out spans its whole domain)?"""
    return all(region.get(f.name, f.domain).issubset(box[f.name]) for f in FIELDS if f.name in box)


@settings(max_examples=200, deadline=None)
@given(st.lists(_box, min_size=1, max_size=8), _box, st.lists(_flow, min_size=1, max_size=5), st.data())
def test_index_agrees_with_box_operations(boxes, region, flows, data):
    index = BoxIndex(FIELDS, boxes)
    before = data.draw(st.integers(0, len(boxes)))
    assert index.overlapping(region, before) == [j for j in range(before) if intersect(boxes[j], region) is not None]
    rules = np.array(data.draw(st.lists(st.integers(0, len(boxes) - 1))), dtype=np.int64)
    assert index.holding_all(region, rules).tolist() == [_holds(boxes[j], region) for j in rules.tolist()]
    assert index.first_containing(region, bits_of(rules, len(boxes))) == next(
        (j for j in sorted(set(rules.tolist())) if contains(boxes[j], region)), None)
    for flow in flows:
        assert index.first_holding(flow, before) == next((j for j in range(before) if point_in(boxes[j], flow)), None)


@settings(max_examples=30, deadline=None)
@given(st.lists(_box, min_size=70, max_size=160), _box, st.lists(_flow, min_size=1, max_size=8), st.data())
def test_bitsets_agree_on_larger_tables(boxes, region, flows, data):
    """Enough rules that the bitsets are made with numpy (rulebits.FEW) and the wide field's
    segment tree has many levels; a range [start, before) as lint asks it."""
    index = BoxIndex(FIELDS, boxes)
    before = data.draw(st.integers(0, len(boxes)))
    start = data.draw(st.integers(0, len(boxes)))
    assert index.overlapping(region, before) == [j for j in range(before) if intersect(boxes[j], region) is not None]
    some = np.array(data.draw(st.lists(st.integers(0, len(boxes) - 1), max_size=100)), dtype=np.int64)
    assert index.first_containing(region, bits_of(some, len(boxes))) == next(
        (j for j in sorted(set(some.tolist())) if contains(boxes[j], region)), None)
    apart = index.apart_twice(region)
    for j in range(len(boxes)):     # only rules really apart on two fields
        assert not apart >> j & 1 or sum(not region.get(f.name, f.domain).issubset(boxes[j].get(f.name, f.domain))
                                         for f in FIELDS) >= 2
    for flow in flows + flows:      # the second time from the kept pieces
        assert index.first_holding(flow, before, start) == next(
            (j for j in range(start, before) if point_in(boxes[j], flow)), None)
