"""Real nftables rule sets read into the chain model of chains.py: `nft -j list ruleset`, or
nft's own text, which the kernel reads in a fresh network namespace and lists back as JSON.

Every table of the families that filter IP packets (ip, ip6, inet) is read: its base chains
with hook, priority and policy, its user chains, and each rule's matches, statements and
verdict, exactly, as a condition (a union of boxes) and a verdict. What the kernel does that
the rule table cannot hold is either an error at its JSON path (`nftables[12].rule.expr[2]`),
or, where a plain reading exists, an Approximation in the rule (a match on a field the
language has not, a rate limit that guards a verdict, a set the rules change), which the
flattening turns into an error unless asked to approximate. docs/import.md lists both.

The kernel's own rules are followed where the listing hides them: a payload match implies its
protocol and address family (`tcp dport` is `meta l4proto tcp` first), a reject with a TCP
reset tests TCP and one with `icmp` or `icmpv6` tests the family, an `ip` table never sees
IPv6 packets (read as a first rule accepting them), and base chains of one priority run in
the reverse of the order they were registered in.

Under an engine contract (docs/enforcement.md) the contract's table reads as the kernel check
reads it (nftexpr.py): the connection's original tuple, the connection-mark fields, the
subscriber sets, and a throttle or redirect as the table's outcome.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Callable

from dpipolicy.compiler.backends.contract import FAMILY_SPACE, PORT_PROTOCOLS, Contract
from dpipolicy.compiler.boxes import Box, hull, intersect, subtract
from dpipolicy.compiler.table import Approximation
from dpipolicy.dsl.catalogue import Catalogue, load_catalogue
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, cannot_read
from dpipolicy.dsl.interfaces import with_interfaces
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import (ADDON_PREFIX, CT_STATE, DOMAIN_SPECIAL, ICMP_TYPE, PROTOCOLS, SNI, Schema,
                                  optional_of)
from dpipolicy.dsl.typed import Action
from dpipolicy.dsl.values import ValueError_

from .chains import CONTINUE, EVERY_FLOW, Chain, ChainRule, Condition, Ruleset, Verdict, schema_for
from .nftexpr import (CONDITION, MATCH, NAME_KEYS, SHAPE, STATEMENT, TYPE_HEADERS, Decoder, Unread, address_number,
                      element_value, only_key, port_number, prefix_interval, protocol_number, redirect_mark, short,
                      throttle_rate)

CODES = {SHAPE: "E740", MATCH: "E743", CONDITION: "E743", STATEMENT: "E745"}
E_FAMILY, E_CHAIN, E_FIELD, E_MAP, E_CONTRACT = "E741", "E742", "E744", "E746", "E750"
E_NO_NFT, E_REFUSED, E_FILE, E_NAMESPACE = "E751", "E752", "E753", "E754"

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
# nft's names of the standard priorities of the ip, ip6 and inet families.
PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_PRIORITY = re.compile(r"^\s*([a-z]+)\s*(?:([+-])\s*(\d+))?\s*$")
V4, V6 = FAMILY_SPACE[4], FAMILY_SPACE[6]
FAMILY_BOX = {"ipv4": {"src.ip": V4, "dst.ip": V4}, "ipv6": {"src.ip": V6, "dst.ip": V6}}
# The address family each table family sees; inet sees both.
TABLE_FAMILIES = {"ip": "ipv4", "ip6": "ipv6", "inet": None}
PORT_HEADERS = {name: number for number, name in PORT_PROTOCOLS.items()}    # `tcp dport` implies tcp
ETHER_TYPES = {"ip": 0x0800, "ip6": 0x86DD}
_PORTED = IntervalSet.of((p, p) for p in PORT_PROTOCOLS)
_TCP = IntervalSet.point(PROTOCOLS["tcp"])
# Statements that change nothing a verdict of the rule table depends on.
_IGNORED_MANGLE = ({"meta": {"key": "mark"}}, {"meta": {"key": "priority"}}, {"meta": {"key": "nftrace"}},
                   {"ct": {"key": "mark"}}, {"ct": {"key": "label"}})
NAT = ("dnat", "snat", "masquerade", "redirect")
# `iif lo` tests the interface's index, bound when the rule set is loaded: read as its name.
INDEX_KEYS = {"iif": "iifname", "oif": "oifname"}
# The optional fields of the language a left side of nft tests (interfaces: with the names it lists).
STATE_LEFT = {"ct": {"key": "state"}}


def read_nft_json(data, source: str, contract: Contract | None = None,
                  catalogue: Catalogue | None = None) -> Ruleset:
    """The rule set of `nft -j list ruleset` output (parsed JSON). Under `contract`, the
    contract's table is read as dpipolicy's own (nftjson.py). Raises DiagnosticError with
    every part that cannot be read, each at its JSON path."""
    return _Reader(data, source, contract, catalogue or load_catalogue(())).ruleset()


def read_nft_text(path, contract: Contract | None = None, catalogue: Catalogue | None = None) -> Ruleset:
    """The rule set of an `nft -f` file: nft loads it into a fresh network namespace and lists
    it back as JSON, so that the text means what the kernel makes of it. Errors are nft's own,
    at the file's line and column; without nft, an error saying so."""
    return read_nft_json(kernel_listing(path), os.fspath(path), contract, catalogue)


def kernel_listing(path) -> dict:
    """`nft -j list ruleset` of the `nft -f` file loaded into a fresh network namespace."""
    from dpipolicy.compiler.netns import NamespaceError, run_in_namespace     # the kernel's side of the import
    name = os.fspath(path)
    try:
        with open(name, "rb"):
            pass
    except OSError as exc:
        raise DiagnosticError([cannot_read(E_FILE, "nftables rule set", name, exc,
                                           "give the file `nft list ruleset` wrote, or the one `nft -f` loads")])
    if shutil.which("nft") is None:
        raise DiagnosticError([Diagnostic(
            E_NO_NFT, "reading nftables text needs nft, which is not on PATH", None, location_text=name,
            help="install nftables, or give the JSON of `nft -j list ruleset`, which needs no nft")])
    try:
        done = run_in_namespace(["sh", "-c", 'nft -f "$1" && nft -j list ruleset', "sh", name], timeout=600)
    except NamespaceError as exc:
        raise DiagnosticError([Diagnostic(E_NAMESPACE, f"nft cannot read {name} in a network namespace of its "
                                                       f"own: {exc}", None, location_text=name,
                                          help="give the JSON of `nft -j list ruleset` instead")]) from None
    if done.returncode != 0:
        raise DiagnosticError(_refusals(name, done.stderr.decode(errors="replace")))
    return json.loads(done.stdout)


