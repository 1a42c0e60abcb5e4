"""Semantic diff: every flow whose outcome (action, rate, redirect target, logging) differs
between two rule tables, as boxes, and nothing else.

Rules present in both tables (same match, same action) are aligned in order (_partners). If a
flow gets different outcomes, at least one of its two deciding rules is unaligned ("changed"):
were both aligned, the one deciding earlier would decide on both sides.
So it suffices, for each changed rule c, to look at the rules k of the other table that meet
c's box and give a different outcome. A rule k aligned with a rule before c is skipped: its
flows are decided before c on c's side. The flows decided by c and by k form the region
(box_c ∩ box_k) minus the earlier rules of both sides. A region is found non-empty by a flow
that c and k decide (batched probes or a search, probe.py, or a z3 model), and empty by
interval arithmetic (disjoint, or covered by earlier rules) or by z3's unsat. A non-empty one
is shown as exact boxes, or, when subtracting would split it into too many, as the box with
the earlier rules it excludes named. Flows decided by changed rules on both sides are found
once, from the old side. When more than FANOUT_CAP rules k of one outcome could decide c's
flows differently, their regions are one change (a fan-out: c, and one of those rules), found
by one flow: one edit then reads as a change per outcome, not per rule it meets, which at
100k rules was over a million regions.
"""
from __future__ import annotations

import bisect
import difflib
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from dpipolicy.compiler.backends.contract import unseen_flows
from dpipolicy.compiler.boxes import Box, hull, hull_within, intersect, merge, normalized, point_in, subtract_all
from dpipolicy.compiler.retarget import joint_schema, retarget
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl.schema import LABEL_FIELDS, Schema
from dpipolicy.dsl.typed import Action, Origin

from . import encode
from .parallel import map_in_processes
from .probe import Grid, Segments
from .properties import InternalError, TableModel
from .solve import Answer, Limits, Session
from .witness import realistic_point

PROBE_ROUNDS = 2          # batches of candidate flows a walk tries for all its rules
ESCAPE_STEPS = 32         # moves a walk tries for each of the few rules that earlier rules do not plainly cover
EXACT_BOXES_CAP = 16      # a changed region splitting into more boxes is shown as a box minus named rules
EXCLUDING_NAMED = 10      # ... naming at most this many of the earlier rules that take part of the box
FANOUT_CAP = 16           # a changed rule meeting more rules of one outcome on the other side than this: one change for them
FANOUT_SAMPLE = 64        # a fan-out's rules probed at its first stage (then four times as many at each)


@dataclass(frozen=True)
class Decider:
    """The rule deciding a change's flows on one side. In a fan-out (`among` set), one of the
    rules `among`, all with this action, decides each flow; `rule` is the one deciding the
    witness, `origin` its place."""
    action: Action
    rule: str
    origin: Origin | None
    among: tuple[str, ...] = ()

    @property
    def rules(self) -> tuple[str, ...]:
        return self.among or (self.rule,)


@dataclass(frozen=True)
class Change:
    """The flows of `box` that `old` decides in the old table and `new` in the new one.

    When `exact`, that is every flow of the box. Otherwise (the region would split into too many
    boxes) the box is a hull, and the rules in `excluding` decide some of its flows first; with
    `excluding_complete`, no other rule does (at most EXCLUDING_NAMED are named).
    """
    box: Box
    old: Decider
    new: Decider
    witness: dict[str, int]
    exact: bool = True
    excluding: tuple[str, ...] = ()
    excluding_complete: bool = True
    approximations: tuple = ()      # of the imported tables, whose flows the box meets (approximated.py)


@dataclass
class Diff:
    schema: Schema
    changes: list[Change] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)    # parts the solver could not settle, and why
    queries: int = 0
    changed_rules: tuple[int, int] = (0, 0)             # unaligned rules (default included) per side
    names: tuple = ()                                   # named sets of both versions, for reports
    approximations: tuple = ()                          # both imported tables', when read with --approximate

    @property
    def equivalent(self) -> bool:
        return not self.changes and not self.unknown


@dataclass
class _Found:
    """What walks find: a Diff's findings without its schema, so that a walk's result sent back
    from a worker process is only what it found (a schema holds the application catalogue)."""
    changes: list[Change] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    queries: int = 0


def _signature(model: TableModel, i: int):
    if i == len(model.boxes) - 1:
        return ("default", model.entries[i][0])
    return (model.table.rules[i].matches, model.entries[i][0])


