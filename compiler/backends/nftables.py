"""The nftables target: one `nft -f` script that atomically replaces its own `inet` table.

The kernel rules come from lowering.py; this module only writes them in nft's syntax, with the
subscriber sets, the per-flow policers of throttles and the chains the contract names.
"""
from __future__ import annotations

import dataclasses

from dpipolicy.dsl.domains import FIRST_PATTERN
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import CT_STATES, PROTOCOL_NAMES, SNI
from dpipolicy.dsl.values import ip_interval_texts

from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError

from ..table import RuleTable
from . import Compiled, Options
from .contract import DAY_NAMES, MARK_FIELDS, PORT_PROTOCOLS, SNI_MARK, Contract, build_contract
from .lowering import KernelRule, Lowering, Test, Unsupported, Verdict

_MASKS = {m.field: m for m in MARK_FIELDS}
_PROTOCOL_WORDS = PROTOCOL_NAMES | PORT_PROTOCOLS      # the names nft knows
_FAMILY_WORD = {4: "ip", 6: "ip6"}
_SIDE_WORD = {"src": "saddr", "dst": "daddr"}
_PORT_WORD = {"src.port": "proto-src", "dst.port": "proto-dst"}
_TYPE_WORD = {"icmp.type": ("icmp", "icmp_type"), "icmpv6.type": ("icmpv6", "icmpv6_type")}
_NAME_WORD = {"iface.in": "iifname", "iface.out": "oifname"}
_PROTOCOL_KEYS = ("proto", "src.port", "dst.port", "icmp.type", "icmpv6.type")     # the tests of a protocol variant
THROTTLE_TIMEOUT = "10m"      # a policer's state for a flow idle this long is forgotten
TEXT_MAX = 127                # nft keeps comments and log prefixes of at most 127 bytes


class ValueSets:
    """The named constant sets of a script: a test of several values names the set holding
    them, one set per distinct list of values. The kernel finds a set by walking the table's
    sets, so one set per rule (an anonymous set) makes loading quadratic: 16,008 anonymous
    sets of the 10k benchmark took 2 minutes to load, its 516 distinct ones take seconds
    (docs/performance.md)."""

    WORDS = {"inet_proto": "protocols", "inet_service": "ports", "ipv4_addr": "addresses_v4",
             "ipv6_addr": "addresses_v6", "mark": "marks", "hour": "hours", "day": "days", "icmp_type": "icmp_types",
             "icmpv6_type": "icmpv6_types", "ct_state": "ct_states", "ifname": "interfaces"}
    SINGLE = ("day", "ct_state")       # sets of single values (nft 1.0.6 fails on an interval set of states)

    def __init__(self) -> None:
        self.names: dict[tuple[str, tuple[str, ...]], str] = {}
        self.counts: dict[str, int] = {}

    def ref(self, kind: str, items: list[str]) -> str:
        """`items` alone, or `@WORD_N`, the set of type `kind` holding them."""
        if len(items) == 1:
            return items[0]
        key = (kind, tuple(items))
        if key not in self.names:
            word = self.WORDS[kind]
            self.counts[word] = self.counts.get(word, 0) + 1
            self.names[key] = f"{word}_{self.counts[word]}"
        return "@" + self.names[key]

    def declarations(self) -> list[str]:
        out = []
        for (kind, items), name in self.names.items():
            what = f"typeof meta {kind}" if kind in ("hour", "day") else f"type {kind}"
            flags = "" if kind in self.SINGLE else " flags interval;"
            out.append(f"    set {name} {{ {what};{flags} elements = {{ {', '.join(items)} }} }}")
        return out