_NFT_ERROR = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+)(?:-\d+)?: Error: (?P<message>.*)$")


def _refusals(name: str, stderr: str) -> list[Diagnostic]:
    """nft's errors as diagnostics at their line and column (nft writes `FILE:LINE:COL-COL: Error: ...`)."""
    out = []
    for line in stderr.splitlines():
        found = _NFT_ERROR.match(line)
        if found is not None:
            out.append(Diagnostic(E_REFUSED, f"nft: {found['message']}", None,
                                  location_text=f"{found['file']}:{found['line']}:{found['column']}",
                                  help="the kernel's nft refuses the rule set as it is; `nft -c -f FILE` shows "
                                       "the same"))
    return out or [Diagnostic(E_REFUSED, f"nft: {stderr.strip() or 'refused the rule set'}", None,
                              location_text=name, help="`nft -c -f FILE` shows the same")]


@dataclass
class _Table:
    family: str
    name: str
    path: str
    sets: dict                      # name -> (path, set object)
    maps: dict                      # name -> (path, map object)
    chains: dict                    # name -> (path, chain object)
    rules: dict                     # chain name -> [(path, rule object)]
    written: set                    # the sets and maps a rule adds to, updates or deletes from
    dormant: bool = False

    def qualified(self, chain: str) -> str:
        return f"{self.family} {self.name} {chain}"


@dataclass(frozen=True)
class _Key:
    """A match's left side the table reads: the field, what the expression itself requires
    (its protocol or family), the values a right side names, and the field's own values."""
    field: str
    implied: Box
    parse: Callable[[object, str], IntervalSet]
    domain: IntervalSet
    th: bool = False                # a transport header's port, which a protocol without ports lacks


class _Rule:
    """What is known of the rule being read: its name, and the approximations found in it."""

    def __init__(self, name: str, path: str, source: str):
        self.name, self.path, self.source = name, path, source
        self.approximations: list[Approximation] = []

    def approximate(self, where: str, what: str, instead: str) -> None:
        self.approximations.append(Approximation(self.name, f"{self.source}: {where}", what, instead))