def _decider(model: TableModel, i: int) -> Decider:
    action, rule, origin, _ = model.entries[i]
    return Decider(action, rule, origin)


class _Walk:
    """One changed rule c, followed through the other table.

    First, candidate flows are probed in batches on a grid of the walk's boxes (probe.py): each
    flow that c decides and that a rule k with another outcome decides on the other side
    records the region of c and k without the solver. Rules whose box within c's is covered by
    earlier rules (the row that took their probe, one other row, or several splitting one
    field; probe.py) are dropped. The few left are searched for one by one (Grid.escape). For
    the rules still left, one incremental z3 session holds: the flow is in box_c and in no
    earlier rule of c's side (so c decides it), and the other side's first-match chain ends at
    a rule left (a Boolean |r<k>| per such rule, `false` for the others). Each model names a
    rule k, whose flows are recorded before |r<k>| is set false, until every rule is recorded
    or z3 answers unsat: a proof that no other flow of c changes. Only rows meeting a rule
    left can decide its flows, so the query holds those alone, over the segments that both
    tables' bounds cut each field into (compress.py), so a 128-bit address costs a few bits.
    """

    def __init__(self, found: _Found, own: TableModel, other: TableModel, tables: _Tables, old_side: bool,
                 limits: Limits, segments: Segments):
        self.diff, self.own, self.other, self.old_side, self.limits = found, own, other, old_side, limits
        self.segments, self.rule_names = segments, tables.names
        mine, theirs = (0, 1) if old_side else (1, 0)
        self.own_partner, self.other_partner = tables.partner[mine], tables.partner[theirs]
        self.own_outcome, self.other_outcome = tables.outcome[mine], tables.outcome[theirs]
        self.own_ids, self.other_ids = tables.rule[mine], tables.rule[theirs]

    def run(self, c: int) -> None:
        own, other = self.own, self.other
        box = own.boxes[c]
        earlier = own.index.meeting(box, c)
        if _first_holding_all(own, box, earlier) is not None:
            return              # an earlier rule of c's own side takes all its flows (most changed rules, at 100k)
        # The other table's rules meeting box_c up to the first holding all of it (the default
        # at the latest): every flow of box_c is decided by then.
        meeting = other.index.meeting(box)
        last = _first_holding_all(other, box, meeting)
        if last is None:
            raise InternalError("diff: no rule of the table holds every flow (the default must)")
        meeting = meeting[:last + 1]
        # A rule aligned with an earlier rule of c's side (its twin) holds only flows that rule takes
        # before c: it decides none of c's, and is left out of the grid; its name still counts
        # among a region's earlier rules.
        partner = self.other_partner[meeting]
        twin = (partner >= 0) & (partner < c)
        kept = meeting[~twin]
        differs = self.other_outcome[kept] != self.own_outcome[c]
        if not self.old_side:
            differs &= self.other_partner[kept] >= 0    # flows of changed rules on both sides: found from the old side
        relevant = kept[differs]
        if not len(relevant):
            return              # no rule that could decide c's flows differently
        kept = kept[:np.searchsorted(kept, relevant[-1]) + 1]      # a flow the rules after the last decide keeps its outcome
        self.fanned = self._fan_outs(relevant)
        self.reached: set[int] = set()          # fanned outcomes with a flow recorded
        self.recorded: set[int] = set()         # rules k with a flow recorded
        has_twin = np.zeros(len(own.boxes), dtype=bool)
        has_twin[partner[twin]] = True
        # per grid row, the source rules it stands for: its own and its twin's (the same unless renamed)
        self.row_rules = np.concatenate([self.own_ids[earlier], self.other_ids[kept]])
        self.row_twins = np.concatenate([np.where(has_twin[earlier], self.other_ids[self.own_partner[earlier]],
                                                  self.own_ids[earlier]), self.other_ids[kept]])
        self.earlier, self.meeting = earlier, kept      # the grid's rows: earlier rules here, then rules there
        self.found: list[tuple[int, int, np.ndarray]] = []     # (rule k, its row, a grid flow they decide)
        self._solve(c, relevant)
        if self.found:
            self._write_regions(c)

    def _solve(self, c: int, relevant: np.ndarray) -> None:
        own, other = self.own, self.other
        segments, earlier = self.segments, self.earlier
        mine, theirs = (0, 1) if self.old_side else (1, 0)
        self.grid = Grid(segments, own.boxes[c], [(mine, earlier), (theirs, self.meeting)])
        if self.grid.holds_within(len(earlier)):
            return              # c's own earlier rules take all its flows together
        rng = np.random.default_rng(c)        # seeded, so a walk finds the same flows every run
        shuffled = partial(self.grid.shuffled, rng)
        orders = [self.grid.least_covered if i == 0 else shuffled for i in range(PROBE_ROUNDS)]
        at = self._rows(relevant)
        found, blockers = np.zeros(len(relevant), dtype=bool), at.copy()
        for stage in self._stages(relevant):
            stage = stage[~self._reached(relevant[stage])]
            if len(stage):
                found[stage], blockers[stage] = self._probe(c, relevant[stage], at[stage], orders)
        done = found | self._reached(relevant)
        left = self._uncovered(relevant[~done], at[~done], blockers[~done])
        # The few rules left are searched for one by one, which costs little next to a query.
        self._escape(c, left, rng)
        wanted = {k for k in left.tolist() if not self._settled(k)}     # |r<k>| is true until k is settled
        if not wanted:
            return              # every rule that decides some flow of c differently is recorded

        # Only rows meeting a rule still wanted can decide its flows, so the query leaves out the rest.
        targets = self._rows(np.array(sorted(wanted), dtype=np.int64))
        rows = sorted({r for bits in self.grid.meeting_before(targets) for r in self.grid.rows_in(bits).tolist()}
                      | set(targets.tolist()))
        own_rows = [segments.small(mine, int(self.earlier[r])) for r in rows if r < len(earlier)]
        other_rows = [int(self.meeting[r - len(earlier)]) for r in rows if r >= len(earlier)]
        squeeze, fields = segments.squeeze, segments.squeeze.fields

        def decided(k: int) -> str:
            return f"|r{k}|" if k in wanted else "false"
        chain = "false"          # a flow no row here holds is decided by a rule not wanted
        for k in reversed(other_rows):
            chain = f"(ite {encode.box(fields, segments.small(theirs, k))} {decided(k)} {chain})"
        parts = [encode.declarations(fields.values()), *(f"(declare-const |r{k}| Bool)" for k in sorted(wanted)),
                 f"(assert {encode.box(fields, segments.small(mine, c))})", f"(assert {chain})"]
        if own_rows:
            parts.append(f"(assert (not {encode.boxes(fields, own_rows)}))")
        session = Session("\n".join(parts), tuple(fields.values()), self.limits)
        while True:
            outcome = session.check()
            self.diff.queries += 1
            if outcome.answer is Answer.UNSAT:
                return
            if outcome.answer is Answer.UNKNOWN:
                self.diff.unknown.append(f"rule {own.entries[c][1]}: the solver gave no answer ({outcome.reason})")
                return
            flow = squeeze.flow(outcome.model)
            k = other.index.first_holding(flow, len(other.boxes))
            if k not in wanted:
                raise InternalError(f"diff: z3 named a flow decided by {other.rule_words(k)}, not a changed outcome")
            at, inside = self.grid.positions([flow])
            if not inside[0]:
                raise InternalError("diff: z3 named a flow outside the changed rule's box")
            self._record(c, k, int(self._rows(k)), at[0])
            settled = sorted(j for j in wanted if self._settled(j))     # k, and the rest of its fan-out
            wanted.difference_update(settled)
            if not wanted:
                return
            session.add("\n".join(f"(assert (not |r{j}|))" for j in settled))

    def _fan_outs(self, relevant: np.ndarray) -> dict[int, np.ndarray]:
        """Per outcome that more than FANOUT_CAP of the rules that could decide c's flows
        differently give: those rules, in order. Their flows with c are one change (a fan-out),
        found by one flow: a changed rule that takes over the flows of thousands of rules reads
        as one change per outcome, not one per rule."""
        outcomes = self.other_outcome[relevant]
        values, counts = np.unique(outcomes, return_counts=True)
        return {o: relevant[outcomes == o] for o in values[counts > FANOUT_CAP].tolist()}

    def _stages(self, relevant: np.ndarray) -> list[np.ndarray]:
        """The places in `relevant` to probe, stage by stage: first every rule outside a fan-out
        and the first FANOUT_SAMPLE rules of each fan-out, then four times as many of each at
        every stage. A fan-out needs one flow, which its first rules mostly give, so the
        probes of a rule that takes over thousands cost what a few hundred do."""
        rank = np.zeros(len(relevant), dtype=np.int64)     # a rule's place among its fan-out's
        for members in self.fanned.values():
            rank[np.searchsorted(relevant, members)] = np.arange(len(members))
        stage = np.zeros(len(relevant), dtype=np.int64)
        beyond = rank >= FANOUT_SAMPLE
        stage[beyond] = 1 + np.log2(rank[beyond] // FANOUT_SAMPLE).astype(np.int64) // 2
        order = np.argsort(stage, kind="stable")
        return np.split(order, np.flatnonzero(np.diff(stage[order])) + 1)

    def _reached(self, rules: np.ndarray) -> np.ndarray:
        """Which `rules` belong to a fan-out that has its flow: nothing more is sought for them."""
        return np.isin(self.other_outcome[rules], list(self.reached))

    def _settled(self, k: int) -> bool:
        return k in self.recorded or int(self.other_outcome[k]) in self.reached

    def _rows(self, rules: np.ndarray | int) -> np.ndarray:
        """The grid rows of rules of the other table (all among the walk's, which are in order)."""
        return len(self.earlier) + np.searchsorted(self.meeting, rules)

    def _probe(self, c: int, wanted: np.ndarray, rows: np.ndarray, orders: list) -> tuple[np.ndarray, np.ndarray]:
        """Probe candidate flows for the `wanted` rules (in order, at grid `rows`) in batches, one
        per segment order of `orders`, and record the region of each rule that decides one of
        them with c. Returns which rules those are, and per rule the first row holding its first
        candidate."""
        grid = self.grid
        found = np.zeros(len(wanted), dtype=bool)
        blockers = rows.copy()
        for n, order in enumerate(orders):
            todo = np.flatnonzero(~found & ~self._reached(wanted))
            if not len(todo):
                break
            flows = grid.candidates(rows[todo], order())
            first = grid.first_rows(flows)
            if n == 0:
                blockers = first    # the first order's: its candidate is likeliest to lie in few rows
            taker = np.minimum(np.searchsorted(rows, first), len(rows) - 1)     # the wanted rule at that row, if any
            takes = (rows[taker] == first) & ~found[taker]
            taken, at = np.unique(taker[takes], return_index=True)
            flows = flows[takes]
            for i in np.argsort(at, kind="stable").tolist():       # as the flows come
                self._record(c, int(wanted[taken[i]]), int(rows[taken[i]]), flows[at[i]])
            found[taken] = True
        return found, blockers

    def _uncovered(self, wanted: np.ndarray, rows: np.ndarray, blockers: np.ndarray) -> np.ndarray:
        """The `wanted` rules (at grid `rows`) whose box earlier rules may not hold. Most are held
        by the row that took their probe (`blockers`), which is checked for all at once; the
        rest by Grid.covered_before."""
        held = blockers < rows        # an earlier row took the probe
        held[held] = self.grid.holds_boxes(blockers[held], rows[held])
        rest = np.flatnonzero(~held)
        return wanted[rest[~self.grid.covered_before(rows[rest])]]

    def _escape(self, c: int, wanted: np.ndarray, rng: np.random.Generator) -> None:
        """Record the region of each wanted rule not yet settled for which Grid.escape finds a
        flow it and c decide, starting from its least covered candidate."""
        grid = self.grid
        if not len(wanted) or not ESCAPE_STEPS:
            return
        rows = self._rows(wanted)
        for k, row, flow in zip(wanted.tolist(), rows.tolist(), grid.candidates(rows, grid.least_covered())):
            if self._settled(k):
                continue
            flow = grid.escape(flow, row, rng, ESCAPE_STEPS)
            if flow is not None:
                self._record(c, k, row, flow)

    def _record(self, c: int, k: int, row: int, flow: np.ndarray) -> None:
        """Note that c here and k there decide the flows of the grid flow's cell (all of them);
        the region of c and k is written once the walk has found them all (_write_regions)."""
        self.found.append((k, row, flow))
        self.recorded.add(k)
        outcome = int(self.other_outcome[k])
        if outcome in self.fanned:
            self.reached.add(outcome)

    def _write_regions(self, c: int) -> None:
        """Each found region as exact boxes, or as its box minus named earlier rules, and each
        fan-out as the hull of its rules' regions; the witnesses of a walk are chosen and
        checked together."""
        own, other, schema = self.own, self.other, self.own.table.schema
        witnessed: set[int] = set()
        pairs, fan_outs = [], []        # found (k, row, flow) of one rule k each; the first of each fan-out
        for entry in self.found:
            outcome = int(self.other_outcome[entry[0]])
            if outcome not in self.fanned:
                pairs.append(entry)
            elif outcome not in witnessed:
                witnessed.add(outcome)
                fan_outs.append(entry)
        rows = np.array([row for _, row, _ in pairs], dtype=np.int64)
        start = len(self.earlier)
        written: list = []      # per region: its exact changes, or (box, old, new, names, complete) of a hull
        exact: list[tuple[int, dict[str, int]]] = []        # (row, witness) of exact boxes, checked at the end
        hulls: list[tuple[int, Box, np.ndarray]] = []        # (row, region, grid flow) whose witness is chosen below
        mine = _decider(own, c)
        meeting = self.grid.meeting_before(rows)
        names = self._names(c, np.array([k for k, _, _ in pairs], dtype=np.int64), meeting)
        few = (self.grid.count_rows(meeting) <= EXACT_BOXES_CAP).tolist()
        for (k, row, flow), bits, (named, all_named), exactly in zip(pairs, meeting, names, few):
            region = intersect(own.boxes[c], other.boxes[k])
            old, new = (mine, _decider(other, k)) if self.old_side else (_decider(other, k), mine)
            parts, complete = [], False
            if exactly:
                before = self.grid.rows_in(bits)
                own_rows, earlier_other = before[before < start], self.meeting[before[before >= start] - start]
                boxes = [own.boxes[j] for j in self.earlier[own_rows].tolist()] + \
                    [other.boxes[j] for j in earlier_other.tolist()]
                parts, complete = subtract_all(region, boxes, own.fields, EXACT_BOXES_CAP, budget=200)
            if complete:
                points = [realistic_point(schema, p) for p in parts]
                exact += ((row, point) for point in points)
                written.append([Change(p, old, new, point) for p, point in zip(parts, points)])
            else:
                hulls.append((row, region, flow))
                written.append((region, old, new, named, all_named))
        for k, row, flow in fan_outs:
            members = self.fanned[int(self.other_outcome[k])]
            among = tuple(dict.fromkeys(self.rule_names[self.other_ids[members]].tolist()))
            theirs = replace(_decider(other, k), among=among if len(among) > 1 else ())     # boxes of one rule: no fan-out
            old, new = (mine, theirs) if self.old_side else (theirs, mine)
            hulls.append((row, intersect(own.boxes[c], other.boxes[k]), flow))
            written.append((hull_within(own.boxes[c], [other.boxes[j] for j in members.tolist()]), old, new, (), False))
        self._check_witnesses([p for _, p in exact], np.array([r for r, _ in exact], dtype=np.int64))
        points = iter(self._typical(hulls))
        for region in written:
            if isinstance(region, list):
                self.diff.changes.extend(region)
            else:
                box, old, new, names, complete = region
                self.diff.changes.append(Change(box, old, new, next(points), False, names, complete))

    def _typical(self, hulls: list[tuple[int, Box, np.ndarray]]) -> list[dict[str, int]]:
        """Per (row, region, grid flow): the most typical flow that c and the row's rule decide.
        That is a realistic point of their region if they decide it, or of the region with the
        application of the flow's cell (made only for those); else a realistic point of the cell
        (every flow of which they decide), moved field by field to the typical value for the
        cell's application while they still decide it, so that only the fields that must be
        unusual are."""
        schema, grid = self.own.table.schema, self.grid
        rows = np.array([row for row, _, _ in hulls], dtype=np.int64)
        chosen: list = [None] * len(hulls)
        typical: list = [None] * len(hulls)
        todo = list(range(len(hulls)))
        for wider in (False, True):
            tried = []
            for i in todo:
                _, region, flow = hulls[i]
                box = dict(region, **grid.cell(flow, ("app",) + LABEL_FIELDS)) if wider else region
                if not wider or box != region:
                    typical[i] = realistic_point(schema, box)
                    tried.append(i)
            for i, holds in zip(tried, grid.first_holders([typical[i] for i in tried], rows[tried]).tolist()):
                if holds:
                    chosen[i] = typical[i]
            todo = [i for i in todo if chosen[i] is None]
        for i, point in zip(todo, self._moved_toward(rows[todo], [hulls[i][2] for i in todo], [typical[i] for i in todo])):
            chosen[i] = point
        return chosen

    def _moved_toward(self, rows: np.ndarray, flows: list[np.ndarray], typical: list[dict[str, int]]) -> list[dict[str, int]]:
        """Per grid flow: a realistic point of its cell, moved field by field (the application and
        its labels last) to the value of `typical` wherever rows[i] still decides it. A move
        changes one field, so it is tried on the point's grid positions: a kept field's column
        takes the typical value's, and any other field only asks that value to be in the walk's box."""
        grid, schema = self.grid, self.own.table.schema
        points = [realistic_point(schema, grid.cell(flow)) for flow in flows]
        if not points:
            return points
        at, _ = grid.positions(points)              # inside the box: a cell lies in it
        toward, _ = grid.positions(typical)         # -1 on a kept field where the typical value is outside
        column = {name: j for j, name in enumerate(grid.names)}
        for name in sorted(points[0], key=lambda n: n in ("app",) + LABEL_FIELDS):
            moved = np.array([m for m, (point, goal) in enumerate(zip(points, typical)) if point[name] != goal[name]],
                             dtype=np.int64)
            j = column.get(name)
            if j is None:
                values = grid.within.get(name)
                holds = np.array([values is None or typical[m][name] in values for m in moved.tolist()], dtype=bool)
            else:
                trials = at[moved]
                trials[:, j] = toward[moved, j]
                holds = trials[:, j] >= 0
                holds[holds] = grid.first_rows(trials[holds]) == rows[moved[holds]]
            for m in moved[holds].tolist():
                points[m][name] = typical[m][name]
            if j is not None:
                at[moved[holds], j] = toward[moved[holds], j]
        self._check_witnesses(points, rows)
        return points

    def _check_witnesses(self, points: list[dict[str, int]], rows: np.ndarray) -> None:
        """Each witness must be a flow that c and the rule of rows[i] decide: else a bug."""
        if points and not self.grid.first_holders(points, rows).all():
            raise InternalError("a diff witness does not show the change it stands for")

    def _names(self, c: int, ks: np.ndarray, before: np.ndarray) -> list[tuple[tuple[str, ...], bool]]:
        """Per region of c and ks[i]: the first EXCLUDING_NAMED source rules of the earlier rows in
        the packed bits before[i] (an own row's rule and its twin's, then the other side's rules),
        each once, leaving out c's and k's; and whether that is all of them.

        The regions are read together, each only as far as its first few words of rows; those
        whose words so far name too few rules to tell are read further, four times as far each
        time. A region cut by a thousand rules costs little more than one cut by eleven."""
        out: list = [None] * len(ks)
        todo, reach = np.arange(len(ks)), 2
        while len(todo):
            line, rows, whole = Grid.rows_ahead(before[todo], reach)
            ids = np.stack([self.row_rules[rows], self.row_twins[rows]], axis=1).ravel()
            line = np.repeat(line, 2)
            keep = (ids != self.own_ids[c]) & (ids != self.other_ids[ks[todo]][line])
            ids, line = ids[keep], line[keep]
            firsts = np.sort(np.unique(line * len(self.rule_names) + ids, return_index=True)[1])
            ids, line = ids[firsts], line[firsts]         # each rule once per line, in row order
            rank = np.arange(len(line)) - np.searchsorted(line, np.arange(len(todo)))[line]
            count = np.bincount(line, minlength=len(todo))
            named = ids[rank < EXCLUDING_NAMED]
            ends = np.cumsum(np.minimum(count, EXCLUDING_NAMED)).tolist()
            names = self.rule_names[named].tolist()
            later = []
            for i, (a, b) in enumerate(zip([0] + ends[:-1], ends)):
                if count[i] > EXCLUDING_NAMED or whole[i]:
                    out[todo[i]] = (tuple(names[a:b]), bool(count[i] <= EXCLUDING_NAMED))
                else:
                    later.append(i)
            todo, reach = todo[later], 4 * reach
        return out


def _first_holding_all(model: TableModel, box: Box, rules: np.ndarray) -> int | None:
    """The position in `rules` of the first rule whose box holds all of `box`, or None, tested in
    growing batches: it usually comes early."""
    start, size = 0, 256
    while start < len(rules):
        holds = np.flatnonzero(model.index.holding_all(box, rules[start:start + size]))
        if len(holds):
            return start + int(holds[0])
        start, size = start + size, 4 * size
    return None


def _consolidated(changes: list[Change], fields) -> list[Change]:
    """As few changes as possible, and none sharing a flow when read by rule names.

    A change means "the flows of the box that these rules decide", so changes with the same
    outcomes whose rules meet on both sides (the same two rules, or a rule in a fan-out: walks
    of the boxes of one rule can give both) are read as one: they become one change. The exact
    boxes of one pair of rules are merged; otherwise the change is the hull of their boxes,
    which no other change's rules can share, with the rules of both sides joined.
    """
    out: list[Change] = []
    for members in _sharing_rules(changes):
        if len(members) == 1:
            out.append(members[0])      # already as few as can be
            continue
        old, new = members[0].old, members[0].new
        if all(m.exact and m.old == old and m.new == new for m in members):
            for box in merge([m.box for m in members], fields):
                witness = next(m.witness for m in members if point_in(box, m.witness))
                out.append(Change(box, old, new, witness))
            continue
        box = normalized(hull([m.box for m in members]), fields)
        excluding = tuple(dict.fromkeys(n for m in members for n in m.excluding))
        # flows of the hull outside every member are decided by rules no member names
        complete = all(m.excluding_complete for m in members) and len(excluding) <= EXCLUDING_NAMED \
            and any(m.box == box for m in members)
        out.append(Change(box, _joined(old, [m.old for m in members]), _joined(new, [m.new for m in members]),
                          members[0].witness, False, excluding[:EXCLUDING_NAMED], complete))
    return out


def _sharing_rules(changes: list[Change]) -> list[list[Change]]:
    """The changes in groups, in order of their first member: two are in one group when their
    outcomes are the same and their rules meet on both sides (joined through others too).

    A fan-out names thousands of rules on one side, and a 100k diff's changes name five million,
    so each change is filed under the rules of its smaller side only: two changes meeting on
    both sides meet on the side where the earlier one is filed. A change's sides are made sets
    only while it is the one being filed, and only when an earlier change meets it."""
    parent = list(range(len(changes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    filed_side: list[int] = []       # per change: the side (0 old, 1 new) it is filed under, its smaller one
    filed: dict[tuple, tuple[dict[str, list[int]], dict[str, list[int]]]] = {}   # per outcome and side: rule -> changes
    for i, c in enumerate(changes):
        sides = (c.old.rules, c.new.rules)
        by_side = filed.setdefault((c.old.action, c.new.action), ({}, {}))
        met: set[int] = set()
        for side, index in zip(sides, by_side):
            for name in side:
                met.update(index.get(name, ()))
        as_sets: list[frozenset[str] | None] = [None, None]      # this change's sides as sets, made when asked for
        for j in met:         # j meets c on the side j is filed under: do they meet on the other?
            other = 1 - filed_side[j]
            if as_sets[other] is None:
                as_sets[other] = frozenset(sides[other])
            if not as_sets[other].isdisjoint(changes[j].new.rules if other else changes[j].old.rules):
                parent[root(i)] = root(j)
        mine = 0 if len(sides[0]) <= len(sides[1]) else 1
        filed_side.append(mine)
        for name in sides[mine]:
            by_side[mine].setdefault(name, []).append(i)
    groups: dict[int, list[Change]] = {}
    for i, c in enumerate(changes):
        groups.setdefault(root(i), []).append(c)
    return [groups[r] for r in dict.fromkeys(root(i) for i in range(len(changes)))]


def _joined(decider: Decider, deciders: list[Decider]) -> Decider:
    """One side of changes read as one: their rules (the first's deciding its witness)."""
    rules = tuple(dict.fromkeys(name for d in deciders for name in d.rules))
    return replace(decider, among=rules if len(rules) > 1 else ())


def _partners(a: list, b: list) -> tuple[np.ndarray, np.ndarray]:
    """Aligned rules: per rule of each table, the index of its partner in the other, or -1.

    Rules whose signature occurs once in each table are anchors where their order agrees (the
    longest increasing run of their places, as in a patience diff); the stretches between
    anchors, short when a new version edits a few rules here and there, are matched by
    difflib. Any alignment of equal signatures in order gives the same changed flows and
    deciding rules; this one is quick on a 10k-rule table, where difflib alone spent 0.1 s."""
    number: dict = {}           # each signature as a small number, so the matcher hashes it once
    a, b = ([number.setdefault(s, len(number)) for s in side] for side in (a, b))
    a_to_b, b_to_a = np.full(len(a), -1, dtype=np.int64), np.full(len(b), -1, dtype=np.int64)
    for i, j in _anchored_pairs(a, b):
        a_to_b[i], b_to_a[j] = j, i
    return a_to_b, b_to_a


def _anchored_pairs(a: list[int], b: list[int]):
    """Pairs (i, j) with a[i] == b[j], increasing in both: anchors, and difflib's matches between them."""
    once = {v for v, n in Counter(a).items() if n == 1} & {v for v, n in Counter(b).items() if n == 1}
    where = {v: j for j, v in enumerate(b) if v in once}
    candidates = [(i, where[v]) for i, v in enumerate(a) if v in once]
    anchors = _increasing(candidates)
    done_a = done_b = 0
    for i, j in anchors + [(len(a), len(b))]:
        if done_a < i and done_b < j:
            for block in difflib.SequenceMatcher(None, a[done_a:i], b[done_b:j], autojunk=False).get_matching_blocks():
                for k in range(block.size):
                    yield done_a + block.a + k, done_b + block.b + k
        if i < len(a):
            yield i, j
        done_a, done_b = i + 1, j + 1


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of `pairs` (in order of their first elements) whose second elements
    increase (patience sorting, with a link from each pair to the one before it)."""
    tails: list[int] = []        # tails[n]: the least second element ending a run of n + 1
    ends: list[int] = []         # ... and the pair there
    before = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        n = bisect.bisect_left(tails, j)
        if n == len(tails):
            tails.append(j)
            ends.append(k)
        else:
            tails[n], ends[n] = j, k
        before[k] = ends[n - 1] if n else -1
    run, k = [], ends[-1] if ends else -1
    while k >= 0:
        run.append(pairs[k])
        k = before[k]
    return run[::-1]


class _Tables:
    """The rules of both tables as numbers, so a walk reads them with array operations: each
    rule's aligned partner in the other table (-1: changed), its outcome, and its source rule's
    name (`names` holds the names)."""

    def __init__(self, a: TableModel, b: TableModel):
        self.partner = _partners([_signature(a, i) for i in range(len(a.boxes))],
                                 [_signature(b, j) for j in range(len(b.boxes))])
        outcomes: dict = {}
        self.outcome = tuple(np.array([outcomes.setdefault(e[0], len(outcomes)) for e in m.entries], dtype=np.int64)
                             for m in (a, b))
        number: dict[str, int] = {}
        self.rule = tuple(np.array([number.setdefault(e[1], len(number)) for e in m.entries], dtype=np.int64)
                          for m in (a, b))
        self.names = np.array(list(number), dtype=object)


def _walk(state: tuple, walk: tuple[bool, int]) -> _Found:
    """What one changed rule's walk finds (each walk stands alone, so processes can share them)."""
    a, b, tables, limits, segments = state
    old_side, c = walk
    found = _Found()
    if old_side:
        _Walk(found, a, b, tables, True, limits, segments).run(c)
    else:
        _Walk(found, b, a, tables, False, limits, segments).run(c)
    return found


def behind(table: RuleTable, boxes, origin: Origin) -> RuleTable:
    """`table` behind first rules that allow the flows of `boxes`: put in front of two tables
    alike, they take those flows out of any comparison of the two."""
    fields = {f.name: f for f in table.schema.flow_fields}
    first = tuple(MatchRule(-1, tuple(normalized(box, fields).items()), Action("allow"), origin) for box in boxes)
    return replace(table, rules=first + table.rules)


_UNSEEN = Origin("(no packet carries these flows)", None, "contract")


def diff_tables(old: RuleTable, new: RuleTable, limits: Limits, jobs: int = 1) -> Diff:
    """Every flow whose outcome differs; the changed rules' walks are spread over up to `jobs`
    processes, with the same result as one."""
    schema = old.schema if old.schema is new.schema else joint_schema(old.schema, new.schema)
    old, new = retarget(old, schema), retarget(new, schema)
    if old.packet_filter or new.packet_filter:       # a rule set's diff speaks of the flows packets carry
        unseen = unseen_flows(schema)
        old, new = behind(old, unseen, _UNSEEN), behind(new, unseen, _UNSEEN)
    a, b = TableModel(old), TableModel(new)
    tables = _Tables(a, b)
    changed_a, changed_b = (np.flatnonzero(partner < 0).tolist() for partner in tables.partner)
    # enum, server-name and interface values were renumbered onto the joint schema: only sets of other fields keep their meaning
    names = tuple(n for n in old.named_sets + new.named_sets
                  if schema.field(n[1]).kind not in ("enum", "domain", "interface") or n[1] in ("app",) + LABEL_FIELDS)
    result = Diff(schema, changed_rules=(len(changed_a), len(changed_b)), names=names)
    walks = [(True, i) for i in changed_a] + [(False, j) for j in changed_b]
    for found in map_in_processes(_walk, (a, b, tables, limits, Segments(a.fields, [a.boxes, b.boxes])),
                                  walks, jobs, (a, b)):
        result.changes += found.changes
        result.unknown += found.unknown
        result.queries += found.queries
    result.changes = _consolidated(result.changes, a.fields)
    return result
