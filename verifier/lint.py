"""Lint: what is valid in a policy but probably not what its author meant.

Rules are judged on the compiled table, where a source rule is a run of consecutive match
rules (boxes). Every answer is exact:

- shadowed (L101): each box of the rule lies inside the union of the earlier boxes;
- redundant (L102): for each box i of the rule and each later box k with another outcome,
  `box_i ∩ box_k` lies inside the boxes that would decide first were the rule removed (the
  earlier rules, the rule's own earlier boxes, and the later boxes before k);
- overlap (L103): an earlier box with another action meets one of the rule's boxes;
- no flow at all (L104): the condition lowered to no box.

"Does region R lie inside these boxes" is settled as the verifier settles it for invariants:
one box containing R (yes) or a realistic point of R in none of them (no, with that flow as
witness) by interval arithmetic, then exact box subtraction, and z3 only for what remains; an
`unknown` from z3 is reported as undecided, never as "no finding". Invariants whose `when` and
tests whose `given` no flow satisfies (L301, L302) are found by the verifier's own search.
The source-level checks (unused names, set members) and the suppression comments are in dsl/.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dpipolicy.compiler.boxes import Box, contains, intersect, normalized, point_in, subtract_all
from dpipolicy.compiler.lower import lower
from dpipolicy.compiler.normalize import ExpansionTooLarge, to_boxes
from dpipolicy.dsl import ast, typed
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.checker import check_items
from dpipolicy.dsl.lintcodes import LintFinding, Undecided, rule_place
from dpipolicy.dsl.loader import FileStart, PlacedItem, load_items
from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.setmembers import set_member_findings
from dpipolicy.dsl.source import SourceFile, Span
from dpipolicy.dsl.suppress import Suppressions
from dpipolicy.dsl.unused import imports_of, unused_names
from dpipolicy.dsl.words import counted

from .labels import without_profile
from .rulebits import below, bits_of, flags_of, rules_of
from .properties import TableModel, search, too_large_to_check, uncovered_point
from .solve import Answer, Limits, Scope
from .witness import flow_text, realistic_point

SUBTRACT_BUDGET = 2_000     # box subtractions tried before a region goes to z3
SUBTRACT_MAX_BOXES = 64     # more boxes to subtract than this: straight to z3
FIRST_STEPS, ESCAPE_STEPS = 3, 12   # moves of a point out of the boxes holding it (see inside)
SHRINK_CUTS = 64           # boxes cut from one region by _shrink
MINIMAL_COVER_MAX = 12      # covers up to this size are pruned to the rules really needed
NAMES_SHOWN = 5
OVERLAP_TRIES = 8           # earlier rules tried for a flow that shows an overlap (L103)

COVERED, OPEN, UNDECIDED = "covered", "open", "undecided"


@dataclass
class LintResult:
    findings: list[LintFinding]          # after suppression, in file and position order
    undecided: list[Undecided]
    silenced: int
    schema: Schema
    rules: int                           # source rules looked at
    queries: int = 0                     # z3 queries
    approximations: tuple = ()           # an imported rule set's, read with --approximate (rulesetlint.py)


@dataclass
class _Answer:
    """Whether a region lies inside some boxes: COVERED (by `cover`), OPEN (`point` is outside
    them all) or UNDECIDED (`reason`)."""
    status: str
    cover: list[int] = field(default_factory=list)
    point: dict[str, int] | None = None
    reason: str = ""


def lint_files(policy_path: Path, spec_paths: tuple[Path, ...], catalogue_files: tuple[Path, ...],
               limits: Limits) -> LintResult:
    """Load a .dpi policy with its spec files and lint it. Raises DiagnosticError on bad input."""
    catalogue = load_catalogue(catalogue_files)
    placed, files = load_items(policy_path, spec_paths)
    policy = check_items(placed, catalogue)
    return lint(placed, files, policy, limits, specs_given=bool(spec_paths))


def lint(placed: list[PlacedItem], files: list[SourceFile], policy: typed.Policy, limits: Limits,
         specs_given: bool) -> LintResult:
    model = TableModel(lower(policy))
    rule_found, rule_undecided, queries = _rule_findings(policy, model, limits)
    spec = _SpecLint(model, placed, without_profile(policy), limits)
    spec.run()
    found = (rule_found + spec.findings + unused_names(placed, files, policy, specs_given)
             + set_member_findings(placed, policy.schema, policy.schema.catalogue, policy.named_sets))
    undecided = rule_undecided + spec.undecided
    starts = [p.item.span for p in placed if not isinstance(p.item, FileStart)]
    starts += [span for file in files for span, _ in imports_of(file)]
    suppressions = Suppressions(files, starts)
    kept = [f for f in found if not suppressions.silenced(f)]
    for u in undecided:
        suppressions.keep_open(u)
    silenced = len(found) - len(kept)
    kept += suppressions.problems + suppressions.unused()
    kept.sort(key=_position)
    return LintResult(kept, sorted(undecided, key=_position), silenced, policy.schema, len(policy.rules),
                      queries + spec.queries)


def _position(finding) -> tuple:
    span = finding.span
    return (span is None, span.file.display_name if span else "", span.start if span else 0, finding.code)


def _rule_findings(policy: typed.Policy, model: TableModel, limits: Limits
                   ) -> tuple[list[LintFinding], list[Undecided], int]:
    """L101 and L104 on the table; then L102 and L103 on the table without the rules found
    shadowed (they decide nothing, so it gives every flow the same outcome): a rule is not
    called redundant because a dead rule below it would take over its flows."""
    whole = _RuleLint(model, limits)
    findings: list[LintFinding] = []
    dead: set[str] = set()
    shadows: dict[str, _Answer] = {}
    for rule in policy.rules:
        name = rule.origin.name
        run = whole.runs.get(name)
        if run is None:
            dead.add(name)
            findings.append(LintFinding(
                "L104", f"rule `{name}` matches no flow: its condition can never hold", rule.origin.span,
                rule.origin.span, label="no flow satisfies this condition", location_text=rule.origin.location_text,
                hint="look for a field given two values joined with `and`, or an empty set"))
            continue
        shadows[name] = whole.shadowed(*run, _Meeting(model))
        if shadows[name].status == COVERED:
            dead.add(name)
            findings.append(whole.shadowed_finding(rule, shadows[name].cover))
    table = model.table
    live = whole if not dead else _RuleLint(TableModel(dataclasses.replace(
        table, rules=tuple(r for r in table.rules if r.origin.name not in dead))), limits)
    for rule in policy.rules:
        if rule.origin.name not in dead:
            live.needed(rule, live.runs[rule.origin.name], shadows[rule.origin.name])
    queries = whole.queries + (live.queries if live is not whole else 0)
    return findings + live.findings, whole.undecided + live.undecided, queries


class _RuleLint:
    def __init__(self, model: TableModel, limits: Limits):
        self.model, self.limits = model, limits
        self.scope = Scope()            # lint's queries share one z3 context, as a search's do
        self.schema = model.table.schema
        self.boxes = model.boxes
        self.domains = {name: f.domain for name, f in model.fields.items()}
        # Per box, the fields it constrains as bits: a box constraining a field the region leaves
        # free cannot contain the region, and one constraining two such fields cannot be cut
        # from it as one box (see _shrink); this filters long lists before any set arithmetic.
        self.bit = {name: 1 << k for k, name in enumerate(model.fields)}
        self.masks = np.array([self._mask(box) for box in self.boxes],
                              dtype=np.int64 if len(self.bit) < 63 else object)
        # Outcomes as small integers: compared for every box met, so cheaper than the actions.
        outcomes: dict[typed.Action, int] = {}
        self.outcome = [outcomes.setdefault(action, len(outcomes)) for action, *_ in model.entries]
        self.with_outcome = [bits_of(np.flatnonzero(np.array(self.outcome) == o), len(self.outcome))
                             for o in range(len(outcomes))]
        names: dict[str, int] = {}      # per match rule, its source rule as a number
        self.source = np.array([names.setdefault(name, len(names)) for _, name, *_ in model.entries], dtype=np.int64)
        self.findings: list[LintFinding] = []
        self.undecided: list[Undecided] = []
        self.queries = 0
        self.runs: dict[str, tuple[int, int]] = {}       # source rule -> (first, last) match rule
        for i, r in enumerate(model.table.rules):
            first, _ = self.runs.get(r.origin.name, (i, i))
            self.runs[r.origin.name] = (first, i)

    def _mask(self, box: Box) -> int:
        return sum(self.bit[name] for name in box)

    def needed(self, rule: typed.Rule, run: tuple[int, int], shadow: _Answer) -> None:
        """Redundancy and overlaps of a rule not found shadowed (`shadow`: OPEN with a flow it
        decides, or UNDECIDED)."""
        meeting = _Meeting(self.model)
        redundancy = self.redundant(*run, shadow.point, meeting)
        if shadow.status == UNDECIDED and redundancy.status != OPEN:    # needed implies not shadowed
            self._undecided("L101", rule, f"whether rule `{rule.origin.name}` is shadowed", shadow.reason)
        if redundancy.status == COVERED:
            self.findings.append(self._redundant_finding(rule, run, shadow.point))
        elif redundancy.status == UNDECIDED:
            self._undecided("L102", rule, f"whether rule `{rule.origin.name}` is redundant", redundancy.reason)
        if shadow.status == OPEN or redundancy.status == OPEN:
            self._overlaps(rule, *run, meeting)

    # ----- the region question --------------------------------------------------------------
    def inside(self, region: Box, listed, holder) -> _Answer:
        """Does `region` lie inside the union of some boxes? `holder(point)` gives one of them
        that holds a point of the region, or None (an index query, faster than a scan);
        `listed()` gives them all as a bitset (boxes among them that miss the region do no harm),
        asked only when a point and its holder do not settle the question."""
        point = realistic_point(self.schema, region)
        first_hit = holder(point)
        if first_hit is None:
            return _Answer(OPEN, point=point)
        if contains(self.boxes[first_hit], region):
            return _Answer(COVERED, [first_hit])
        found = self._walk_out(region, point, holder, FIRST_STEPS)
        if found is not None:
            return _Answer(OPEN, point=found)
        listed_bits = listed()
        cover = self._first_containing(region, listed_bits, point)
        if cover is not None:
            return _Answer(COVERED, [cover])
        others = rules_of(listed_bits, len(self.boxes))
        whole = region
        region, used, others = self._shrink(region, others)
        if region is None:
            return _Answer(COVERED, self._needed(whole, used))
        for start in (point if point_in(region, point) else realistic_point(self.schema, region),
                      lambda: self._escape(region, others)):
            found = self._walk_out(region, start() if callable(start) else start, holder, ESCAPE_STEPS)
            if found is not None:
                return _Answer(OPEN, point=found)
        boxes = [self.boxes[j] for j in others]
        if len(boxes) <= SUBTRACT_MAX_BOXES:
            pieces, complete = subtract_all(region, boxes, self.model.fields, 1, SUBTRACT_BUDGET)
            if pieces:
                return _Answer(OPEN, point=realistic_point(self.schema, pieces[0]))
            if complete:
                return _Answer(COVERED, self._needed(whole, used + self._needed(region, others)))
        outcome = uncovered_point(self.model, region, others, self.limits, self.scope)
        self.queries += 1
        if outcome.answer is Answer.UNSAT:
            return _Answer(COVERED, self._needed(whole, used + others))
        if outcome.answer is Answer.SAT:
            return _Answer(OPEN, point=outcome.model)
        return _Answer(UNDECIDED, reason=f"the solver gave no answer ({outcome.reason})")

    def _first_containing(self, region: Box, others: int, point: dict[str, int]) -> int | None:
        """The first of the boxes (a bitset) that contains the region: one that does holds a point
        of it, which narrows the bitset first."""
        if point_in(region, point):
            others &= self.model.index.holding_bits(point, len(self.boxes))
        return self.model.index.first_containing(region, others)

    def _escape(self, region: Box, others: list[int]) -> dict[str, int]:
        """A point of the region that avoids, on every field where it can, all the values the boxes
        give that field: it lies outside every box that constrains such a field."""
        taken: dict[str, list[tuple[int, int]]] = {}
        for j in others:
            for name, values in self.boxes[j].items():
                taken.setdefault(name, []).extend(values.intervals)
        narrowed = dict(region)
        for name, intervals in taken.items():
            free = region.get(name, self.domains[name]).difference(IntervalSet.of(intervals))
            if not free.is_empty():
                narrowed[name] = free
        return realistic_point(self.schema, narrowed)

    def _walk_out(self, region: Box, point: dict[str, int], holder, steps: int) -> dict[str, int] | None:
        """A point of the region that no box holds, found by moving `point` out of the box
        holding it, one field at a time, at most `steps` times; None if that fails. Each
        move goes to a value of the region that no box met so far has on that field, on the
        field with most such values (a field the region leaves open, as a rule)."""
        start, avoid = dict(point), {}
        for _ in range(steps):
            j = holder(point)
            if j is None:
                return point
            moves = []
            for name, values in self.boxes[j].items():
                avoid[name] = avoid[name].union(values) if name in avoid else values
                free = region.get(name, self.domains[name]).difference(avoid[name])
                if not free.is_empty():
                    moves.append((free.size(), name, free))
            if not moves:
                return None
            _, name, free = max(moves, key=lambda m: m[0])
            point = dict(point, **{name: start[name] if start[name] in free else free.min()})
        return point if holder(point) is None else None

    def _shrink(self, region: Box, others: np.ndarray) -> tuple[Box | None, list[int], list[int]]:
        """Cut from the region every box that differs from it on one field only: the region minus
        such a box is again a box (that field's set, less the box's). Repeated while it applies,
        up to SHRINK_CUTS cuts. Returns what is left of the region (None: nothing), the boxes
        cut, and the boxes that still meet what is left. A box constraining two fields the region
        leaves free, or seen by the index to be apart on two, cannot be one apart: those are
        passed over, all at once, until the region changes."""
        domains = self.domains
        region, used, pending = dict(region), [], others
        changed, shrunk = True, False
        while changed and len(used) < SHRINK_CUTS:
            changed, gone, n = False, [], 0
            while n < len(pending) and len(used) < SHRINK_CUTS:
                rest = pending[n:]
                extra = self.masks[rest] & ~self._mask(region)
                near = (extra & (extra - 1)) == 0
                near = np.flatnonzero(near & ~flags_of(self.model.index.apart_twice(region), len(self.boxes))[rest]) + n
                n = len(pending)
                for m in near.tolist():
                    if len(used) >= SHRINK_CUTS:       # each cut can split a set further: stop here
                        break
                    j = int(pending[m])
                    box, apart, count = self.boxes[j], None, 0
                    for name, values in box.items():
                        if not region.get(name, domains[name]).issubset(values):
                            apart, count = name, count + 1
                            if count == 2:
                                break
                    if count == 0:
                        return None, used + [j], []
                    if count == 1:
                        gone.append(m)
                        current = region.get(apart, domains[apart])
                        left = current.difference(box[apart])
                        if left != current:
                            region[apart] = left
                            used.append(j)
                            changed = shrunk = True
                            n = m + 1           # the region leaves fewer fields free: filter again
                            break
            pending = np.delete(pending, gone)
        if shrunk:
            met = np.zeros(len(self.boxes), dtype=bool)
            met[self.model.index.meeting(region)] = True
            pending = pending[met[pending]]
        return normalized(region, self.model.fields), used, pending.tolist()

    def _needed(self, region: Box, cover: list[int]) -> list[int]:
        """The boxes of a small cover that are needed: each one dropped in turn if the rest still
        cover the region (exact subtraction)."""
        if len(cover) > MINIMAL_COVER_MAX:
            return cover
        kept = list(cover)
        for j in reversed(cover):
            rest = [k for k in kept if k != j]
            pieces, complete = subtract_all(region, [self.boxes[k] for k in rest], self.model.fields, 1,
                                            SUBTRACT_BUDGET)
            if rest and not pieces and complete:
                kept = rest
        return kept

    # ----- shadowed and redundant -----------------------------------------------------------
    def shadowed(self, first: int, last: int, meeting: "_Meeting") -> _Answer:
        """COVERED when every box of the rule lies inside the earlier rules; else OPEN with a flow
        the rule decides, or UNDECIDED."""
        cover: list[int] = []
        undecided = None

        def holder(point: dict[str, int]) -> int | None:
            return meeting.cached(("before", first), point, lambda: self.model.index.first_holding(point, first))

        for i in range(first, last + 1):
            answer = self.inside(self.boxes[i], lambda i=i: meeting.bits(i) & below(first), holder)
            if answer.status == OPEN:
                return answer
            if answer.status == UNDECIDED:
                undecided = answer
            cover.extend(answer.cover)
        return undecided or _Answer(COVERED, sorted(set(cover)))

    def redundant(self, first: int, last: int, point: dict[str, int] | None, meeting: "_Meeting") -> _Answer:
        """COVERED when, without the rule, every flow it decides gets the same outcome from the
        rules below; OPEN with a flow whose outcome would change, or UNDECIDED."""
        mine = self.outcome[first]
        if point is not None and self.outcome[self._next(point, last)] != mine:
            return _Answer(OPEN, point=point)
        undecided = None
        for i in range(first, last + 1):
            box, later = self.boxes[i], meeting.after(i, last)
            for k in later.tolist():
                if self.outcome[k] != mine:
                    region = intersect(box, self.boxes[k])

                    def holder(p: dict[str, int], i=i, k=k) -> int | None:
                        found = meeting.cached(("before", i), p, lambda: self.model.index.first_holding(p, i))
                        return found if found is not None else meeting.cached(
                            ("between", k), p, lambda: self.model.index.first_holding(p, k, last + 1))

                    # the boxes deciding first without the rule: before it, its own before i, then up to k
                    deciding = below(i) | (below(k) & ~below(last + 1))
                    answer = self.inside(region, lambda i=i, deciding=deciding: meeting.bits(i) & deciding, holder)
                    if answer.status == OPEN:
                        return answer
                    if answer.status == UNDECIDED:
                        undecided = answer
                if contains(self.boxes[k], box):
                    break           # box k decides everything of box i that is left
        return undecided or _Answer(COVERED)

    def _next(self, point: dict[str, int], last: int) -> int:
        """The box that decides `point` when the boxes up to `last` are removed."""
        return self.model.index.first_holding(point, len(self.boxes), last + 1)

    # ----- findings ---------------------------------------------------------------------------
    def _source_rules(self, indices: list[int]) -> list[tuple[str, typed.Origin]]:
        """Match rules (never the default: it comes last) as their source rules, each once, in order."""
        out: dict[str, typed.Origin] = {}
        for j in sorted(indices):
            _, name, origin, _ = self.model.entries[j]
            out.setdefault(name, origin)
        return list(out.items())

    def shadowed_finding(self, rule: typed.Rule, cover: list[int]) -> LintFinding:
        rules = self._source_rules(cover)
        same = all(self.model.entries[j][0] == rule.action for j in cover)
        words = _rule_list([n for n, _ in rules])
        hint = ("remove it: the rules above already give every flow it matches the same action" if same else
                f"remove it, or move it above {words} if it should decide these flows")
        return LintFinding(
            "L101", f"rule `{rule.origin.name}` is shadowed: {words} decide{'s' if len(rules) == 1 else ''} "
            "every flow it matches", rule.origin.span, rule.origin.span, label="never decides a flow",
            hint=hint, location_text=rule.origin.location_text,
            related=tuple((rule_place(o), f"rule `{n}` covers part of it" if len(rules) > 1 else
                           f"rule `{n}` covers it") for n, o in rules))

    def _redundant_finding(self, rule: typed.Rule, run: tuple[int, int], point: dict[str, int] | None) -> LintFinding:
        notes = ()
        related = ()
        if point is not None:
            k = self._next(point, run[1])
            _, name, origin, _ = self.model.entries[k]
            who = "the default" if origin is None else f"rule `{name}`"
            notes = (f"for example {flow_text(self.schema, point)}: without it, {who} decides this flow, "
                     f"with the same outcome ({rule.action.text()})",)
            related = ((rule_place(origin), f"rule `{name}` takes over this flow"),) if origin is not None else ()
        return LintFinding(
            "L102", f"rule `{rule.origin.name}` is redundant: without it every flow gets the same outcome "
            f"({rule.action.text()}) from the rules below", rule.origin.span, rule.origin.span,
            label="removing it changes nothing", notes=notes, related=related, witness=point,
            location_text=rule.origin.location_text,
            hint="remove it; to keep it on purpose, silence this with `# dpipolicy: ignore L102`")

    def _overlaps(self, rule: typed.Rule, first: int, last: int, meeting: "_Meeting") -> None:
        # Per earlier source rule with another outcome that meets the rule, its first pair of
        # boxes (the rule's box i, its box j) in the order: i, then j. Only the first few pairs
        # are shown, and the others counted.
        mine = [meeting.before(i, first, without=self.with_outcome[self.outcome[i]]) for i in range(first, last + 1)]
        js = np.concatenate(mine)
        if not len(js):
            return
        own = np.repeat(np.arange(first, last + 1), [len(m) for m in mine])
        _, firsts = np.unique(self.source[js], return_index=True)
        firsts.sort()
        shown_pairs = firsts[:OVERLAP_TRIES + NAMES_SHOWN].tolist()
        pairs = {self.model.entries[int(js[m])][1]: (int(own[m]), int(js[m])) for m in shown_pairs}
        earlier = len(firsts)
        # Shown with a flow of both boxes that gets another outcome than the rule's: where a still
        # earlier rule gives every such flow the rule's own outcome, moving it would change nothing.
        shown = None
        for name, (i, j) in itertools.islice(pairs.items(), OVERLAP_TRIES):
            point = realistic_point(self.schema, intersect(self.boxes[i], self.boxes[j]))
            decider = self.model.index.first_holding(point, j + 1)
            if self.outcome[decider] != self.outcome[i]:
                shown = name, j, point, decider
                break
        if shown is None:
            return
        name, j, point, decider = shown
        more = [(n, pair) for n, pair in pairs.items() if n != name]
        others = earlier - 1
        action, _, origin, _ = self.model.entries[j]
        verdict, who = self.model.entries[decider][0], self.model.entries[decider][1]
        notes = [f"for example {flow_text(self.schema, point)} matches both, and gets {verdict.text()} "
                 f"from rule `{who}`"]
        related = [(rule_place(origin), f"rule `{name}` ({action.text()}) comes first")]
        related += [(rule_place(self.model.entries[jj][2]), f"rule `{n}` ({self.model.entries[jj][0].text()}) comes first")
                    for n, (_, jj) in more[:NAMES_SHOWN - 1]]
        if others >= NAMES_SHOWN:
            notes.append(f"and {counted(others - NAMES_SHOWN + 1, 'more earlier rule')} with other actions")
        self.findings.append(LintFinding(
            "L103", f"rule `{rule.origin.name}` ({rule.action.text()}) overlaps the earlier rule `{name}` "
            f"({action.text()}): flows matching both never reach it", rule.origin.span, rule.origin.span,
            label="overlaps an earlier rule", notes=tuple(notes), related=tuple(related), witness=point,
            location_text=rule.origin.location_text, hint=f"if `{rule.origin.name}` should decide those flows, move it above `{name}`; if not, "
                 "nothing needs to change"))

    def _undecided(self, code: str, rule: typed.Rule, what: str, reason: str) -> None:
        self.undecided.append(Undecided(code, f"could not decide {what}", rule.origin.span, rule.origin.span, reason,
                                        rule.origin.location_text))


class _SpecLint:
    """Invariants whose `when`, and tests whose `given`, no flow satisfies."""

    def __init__(self, model: TableModel, placed: list[PlacedItem], spec: typed.Policy, limits: Limits):
        self.model, self.spec, self.limits = model, spec, limits
        self.decls = {(type(p.item), p.item.name.text): p.item for p in placed
                      if isinstance(p.item, ast.InvariantDecl | ast.TestDecl)}
        self.findings: list[LintFinding] = []
        self.undecided: list[Undecided] = []
        self.queries = 0

    def run(self) -> None:
        for inv in self.spec.invariants:
            if inv.exists is None and inv.when != typed.TRUE:
                decl = self.decls[(ast.InvariantDecl, inv.name)]
                with too_large_to_check("invariant", inv.name, inv.span):
                    self._check("L301", f"invariant `{inv.name}` is vacuous: no flow satisfies its `when`, so it "
                                "holds without checking anything", inv.when, decl.when, decl.span, "`when`")
        for test in self.spec.tests:
            decl = self.decls[(ast.TestDecl, test.name)]
            with too_large_to_check("test", test.name, test.span):
                self._check("L302", f"test `{test.name}` checks nothing: no flow satisfies its `given`", test.given,
                            decl.given, decl.span, "`given`")

    def _check(self, code: str, message: str, cond: typed.Cond, expr, item: Span, clause: str) -> None:
        found = search(self.model, cond, self.limits, want_all=False)
        self.queries += found.queries
        if found.found:
            return
        if found.unknown:
            self.undecided.append(Undecided(code, f"could not decide whether {clause} at {item.location()} can "
                                            "hold", expr.span, item, "; ".join(found.unknown[:3])))
            return
        outcome = frozenset(f.name for f in self.model.table.schema.outcome_fields)
        notes: tuple[str, ...] = ()
        span = expr.span
        if typed.mentions(cond, outcome):
            hint = (f"{clause} speaks of the outcome (`action`, `rule`, ...): check that some rule of the policy "
                    "gives that outcome")
        else:
            culprit = self._culprit(cond, expr)
            hint = "look for a field given two values joined with `and`, or an empty set"
            if culprit is not None:
                part, alone = culprit
                span = part.span
                if alone:
                    notes = (f"`{part.span.text}` can never hold",)
                    hint = f"check `{part.span.text}`: a field given two values, or an empty set"
                else:
                    notes = (f"`{part.span.text}` contradicts what comes before it in {clause}",)
                    hint = f"check `{part.span.text}` against the conditions before it"
        self.findings.append(LintFinding(code, message, span, item, label="no flow satisfies this",
                                         notes=notes, hint=hint))

    def _culprit(self, cond: typed.Cond, expr):
        """In a condition `A and B and ...`, the first part after which no flow is left, and
        whether that part holds for no flow even alone (then, for a group `(C and D)`, the
        part inside it that does)."""
        if not isinstance(cond, typed.All) or not isinstance(expr, ast.And) or \
                len(cond.operands) != len(expr.operands):
            return None
        try:
            for m in range(1, len(cond.operands) + 1):
                if not to_boxes(typed.All(cond.operands[:m]), self.model.fields):
                    part, written = cond.operands[m - 1], expr.operands[m - 1]
                    if m > 1 and to_boxes(part, self.model.fields):
                        return written, False
                    return self._culprit(part, written) or (written, True)
        except ExpansionTooLarge:
            return None
        return None


class _Meeting:
    """The boxes meeting each box of one rule, as bitsets: one index query per box, kept while
    the rule is looked at, and listed in table order when asked."""

    def __init__(self, model: TableModel):
        self.model = model
        self.found: dict[int, int] = {}
        self.answers: dict[tuple, int | None] = {}

    def bits(self, i: int) -> int:
        if i not in self.found:
            self.found[i] = self.model.index.meeting_bits(self.model.boxes[i])
        return self.found[i]

    def before(self, i: int, bound: int, without: int = 0) -> np.ndarray:
        """The boxes before `bound` meeting box i, less those of `without` (a bitset)."""
        return rules_of(self.bits(i) & below(bound) & ~without, len(self.model.boxes))

    def after(self, i: int, last: int) -> np.ndarray:
        return rules_of(self.bits(i) & ~below(last + 1), len(self.model.boxes))

    def cached(self, question: tuple, point: dict[str, int], answer):
        """Index answers about one point, kept for the rule: realistic points recur."""
        key = (question, tuple(point[name] for name in self.model.fields))
        if key not in self.answers:
            self.answers[key] = answer()
        return self.answers[key]


def _rule_list(names: list[str]) -> str:
    shown = [f"rule `{n}`" for n in names[:NAMES_SHOWN]]
    more = f" and {counted(len(names) - NAMES_SHOWN, 'more rule')}" if len(names) > NAMES_SHOWN else ""
    if len(shown) == 1:
        return shown[0] + more
    return ", ".join(shown[:-1]) + (", " if more else " and ") + shown[-1] + more
