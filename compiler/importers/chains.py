"""Rule sets as a Linux packet filter holds them, and their flattening into one first-match rule
table (compiler/table.py) that gives every flow the verdict the kernel gives it at one hook.

The frontends (nftables JSON and text, iptables-save) read a file into this model: chains of
rules, each rule a condition (a union of boxes, so negations and concatenated sets stay exact),
non-terminal statements (log) and a verdict. The flattening follows the kernel:

- the base chains attached to the chosen hook run in order of priority; a packet one of them
  accepts goes on to the next, one it drops or rejects stops there; what falls off a base
  chain's end gets that chain's policy;
- `jump` runs a user chain and comes back after the rule; `goto` runs it and comes back to the
  caller's caller; `return`, or the end of a user chain, goes back to where it was called from;
- `log` is kept: every flow that passes a logging rule is logged, whatever decides it later.

Rules are inlined in order, each under the flows still in its chain at that point (its "path"):
a flow that leaves a chain without a verdict the table shows (a return, a goto, an accept that
only passes it to the next base chain) is subtracted from the path by exact box algebra, so the
table's first match is the kernel's verdict. Every source rule keeps its name and location, so
lint sees rules that never decide a flow.

What the rule set never sees (an `ip` table, or an iptables dump, sees no IPv6 packet) is
decided first, with the kernel's outcome for it (`Ruleset.unseen`). What the table cannot hold
exactly is an Approximation: the frontend's (a match it does not model), an ICMP reject of TCP,
a rewrite of the packet before later chains of the hook, a base chain's policy the file does
not give. Each carries the flows it may decide otherwise (the part of the path that meets the
rule), which the verifier uses to mark the results that depend on it; one no flow reaches
changes nothing and is dropped.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dpipolicy.compiler.boxes import Box, intersect, merge, normalized, subtract, subtract_all
from dpipolicy.compiler.table import Approximation, MatchRule, RuleTable
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.catalogue import Catalogue
from dpipolicy.dsl.patterns import union
from dpipolicy.dsl.schema import PROTOCOLS, Field, Schema, build_schema, optional_field
from dpipolicy.dsl.source import Span
from dpipolicy.dsl.typed import Action, Origin

Condition = tuple[Box, ...]         # a union of boxes: ({},) holds for every flow, () for none
EVERY_FLOW: Condition = ({},)
TERMINAL = ("accept", "drop", "reject")
_TCP = {"proto": IntervalSet.point(PROTOCOLS["tcp"])}
MAX_DEPTH = 64                      # jumps within jumps; the kernel's own limit is lower (nft: 16)
REGION_BOXES, REGION_BUDGET = 256, 20_000   # an approximation's flows less those decided before it: else all


@dataclass(frozen=True)
class Verdict:
    kind: str                       # accept, drop, reject, jump, goto, return, or continue (none)
    chain: str | None = None        # the chain a jump or goto goes to
    tcp_reset: bool = False         # reject: with a TCP reset; else with an ICMP error
    rewrites: str = ""              # accept after rewriting the packet (NAT): "destination", "source"
    outcome: Action | None = None   # accept: the table's action instead of allow (a contract's throttle, redirect)


CONTINUE = Verdict("continue")


@dataclass(frozen=True)
class ChainRule:
    condition: Condition
    verdict: Verdict
    name: str                       # for reports: the rule's comment, or chain and position
    location: str                   # file:line, or the JSON path of the rule
    log: bool = False               # a log statement before the verdict
    approximations: tuple[Approximation, ...] = ()
    span: Span | None = None        # the rule's text, when the file is text (for lint and errors)
    # the flows its approximations speak of, when not its condition: a rule read as matching no
    # packet (a match the table cannot hold) may decide the flows its other matches select
    reach: Condition | None = None


@dataclass(frozen=True)
class Chain:
    name: str                       # qualified: "inet filter input", "filter INPUT"
    rules: tuple[ChainRule, ...]
    hook: str | None = None         # base chains only: prerouting, input, forward, output, postrouting
    priority: int = 0
    policy: str = "accept"          # base chains: the verdict for what falls off the end
    location: str = ""
    policy_approximation: Approximation | None = None   # the file does not give the policy: assumed
    approximations: tuple[Approximation, ...] = ()      # of every flow the chain sees (a nat chain's)


@dataclass(frozen=True)
class Ruleset:
    """The chains, and what the flow fields of their conditions are built from beside the
    catalogue: an engine contract's enums (plan, addon, zone, apn) and redirect targets, the
    optional fields the rules test (with their names and patterns: schema.optional_of), and
    the application labels `app` values number (None: any)."""
    chains: tuple[Chain, ...]       # in the order of the file
    source: str                     # the file, for messages
    unseen: tuple[ChainRule, ...] = ()   # flows no chain sees, decided first (accept: the kernel lets them by)
    enums: tuple[tuple[str, tuple[str, ...]], ...] = ()
    redirect_targets: tuple[str, ...] = ()
    # the optional fields its conditions use (schema.OPTIONAL_FIELDS), each with the names and
    # patterns it matches as the language writes them ("eth0", "tun*"; () for others), canonical
    optional: tuple[tuple[str, tuple[str, ...]], ...] = ()
    labels: tuple[str, ...] | None = None

    def chain(self, name: str) -> Chain | None:
        return next((c for c in self.chains if c.name == name), None)

    def hooks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.hook for c in self.chains if c.hook is not None))

    def base_chains(self, hook: str) -> tuple[Chain, ...]:
        """The base chains on `hook`, in the order the kernel runs them (priority, then file order)."""
        return tuple(sorted((c for c in self.chains if c.hook == hook), key=lambda c: c.priority))


Path = list[tuple[Box, bool]]       # the flows still in a chain, each piece with whether it was logged


def rule_names(ruleset: Ruleset) -> tuple[str, ...]:
    """Every name a rule of the flattened table can have: the rules', and each base chain's policy."""
    names = [r.name for r in ruleset.unseen] + [r.name for c in ruleset.chains for r in c.rules]
    names += [f"{c.name} policy" for c in ruleset.chains if c.hook is not None]
    return tuple(dict.fromkeys(names))


def schema_for(ruleset: Ruleset, catalogue: Catalogue) -> Schema:
    """The fields an imported rule set is checked over: the language's, with its rule names, the
    contract's enums and the optional fields it uses."""
    if ruleset.labels is not None and ruleset.labels != catalogue.app_names:
        raise ValueError(f"{ruleset.source} was read with other application labels than this catalogue's")
    return build_schema(catalogue, dict(ruleset.enums), rule_names(ruleset), ruleset.redirect_targets,
                        optional=dict(ruleset.optional))