class ProtocolChains:
    """The chains of protocol tests that rules share. nft types a port by the one protocol
    before it in the rule (lowering.py), so a rule on a port without a protocol is five kernel
    rules, alike but for `meta l4proto P ct original proto-dst ...`. The kernel's listing grows
    with the square of the table's rules, so the kernel rules of a match rule that differ only
    in their protocol tests become one rule that jumps, after its other tests, to a chain of
    those protocol tests with their verdicts; a flow none of them takes comes back and goes on
    to the next rule, as it would past the five. A chain is shared by every rule with the same
    protocol tests and verdicts, and is written only where that saves kernel rules
    (docs/performance.md). Its rules test only the protocol and the connection's ports, so
    each takes all of a connection's packets or none (by which `probe` reads the counters)."""

    PREFIX = "protocols_"

    def __init__(self, rules: list[KernelRule], values: ValueSets):
        self.rules: list[tuple[tuple[str, str], str]] = []      # per kernel rule: its group, its own text
        bodies: dict[tuple[str, str], tuple[str, ...]] = {}     # group (other tests, comment) -> its variants
        known: dict[tuple[Test, int | None], str] = {}         # a test's text, written once (most recur)
        for rule in rules:
            texts = []
            for t in rule.tests:
                text = known.get((t, rule.family))
                if text is None:
                    text = known[(t, rule.family)] = _test_text(t, rule.family, values)
                texts.append((t.key in _PROTOCOL_KEYS, text))
            verdict = ["counter"] + _verdict_words(rule.verdict, rule)
            note = f'comment "{comment(rule.rule, rule.index)}"'
            group = (" ".join(text for variant, text in texts if not variant), note)
            variant = " ".join([text for variant, text in texts if variant] + verdict)
            bodies[group] = bodies.get(group, ()) + (variant,)
            self.rules.append((group, " ".join([text for _, text in texts] + verdict + [note])))
        uses: dict[tuple[str, ...], int] = {}
        for body in bodies.values():
            uses[body] = uses.get(body, 0) + 1
        # m groups of k kernel rules each: m * k rules inline, or m jumps and a chain of k
        shared = [body for body, m in uses.items() if m + len(body) < m * len(body)]
        self.names = {body: f"{self.PREFIX}{k}" for k, body in enumerate(shared, 1)}
        self.jumps = {group: self.names[body] for group, body in bodies.items() if body in self.names}

    def rule_lines(self) -> list[str]:
        """The rules of the chain of the match rules, in order: each kernel rule, or in place of
        the first of a group with a chain, the jump to it."""
        out, done = [], set()
        for group, text in self.rules:
            if group not in self.jumps:
                out.append(text)
            elif group not in done:
                done.add(group)
                tests, note = group
                out.append(" ".join(w for w in (tests, f"counter jump {self.jumps[group]}", note) if w))
        return out

    def chains(self) -> list[str]:
        out = []
        for body, name in self.names.items():
            out += [f"    chain {name} {{"] + [f"        {variant}" for variant in body] + ["    }"]
        return out