class _Reader:
    def __init__(self, data, source: str, contract: Contract | None, catalogue: Catalogue):
        self.source, self.contract, self.catalogue = source, contract, catalogue
        self.data = data
        self.errors: list[Diagnostic] = []
        self.tables: list[_Table] = []
        enums, targets, optional, labels = (), (), {}, None
        if contract is not None:
            enums, targets, labels = _contract_enums(contract), contract.redirect_targets, contract.labels
            if contract.server_names is not None:
                optional[SNI] = tuple(contract.server_names[len(DOMAIN_SPECIAL):])
        self.context = dict(enums=enums, redirect_targets=targets, optional=tuple(optional.items()), labels=labels)
        self.schema: Schema | None = None
        self.rule: _Rule | None = None

    def error(self, code: str, where: str, message: str, help: str | None = None) -> None:
        self.errors.append(Diagnostic(code, message, None, location_text=f"{self.source}: {where}", help=help))

    def unread(self, err: Unread) -> None:
        self.error(CODES[err.kind], err.path, err.message)

    # ----- the whole rule set ----------------------------------------------------------------
    def ruleset(self) -> Ruleset:
        labels = self.context["labels"]
        if labels is not None and labels != self.catalogue.app_names:
            raise DiagnosticError([Diagnostic(
                E_CONTRACT, "the contract's application labels are not those of the catalogue", None,
                location_text=self.source, help="read the rule set with the catalogue the policy was compiled with")])
        try:
            self.index()
        except Unread as err:
            raise DiagnosticError([Diagnostic(CODES[err.kind], err.message, None,
                                              location_text=f"{self.source}: {err.path}")]) from None
        self.schema = self.fields_used()
        self.context["optional"] = tuple(optional_of(self.schema).items())
        if self.contract is not None and not any((t.family, t.name) == ("inet", self.contract.table)
                                                 for t in self.tables):
            self.error(E_CONTRACT, "nftables", f"no table inet {self.contract.table}, the contract's",
                       help="export the rule set with dpipolicy's table in it, or read it without the contract")
        chains = []
        for table in self.tables:
            if not table.dormant:
                chains += self.table_chains(table)
        if self.errors:
            raise DiagnosticError(self.errors)
        return Ruleset(_kernel_order(chains, self.source), self.source, **self.context)

    def index(self) -> None:
        objects = self.data.get("nftables") if isinstance(self.data, dict) else None
        if not isinstance(objects, list):
            raise Unread(SHAPE, "nftables", "not the JSON of `nft -j list ruleset`: no `nftables` list")
        tables: dict[tuple[str, str], _Table] = {}
        for i, obj in enumerate(objects):
            path = f"nftables[{i}]"
            kind = only_key(obj, path, SHAPE, "an entry")
            body = obj[kind]
            if kind in ("metainfo", "counter", "quota", "limit", "ct helper", "ct timeout", "ct expectation",
                        "secmark", "synproxy", "flowtable"):
                continue                    # named objects: a rule that uses one says so itself
            if kind not in ("table", "set", "map", "chain", "rule") or not isinstance(body, dict):
                raise Unread(SHAPE, path, f"an entry `{kind}`, which `nft -j list ruleset` does not write")
            family = body.get("family")
            name = body.get("name") if kind == "table" else body.get("table")
            if not isinstance(family, str) or not isinstance(name, str):
                raise Unread(SHAPE, path, f"a {kind} without its family and table")
            if family == "arp":
                continue                    # its chains see ARP packets only, never an IP flow
            if family not in TABLE_FAMILIES:
                if kind == "table":
                    self.error(E_FAMILY, path, f"table {family} {name}: tables of family {family} filter frames "
                                               f"outside the IP hooks, which the rule table does not model",
                               help="export the ip, ip6 and inet tables only (`nft -j list table inet NAME`)")
                continue
            key = (family, name)
            if kind == "table":
                tables[key] = _Table(family, name, path, {}, {}, {}, {}, set(), "dormant" in (body.get("flags") or ()))
                self.tables.append(tables[key])
                continue
            table = tables.get(key)
            if table is None:
                raise Unread(SHAPE, path, f"a {kind} of table {family} {name} before the table")
            if kind in ("set", "map"):
                getattr(table, f"{kind}s")[body.get("name")] = (path, body)
            elif kind == "chain":
                table.chains[body.get("name")] = (path, body)
                table.rules.setdefault(body.get("name"), [])
            else:
                table.rules.setdefault(body.get("chain"), []).append((f"{path}.rule", body))
                for e in body.get("expr") or ():
                    written = e.get("set") or e.get("map") if isinstance(e, dict) else None
                    if isinstance(written, dict) and isinstance(written.get("set", written.get("map")), str):
                        table.written.add(written.get("set", written.get("map")).lstrip("@"))

    def fields_used(self) -> Schema:
        """The schema of the rule set: the language's fields, with the optional ones its rules
        test (ct.state, icmp.type, iface.in and iface.out over the names and patterns listed)."""
        optional = dict(self.context["optional"])       # the contract's server names
        names: dict[str, list[str]] = {}
        for table in self.tables:
            for rules in table.rules.values():
                for _, rule in rules:
                    for e in rule.get("expr") or () if isinstance(rule, dict) else ():
                        self.scan(e, table, optional, names)
        schema = schema_for(Ruleset((), self.source, **{**self.context, "optional": tuple(optional.items())}),
                            self.catalogue)
        try:
            return with_interfaces(schema, names) if names else schema
        except ValueError_ as err:
            raise DiagnosticError([Diagnostic(E_FIELD, f"the interface names of the rule set: {err.message}", None,
                                              location_text=self.source, help=err.help)]) from None

    def scan(self, e, table: _Table, optional: dict, names: dict) -> None:
        """Note the optional fields one statement tests, and the interface names it lists."""
        if not isinstance(e, dict) or len(e) != 1:
            return
        kind, body = next(iter(e.items()))
        if kind == "match" and isinstance(body, dict):
            left, values = body.get("left"), [body.get("right")]
        elif kind == "vmap" and isinstance(body, dict):
            left, data = body.get("key"), body.get("data")
            if isinstance(data, str) and data.startswith("@"):
                data = {"set": (table.maps.get(data[1:], (None, {}))[1].get("elem") or [])}
            values = [element[0] for element in data.get("set") or () if isinstance(element, list) and element] \
                if isinstance(data, dict) else []
        else:
            return
        if isinstance(left, dict) and isinstance(left.get("concat"), list):
            for n, part in enumerate(left["concat"]):
                self.scan_left(part, [_component(v, n, table) for v in values], table, optional, names)
        else:
            self.scan_left(left, values, table, optional, names)

    def scan_left(self, left, values: list, table: _Table, optional: dict, names: dict) -> None:
        """Note the optional field one left side tests, and the names its values list."""
        if left == STATE_LEFT:
            optional[CT_STATE] = ()
        elif isinstance(left, dict) and isinstance(left.get("payload"), dict) \
                and left["payload"].get("protocol") in TYPE_HEADERS and left["payload"].get("field") == "type":
            optional[ICMP_TYPE] = ()
        elif isinstance(left, dict) and isinstance(left.get("meta"), dict):
            key = INDEX_KEYS.get(left["meta"].get("key"), left["meta"].get("key"))
            if key in NAME_KEYS:
                listed = names.setdefault(NAME_KEYS[key], [])
                for value in values:
                    if isinstance(value, str) and value.startswith("@"):
                        value = {"set": table.sets.get(value[1:], (None, {}))[1].get("elem") or []}
                    items = value.get("set") if isinstance(value, dict) else [value]
                    listed += [v for v in map(element_value, items or ()) if isinstance(v, str)]

    def table_chains(self, table: _Table) -> list[tuple[int, Chain]]:
        """The chains of a table, each with its order of registration."""
        contract = self.contract if (table.family, table.name) == ("inet", getattr(self.contract, "table", None)) \
            else None
        decoder = Decoder(self.schema, lambda name, path: self.lookup(table, name, path), contract)
        out = []
        for name, (path, body) in table.chains.items():
            try:
                out.append((len(self.tables) and self.tables.index(table), self.chain(table, name, path, body,
                                                                                     decoder)))
            except Unread as err:
                self.unread(err)
        return out

    # ----- chains ----------------------------------------------------------------------------
    def chain(self, table: _Table, name: str, path: str, body: dict, decoder: Decoder) -> Chain:
        qualified = table.qualified(name)
        rules = []
        for k, (rule_path, rule) in enumerate(table.rules[name], 1):
            try:
                rules += self.rule_of(table, qualified, k, rule_path, rule, decoder)
            except Unread as err:
                self.unread(err)
        if "hook" not in body:
            return Chain(qualified, tuple(rules), location=f"{self.source}: {path}")
        hook, priority, policy, kind = self.base(table, name, path, body)
        approximations: tuple[Approximation, ...] = ()
        if kind == "nat":
            rules, approximations = self.nat(qualified, path, rules, policy)
        seen = TABLE_FAMILIES[table.family]
        if seen is not None:                # the kernel never shows the chain the other family's packets
            other = FAMILY_BOX["ipv6" if seen == "ipv4" else "ipv4"]["src.ip"]
            rules.insert(0, ChainRule(({"src.ip": other}, {"dst.ip": other}), Verdict("accept"),
                                      f"{qualified} (sees {'IPv4' if seen == 'ipv4' else 'IPv6'} only)",
                                      f"{self.source}: {path}"))
        return Chain(qualified, tuple(rules), hook, priority, policy, f"{self.source}: {path}",
                     approximations=approximations)

    def base(self, table: _Table, name: str, path: str, body: dict) -> tuple[str, int, str, str]:
        hook, prio, policy, kind = body.get("hook"), body.get("prio", 0), body.get("policy", "accept"), \
            body.get("type", "filter")
        words = f"base chain {table.qualified(name)}"
        if hook not in HOOKS:
            raise Unread(SHAPE, path, f"{words} is on hook `{short(hook)}`, not one of the IP hooks "
                                      f"({', '.join(HOOKS)}): the rule table does not model {short(hook)}")
        if kind not in ("filter", "nat", "route"):
            raise Unread(SHAPE, path, f"{words} has type `{short(kind)}`, not filter, nat or route")
        if policy not in ("accept", "drop"):
            raise Unread(SHAPE, path, f"{words} has policy `{short(policy)}`, not accept or drop")
        return hook, _priority(prio, f"{path}.chain.prio", words), policy, kind

    def nat(self, qualified: str, path: str, rules: list[ChainRule],
            policy: str) -> tuple[list[ChainRule], tuple[Approximation, ...]]:
        """A nat chain sees only the first packet of each connection and translates it. One that
        only translates or accepts, with policy accept, drops nothing: read as accepting every
        packet, exactly (a translation before later chains of its hook is chains.py's approximation)."""
        if policy == "accept" and all(r.verdict.kind in ("accept", "continue") and not r.log and not r.approximations
                                      for r in rules):
            return rules, ()
        return rules, (Approximation(qualified, f"{self.source}: {path}",
                                     f"nat chain {qualified} sees only the first packet of each connection",
                                     "the chain deciding every packet"),)

    # ----- rules -----------------------------------------------------------------------------
    def rule_of(self, table: _Table, chain: str, k: int, path: str, body: dict, decoder: Decoder) -> list[ChainRule]:
        """One rule as chain rules, in order: a log before more matches is a rule of its own, and
        a verdict map is one rule per element."""
        expr = body.get("expr")
        if not isinstance(expr, list):
            raise Unread(SHAPE, path, "a rule without an `expr` list")
        rule = self.rule = _Rule(f"{chain} #{k}", path, self.source)
        location = f"{self.source}: {path}"
        cond: Condition = EVERY_FLOW
        sides: list = []                    # subscriber set tests of the contract (nftexpr.Decoder)
        log, mark = False, None
        out: list[ChainRule] = []

        def flush_log():
            nonlocal log
            if log:
                out.append(ChainRule(cond, CONTINUE, rule.name, location, True))
                log = False

        def finish(verdict: Verdict, condition: Condition = None, logged: bool = None) -> list[ChainRule]:
            condition = cond if condition is None else condition
            self.check_sides(decoder, condition, sides)
            out.append(ChainRule(condition, verdict, rule.name, location, log if logged is None else logged,
                                 tuple(rule.approximations)))
            return out

        for j, e in enumerate(expr):
            where = f"{path}.expr[{j}]"
            key = only_key(e, where, STATEMENT, "a statement")
            value = e[key]
            rest = expr[j + 1:]
            if key == "match":
                flush_log()
                cond = _product(cond, self.match(value, where, cond, table, decoder, sides))
            elif key in ("counter", "dup"):
                continue                    # counts, or sends a copy: the packet goes on as it was
            elif key == "log":
                log = True
            elif key in ("limit", "quota", "ct count"):
                cond = self.guard(key, value, where, rest, cond, flush_log)
            elif key in ("set", "map") and isinstance(value, dict) and "op" in value:
                cond = self.update(key, value, where, rest, cond, flush_log, table)
            elif key == "mangle":
                mark = self.mangle(value, where, decoder) if decoder.contract is not None else self.mangle(value, where)
            elif key in ("notrack", "ct helper", "ct timeout", "ct expectation", "ct zone", "flow", "secmark"):
                rule.approximate(where, f"`{_statement_text(key, value)}` changes how later rules see the connection",
                                 "the rule set without that statement")
            elif key == "vmap":
                flush_log()
                return self.verdict_map(value, where, cond, table, decoder, sides, out, location)
            elif key in NAT:                # a translation ends the rule, as an accept
                return finish(Verdict("accept", rewrites="destination" if key in ("dnat", "redirect") else "source"))
            elif key == "reject":
                return self.reject(value, where, cond, table, finish)
            elif key in ("accept", "drop", "continue", "return", "jump", "goto", "queue"):
                if rest:
                    raise Unread(STATEMENT, f"{path}.expr[{j + 1}]", f"`{only_key(rest[0], where, STATEMENT, 'a statement')}` "
                                                                    f"after the rule's verdict `{key}`")
                verdict = self.verdict(e, where, table, mark, decoder)
                return finish(verdict)
            else:
                raise Unread(STATEMENT, where, f"statement `{_statement_text(key, value)}` is not one the import "
                                               f"reads (docs/import.md lists those it does)")
        if mark is not None:
            raise Unread(STATEMENT, path, "`meta mark set` of a redirect target without `accept` after it")
        if log or rule.approximations:
            return finish(CONTINUE)
        return out

    def check_sides(self, decoder: Decoder, condition: Condition, sides: list) -> None:
        for box in condition:
            decoder.check_sides(box, sides)

    def guard(self, key: str, value, where: str, rest: list, cond: Condition, flush_log) -> Condition:
        """A rate limit, quota or connection count: a rule that stops there above it. Exact when
        only counters follow it; when only logs and counters do, it limits the logging, which is
        read as logging every flow; otherwise the rule is read as below the limit."""
        kinds = {next(iter(e), None) if isinstance(e, dict) else None for e in rest}
        if kinds <= {"counter"}:
            return cond
        if kinds <= {"counter", "log"}:
            self.rule.approximate(where, f"`{_statement_text(key, value)}` logs only part of the traffic",
                                  "logging every flow the rule meets")
            return cond
        over = bool(value.get("inv")) if isinstance(value, dict) else False
        self.rule.approximate(where, f"`{_statement_text(key, value)}` decides by the rate or amount of traffic",
                              "the rule below its limit: " + ("it never matches" if over else "it always matches"))
        flush_log()
        return () if over else cond

    def update(self, key: str, value: dict, where: str, rest: list, cond: Condition, flush_log, table) -> Condition:
        """`add @set { ... }` or `update @set { ... }`: the packet goes on (matches on the set are
        marked where they are read); a limit inside it is a guard of its own."""
        inner = value.get("stmt") or ()
        for s in inner if isinstance(inner, list) else ():
            if isinstance(s, dict) and len(s) == 1 and next(iter(s)) in ("limit", "quota", "ct count"):
                cond = self.guard(next(iter(s)), s[next(iter(s))], where, rest, cond, flush_log)
        return cond

    def mangle(self, value, where: str, decoder: Decoder | None = None) -> int | None:
        """A statement that sets a field: the contract's redirect mark, nothing the table reads
        (marks, priority, tracing), or a field it reads, which later rules see changed."""
        target = value.get("key") if isinstance(value, dict) else None
        if decoder is not None and target == {"meta": {"key": "mark"}}:
            return redirect_mark(value, where, decoder.contract.redirect_targets)
        if target in _IGNORED_MANGLE and not (target == {"ct": {"key": "mark"}} and self.contract is not None):
            return None
        self.rule.approximate(where, f"`{_text(target)} set ...` changes the packet for the rules after it",
                              "the rule set without that statement")
        return None

    def verdict(self, e: dict, where: str, table: _Table, mark: int | None, decoder: Decoder) -> Verdict:
        kind = next(iter(e))
        if mark is not None:
            if kind != "accept":
                raise Unread(STATEMENT, where, f"`meta mark set` followed by `{kind}`, not accept")
            return Verdict("accept", outcome=Action("redirect", target=self.contract.redirect_targets[mark - 1]))
        if kind in ("jump", "goto"):
            target = e[kind].get("target") if isinstance(e[kind], dict) else None
            if not isinstance(target, str):
                raise Unread(STATEMENT, where, f"`{kind}` without a target chain")
            if kind == "goto" and decoder.contract is not None and target in table.chains:
                try:
                    rate = throttle_rate(target, table.chains[target][0], table.rules[target])
                except Unread:
                    rate = None             # not a throttle chain: a goto like any other
                if rate is not None:
                    return Verdict("accept", outcome=Action("throttle", rate=rate))
            return Verdict(kind, table.qualified(target))
        if kind == "queue":
            self.rule.approximate(where, "`queue` hands the packet to a program whose verdict is not known",
                                  "accept")
            return Verdict("accept")
        if e[kind] is not None:
            raise Unread(STATEMENT, where, f"`{kind}` with arguments {short(e[kind])}")
        return CONTINUE if kind == "continue" else Verdict(kind)

    def reject(self, value, where: str, cond: Condition, table: _Table, finish) -> list[ChainRule]:
        """`reject with tcp reset` tests TCP (nft adds the test, and its listing hides it);
        `with icmp` or `icmpv6` tests the family; `icmpx` and a plain reject answer either."""
        kind = value.get("type") if isinstance(value, dict) else None
        if value is None or kind in ("icmpx", "icmp", "icmpv6"):
            family = {"icmp": "ipv4", "icmpv6": "ipv6"}.get(kind)
            if family is not None and TABLE_FAMILIES[table.family] in (None, family):
                cond = _product(cond, (FAMILY_BOX[family],))
            return finish(Verdict("reject"), cond)
        if kind == "tcp reset":
            return finish(Verdict("reject", tcp_reset=True), _product(cond, ({"proto": _TCP},)))
        raise Unread(STATEMENT, where, f"`reject` {short(value)} is not with tcp reset, icmp, icmpv6 or icmpx")

    def verdict_map(self, vmap, where: str, cond: Condition, table: _Table, decoder: Decoder, sides: list,
                    out: list[ChainRule], location: str) -> list[ChainRule]:
        """`KEY vmap { ELEMENT : VERDICT, ... }`: one rule per element. The elements of a map
        are disjoint, so their order does not matter; a key in none goes on to the next rule."""
        if not isinstance(vmap, dict) or set(vmap) != {"key", "data"}:
            raise Unread(STATEMENT, where, f"a verdict map that is not a key and its data: {short(vmap)}")
        data, here = vmap["data"], f"{where}.vmap.data"
        if isinstance(data, str) and data.startswith("@"):
            found = table.maps.get(data[1:])
            if found is None:
                raise Unread(MATCH, here, f"`{data}` is not a map of table {table.family} {table.name}")
            here, body = found[0] + ".map", found[1]
            if body.get("map") != "verdict":
                raise Unread(MATCH, here, f"`{data}` maps to {short(body.get('map'))}, not to verdicts")
            if data[1:] in table.written or "timeout" in body or "dynamic" in (body.get("flags") or ()):
                self.rule.approximate(here, f"`{data}` may change while loaded", "its elements when exported")
            elements = body.get("elem") or []
            here += ".elem"
        elif isinstance(data, dict) and set(data) == {"set"} and isinstance(data["set"], list):
            elements, here = data["set"], here + ".set"
        else:
            raise Unread(STATEMENT, here, f"verdict map data {short(data)} is not a set of elements or a named map")
        for n, element in enumerate(elements):
            path = f"{here}[{n}]"
            if not isinstance(element, list) or len(element) != 2:
                raise Unread(MATCH, path, f"a map element that is not a key and a verdict: {short(element)}")
            boxes = self.element(vmap["key"], element_value(element[0]), f"{where}.vmap.key", f"{path}[0]",
                                 table, decoder)
            verdict_obj = element[1]
            only_key(verdict_obj, f"{path}[1]", STATEMENT, "a verdict")
            verdict = self.verdict(verdict_obj, f"{path}[1]", table, None, decoder)
            condition = _product(cond, boxes)
            self.check_sides(decoder, condition, sides)
            out.append(ChainRule(condition, verdict, self.rule.name, location, False,
                                 tuple(self.rule.approximations)))
        return out

    # ----- matches ---------------------------------------------------------------------------
    def match(self, m, where: str, cond: Condition, table: _Table, decoder: Decoder, sides: list) -> Condition:
        if not isinstance(m, dict) or set(m) != {"op", "left", "right"}:
            raise Unread(MATCH, where, f"a match that is not an operator with a left and a right side: {short(m)}")
        op, left, right = m["op"], m["left"], m["right"]
        here = f"{where}.match.right"
        if op not in ("==", "!=", "<", ">", "<=", ">=", "in"):
            raise Unread(MATCH, where, f"operator `{short(op)}` is not one nft lists")
        if isinstance(left, dict) and set(left) == {"concat"}:
            return self.concat(left["concat"], right, op, where, table, decoder)
        if isinstance(left, dict) and isinstance(left.get("meta"), dict) and left["meta"].get("key") in INDEX_KEYS:
            words = INDEX_KEYS[left["meta"]["key"]]
            if m.get("right") != "lo":      # the loopback is made with its namespace, index 1, for its life
                self.rule.approximate(f"{where}.match.left",
                                      f"`{_text(left)}` tests the interface's index, which the kernel took from "
                                      f"its name when the rule set was loaded", f"`{words}`, the interface's name")
            left = {"meta": {"key": words}}
            m = {**m, "left": left}
        key = self.key(left, f"{where}.match.left", table)
        if key is None and self.by_decoder(left, decoder):
            if op not in ("==", "!=") and not (left == STATE_LEFT and op == "in"):
                raise Unread(MATCH, where, f"operator `{op}` on `{_text(left)}`: only == and != are read there")
            return (self.decoded(m, where, cond, table, decoder, sides),)
        if key is None:
            self.rule.approximate(f"{where}.match.left", f"`{_text(left)} {op} {_value_text(right)}` tests what "
                                                         f"the rule table has no field for",
                                  "the rule without that test")
            return EVERY_FLOW
        if op == "in":
            raise Unread(MATCH, where, f"operator `in` on `{_text(left)}`, which is not a set of flags")
        values = self.compared(key, op, right, here)
        box = dict(key.implied)
        box[key.field] = box[key.field].intersect(values) if key.field in box else values
        if key.th:
            proto = hull(cond).get("proto") if cond else None
            if proto is None or not proto.issubset(_PORTED):
                self.rule.approximate(f"{where}.match.left", f"`{_text(left)}` reads a header field that only "
                                                             f"protocols with ports have as a port",
                                      "a test of the protocols with ports only")
                box["proto"] = _PORTED
        return (box,)

    def decoded(self, m: dict, where: str, cond: Condition, table: _Table, decoder: Decoder, sides: list) -> Box:
        """A match the shared decoder reads, within the rule's condition so far (ports need its
        protocol). In an inet table `icmp type` tests IPv4 and `icmpv6 type` IPv6 (nft adds the
        test of the family, and its listing hides it)."""
        box = dict(hull(cond)) if cond else {}
        decoder.match(m, where, box, sides)
        header = _icmp_header(m["left"])
        if header is not None and table.family == "inet":
            family = FAMILY_BOX["ipv4" if header == "icmp" else "ipv6"]
            box = intersect(box, family) or {name: IntervalSet.of([]) for name in family}
        return box

    def compared(self, key: _Key, op: str, right, here: str) -> IntervalSet:
        """The values `KEY OP RIGHT` holds, within the values the key has."""
        if op in ("==", "!="):
            values = key.parse(right, here)
            return key.domain.difference(values) if op == "!=" else values
        value = key.parse(right, here)
        if value.size() != 1:
            raise Unread(MATCH, here, f"`{op}` compares with one value, not {_value_text(right)}")
        v, (lo, hi) = value.min(), key.domain.hull()
        bounds = {"<": (lo, v - 1), "<=": (lo, v), ">": (v + 1, hi), ">=": (v, hi)}[op]
        return IntervalSet.span(*bounds) if bounds[0] <= bounds[1] else IntervalSet.of([])

    def by_decoder(self, left, decoder: Decoder) -> bool:
        """The matches the shared decoder reads: the family, the hour and day, and under the
        contract the connection's original tuple and the connection-mark fields."""
        if left in ({"meta": {"key": "nfproto"}}, {"meta": {"key": "hour"}}, {"meta": {"key": "day"}}, STATE_LEFT) \
                or left in ({"meta": {"key": k}} for k in NAME_KEYS) or _icmp_header(left) is not None:
            return True
        if decoder.contract is None or not isinstance(left, dict):
            return False
        ct = left.get("ct")
        return (isinstance(ct, dict) and ct.get("dir") == "original") or \
            (set(left) == {"&"} and isinstance(left["&"], list) and left["&"][:1] == [{"ct": {"key": "mark"}}])

    def key(self, left, where: str, table: _Table) -> _Key | None:
        """The key a left side is, or None when the table has no field for it (or the shared
        decoder reads it). A field the language is yet to have is an error."""
        if not isinstance(left, dict) or len(left) != 1:
            raise Unread(MATCH, where, f"`{short(left)}` is not an expression nft lists")
        text = _text(left)
        decoder_values = self.values_of(table)
        if "payload" in left and isinstance(left["payload"], dict):
            protocol, field = left["payload"].get("protocol"), left["payload"].get("field")
            if protocol in ("ip", "ip6") and field in ("saddr", "daddr"):
                family = "ipv4" if protocol == "ip" else "ipv6"
                if self.contract_table(table):
                    self.tuple_approximation(where, text)
                return _Key(f"{field[0] == 's' and 'src' or 'dst'}.ip", FAMILY_BOX[family],
                            lambda r, p, f=family: decoder_values(r, p, lambda v, q: address_number(v, q, f),
                                                                  lambda v, q: prefix_interval(v, q, f)),
                            FAMILY_SPACE[4 if family == "ipv4" else 6])
            if (protocol, field) in (("ip", "protocol"), ("ip6", "nexthdr")):
                if protocol == "ip6":
                    self.rule.approximate(where, "`ip6 nexthdr` is the first header after IPv6's, which is the "
                                                 "transport protocol only without extension headers",
                                          "`meta l4proto`")
                return _Key("proto", FAMILY_BOX["ipv4" if protocol == "ip" else "ipv6"],
                            lambda r, p: decoder_values(r, p, protocol_number, 8), IntervalSet.span(0, 255))
            if field in ("sport", "dport") and (protocol in PORT_HEADERS or protocol == "th"):
                if self.contract_table(table):
                    self.tuple_approximation(where, text)
                implied = {"proto": IntervalSet.point(PORT_HEADERS[protocol])} if protocol != "th" else {}
                return _Key(f"{field[0] == 's' and 'src' or 'dst'}.port", implied,
                            lambda r, p: decoder_values(r, p, port_number, 16), IntervalSet.span(0, 65535),
                            th=protocol == "th")
            return None
        if left == {"meta": {"key": "l4proto"}}:
            return _Key("proto", {}, lambda r, p: decoder_values(r, p, protocol_number, 8), IntervalSet.span(0, 255))
        if left == {"meta": {"key": "protocol"}}:
            return _Key("src.ip", {}, lambda r, p: self.ether_types(decoder_values, r, p), V4.union(V6))
        if "ct" in left and isinstance(left["ct"], dict) and left["ct"].get("dir") == "original" \
                and not self.contract_table(table):
            key = left["ct"].get("key")
            plain = {"saddr": "ip saddr", "daddr": "ip daddr", "ip saddr": "ip saddr", "ip daddr": "ip daddr",
                     "ip6 saddr": "ip6 saddr", "ip6 daddr": "ip6 daddr", "proto-src": "th sport",
                     "proto-dst": "th dport", "protocol": "meta l4proto"}.get(key)
            if plain is not None:
                self.tuple_approximation(where, text)
                words = plain.split()
                return self.key({"payload": {"protocol": words[0], "field": words[1]}} if words[0] != "meta"
                                else {"meta": {"key": words[1]}}, where, table)
        return None

    def contract_table(self, table: _Table) -> bool:
        return self.contract is not None and (table.family, table.name) == ("inet", self.contract.table)

    def tuple_approximation(self, where: str, text: str) -> None:
        """The packet's own addresses and ports are the connection's original ones only for
        packets in the original direction: without a contract the table speaks of packets,
        under one of connections."""
        if text.startswith("ct original"):
            self.rule.approximate(where, f"`{text}` is the connection's original tuple, not the packet's",
                                  "the packet's own (the same for packets in the connection's original direction)")
        else:
            self.rule.approximate(where, f"`{text}` is the packet's own, not the connection's original tuple "
                                         f"that the contract's fields are",
                                  "the connection's (the same for packets in its original direction)")

    def values_of(self, table: _Table):
        decoder = Decoder(self.schema, lambda name, path: self.lookup(table, name, path))
        return decoder.values

    @staticmethod
    def ether_types(values, right, path) -> IntervalSet:
        """`meta protocol` (the frame's EtherType) as the addresses of its family: an IP hook
        sees IPv4 (0x0800) and IPv6 (0x86dd) packets only."""
        def number(v, p):
            n = ETHER_TYPES.get(v, v)
            if type(n) is not int or not 0 <= n <= 0xFFFF:
                raise Unread(MATCH, p, f"`{short(v)}` is not an EtherType")
            return n
        types = values(right, path, number, 16)
        return IntervalSet.of([iv for t, space in ((0x0800, V4), (0x86DD, V6)) if t in types
                               for iv in space.intervals])

    def concat(self, parts, right, op: str, where: str, table: _Table, decoder: Decoder) -> Condition:
        """`A . B OP SET`: each element of the set is a box; the match is their union (`!=`: what
        the keys allow outside it)."""
        if op not in ("==", "!="):
            raise Unread(MATCH, where, f"operator `{op}` on a concatenation")
        keys = self.concat_keys(parts, f"{where}.match.left", table, decoder)
        if keys is None:
            self.rule.approximate(f"{where}.match.left", f"`{_text({'concat': parts})}` tests what the rule "
                                                         f"table has no field for", "the rule without that test")
            return EVERY_FLOW
        here = f"{where}.match.right"
        if isinstance(right, str) and right.startswith("@"):
            elements, here = self.lookup(table, right, here)
        elif isinstance(right, dict) and set(right) == {"set"} and isinstance(right["set"], list):
            elements, here = right["set"], here
        else:
            elements, here = [right], None
        boxes = [self.element_box(keys, element_value(item), f"{here}.set[{n}]" if here else f"{where}.match.right",
                                  table, decoder) for n, item in enumerate(elements)]
        implied = _implied(keys)
        if op == "==":
            return tuple(b for b in boxes if b is not None)
        rest = [implied]
        for b in boxes:
            if b is not None:
                rest = [piece for r in rest for piece in subtract(r, b, self.fields)]
        return tuple(rest)

    def concat_keys(self, parts, where: str, table: _Table, decoder: Decoder) -> list | None:
        """Each part's key, or the part itself where the shared decoder reads it (an interface
        name, the conntrack state, an ICMP type); None when a part is neither."""
        if not isinstance(parts, list) or len(parts) < 2:
            raise Unread(MATCH, where, f"a concatenation of {short(parts)}")
        keys = [self.key(p, f"{where}.concat[{n}]", table) for n, p in enumerate(parts)]
        keys = [p if k is None and self.by_decoder(p, decoder) else k for k, p in zip(keys, parts)]
        return None if any(k is None for k in keys) else keys

    def element_box(self, keys: list, item, path: str, table: _Table, decoder: Decoder) -> Box | None:
        if not isinstance(item, dict) or set(item) != {"concat"} or not isinstance(item["concat"], list) \
                or len(item["concat"]) != len(keys):
            raise Unread(MATCH, path, f"element {short(item)} is not a concatenation of {len(keys)} values")
        box = _implied(keys)
        for n, (key, value) in enumerate(zip(keys, item["concat"])):
            here = f"{path}.concat[{n}]"
            if not isinstance(key, _Key):       # read by the decoder, as `PART == VALUE` alone
                box = intersect(box, self.decoded({"op": "==", "left": key, "right": value}, here, EVERY_FLOW, table,
                                                  decoder, []))
                if box is None:
                    return None
                continue
            values = key.parse(value, here)
            both = box[key.field].intersect(values) if key.field in box else values
            if both.is_empty():
                return None
            box[key.field] = both
        return box

    def element(self, left, value, key_path: str, path: str, table: _Table, decoder: Decoder) -> Condition:
        """The boxes of one element of a verdict map under its key."""
        if isinstance(left, dict) and set(left) == {"concat"}:
            keys = self.concat_keys(left["concat"], key_path, table, decoder)
            if keys is None:
                raise Unread(MATCH, key_path, f"verdict map key `{_text(left)}` is not one the rule table has fields "
                                              f"for")
            box = self.element_box(keys, value, path, table, decoder)
            return () if box is None else (box,)
        key = self.key(left, key_path, table)
        if key is None and self.by_decoder(left, decoder):
            box = self.decoded({"op": "==", "left": left, "right": value}, path, EVERY_FLOW, table, decoder, [])
            return () if any(v.is_empty() for v in box.values()) else (box,)
        if key is None:
            raise Unread(MATCH, key_path, f"verdict map key `{_text(left)}` is not one the rule table has fields for")
        box = dict(key.implied)
        values = key.parse(value, path)
        box[key.field] = box[key.field].intersect(values) if key.field in box else values
        return () if box[key.field].is_empty() else (box,)

    @property
    def fields(self):
        return {f.name: f for f in self.schema.flow_fields}

    def lookup(self, table: _Table, name: str, path: str) -> tuple[list, str]:
        """A named set's elements; a set that may change while loaded is read as exported, which
        the rule says."""
        found = table.sets.get(name[1:]) if isinstance(name, str) else None
        if found is None:
            raise Unread(MATCH, path, f"`{name}` is not a set of table {table.family} {table.name}")
        where, body = found
        flags = body.get("flags") or ()
        if name[1:] in table.written or "dynamic" in flags or "timeout" in flags or "timeout" in body:
            self.rule.approximate(where, f"set `{name}` may change while loaded (rules or timeouts change it)",
                                  "its elements when exported")
        return body.get("elem") or [], f"{where}.set.elem"