def used_fields(fields) -> dict[str, tuple[str, ...]]:
    """Optional fields and their patterns (canonical, in value order), as the schema has them."""
    return union(dict(fields))


def field_of(name: str, fields) -> Field:
    """The optional field `name` as the schema of a rule set using these fields has it: what a
    reader computes an interface's values with (dsl/interfaces.values_of)."""
    return optional_field(name, used_fields(fields).get(name, ()))


def flatten(ruleset: Ruleset, hook: str, schema: Schema, approximate: bool = False,
            name: str | None = None) -> tuple[RuleTable, tuple[Approximation, ...]]:
    """The rule table deciding every flow as `ruleset` does at `hook`. Raises DiagnosticError
    for what it cannot hold exactly, unless `approximate`: then those are returned (each with
    the flows it may decide otherwise) and kept in the table."""
    table, approximations, _ = flatten_judged(ruleset, hook, schema, approximate, name)
    return table, approximations


@dataclass(frozen=True)
class Judged:
    """A rule whose verdict decides flows at the hook, met where it stands on a path (lint):
    `before` match rules were emitted ahead of it; a rule met on no flow emits none."""
    rule: ChainRule
    before: int


def flatten_judged(ruleset: Ruleset, hook: str, schema: Schema, approximate: bool = False, name: str | None = None
                   ) -> tuple[RuleTable, tuple[Approximation, ...], tuple[Judged, ...]]:
    """`flatten`, with every rule that gives a verdict at the hook, in the order met."""
    # a base chain without rules that accepts changes no verdict: the chain before it decides
    bases = tuple(b for b in ruleset.base_chains(hook) if b.rules or b.policy != "accept"
                  or b.policy_approximation is not None) or ruleset.base_chains(hook)[-1:]
    if not bases:
        raise DiagnosticError([Diagnostic(
            "E710", f"no base chain of {ruleset.source} is on the {hook} hook", None, location_text=ruleset.source,
            help="pick one with --chain: " + (", ".join(ruleset.hooks()) or "this rule set has no base chain"))])
    flattener = _Flattener(ruleset, schema)
    path: Path = [({}, False)]
    for rule in ruleset.unseen:
        flattener.decide(path, rule, judged=False)
        path = flattener.outside(path, rule.condition)
    for k, base in enumerate(bases):
        final = k == len(bases) - 1
        flattener.accepted = []
        rest = flattener.run(base, path, final, (base.name,))
        policy = Origin(f"{base.name} policy", None, base.location)
        if base.policy_approximation is not None:
            flattener.approximated(base.policy_approximation, rest)
        if final:           # the table's default, but for logged flows
            flattener.emit_all([p for p in rest if p[1]], Action("block" if base.policy == "drop" else "allow"),
                               policy)
        elif base.policy == "drop":
            flattener.emit_all(rest, Action("block"), policy)
        else:
            flattener.accepted += rest
        path = flattener.accepted
    default = Action("block" if bases[-1].policy == "drop" else "allow")
    approximations = flattener.found()
    if approximations and not approximate:
        raise DiagnosticError([Diagnostic("E711", f"{a.what}, which the rule table cannot hold exactly", None,
                                          location_text=a.location,
                                          help=f"pass --approximate to read it as: {a.instead}")
                               for a in approximations])
    table = RuleTable(name or ruleset.source, None, schema, tuple(flattener.rules), default,
                      approximations=approximations)
    return table, approximations, tuple(flattener.judged)


