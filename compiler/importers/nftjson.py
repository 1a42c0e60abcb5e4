"""The kernel's copy of the rules (`nft -j list table inet NAME`) read back into a rule table
under the engine contract (docs/enforcement.md), so that the kernel check proves what the
kernel holds, not what dpipolicy meant to write.

Reading is exact or it fails: every match and statement of a rule must be one the contract
defines, with a value read whole; a rule may jump to a chain of such rules (one level, as the
backend's chains of protocol tests do). Anything else (an unknown key or statement, a jump
from a jumped-to chain, a partial hour, a subscriber set on the wrong side) is an E51x error
at its JSON path, never a rule read in part.
"""
from __future__ import annotations

import re

from dpipolicy.compiler.backends.contract import Contract
from dpipolicy.compiler.boxes import Box, normalized
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.typed import Action, Origin

from .nftexpr import (CONDITION, MATCH, SHAPE, STATEMENT, Decoder, Unread, only_key, redirect_mark, restrict,
                      short, throttle_rate, verdicts)

CODES = {SHAPE: "E510", MATCH: "E511", CONDITION: "E512", STATEMENT: "E513"}
_COMMENT = re.compile(r"^dpipolicy rule (?P<name>\S+)(?: #(?P<index>\d+))?$")


def read_kernel_table(ruleset: dict, contract: Contract, schema: Schema, source: str = "kernel") -> RuleTable:
    """The contract's table in `ruleset` (`nft -j list table` or `list ruleset`) as a rule table
    over `schema`. Raises DiagnosticError with every rule that cannot be read exactly."""
    return read_kernel_rules(ruleset, contract, schema, source)[0]


def read_kernel_rules(ruleset: dict, contract: Contract, schema: Schema,
                      source: str = "kernel") -> tuple[RuleTable, tuple[int | str | None, ...]]:
    """The table, and each of its rules' tag: the index of the match rule its comment
    (`dpipolicy rule NAME #INDEX`) names, `default`, or None. Tags only group the rules for a
    quicker proof (verifier/kernel.py); nothing is taken on their word."""
    reader = _Reader(contract, schema, source)
    try:
        reader.index(ruleset)
        reader.check_base_chains()
    except Unread as err:
        raise DiagnosticError([reader.diagnostic(err)]) from None
    return reader.table(), tuple(reader.tags)


def _tag(rule: dict) -> int | str | None:
    found = _COMMENT.match(rule.get("comment") or "")
    if found is None:
        return None
    return int(found["index"]) if found["index"] is not None else found["name"]