def _contract_enums(contract: Contract) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The enums a contract's subscriber sets name (plan, addon, zone, apn), members in order."""
    enums = {}
    for prefix, enum in (("plan", "subscriber.plan"), ("zone", "subscriber.zone"), ("apn", "subscriber.apn")):
        members = sorted(((s.values.min(), s.name[len(prefix) + 1:]) for s in contract.sets_of(enum)))
        if members:
            enums[prefix] = tuple(m for _, m in members)
    addons = tuple(s.field[len(ADDON_PREFIX):] for s in contract.subscriber_sets if s.field.startswith(ADDON_PREFIX))
    if addons:
        enums["addon"] = addons
    return tuple(enums.items())


def _kernel_order(chains: list[tuple[int, Chain]], source: str) -> tuple[Chain, ...]:
    """The base chains in the order the kernel runs them (by priority; of one priority, the one
    registered last first, as netfilter inserts a hook before those of its priority), then the
    user chains. A listing shows tables in the order they were made and each table's chains in
    the order they were registered, so between two tables it tells the order only of chains
    made with their tables: base chains of one hook and priority in two tables that both see a
    family are read in the listing's reverse order, as an approximation."""
    bases = [(n, table, c) for n, (table, c) in enumerate(chains) if c.hook is not None]
    users = [c for _, c in chains if c.hook is None]
    out = []
    for n, table, chain in sorted(bases, key=lambda b: (b[2].priority, -b[0])):
        ties = [c for m, t, c in bases if c.hook == chain.hook and c.priority == chain.priority and t != table
                and _families_meet(c, chain)]
        if ties:
            chain = dataclasses.replace(chain, approximations=chain.approximations + (Approximation(
                chain.name, chain.location,
                f"base chains {', '.join(c.name for c in ties)} and {chain.name} have one hook and priority, and the "
                f"kernel runs the one registered last first, which an export does not always show",
                "the reverse of the order they are listed in"),))
        out.append(chain)
    return tuple(out + users)