class _Flattener:
    def __init__(self, ruleset: Ruleset, schema: Schema):
        self.ruleset = ruleset
        self.fields = {f.name: f for f in schema.flow_fields}
        self.order = {name: k for k, name in enumerate(self.fields)}     # matches in schema order, as lower writes them
        self.rules: list[MatchRule] = []
        # by Approximation.key(): the approximation, and its flows with the number of rules emitted before them
        self.regions: dict[tuple, tuple[Approximation, list[tuple[Box, int]]]] = {}
        self.accepted: Path = []     # flows a base chain before the last accepts: on to the next one
        self.judged: list[Judged] = []
        self._disjoint: dict[int, Condition] = {}

    def run(self, chain: Chain, path: Path, final: bool, stack: tuple[str, ...]) -> Path:
        """Inline `chain` for the flows of `path`; the flows that leave it without a verdict
        (a return, its end) are returned, with the pieces gone to a goto's chain and back."""
        back: Path = []
        for approximation in chain.approximations:
            self.approximated(approximation, path)
        for k, rule in enumerate(chain.rules):
            if not path:            # the rest decide no flow: lint says so
                self.judged += [Judged(r, len(self.rules)) for r in chain.rules[k:] if self.decides(r, final)]
                break
            verdict = rule.verdict
            for approximation in rule.approximations:
                reach = rule.condition if rule.reach is None else rule.reach
                self.approximated(approximation, self.within(path, reach, False))
            if verdict.kind == "continue":
                path = self.logged(path, rule.condition) if rule.log else path
            elif verdict.kind in ("drop", "reject") or (verdict.kind == "accept" and final):
                self.decide(path, rule)
            elif verdict.kind == "accept":            # on to the next base chain
                passed = self.within(path, rule.condition, rule.log)
                if verdict.outcome is not None and passed:
                    raise DiagnosticError([Diagnostic(
                        "E755", f"`{verdict.outcome.text()}` before another base chain on the same hook", None,
                        location_text=rule.location,
                        help="the table would have to carry the outcome through the later base chains' verdicts; "
                             "flatten the rule set at a hook where it is in the last base chain")])
                if verdict.rewrites:
                    self.approximated(Approximation(
                        rule.name, rule.location, f"the rule rewrites the packet's {verdict.rewrites} address, "
                        "which the later chains of the hook see", "those chains seeing the packet as it came"),
                        passed)
                self.accepted += passed
                path = self.outside(path, rule.condition)
            elif verdict.kind == "return":
                back += self.within(path, rule.condition, rule.log)
                path = self.outside(path, rule.condition)
            else:                                     # jump, goto
                target = self.target(rule, stack)
                came_back = self.run(target, self.within(path, rule.condition, rule.log), final,
                                     stack + (target.name,))
                path = self.outside(path, rule.condition)
                if verdict.kind == "jump":
                    path = path + came_back
                else:
                    back += came_back
        return back + path

    def target(self, rule: ChainRule, stack: tuple[str, ...]) -> Chain:
        name = rule.verdict.chain
        chain = self.ruleset.chain(name)
        if chain is None:
            raise DiagnosticError([Diagnostic("E712", f"`{rule.verdict.kind} {name}`: there is no chain `{name}`",
                                              None, location_text=rule.location,
                                              help="the rule set must hold every chain its rules jump to")])
        if name in stack or len(stack) >= MAX_DEPTH:
            raise DiagnosticError([Diagnostic("E713", f"`{rule.verdict.kind} {name}` loops: "
                                              + " -> ".join(stack + (name,)), None, location_text=rule.location,
                                              help="the kernel refuses a rule set whose jumps loop")])
        return chain

    def approximated(self, approximation: Approximation, flows: Path) -> None:
        """Record that these flows of the path meet something the table does not hold exactly."""
        if flows:
            _, boxes = self.regions.setdefault(approximation.key(), (approximation, []))
            boxes += [(box, len(self.rules)) for box, _ in flows]

    def found(self) -> tuple[Approximation, ...]:
        """The approximations some flow reaches, in the order met, each with the flows it may
        decide otherwise: a path keeps the flows earlier rules decide (the table's first match
        hides them), so those are subtracted here, exactly where that takes little work; where
        it takes more, the region keeps them (it is then larger than it need be, never smaller)."""
        out = []
        for approximation, flows in self.regions.values():
            region: list[Box] = []
            for box, before in flows:
                earlier = [r.box() for r in self.rules[:before] if intersect(r.box(), box) is not None]
                pieces, complete = subtract_all(box, earlier, self.fields, REGION_BOXES, REGION_BUDGET)
                region += pieces if complete else [box]
            if region:
                out.append(Approximation(*approximation.key(), tuple(merge(region, self.fields))))
        return tuple(out)

    @staticmethod
    def decides(rule: ChainRule, final: bool) -> bool:
        return rule.verdict.kind in ("drop", "reject") or (rule.verdict.kind == "accept" and final)

    def decide(self, path: Path, rule: ChainRule, judged: bool = True) -> None:
        """Emit the rule's verdict for its flows in `path` (first match keeps them from later rules)."""
        if judged:
            self.judged.append(Judged(rule, len(self.rules)))
        origin = Origin(rule.name, rule.span, rule.location)
        if rule.verdict.kind == "accept":
            self.emit_all(self.within(path, rule.condition, rule.log), rule.verdict.outcome or Action("allow"), origin)
        elif rule.verdict.kind == "drop":
            self.emit_all(self.within(path, rule.condition, rule.log), Action("block"), origin)
        elif rule.verdict.tcp_reset:                  # the frontends make sure only TCP reaches it
            self.emit_all(self.within(path, rule.condition, rule.log), Action("reset"), origin)
        else:
            self.reject_with_icmp(path, rule, origin)

    def reject_with_icmp(self, path: Path, rule: ChainRule, origin: Origin) -> None:
        """An ICMP error is the loud refusal of a non-TCP flow: the language's `reset` (as the
        nftables backend compiles it). A TCP flow refused that way gets no reset: approximated."""
        flows = self.within(path, rule.condition, rule.log)
        self.approximated(Approximation(rule.name, rule.location, "the rule answers TCP flows with an ICMP error",
                                        "`reset` (a TCP reset) for them"), self.within(flows, (_TCP,), False))
        self.emit_all(flows, Action("reset"), origin)

    def emit_all(self, path: Path, action: Action, origin: Origin) -> None:
        for box, logged in path:
            with_log = dataclasses.replace(action, log=True) if logged else action
            matches = tuple(sorted(normalized(box, self.fields).items(), key=lambda item: self.order[item[0]]))
            self.rules.append(MatchRule(len(self.rules), matches, with_log, origin))

    def within(self, path: Path, condition: Condition, log: bool) -> Path:
        """The pieces of `path` inside `condition`, logged when `log`: disjoint when the pieces of
        `path` are, so a path never holds a flow twice."""
        out: Path = []
        for box, logged in path:
            for part in self.disjoint(condition):
                both = intersect(box, part)
                if both is not None:
                    out.append((both, logged or log))
        return out

    def disjoint(self, condition: Condition) -> Condition:
        """The same union as disjoint boxes (each part minus the parts before it)."""
        if len(condition) < 2:
            return condition
        done = self._disjoint.get(id(condition))
        if done is None:
            pieces: list[Box] = []
            for part in condition:
                rest = [part]
                for earlier in pieces:
                    rest = [p for r in rest for p in subtract(r, earlier, self.fields)]
                pieces += rest
            done = self._disjoint[id(condition)] = tuple(pieces)
        return done

    def outside(self, path: Path, condition: Condition) -> Path:
        """The pieces of `path` outside `condition`, exactly."""
        for part in condition:
            path = [(piece, logged) for box, logged in path for piece in subtract(box, part, self.fields)]
        return path

    def logged(self, path: Path, condition: Condition) -> Path:
        """A log statement without a verdict: the flows inside `condition` are logged, and go on."""
        return self.within(path, condition, True) + self.outside(path, condition)
