"""Batched point probes over the boxes of one diff walk.

Inside a changed rule's box, the boxes a walk looks at (the earlier rules of its own side,
then the other side's rules that meet it) cut each field into a few segments (compress.py).
A flow is then one segment per field, and "which boxes hold it" is one lookup per field in a
table of packed bits, for thousands of flows at once. A walk uses this to find its regions
without the solver (batched probes, then a search for each rule they miss), to show that
earlier rules hold the box of a rule, and to check witnesses and name earlier rules without
the whole-table index; z3 is left only what none of these settles.
"""
from __future__ import annotations

import bisect
from functools import cached_property
from itertools import chain
from typing import Mapping

import numpy as np

from dpipolicy.compiler.boxes import Box
from dpipolicy.dsl.intervals import IntervalSet

from .compress import Compression
from .index import ranges
from .properties import InternalError


class Segments:
    """The boxes of both tables over one compression of all of them (compress.py): per table
    and field, every interval of the boxes that constrain it, as segment numbers, in arrays a
    walk can select rows from."""

    def __init__(self, fields, tables: list[list[Box]]):
        self.tables = tables
        found: list[dict[str, tuple[list, list, list]]] = []      # per table and field: owner, lo, end
        for boxes in tables:
            found.append({name: ([], [], []) for name in fields})
            for i, box in enumerate(boxes):         # a box names only the fields it constrains
                for name, values in box.items():
                    owner, lo, end = found[-1][name]
                    for a, b in values.intervals:
                        owner.append(i)
                        lo.append(a)
                        end.append(b + 1)
        self.squeeze = Compression(fields, {name: [v for table in found for v in chain(*table[name][1:])]
                                            for name in fields})
        # per field, each segment's first real value: int64 when every value and the one after
        # the last fit (an IPv6 address does not)
        self.starts = {name: np.array(values, dtype=np.int64 if self.squeeze.hi[name] < (1 << 63) - 1 else object)
                       for name, values in self.squeeze.starts.items()}
        # every bound is a cut: an interval's first segment starts at its first value
        self.intervals: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = [
            {name: (np.array(owner, dtype=np.int64), self._segment(name, lo), self._segment(name, end) - 1)
             for name, (owner, lo, end) in table.items()} for table in found]

    def _segment(self, name: str, cuts: list[int]) -> np.ndarray:
        """The segment starting at each of `cuts` (values that start a segment)."""
        return _searched(_as_searchable(self.starts[name]), cuts, "left")

    def small(self, table: int, i: int) -> Box:
        """Box i of a table over segment numbers (for a z3 query)."""
        return self.squeeze.box(self.tables[table][i])