def _families_meet(a: Chain, b: Chain) -> bool:
    """Both chains can see one packet: their tables' families overlap."""
    return not ({a.name.split()[0], b.name.split()[0]} == {"ip", "ip6"})


def _priority(prio, path: str, words: str) -> int:
    if type(prio) is int:
        return prio
    found = _PRIORITY.match(prio) if isinstance(prio, str) else None
    if found is None or found[1] not in PRIORITIES:
        raise Unread(SHAPE, path, f"{words} has priority `{short(prio)}`, not a number or one of "
                                  f"{', '.join(PRIORITIES)} (with + or - a number)")
    offset = int(found[3] or 0)
    return PRIORITIES[found[1]] + (-offset if found[2] == "-" else offset)


def _icmp_header(left) -> str | None:
    """`icmp` or `icmpv6` for a left side `icmp type` or `icmpv6 type`, else None."""
    payload = left.get("payload") if isinstance(left, dict) and set(left) == {"payload"} else None
    if isinstance(payload, dict) and set(payload) == {"protocol", "field"} and payload["field"] == "type" \
            and payload["protocol"] in TYPE_HEADERS:
        return payload["protocol"]
    return None


def _component(value, n: int, table):
    """The n-th values of a concatenation's elements (a set of them, named or not) as a set."""
    if isinstance(value, str) and value.startswith("@"):
        value = {"set": table.sets.get(value[1:], (None, {}))[1].get("elem") or []}
    items = value.get("set") if isinstance(value, dict) and "set" in value else [value]
    out = []
    for item in items or ():
        item = element_value(item)
        if isinstance(item, dict) and isinstance(item.get("concat"), list) and n < len(item["concat"]):
            out.append(item["concat"][n])
    return {"set": out}


