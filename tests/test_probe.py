"""The diff's probe grid (verifier/probe.py) against brute force over every flow of a small
domain: which rules hold a flow, which earlier rules meet or hold a rule's box, cells,
candidate flows, and the search for a flow a rule is the first to hold."""
from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dpipolicy.compiler.boxes import contains, intersect, point_in
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field
from dpipolicy import api
from dpipolicy.verifier import diff, probe
from dpipolicy.verifier.probe import Grid, Segments
from dpipolicy.verifier.properties import InternalError
from dpipolicy.verifier.solve import Answer, Limits, Outcome

from helpers import examples, generated, generator, run_cli

FIELDS = {"a": Field("a", "port", 31), "b": Field("b", "port", 7)}
FLOWS = [{"a": a, "b": b} for a, b in itertools.product(range(32), range(8))]


def _sets(hi: int):
    bound = st.integers(0, hi)
    return st.lists(st.tuples(bound, bound).map(sorted), min_size=1, max_size=3).map(IntervalSet.of)


_box = st.fixed_dictionaries({}, optional={"a": _sets(31), "b": _sets(7)})


def _walk(own: list, other: list, c: int):
    """The rows a diff walk would give the grid: own rules before c meeting c's box, then the
    other table's rules meeting it up to the first that holds all of it (the default does)."""
    within = own[c]
    earlier = [j for j in range(c) if intersect(own[j], within) is not None]
    meeting = []
    for k, box in enumerate(other):
        if intersect(box, within) is not None:
            meeting.append(k)
            if contains(box, within):
                break
    rows = [own[j] for j in earlier] + [other[k] for k in meeting]
    return within, earlier, meeting, rows


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(_box, min_size=1, max_size=6), st.lists(_box, max_size=6), st.data())
def test_grid_agrees_with_brute_force(own, other, data):
    """With every segment's line kept, or only a few (probe.LINE_MEMORY) and the rest made from them;
    covered_before of many targets as of each alone (probe.COVERING_MEMORY)."""
    other = other + [{}]                 # the default rule holds every flow
    c = data.draw(st.integers(0, len(own) - 1))
    within, earlier, meeting, rows = _walk(own, other, c)
    with mock.patch.object(probe, "LINE_MEMORY", data.draw(st.sampled_from([probe.LINE_MEMORY, 1, 16, 64]))):
        grid = Grid(Segments(FIELDS, [own, other]), within, [(0, earlier), (1, meeting)])
    start = len(earlier)
    positions, inside = grid.positions(FLOWS)
    for flow, at, is_inside in zip(FLOWS, positions, inside):
        assert is_inside == point_in(within, flow)
        if not is_inside:
            continue
        holding = [point_in(box, flow) for box in rows]
        assert int(grid.first_rows(at[None, :])[0]) == holding.index(True)
        cell = grid.cell(at)
        assert point_in(cell, flow)
        assert grid.cell(at, ("a",)) == {n: v for n, v in cell.items() if n == "a"}
        for other_flow in FLOWS:         # every flow of the cell is held by the same rows
            if point_in(cell, other_flow):
                assert [point_in(box, other_flow) for box in rows] == holding
    deciding = np.array([[point_in(box, flow) for box in rows].index(True) if point_in(within, flow) else 0
                         for flow in FLOWS])
    assert grid.first_holders(FLOWS, deciding).tolist() == [point_in(within, flow) for flow in FLOWS]
    assert not grid.first_holders(FLOWS, deciding + 1).any()
    meeting_before = grid.meeting_before(np.arange(start, len(rows)))      # all targets in one batch
    covered_before = grid.covered_before(np.arange(start, len(rows)))
    with mock.patch.object(probe, "COVERING_MEMORY", 1):        # the targets taken one at a time
        assert grid.covered_before(np.arange(start, len(rows))).tolist() == covered_before.tolist()
    everything = [f for f in FLOWS if point_in(within, f)]
    for count in range(len(rows) + 1):      # the first rows holding all of `within`
        if grid.holds_within(count):        # sound, and it sees one row holding it all
            assert all(any(point_in(rows[r], f) for r in range(count)) for f in everything)
        assert grid.holds_within(count) or not any(all(point_in(rows[r], f) for f in everything)
                                                   for r in range(count))
    for target in range(start, len(rows)):
        inside = [f for f in FLOWS if point_in(within, f) and point_in(rows[target], f)]
        meets = [r for r in range(target) if any(point_in(rows[r], f) for f in inside)]
        bits = meeting_before[target - start]
        assert grid.rows_in(bits).tolist() == meets and grid.count_rows(bits[None, :]).tolist() == [len(meets)]
        for reach in (1, 2, len(bits)):       # the rows of the first `reach` bytes holding some
            line, ahead, whole = grid.rows_ahead(np.stack([bits, bits]), reach)
            near = [r for r in meets if r // 64 in sorted({m // 64 for m in meets})[:reach]]
            assert ahead.tolist() == near + near and line.tolist() == [0] * len(near) + [1] * len(near)
            assert whole.tolist() == [near == meets] * 2
        covered = bool(covered_before[target - start])
        assert covered == bool(grid.covered_before(np.array([target]))[0])
        holders = np.arange(target, dtype=np.int64)
        assert grid.holds_boxes(holders, np.full(target, target)).tolist() == \
            [all(point_in(rows[r], f) for f in inside) for r in range(target)]
        if covered:         # sound: every flow of the box is held by an earlier row
            assert all(any(point_in(rows[r], f) for r in range(target)) for f in inside)
        if any(all(point_in(rows[r], f) for f in inside) for r in range(target)):
            assert covered  # and it sees one row holding it all
        if grid.names:
            for order in (grid.least_covered(), grid.shuffled(np.random.default_rng(target))):
                flow = grid.candidates([target], order)[0]
                assert point_in(rows[target], next(f for f in FLOWS if point_in(grid.cell(flow), f)))
            found = grid.escape(flow, target, np.random.default_rng(target), 16)
            if found is not None:       # a flow of the target's box that no earlier row holds
                real = next(f for f in FLOWS if point_in(grid.cell(found), f))
                assert [point_in(box, real) for box in rows].index(True) == target


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.lists(st.integers(0, 255), min_size=5, max_size=5), min_size=1, max_size=6), st.integers(1, 4))
def test_rows_ahead_reads_the_first_words_of_each_line(lines, reach):
    """Several 64-bit words per line, most of them zero: the rows of each line's first `reach`
    non-zero words, in order, and whether that is all of its rows."""
    packed = np.zeros((len(lines), 24), dtype=np.uint8)
    for i, line in enumerate(lines):
        packed[i, ::5] = line        # bytes 0, 5, 10, 15, 20: in words 0, 0, 1, 1, 2
    line, rows, whole = Grid.rows_ahead(packed, reach)
    for i in range(len(lines)):
        every = [r for r in range(24 * 8) if packed[i, r // 8] >> (r % 8) & 1]
        words = sorted({r // 64 for r in every})
        assert rows[line == i].tolist() == [r for r in every if r // 64 in words[:reach]]
        assert whole[i] == (len(words) <= reach)


def test_rows_splitting_one_field_cover_a_box():
    """Two earlier rules that each hold all of the box's `b` and half of its `a` cover it; with
    a gap in `a` they do not."""
    own = [{"a": IntervalSet.span(0, 31)}]
    for second in (IntervalSet.span(16, 31), IntervalSet.span(17, 31)):
        other = [{"a": IntervalSet.span(0, 15)}, {"a": second, "b": IntervalSet.span(0, 7)},
                 {"a": IntervalSet.span(0, 31), "b": IntervalSet.span(2, 3)}, {}]
        within, earlier, meeting, rows = _walk(own, other, 0)
        grid = Grid(Segments(FIELDS, [own, other]), within, [(0, earlier), (1, meeting)])
        assert bool(grid.covered_before(np.array([2]))[0]) == (second.min() == 16)


def test_probes_change_how_regions_are_found_not_which(tmp_path, monkeypatch):
    """On a generated pair, the diff with probes and the diff that finds every region with z3
    report the same changes (a fan-out's witness, and so the rule it names first, may differ); the
    probes save most queries."""
    old, _ = generated(tmp_path, 200, 3)
    new = tmp_path / "new.dpi"
    new.write_text(generator().mutate(old.read_text(encoding="utf-8"), 0.05, 4), encoding="utf-8")
    tables = (api.load(old).table, api.load(new).table)

    def found():
        result = diff.diff_tables(*tables, Limits())
        assert not result.unknown
        return result.queries, sorted((repr(c.box), c.old.rules, c.new.rules, c.exact, c.excluding) for c in result.changes)
    probed_queries, probed = found()
    monkeypatch.setattr(diff, "PROBE_ROUNDS", 0)
    monkeypatch.setattr(diff, "ESCAPE_STEPS", 0)
    solver_queries, solved = found()
    assert len(probed) >= 20 and probed == solved
    assert probed_queries * 3 < solver_queries


def test_escape_moves_a_flow_off_the_earlier_rows():
    """The default rule after two rules that take most flows: starting from a flow the first
    rule takes, the search ends on a flow only the default holds."""
    own = [{}]
    other = [{"a": IntervalSet.span(0, 15)}, {"a": IntervalSet.span(0, 31), "b": IntervalSet.span(2, 7)}, {}]
    within, earlier, meeting, rows = _walk(own, other, 0)
    grid = Grid(Segments(FIELDS, [own, other]), within, [(0, earlier), (1, meeting)])
    start = grid.positions([{"a": 3, "b": 3}])[0][0]
    assert int(grid.first_rows(start[None, :])[0]) == 0
    found = grid.escape(start, 2, np.random.default_rng(0), 16)
    real = next(f for f in FLOWS if point_in(grid.cell(found), f))
    assert real["a"] >= 16 and real["b"] < 2


def test_a_renamed_earlier_rule_is_named_by_both_versions(tmp_path, monkeypatch):
    """`web` is renamed but unchanged, so its new twin is left out of the walk's grid: the flows
    it takes are still left out of the region, and the region still names it both ways."""
    head = "policy p\ndefault allow\n"
    old, new = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old.write_text(head + "rule web when proto == tcp and dst.port == 80 then block\n"
                   "rule mail when proto == tcp and dst.port in 25..587 then block\n", encoding="utf-8")
    new.write_text(head + "rule http_block when proto == tcp and dst.port == 80 then block\n"
                   "rule mail when proto == tcp and dst.port in 25..587 then reset\n", encoding="utf-8")
    monkeypatch.setattr(diff, "EXACT_BOXES_CAP", 0)      # shown as a box minus named rules
    result = diff.diff_tables(api.load(old).table, api.load(new).table, Limits())
    [change] = result.changes
    assert (change.old.rule, change.new.rule) == ("mail", "mail") and not change.exact
    assert change.excluding == ("web", "http_block")
    assert change.witness["dst.port"] != 80


def test_a_walk_the_solver_cannot_settle_is_unknown(tmp_path, monkeypatch):
    """With probes and searches off, the walks go to z3; when z3 gives no answer, the part is
    listed as unknown with the changed rule's name, the diff is not "equivalent", and the
    command exits 3."""
    head = "policy p\ndefault allow\n"
    old, new = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old.write_text(head + "rule mail when proto == tcp and dst.port in 25..587 then block\n", encoding="utf-8")
    new.write_text(head + "rule mail when proto == tcp and dst.port in 25..587 then reset\n", encoding="utf-8")
    monkeypatch.setattr(diff, "PROBE_ROUNDS", 0)
    monkeypatch.setattr(diff, "ESCAPE_STEPS", 0)

    class TimedOutSession(diff.Session):
        def check(self):
            return Outcome(Answer.UNKNOWN, reason="timeout")
    monkeypatch.setattr(diff, "Session", TimedOutSession)
    result = diff.diff_tables(api.load(old).table, api.load(new).table, Limits())
    assert not result.equivalent and not result.changes
    assert result.unknown and all("rule mail" in u and "timeout" in u for u in result.unknown)
    code, out, _ = run_cli("diff", str(old), str(new))
    assert code == 3 and "not settled" in out and "rule mail: the solver gave no answer (timeout)" in out


def test_a_region_names_at_most_a_few_earlier_rules_and_says_whether_that_is_all(tmp_path, monkeypatch):
    """Twelve earlier rules take part of `mail`'s box: the region names the first ten in order
    and says there are others; allowed more names, it names all twelve and says that is all."""
    head = "policy p\ndefault allow\n" + "".join(
        f"rule e{i:02} when proto == tcp and dst.port == {25 + i} and src.port == {1000 + i} then block\n"
        for i in range(12))
    old, new = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old.write_text(head + "rule mail when proto == tcp and dst.port in 25..587 then block\n", encoding="utf-8")
    new.write_text(head + "rule mail when proto == tcp and dst.port in 25..587 then reset\n", encoding="utf-8")
    monkeypatch.setattr(diff, "EXACT_BOXES_CAP", 0)      # shown as a box minus named rules
    tables = api.load(old).table, api.load(new).table
    [change] = diff.diff_tables(*tables, Limits()).changes
    assert change.excluding == tuple(f"e{i:02}" for i in range(10)) and not change.excluding_complete
    monkeypatch.setattr(diff, "EXCLUDING_NAMED", 20)
    [change] = diff.diff_tables(*tables, Limits()).changes
    assert change.excluding == tuple(f"e{i:02}" for i in range(12)) and change.excluding_complete


def test_a_grid_takes_rules_in_table_order():
    """A walk gives each table's rules in order, and the grid's intervals rely on it."""
    boxes = [{"a": IntervalSet.span(0, 3)}, {"a": IntervalSet.span(2, 9)}, {}]
    within = {"a": IntervalSet.span(0, 31)}
    segments = Segments(FIELDS, [boxes, [{}]])
    Grid(segments, within, [(0, [0, 1]), (1, [0])])
    with pytest.raises(InternalError, match="table order"):
        Grid(segments, within, [(0, [1, 0]), (1, [0])])