class _Reader:
    def __init__(self, contract: Contract, schema: Schema, source: str):
        self.contract, self.schema, self.source = contract, schema, source
        self.fields = {f.name: f for f in schema.flow_fields}
        self.order = {f.name: k for k, f in enumerate(schema.flow_fields)}      # a box's fields in the schema's order
        self.decoder = Decoder(schema, self.constant_set, contract)
        self.chains: dict[str, tuple[str, dict]] = {}       # name -> (path, chain object)
        self.rules: dict[str, list[tuple[str, dict]]] = {}  # chain name -> [(path, rule object)]
        self.throttles: dict[str, int] = {}
        self.sets: dict[str, tuple[str, dict]] = {}         # name -> (path, set object)
        self.tags: list[int | str | None] = []
        self.jumped: dict[str, list[tuple[Box, list, Action]]] = {}      # chain name -> its rules, read

    def diagnostic(self, err: Unread) -> Diagnostic:
        return Diagnostic(CODES[err.kind], err.message, location_text=f"{self.source}: {err.path}")

    def index(self, ruleset) -> None:
        objects = ruleset.get("nftables") if isinstance(ruleset, dict) else None
        if not isinstance(objects, list):
            raise Unread(SHAPE, "nftables", "not the JSON of `nft -j list`: no `nftables` list")
        for i, obj in enumerate(objects):
            path = f"nftables[{i}]"
            kind = only_key(obj, path, SHAPE, "an entry")
            body = obj[kind]
            if kind not in ("chain", "rule", "set") or not isinstance(body, dict) or \
                    (body.get("family"), body.get("table")) != ("inet", self.contract.table):
                continue
            if kind == "set":
                self.sets[body.get("name")] = (path, body)
            elif kind == "chain":
                self.chains[body.get("name")] = (path, body)
                self.rules.setdefault(body.get("name"), [])
            else:
                self.rules.setdefault(body.get("chain"), []).append((f"{path}.rule", body))
        if self.contract.chain not in self.chains:
            raise Unread(SHAPE, "nftables", f"no chain `{self.contract.chain}` in table inet {self.contract.table}")

    def check_base_chains(self) -> None:
        """Every base chain only jumps to the rules' chain and accepts what comes back: then a
        flow no rule takes is allowed."""
        if self.contract.base_chain not in self.chains:
            raise Unread(SHAPE, "nftables", f"no base chain `{self.contract.base_chain}` in table inet "
                                             f"{self.contract.table}")
        jump = [{"jump": {"target": self.contract.chain}}]
        for name, (path, chain) in self.chains.items():
            if "hook" not in chain:
                continue
            if chain.get("policy") != "accept":
                raise Unread(SHAPE, path, f"base chain `{name}` has policy {chain.get('policy')}, not accept")
            if [verdicts(rule) for _, rule in self.rules[name]] != [jump]:
                raise Unread(SHAPE, path, f"base chain `{name}` does more than `jump {self.contract.chain}`")

    def table(self) -> RuleTable:
        decoded, errors = [], []
        for path, rule in self.rules[self.contract.chain]:
            try:
                decoded += self.rule(path, rule)
            except Unread as err:
                errors.append(self.diagnostic(err))
        if errors:
            raise DiagnosticError(errors)
        default = Action("allow")           # a flow falling off the chain returns to the base chain's accept
        if decoded and decoded[-1][0] == {}:
            default = decoded.pop()[1]
        rules = []
        for box, action, origin, tag in decoded:
            if box is not None:
                matches = tuple((name, box[name]) for name in sorted(box, key=self.order.__getitem__))
                rules.append(MatchRule(len(rules), matches, action, origin))
                self.tags.append(tag)
        return RuleTable(None, None, self.schema, tuple(rules), default)

    def rule(self, path: str, rule: dict) -> list[tuple[Box | None, Action, Origin, int | str | None]]:
        """A kernel rule of the chain as the rules it stands for, each with its box (None when
        it meets no flow), action, origin and tag: itself, or for a rule that jumps to a chain
        (nftables.ProtocolChains), one per rule of that chain, its box within the rule's; a
        flow none of them takes goes on to the next rule."""
        box, sides, action = self.statements(path, rule, jumps=True)
        origin, tag = self.origin(rule), _tag(rule)
        if isinstance(action, Action):
            return [(self.finished(box, sides), action, origin, tag)]
        out = []
        for inner, inner_sides, inner_action in self.chain(action, path):
            merged = dict(box)
            for name, values in inner.items():
                restrict(merged, name, values)
            out.append((self.finished(merged, sides + inner_sides), inner_action, origin, tag))
        return out

    def finished(self, box: Box, sides: list) -> Box | None:
        if not all(v.intervals for v in box.values()):
            return None                     # meets no flow
        self.decoder.check_sides(box, sides)
        return normalized(box, self.fields)

    def chain(self, target, where: str) -> list[tuple[Box, list, Action]]:
        """The rules of a chain a rule jumps to, each as its box, subscriber sides and action
        (read once per chain): rules that end in a verdict of their own, with no jump."""
        if target not in self.jumped:
            found = self.chains.get(target) if isinstance(target, str) else None
            if found is None or "hook" in found[1] or target == self.contract.chain:
                raise Unread(STATEMENT, where, f"`jump {short(target)}`: not a chain of rules of table inet "
                                               f"{self.contract.table}")
            try:
                self.jumped[target] = [self.statements(path, rule, jumps=False) for path, rule in self.rules[target]]
            except Unread as err:
                raise Unread(STATEMENT, where, f"`jump {target}`: a rule of that chain is not one the contract "
                                               f"defines ({err.path}: {err.message})") from None
        return self.jumped[target]

    def statements(self, path: str, rule: dict, jumps: bool) -> tuple[Box, list, Action | str]:
        """A kernel rule's box, subscriber sides (path, direction, words) and action, or the
        chain it jumps to where `jumps`."""
        expr = rule.get("expr")
        if not isinstance(expr, list):
            raise Unread(SHAPE, path, "a rule without an `expr` list")
        box: Box = {}
        sides: list[tuple[str, int, str]] = []      # (path, direction, words) of each subscriber set test
        log, mark, action = False, None, None
        for j, e in enumerate(expr):
            where = f"{path}.expr[{j}]"
            key = only_key(e, where, STATEMENT, "a statement")
            if action is not None:
                raise Unread(STATEMENT, where, f"`{key}` after the rule's verdict")
            if key == "match":
                if log or mark is not None:
                    raise Unread(STATEMENT, where, "a match after a statement: it would act on part of the rule's flows")
                self.decoder.match(e["match"], where, box, sides)
            elif key == "counter":
                continue
            elif key == "log":
                if not (e["log"] is None or isinstance(e["log"], dict) and set(e["log"]) <= {"prefix", "level"}):
                    raise Unread(STATEMENT, where, f"`log` with options other than prefix and level: {short(e['log'])}")
                log = True
            elif key == "mangle":
                mark = redirect_mark(e["mangle"], where, self.contract.redirect_targets)
            elif key == "accept" and e[key] is None:
                action = Action("allow") if mark is None else \
                    Action("redirect", target=self.contract.redirect_targets[mark - 1])
            elif mark is not None:
                raise Unread(STATEMENT, where, f"`meta mark set` followed by `{key}`, not accept")
            elif key == "drop" and e[key] is None:
                action = Action("block")
            elif key == "reject":
                action = self.reset(e["reject"], where, box)
            elif key == "goto" and isinstance(e[key], dict):
                action = Action("throttle", rate=self.throttle(e[key].get("target"), where))
            elif key == "jump" and isinstance(e[key], dict) and jumps and not log:
                self.chain(e[key].get("target"), where)
                return box, sides, e[key]["target"]
            elif key == "jump" and log:
                raise Unread(STATEMENT, where, "`log` before `jump`: it would log flows the chain does not take")
            elif key == "jump":
                raise Unread(STATEMENT, where, "`jump` in a chain a rule jumps to: the contract jumps one level")
            else:
                raise Unread(STATEMENT, where, f"statement or verdict `{key}` is not one the contract defines")
        if action is None:
            raise Unread(STATEMENT, path, "a rule without a verdict: the chain would go on with the flow")
        return box, sides, Action(action.kind, action.rate, action.target, log)

    def origin(self, rule: dict) -> Origin:
        handle = rule.get("handle")
        found = _COMMENT.match(rule.get("comment") or "")
        name = found["name"] if found else f"handle {handle}"
        return Origin(name, None, f"{self.source}: chain {self.contract.chain}, handle {handle}")

    # statements

    def reset(self, reject, where: str, box: Box) -> Action:
        """`reject with tcp reset` on TCP flows, `reject with icmpx admin-prohibited` on others."""
        proto = box.get("proto", self.fields["proto"].domain)
        if reject == {"type": "tcp reset"}:
            if not proto.issubset(IntervalSet.point(6)):
                raise Unread(STATEMENT, where, "`reject with tcp reset` on a rule that does not test `meta l4proto tcp`")
        elif reject == {"type": "icmpx", "expr": "admin-prohibited"}:
            if 6 in proto:
                raise Unread(STATEMENT, where, "`reject with icmpx admin-prohibited` on a rule that matches TCP: "
                                                "the contract resets TCP with `tcp reset`")
        else:
            raise Unread(STATEMENT, where, f"`reject` {short(reject)} is not tcp reset or icmpx admin-prohibited")
        return Action("reset")

    def throttle(self, target, where: str) -> int:
        """The rate in bps of a throttle chain: [update @TARGET_flows {ct id limit rate over R} drop], [accept]."""
        if target not in self.throttles:
            if target not in self.chains:
                raise Unread(STATEMENT, where, f"`goto {short(target)}`: no such chain")
            self.throttles[target] = throttle_rate(target, self.chains[target][0], self.rules[target])
        return self.throttles[target]

    def constant_set(self, name: str, path: str) -> tuple[list, str]:
        """A named set of constants (`@values_3`): its elements, which the rules cannot change
        (no timeout, no dynamic updates)."""
        found = self.sets.get(name[1:])
        if found is None or self.contract.set_named(name[1:]) is not None:
            raise Unread(MATCH, path, f"`{name}` is not a set of constants of table inet {self.contract.table}")
        where, body = found
        if not set(body.get("flags", ())) <= {"interval", "constant"} or "timeout" in body:
            raise Unread(MATCH, path, f"`{name}` is not a subscriber set of the contract, and it may change "
                                      f"while loaded (flags {', '.join(body.get('flags', ()))}): only sets of "
                                      f"constants are read")
        return body.get("elem", []), where