def _implied(keys: list) -> Box:
    box: Box = {}
    for key in keys:
        for name, values in (key.implied.items() if isinstance(key, _Key) else ()):
            box[name] = box[name].intersect(values) if name in box else values
    return box


def _product(cond: Condition, part: Condition) -> Condition:
    """Both conditions: every box of one met with every box of the other."""
    out = []
    for a in cond:
        for b in part:
            both = intersect(a, b)
            if both is not None and not any(v.is_empty() for v in both.values()):
                out.append(both)
    return tuple(out)


# ----- text, for messages ------------------------------------------------------------------
def _text(expr) -> str:
    """An expression as nft writes it, near enough for a message."""
    if isinstance(expr, dict) and len(expr) == 1:
        kind, body = next(iter(expr.items()))
        if kind == "payload" and isinstance(body, dict) and "protocol" in body:
            return f"{body['protocol']} {body.get('field')}"
        if kind == "meta" and isinstance(body, dict):
            return f"meta {body.get('key')}"
        if kind == "ct" and isinstance(body, dict):
            return " ".join(w for w in ("ct", body.get("dir"), body.get("key")) if w)
        if kind == "concat" and isinstance(body, list):
            return " . ".join(_text(p) for p in body)
        if kind in ("&", "|", "^", "<<", ">>") and isinstance(body, list) and len(body) == 2:
            return f"{_text(body[0])} {kind} {_value_text(body[1])}"
        if kind in ("fib", "socket", "rt", "exthdr", "tcp option", "osf", "numgen", "jhash", "symhash", "ipsec",
                    "sctp chunk", "dccp option", "ip option"):
            return f"{kind} {short(body)}"
    return short(expr)


def _value_text(value) -> str:
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, dict) and set(value) == {"set"} and isinstance(value["set"], list):
        return "{ " + ", ".join(_value_text(v) for v in value["set"]) + " }"
    if isinstance(value, dict) and set(value) == {"prefix"} and isinstance(value["prefix"], dict):
        return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
    if isinstance(value, dict) and set(value) == {"range"} and isinstance(value["range"], list):
        return "-".join(_value_text(v) for v in value["range"])
    return _text(value)


def _statement_text(key: str, value) -> str:
    if value is None:
        return key
    if isinstance(value, dict) and key == "limit":
        over = "over " if value.get("inv") else ""
        return f"limit rate {over}{value.get('rate')}/{value.get('per')}"
    return f"{key} {short(value)}"