class Grid:
    """The boxes of one walk (rows) over the segments of `within` (its changed rule's box), cut
    only where the rows' bounds fall.

    Only fields that `within` spans more than one segment of, and that some row constrains
    there, are kept: every box of the walk meets `within`, so it holds the whole of a field's
    single segment. Per field, the rows that leave out a segment keep their segments as a few
    intervals (_Columns); per field and segment, the rows holding it are a packed bit vector
    (a line, made when asked for: _Lines), so a lookup of many flows moves few bytes.
    """

    def __init__(self, segments: Segments, within: Mapping[str, IntervalSet],
                 parts: list[tuple[int, np.ndarray | list[int]]]):
        """`parts`: (table, rule indices in table order), in row order; `within` is in real values."""
        squeeze = self.squeeze = segments.squeeze
        self.within = within
        self.rows = sum(len(rules) for _, rules in parts)
        self.row_bytes = 8 * -(-self.rows // 64)     # a line of row bits is whole 64-bit words (rows_ahead)
        self.cuts: dict[str, np.ndarray] = {}         # per kept field: the segment numbers starting a grid segment
        self.inside: dict[str, np.ndarray] = {}       # ... and which grid segments lie in `within`
        self.sets: dict[str, _Columns] = {}           # ... the rows leaving out some segment, as intervals
        self.lines: dict[str, _Lines] = {}            # ... per segment, the rows holding it, as packed bits
        self.full: dict[str, np.ndarray] = {}         # packed: the rows holding every segment
        positions, offset = [], 0     # per part: each rule's row, or -1
        for table, rules in parts:
            position = np.full(len(segments.tables[table]), -1, dtype=np.int64)
            position[rules] = np.arange(offset, offset + len(rules))
            positions.append(position)
            offset += len(rules)
        for name, f in squeeze.fields.items():
            mine = squeeze.box({name: within[name]})[name] if name in within else IntervalSet.span(0, f.hi)
            rows, los, his = [], [], []
            for (table, _), position in zip(parts, positions):
                owner, lo, hi = segments.intervals[table][name]
                keep = position[owner] >= 0
                rows.append(position[owner[keep]])
                los.append(lo[keep])
                his.append(hi[keep])
            row, lo, hi = (np.concatenate(v) for v in (rows, los, his))
            if not len(row):
                continue        # no row constrains the field, so it tells no rows apart
            bounds = [v for a, b in mine.intervals for v in (a, b + 1)]
            cuts = _distinct(np.concatenate([lo, hi + 1, np.array(bounds + [0], dtype=np.int64)]))
            cuts = cuts[cuts <= f.hi]
            first, last = (np.array(v, dtype=np.int64) for v in zip(*mine.intervals))
            at = np.searchsorted(first, cuts, side="right") - 1
            inside = (at >= 0) & (cuts <= last[at])
            if inside.sum() < 2:
                continue
            # a row's intervals, from cut numbers to grid segments (the ones inside `within`)
            before = np.concatenate([[0], np.cumsum(inside)])
            sets = _Columns.of_rows(self.rows, int(before[-1]), row, before[np.searchsorted(cuts, lo)],
                                    before[np.searchsorted(cuts, hi + 1)])
            if sets is None:
                continue        # every row holds every segment
            self.cuts[name], self.inside[name], self.sets[name] = cuts, inside, sets
            self.full[name] = _padded(np.packbits(sets.index < 0, bitorder="little"), self.row_bytes)
            self.lines[name] = _Lines(sets, self.full[name])
        self.names = list(self.sets)
        self._least_covered: dict[str, np.ndarray] | None = None
        self._values: dict[tuple[int, int], IntervalSet] = {}       # see _segment_values
        self.whole_fields = [(name, values) for name, values in within.items() if name not in self.sets]
        self.columns = {name: np.flatnonzero(self.inside[name]) for name in self.names}   # grid segment -> cut index
        # To locate real flows: per field, each cut's first real value and its grid segment
        # (-1: outside `within`).
        self.real_starts = {name: _as_searchable(segments.starts[name][self.cuts[name]]) for name in self.names}
        self.segment_of_cut = {name: np.where(self.inside[name], np.cumsum(self.inside[name]) - 1, -1)
                               for name in self.names}

    def _row(self, name: str, row: int) -> np.ndarray | None:
        """The segments row `row` holds, as booleans, or None when it holds all of them."""
        at = int(self.sets[name].index[row])
        return None if at < 0 else self.sets[name].booleans(np.array([at]))

    def _held(self, flows: np.ndarray, first: int, stop: int) -> np.ndarray:
        """(flows x row bytes first:stop): the rows there holding each flow (a row of segment
        positions), as bits."""
        out = np.full((len(flows), stop - first), 0xFF, dtype=np.uint8)
        for j, name in enumerate(self.names):       # field by field, so the temporaries stay (flows x bytes)
            out &= self.lines[name].of(flows[:, j], first, stop)
        return out

    def first_rows(self, flows: np.ndarray) -> np.ndarray:
        """Per flow: the first row holding it. The rows are read a stretch at a time, growing,
        and a flow leaves once some row there holds it: most are held early (a sixth of the
        bytes, in the 10k benchmark's walks)."""
        out = np.empty(len(flows), dtype=np.int64)
        todo, first, step, size = np.arange(len(flows)), 0, 32, self.row_bytes
        while len(todo) and first < size:
            stop = min(first + step, size)
            held = self._held(flows[todo], first, stop)
            nonzero = held != 0
            hit = nonzero.any(axis=1)
            byte = nonzero[hit].argmax(axis=1)
            out[todo[hit]] = (first + byte) * 8 + _LOWEST_BIT[held[np.flatnonzero(hit), byte]]
            todo, first, step = todo[~hit], stop, 4 * step
        if len(todo):
            raise InternalError("a probe flow is held by no row; the last row must contain the walk's box")
        return out

    def holds_boxes(self, holders: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per pair: does row holders[i] hold every flow of row targets[i]'s box?"""
        out = np.ones(len(targets), dtype=bool)
        for name in self.names:
            index = self.sets[name].index
            mine, theirs = index[holders], index[targets]
            holds = mine < 0                    # the holder holds every segment
            both = ~holds & (theirs >= 0)       # both leave some out: compare the segments
            holds[both] = self.sets[name].within(theirs[both], mine[both])
            out &= holds
        return out

    def escape(self, flow: np.ndarray, target: int, rng: np.random.Generator, steps: int) -> np.ndarray | None:
        """A flow that row `target` is the first to hold, searched from `flow` (in its box): while
        an earlier row holds the flow, one field moves to a segment the target holds and that
        row does not (field and segment at random). None after `steps` moves."""
        flow = flow.copy()
        for _ in range(steps):
            first = int(self.first_rows(flow[None, :])[0])
            if first == target:
                return flow
            moves = []
            for j, name in enumerate(self.names):
                theirs = self._row(name, first)
                if theirs is not None:
                    mine = self._row(name, target)
                    options = np.flatnonzero(~theirs if mine is None else mine & ~theirs)
                    if len(options):
                        moves.append((j, options))
            if not moves:
                return None         # the earlier row holds the target's whole box
            j, options = moves[rng.integers(len(moves))]
            flow[j] = options[rng.integers(len(options))]
        return None

    def candidates(self, rows: np.ndarray | list[int], order: Mapping[str, np.ndarray]) -> np.ndarray:
        """One flow per row inside that row's box: per field, the row's first segment in `order`."""
        flows = np.zeros((len(rows), len(self.names)), dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        for j, name in enumerate(self.names):
            first = order[name]
            flows[:, j] = first[0]              # a row holding every segment takes the first
            index = self.sets[name].index[rows]
            constraining = index >= 0
            if constraining.any():
                flows[constraining, j] = self.sets[name].first_in(index[constraining], first)
        return flows

    def least_covered(self) -> dict[str, np.ndarray]:
        """Per field, the segments from the one the fewest rows hold (earlier rules are least
        likely to take a flow there). Made once per grid."""
        if self._least_covered is None:
            self._least_covered = {name: np.argsort(self.sets[name].coverage(), kind="stable") for name in self.names}
        return self._least_covered

    def shuffled(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {name: rng.permutation(self.sets[name].width) for name in self.names}

    def positions(self, flows: list[Mapping[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Real flows as rows of grid segment positions, and which of them lie inside `within`
        (the positions of the others mean nothing)."""
        inside = np.array([all(flow[name] in values for name, values in self.whole_fields) for flow in flows],
                          dtype=bool)
        out = np.zeros((len(flows), len(self.names)), dtype=np.int64)
        for j, name in enumerate(self.names):
            cut = _searched(self.real_starts[name], [flow[name] for flow in flows], "right") - 1
            out[:, j] = self.segment_of_cut[name][cut]
        inside &= (out >= 0).all(axis=1)
        return out, inside

    def first_holders(self, flows: list[Mapping[str, int]], rows: np.ndarray) -> np.ndarray:
        """Per real flow: is it inside `within` and is rows[i] the first row holding it?"""
        at, inside = self.positions(flows)
        out = np.zeros(len(flows), dtype=bool)
        if inside.any():
            out[inside] = self.first_rows(at[inside]) == rows[inside]
        return out

    def cell(self, flow: np.ndarray, names: tuple[str, ...] | None = None) -> Box:
        """The real flows of one grid flow (every one is held by the same boxes); with `names`,
        only those of its fields (the ones among them that the cell constrains)."""
        out = dict(self.within) if names is None else {n: self.within[n] for n in names if n in self.within}
        for j, name in enumerate(self.names):
            if names is None or name in names:
                out[name] = self._segment_values(j, int(flow[j]))
        return out

    def _segment_values(self, j: int, segment: int) -> IntervalSet:
        """The real values of one grid segment of field j, remembered: a walk's cells share most."""
        values = self._values.get((j, segment))
        if values is None:
            name = self.names[j]
            at = int(self.columns[name][segment])
            last = int(self.cuts[name][at + 1]) - 1 if at + 1 < len(self.cuts[name]) else self.squeeze.fields[name].hi
            values = self._values[(j, segment)] = self.squeeze.span(name, int(self.cuts[name][at]), last)
        return values

    def covered_before(self, targets: np.ndarray) -> np.ndarray:
        """Per target row: do the rows before it hold every flow of its box, in the way a policy
        usually covers one: on one field by the union of rows that hold all of the box's values
        of every other field (one row holding it all is the simplest case, checked for all
        targets at once)? False says nothing.

        Targets are taken a slice at a time: `_covered` holds two lines of packed rows per field
        for each, which for a fan-out's 17,000 members against as many rows took 400 MB."""
        step = max(1, COVERING_MEMORY // (self.row_bytes * (2 * len(self.names) + 3)))
        parts = [targets[i:i + step] for i in range(0, len(targets), step)]
        return np.concatenate([self._covered(self._rows_before(part), {name: self.sets[name].index[part]
                                                                       for name in self.names})
                               for part in parts] or [np.zeros(0, dtype=bool)])

    def holds_within(self, count: int) -> bool:
        """Do the first `count` rows hold every flow of `within`, as covered_before finds? When
        they are the earlier rules of a walk's own side, its changed rule decides no flow."""
        return bool(self._covered(self._rows_before(np.array([count])),
                                  {name: np.array([-1]) for name in self.names})[0])

    def _covered(self, before: np.ndarray, places: dict[str, np.ndarray]) -> np.ndarray:
        """covered_before for boxes given per field by their place in _Columns (-1: all of the
        field), each with the rows it may be covered by (`before`, packed)."""
        held = before.copy()                # rows holding the whole box, field by field
        for name in self.names:
            held &= self._whole(name, places[name])
        covered = held.any(axis=1)          # one row holds it all
        rest = np.flatnonzero(~covered)
        if not len(rest):
            return covered
        places, before = {name: at[rest] for name, at in places.items()}, before[rest]
        whole = [self._whole(name, places[name]) for name in self.names]    # per field: rows holding all the box's values
        after = [before]                    # after[j]: rows whole on every field from j on
        for mask in reversed(whole):
            after.append(after[-1] & mask)
        after.reverse()
        for i in range(len(rest)):
            covered[rest[i]] = self._covered_by_union([int(places[name][i]) for name in self.names], before[i],
                                                      [w[i] for w in whole], [a[i] for a in after])
        return covered

    def _rows_before(self, targets: np.ndarray) -> np.ndarray:
        """Per target row, as packed bits: the rows before it (whole bytes, then part of one)."""
        byte = np.arange(self.row_bytes)
        out = np.where(byte[None, :] < (targets >> 3)[:, None], np.uint8(0xFF), np.uint8(0))
        part = np.flatnonzero(targets >> 3 < len(byte))
        out[part, targets[part] >> 3] = (1 << (targets[part] & 7)) - 1
        return out

    def _whole(self, name: str, places: np.ndarray) -> np.ndarray:
        """Per box (its place on the field), as packed bits: the rows holding all its values there."""
        out = np.repeat(self.full[name][None, :], len(places), axis=0)
        constraining, rows = self._over_segments(name, places, True)
        out[constraining] = rows
        return out

    def _over_segments(self, name: str, places: np.ndarray, every: bool) -> tuple[np.ndarray, np.ndarray]:
        """The boxes constraining the field (their order among `places`, their places in
        _Columns), and for each the packed rows holding `every` segment it holds there (or, if
        not `every`, one of them). A single segment's rows are taken as they are, for all such
        boxes at once."""
        sets, lines = self.sets[name], self.lines[name]
        constraining = np.flatnonzero(places >= 0)
        places = places[constraining]
        out = np.empty((len(constraining), self.row_bytes), dtype=np.uint8)
        single = sets.sizes[places] == 1
        out[single] = lines.of(sets.lo[sets.start[places[single]]])
        if not single.all():       # targets holding the same segments share their rows
            shared: dict[bytes, list[int]] = {}
            for i, place in zip(np.flatnonzero(~single).tolist(), places[~single].tolist()):
                shared.setdefault(sets.key(place), []).append(i)
            combine = np.bitwise_and if every else np.bitwise_or
            for members in shared.values():
                out[members] = combine.reduce([lines.over(lo, hi, every)
                                               for lo, hi in sets.spans_of(int(places[members[0]]))], axis=0)
        return constraining, out

    def _covered_by_union(self, places: list[int], before: np.ndarray, whole: list[np.ndarray], after: list[np.ndarray]) -> bool:
        """covered_before's second way, for one box (its place per field): on some field, the
        rows whole on every other field hold all the box's values together. Such a row holding every value of the
        field, or the box's only one, would hold the whole box, which the first way looked for:
        so the box has several values there, and the rows each hold some of the field."""
        prefix = before
        for j, name in enumerate(self.names):
            sets, place = self.sets[name], places[j]
            count = sets.width if place < 0 else int(sets.sizes[place])
            if count > 1:
                rows = prefix & after[j + 1]
                if rows.any() and self._union_holds(name, rows, place, count):
                    return True
            prefix = prefix & whole[j]
        return False

    def _union_holds(self, name: str, rows: np.ndarray, place: int, count: int) -> bool:
        """Do the rows in the packed bits `rows` together hold every segment of `place` (its
        `count` of them) on the field? A few segments are looked up, each against the rows;
        many are compared with the segments the rows' intervals cover."""
        sets = self.sets[name]
        if count <= _FEW_SEGMENTS:
            segments = np.arange(sets.width) if place < 0 else sets.segments(place)
            return bool((self.lines[name].of(segments) & rows).any(axis=1).all())
        return sets.holds_all(sets.booleans(sets.index[self.rows_in(rows)]), place)

    def meeting_before(self, targets: np.ndarray) -> np.ndarray:
        """Per target row, as packed bits (rows_in reads them): the rows before it whose box
        shares a flow with its box. Only the fields a target constrains can keep a row out."""
        meets = self._rows_before(targets)
        for name in self.names:
            constraining, rows = self._over_segments(name, self.sets[name].index[targets], False)
            meets[constraining] &= rows
        return meets

    @staticmethod
    def rows_in(bits: np.ndarray) -> np.ndarray:
        """The rows of one line of packed row bits, in order (only its non-zero bytes are unpacked)."""
        return _rows_at(bits, np.flatnonzero(bits))

    @staticmethod
    def count_rows(lines: np.ndarray) -> np.ndarray:
        """How many rows each line of packed row bits holds."""
        return _BITS_SET[lines].sum(axis=1, dtype=np.int64)

    @staticmethod
    def rows_ahead(lines: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of the first `reach` non-zero 64-bit words of each line of packed row bits, in
        order, as (line, row) pairs; and per line, whether that is all of its rows (for a reader
        that stops early). Words, not bytes, so that finding the non-zero ones reads an eighth."""
        words = np.ascontiguousarray(lines).view(np.uint64)
        line, word = np.nonzero(words)
        rank = np.arange(len(line)) - np.searchsorted(line, np.arange(len(lines)))[line]    # place in its line
        whole = np.bincount(line, minlength=len(lines)) <= reach
        near = rank < reach
        line, word = line[near], word[near]
        bits = np.unpackbits(words[line, word].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        which, bit = np.nonzero(bits)
        return line[which], word[which] * 64 + bit, whole


def _rows_at(bits: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The rows of the bytes `used` (in order) of one line of packed row bits."""
    byte, bit = np.nonzero(np.unpackbits(bits[used][:, None], axis=1, bitorder="little"))
    return used[byte] * 8 + bit


def _padded(bits: np.ndarray, size: int) -> np.ndarray:
    """Packed bits with zero bytes after them, up to `size` bytes."""
    return np.concatenate([bits, np.zeros(size - len(bits), dtype=np.uint8)])


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values: `np.unique` hashes them first, two to eight times slower on
    the arrays of a grid (numpy 2.4)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _as_searchable(values: np.ndarray) -> np.ndarray | list[int]:
    """Int64 values as they are (numpy searches them); Python ints (addresses) as a list (bisect
    searches it)."""
    return values.tolist() if values.dtype == object else values


def _searched(starts: np.ndarray | list[int], values: list[int], side: str) -> np.ndarray:
    """Where each of `values` falls among the sorted `starts` (as `np.searchsorted` with `side`),
    for either form `_as_searchable` gives."""
    if isinstance(starts, np.ndarray):
        return np.searchsorted(starts, np.array(values, dtype=np.int64), side=side)
    find = bisect.bisect_left if side == "left" else bisect.bisect_right
    return np.array([find(starts, v) for v in values], dtype=np.int64)


class _Columns:
    """The rows of a grid that leave out some segment of one field, each with the segments it
    holds as sorted, apart intervals [lo, hi). A row of a wide field holds a prefix or two out
    of thousands of segments, or all but a few: as intervals it costs what it is, where
    booleans would cost every segment for every row."""

    def __init__(self, width: int, index: np.ndarray, rows: np.ndarray, owner: np.ndarray, start: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray):
        self.width = width          # the field's segments
        self.index = index          # per grid row: its place here, or -1 (it holds every segment)
        self.rows = rows            # per place: its grid row
        self.owner, self.lo, self.hi = owner, lo, hi        # per interval: its place, its segments
        self.start = start          # place i's intervals: start[i]:start[i + 1]
        self.sizes = np.add.reduceat(hi - lo, start[:-1]) if len(rows) else np.zeros(0, dtype=np.int64)  # per place: its segments
        self._keys = owner * (width + 1) + lo      # in order: finds the interval where a segment may lie

    @classmethod
    def of_rows(cls, grid_rows: int, width: int, row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> _Columns | None:
        """From the intervals (row, segments [lo, hi)) of the rows constraining the field, in
        row order and, within a row, in order (as a grid of rules in table order gives them);
        None when every row holds every segment."""
        constraining = np.zeros(grid_rows, dtype=bool)
        constraining[row] = True
        keep = lo < hi
        row, lo, hi = row[keep], lo[keep], hi[keep]
        if ((row[1:] < row[:-1]) | ((row[1:] == row[:-1]) & (lo[1:] < lo[:-1]))).any():
            raise InternalError("a grid's rules must be given in table order")
        # Apart in real values, a row's intervals may touch once the segments outside `within`
        # are left out: each run of touching ones becomes one.
        first = np.ones(len(row), dtype=bool)
        first[1:] = (row[1:] != row[:-1]) | (lo[1:] != hi[:-1])
        firsts = np.flatnonzero(first)
        row, lo, hi = row[firsts], lo[firsts], hi[np.append(firsts[1:], len(first)) - 1]
        held = np.bincount(row, weights=hi - lo, minlength=grid_rows)
        partial = constraining & (held < width)
        if not partial.any():
            return None
        if (held[partial] == 0).any():
            raise InternalError("a row of a diff walk holds no segment of its box")
        keep = partial[row]
        row = row[keep]
        opens = np.ones(len(row), dtype=bool)      # rows are in order: a place's first interval
        opens[1:] = row[1:] != row[:-1]
        firsts, owner = np.flatnonzero(opens), np.cumsum(opens) - 1
        rows = row[firsts]
        index = np.full(grid_rows, -1, dtype=np.int64)
        index[rows] = np.arange(len(rows))
        return cls(width, index, rows, owner, np.append(firsts, len(row)), lo[keep], hi[keep])

    def _spans(self, places: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The intervals of `places`: per interval, its place's position in `places`, lo and hi."""
        first = self.start[places]
        count = self.start[places + 1] - first
        at = ranges(first, count)
        return np.repeat(np.arange(len(places)), count), self.lo[at], self.hi[at]

    def spans_of(self, place: int) -> list[tuple[int, int]]:
        """One place's intervals [lo, hi)."""
        a, b = self.start[place], self.start[place + 1]
        return list(zip(self.lo[a:b].tolist(), self.hi[a:b].tolist()))

    def key(self, place: int) -> bytes:
        """The same for two places exactly when they hold the same segments."""
        a, b = self.start[place], self.start[place + 1]
        return self.lo[a:b].tobytes() + self.hi[a:b].tobytes()

    def segments(self, place: int) -> np.ndarray:
        """The segments one place holds."""
        a, b = self.start[place], self.start[place + 1]
        return ranges(self.lo[a:b], self.hi[a:b] - self.lo[a:b])

    def booleans(self, places: np.ndarray) -> np.ndarray:
        """The segments some place of `places` (-1: a row holding every segment) holds."""
        if (places < 0).any():
            return np.ones(self.width, dtype=bool)
        _, lo, hi = self._spans(places)
        return self._coverage(lo, hi) > 0

    def holds_all(self, segments: np.ndarray, place: int) -> bool:
        """Are all the segments of `place` (every one, for -1) among `segments` (booleans)?"""
        if place < 0:
            return bool(segments.all())
        return all(segments[lo:hi].all() for lo, hi in self.spans_of(place))

    def coverage(self) -> np.ndarray:
        """Per segment: how many places hold it."""
        return self._coverage(self.lo, self.hi)

    def _coverage(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per segment: how many of the intervals [lo, hi) hold it (a count up at each start and
        down at each end, summed along: the cost of the intervals, not of their segments)."""
        marks = np.bincount(lo, minlength=self.width + 1) - np.bincount(hi, minlength=self.width + 1)
        return np.cumsum(marks[:-1])

    def first_in(self, places: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Per place: the first segment of `order` (all of them, in some order) that it holds."""
        rank = np.empty(self.width + 1, dtype=np.int64)
        rank[order] = np.arange(self.width)
        rank[-1] = 0        # read past an interval that ends at the last segment
        which, lo, hi = self._spans(places)
        least = np.minimum.reduceat(rank, np.stack([lo, hi], axis=1).ravel())[::2]     # per interval
        least = np.minimum.reduceat(least, np.flatnonzero(np.diff(which, prepend=-1)))
        return order[least]

    def within(self, places: np.ndarray, holders: np.ndarray) -> np.ndarray:
        """Per pair: does holders[i] hold every segment that places[i] holds? Intervals are apart,
        so each interval of places[i] lies in one of the holder's or in none."""
        which, lo, hi = self._spans(places)
        holder = holders[which]
        at = np.searchsorted(self._keys, holder * (self.width + 1) + lo, side="right") - 1
        inside = (at >= 0) & (self.owner[at] == holder) & (self.hi[at] >= hi)
        out = np.ones(len(places), dtype=bool)
        out[which[~inside]] = False
        return out


class _Lines:
    """Per segment of one field, the grid rows holding it as packed bits (a line). A row's bit
    flips where one of its intervals starts and where it ends, so a running XOR of the flips
    down the segments makes every line. Every line costs segments x rows / 8 bytes, the square
    of the rules a wide walk meets (65 MB for one walk at 40k rules), for the few hundred its
    probes read: beyond LINE_MEMORY, only the lines of some segments are kept (checkpoints,
    evenly among the flips, as many as LINE_MEMORY holds), and a line asked for is the one of
    the checkpoint before it with the flips since XORed in."""

    def __init__(self, sets: _Columns, full: np.ndarray):
        self.sets = sets
        rows = sets.rows[sets.owner]        # per interval: its grid row
        inner = sets.hi < sets.width        # an interval to the last segment never ends
        at = np.concatenate([sets.lo, sets.hi[inner]])
        row = np.concatenate([rows, rows[inner]])
        if sets.width * len(full) <= LINE_MEMORY:
            self.checkpoints = None          # every segment's line
            places = at
        else:
            order = np.argsort(at, kind="stable")
            at, row = at[order], row[order]
            self.at, self.byte, self.bit = at, row >> 3, _BIT[row & 7]
            step = -(-len(at) // max(1, LINE_MEMORY // len(full)))
            self.checkpoints = _distinct(np.concatenate([[0], at[::step]]))
            places = np.searchsorted(self.checkpoints, at, side="left")     # the first checkpoint a flip is in
        lines = np.zeros((sets.width if self.checkpoints is None else len(self.checkpoints), len(full)), dtype=np.uint8)
        lines[0] = full
        kept = places < len(lines)
        np.bitwise_xor.at(lines, (places[kept], row[kept] >> 3), _BIT[row[kept] & 7])
        words = lines.view(np.uint64)
        np.bitwise_xor.accumulate(words, axis=0, out=words)
        self.lines = lines

    def of(self, segments: np.ndarray, first: int = 0, stop: int | None = None) -> np.ndarray:
        """(segments x bytes first:stop): each segment's line."""
        if self.checkpoints is None:
            return self.lines[segments, first:stop]
        stop = self.lines.shape[1] if stop is None else stop
        k = np.searchsorted(self.checkpoints, segments, side="right") - 1
        out = self.lines[k, first:stop]
        lo = np.searchsorted(self.at, self.checkpoints[k], side="right")
        count = np.searchsorted(self.at, segments, side="right") - lo
        if count.any():
            flips = ranges(lo, count)
            line = np.repeat(np.arange(len(segments)), count)
            byte = self.byte[flips]
            keep = (byte >= first) & (byte < stop)
            np.bitwise_xor.at(out, (line[keep], byte[keep] - first), self.bit[flips[keep]])
        return out

    def over(self, lo: int, hi: int, every: bool) -> np.ndarray:
        """The rows holding every segment of [lo, hi) (or, if not `every`, one of them). Without
        all lines: a row holding lo holds all of them unless the interval holding lo ends
        before hi (any later interval of the row ends later still); a row holds one of them if
        it holds lo or one of its intervals starts after lo and before hi."""
        if self.checkpoints is None:
            return (np.bitwise_and if every else np.bitwise_or).reduce(self.lines[lo:hi], axis=0)
        out = self.of(np.array([lo]))[0]
        bounds, byte, bit = self._ends if every else self._starts
        a, b = np.searchsorted(bounds, [lo + 1, hi], side="left")
        marked = np.zeros_like(out)
        np.bitwise_or.at(marked, byte[a:b], bit[a:b])
        return out & ~marked if every else out | marked

    @cached_property
    def _starts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The intervals' starts in order, each with its row's byte and bit."""
        return self._sorted(self.sets.lo)

    @cached_property
    def _ends(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The intervals' ends (one past their last segment) in order, each with its row's byte and bit."""
        return self._sorted(self.sets.hi)

    def _sorted(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(bounds, kind="stable")
        rows = self.sets.rows[self.sets.owner[order]]
        return bounds[order], rows >> 3, _BIT[rows & 7]


LINE_MEMORY = 2 << 20           # a field's checkpoints: as many as fit in this many bytes, at most one per flip
COVERING_MEMORY = 32 << 20      # covered_before's lines of packed rows, at most this many bytes at once
_BIT = (1 << np.arange(8)).astype(np.uint8)

_FEW_SEGMENTS = 64       # a union of rows is checked segment by segment up to this many

_LOWEST_BIT = np.array([(b & -b).bit_length() - 1 if b else 0 for b in range(256)], dtype=np.int64)
_BITS_SET = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