def render(table: RuleTable, contract: Contract, rules: list[KernelRule], source: str) -> str:
    """The script: a header, then the table declared, deleted and declared with its contents."""
    name = contract.table
    throttles = _throttle_chains(rules)
    values = ValueSets()
    protocol_chains = ProtocolChains(rules, values)
    rule_lines = ["        " + line for line in protocol_chains.rule_lines()]
    chains = protocol_chains.chains()
    kernel_rules = len(rule_lines) + sum(1 for line in chains if line.startswith("        "))
    lines = [
        "#!/usr/sbin/nft -f",
        f"# dpipolicy: {_policy_words(table)}, compiled from {source}",
        f"# {kernel_rules} kernel rules from {len(table.rules)} match rules; engine contract: docs/enforcement.md",
        f"table inet {name}",
        f"delete table inet {name}",
        f"table inet {name} {{",
    ]
    for s in contract.subscriber_sets:
        for family, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            lines.append(f"    set {s.family_name(family)} {{ type {kind}; flags interval; }}")
    lines += values.declarations()
    for chain in throttles:
        lines.append(f"    set {chain}_flows {{ typeof ct id; size 65535; flags dynamic,timeout; "
                     f"timeout {THROTTLE_TIMEOUT}; }}")
    lines += [
        f"    chain {contract.base_chain} {{",
        "        type filter hook forward priority filter; policy accept;",
        f"        jump {contract.chain}",
        "    }",
        f"    chain {contract.chain} {{",
    ]
    lines += rule_lines
    lines.append("    }")
    lines += chains
    for chain, rate in throttles.items():
        lines += [f"    chain {chain} {{",
                  f"        update @{chain}_flows {{ ct id limit rate over {rate} bytes/second }} counter drop",
                  "        counter accept",
                  "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


BATCH_BYTES = 40_000      # of script text per `nft -f` run when loading in batches (below)


def batches(script: str, contract: Contract, limit: int = BATCH_BYTES) -> list[str]:
    """The script as several `nft -f` runs, each below `limit` bytes of text, that leave the
    kernel with the same table: the table with its sets and chains, the rules of the chains of
    protocol tests and of the match rules left out, then those rules appended in order (`add
    rule`). Without root, nft cannot enlarge its netlink buffer (about net.core.wmem_default,
    212,992 bytes, some 60 kB of this text), so the kernel check and `probe` load a bigger script
    this way; as root the whole script is one transaction, as it is deployed."""
    if len(script.encode()) <= limit:
        return [script]
    head: list[str] = []
    rules: list[str] = []
    chain = None            # the chain whose rules are being moved out, if any
    for line in script.split("\n"):
        if chain is not None and line != "    }":
            rules.append(f"add rule inet {contract.table} {chain} {line.strip()}")
            continue
        chain = None
        head.append(line)
        opened = line.removeprefix("    chain ").removesuffix(" {")
        if line.startswith("    chain ") and (opened == contract.chain or opened.startswith(ProtocolChains.PREFIX)):
            chain = opened
    out = ["\n".join(head)]
    chunk: list[str] = []
    size = 0
    for rule in rules:
        cost = len(rule.encode()) + 1
        if chunk and size + cost > limit:
            out.append("\n".join(chunk) + "\n")
            chunk, size = [], 0
        chunk.append(rule)
        size += cost
    return out + (["\n".join(chunk) + "\n"] if chunk else [])


def _policy_words(table: RuleTable) -> str:
    words = f"policy {table.policy_name or '(unnamed)'}"
    return words + (f" version {table.policy_version}" if table.policy_version else "")


def throttle_chain(bytes_per_second: int) -> str:
    """One policer chain and meter per distinct rate, shared by the rules of that rate: a flow
    is keyed by its `ct id`, so sharing changes no flow's rate. A meter per rule cost the
    kernel a hash table of 65,535 buckets each: 1,857 of them made the 10k benchmark's load
    12 s instead of 3 s (docs/performance.md)."""
    return f"throttle_{bytes_per_second}"


def _throttle_chains(rules: list[KernelRule]) -> dict[str, int]:
    rates = sorted({r.verdict.bytes_per_second for r in rules if r.verdict.kind == "throttle"})
    return {throttle_chain(rate): rate for rate in rates}


def comment(rule: str, index: int | None) -> str:
    """`dpipolicy rule NAME #INDEX`, by which a kernel rule is traced to its match rule."""
    text = f"dpipolicy rule {rule}" + (f" #{index}" if index is not None else "")
    return text if len(text) <= TEXT_MAX else f"dpipolicy rule #{index}"


def _verdict_words(verdict: Verdict, rule: KernelRule) -> list[str]:
    words = []
    if verdict.log:
        prefix = f"dpipolicy {rule.rule} "
        words.append(f'log prefix "{prefix if len(prefix) <= TEXT_MAX else f"dpipolicy #{rule.index} "}"')
    match verdict.kind:
        case "accept" | "drop":
            words.append(verdict.kind)
        case "reset-tcp":
            words.append("reject with tcp reset")
        case "reject-icmp":
            words.append("reject with icmpx admin-prohibited")
        case "throttle":
            words.append(f"goto {throttle_chain(verdict.bytes_per_second)}")
        case "redirect":
            words.append(f"meta mark set {verdict.mark} accept")
    return words


def _test_text(test: Test, family: int | None, values: ValueSets) -> str:
    op = "!= " if test.negated else ""
    match test.key:
        case "family":
            return f"meta nfproto ipv{test.values.min()}"
        case "proto":
            return f"meta l4proto {op}{values.ref('inet_proto', _protocol_items(test.values))}"
        case "src.ip" | "dst.ip":
            side = "saddr" if test.key == "src.ip" else "daddr"
            items = [t for lo, hi in test.values.intervals for t in ip_interval_texts(lo, hi)]
            return f"ct original {_FAMILY_WORD[family]} {side} {op}{values.ref(f'ipv{family}_addr', items)}"
        case "src.port" | "dst.port":
            return f"ct original {_PORT_WORD[test.key]} {op}{values.ref('inet_service', _range_items(test.values))}"
        case "icmp.type" | "icmpv6.type":
            header, kind = _TYPE_WORD[test.key]
            return f"{header} type {op}{values.ref(kind, _range_items(test.values))}"
        case "ct.state":
            states = [CT_STATES[v] for lo, hi in test.values.intervals for v in range(lo, hi + 1)]
            return f"ct state {op}{values.ref('ct_state', states)}"
        case "iface.in" | "iface.out":
            quoted = [f'"{name}"' for name in test.names]
            return f"{_NAME_WORD[test.key]} {op}{values.ref('ifname', quoted)}"
        case key if key in _MASKS:
            mark = _MASKS[key]
            shifted = IntervalSet.of((lo << mark.shift, hi << mark.shift) for lo, hi in test.values.intervals)
            items = _range_items(shifted, hexadecimal=True)
            return f"ct mark and 0x{mark.mask:x} {'!=' if test.negated else '=='} {values.ref('mark', items)}"
        case "hour":
            return f"meta hour {op}{values.ref('hour', _hour_items(test.values))}"
        case "day":
            days = [f'"{DAY_NAMES[d]}"' for lo, hi in test.values.intervals for d in range(lo, hi + 1)]
            return f"meta day {op}{values.ref('day', days)}"
        case "subscriber":
            return f"ct original {_FAMILY_WORD[family]} {_SIDE_WORD[test.side]} {op}@{test.set_name}"
    raise AssertionError(test.key)


def _range_items(values: IntervalSet, hexadecimal: bool = False) -> list[str]:
    def text(v: int) -> str:
        return f"0x{v:x}" if hexadecimal else str(v)
    return [text(lo) if lo == hi else f"{text(lo)}-{text(hi)}" for lo, hi in values.intervals]


def _protocol_items(values: IntervalSet) -> list[str]:
    """One protocol by its name where nft knows it; a run of them by its numbers."""
    return [_PROTOCOL_WORDS.get(lo, str(lo)) if lo == hi else f"{lo}-{hi}" for lo, hi in values.intervals]


def _hour_items(values: IntervalSet) -> list[str]:
    return [f'"{lo:02d}:00"-"{hi:02d}:59:59"' for lo, hi in values.intervals]


def compile_nftables(table: RuleTable, options: Options) -> Compiled:
    """The script, its contract, and the table it means; an inexpressible part raises
    DiagnosticError listing every such part (or, approximated, is recorded)."""
    contract = build_contract(table.schema, [r.box() for r in table.rules], options.table_name)
    lowering = Lowering(table.schema, contract, options.approximate, [])
    kernel_rules: list[KernelRule] = []
    meant = []
    errors = _server_names_beyond_mark(table)
    for match in table.rules:
        try:
            lowered, verdict = lowering.rule(match)
        except Unsupported as exc:
            errors.append(exc.diagnostic)
            continue
        kernel_rules += lowered
        meant.append(dataclasses.replace(match, action=_meant(match.action, verdict)))
    try:
        kernel_rules += lowering.default(table.default, table.default_span)
    except Unsupported as exc:
        errors.append(exc.diagnostic)
    if errors:
        raise DiagnosticError(errors)
    default = _meant(table.default, kernel_rules[-1].verdict)
    contract = dataclasses.replace(contract, approximations=tuple(lowering.approximations))
    effective = dataclasses.replace(table, rules=tuple(meant), default=default)
    return Compiled(render(table, contract, kernel_rules, options.source), effective, contract)


def _server_names_beyond_mark(table: RuleTable) -> list[Diagnostic]:
    """E535 at the first rule on `tls.sni` when its values do not fit the mark's ten bits."""
    field, room = table.schema.field(SNI), SNI_MARK.mask >> SNI_MARK.shift
    first = next((r for r in table.rules if SNI in r.box()), None)
    if field is None or field.hi <= room or first is None:
        return []
    patterns = len(field.members) - FIRST_PATTERN
    return [Diagnostic("E535", f"the policy declares {patterns} server-name patterns; the connection mark holds "
                               f"at most {room - FIRST_PATTERN + 1}", first.origin.span, "tests `tls.sni`",
                       location_text=first.origin.location() or None,
                       notes=(f"the classifier writes the value of a flow's `tls.sni` into ten bits of the mark "
                              f"(0x{SNI_MARK.mask:x}): values 0 (no name) and 1 (a name under no pattern), then one "
                              "per declared pattern",),
                       help="declare fewer patterns: one `*.` pattern holds every name below it")]


def _meant(action, verdict: Verdict):
    """The action a kernel rule carries out: a throttle's rate as policed, per flow, and none
    of the outcome's other parts (each one an approximation: lowering.py)."""
    action = dataclasses.replace(action, charge=None, priority=None, scope=None, purpose=None)
    if action.kind == "throttle":
        return dataclasses.replace(action, rate=verdict.bytes_per_second * 8)
    return action
