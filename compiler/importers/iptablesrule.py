"""One rule of an iptables-save dump (`-A CHAIN ...`): its options read into a condition over the
flow fields, a verdict, logging and the approximations it needs (docs/import.md, "iptables").

Each option is read exactly as the kernel matches it, or it is an error at its column naming
it. A match module the table has no field for (`-m policy`, `-m physdev`, `-m mark`, ...) is
no error but an approximation: the rule read without it, so it matches every packet its other
matches select; the flattening (chains.py) reports it, or with --approximate keeps it with the
flows it may decide otherwise.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dpipolicy.compiler.boxes import intersect
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import CT_STATE, CT_STATES, ICMP_TYPE, IP_MAX, IPV6_BASE, ct_state_values
from dpipolicy.dsl.source import Span

from .chains import CONTINUE, EVERY_FLOW, Condition, Verdict

FAMILY_RANGE = {"ipv4": (0, IPV6_BASE - 1), "ipv6": (IPV6_BASE, IP_MAX)}
# Protocol names as iptables takes them (its built-in list, and /etc/protocols' usual names).
PROTOCOLS = {"tcp": 6, "udp": 17, "udplite": 136, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "esp": 50, "ah": 51,
             "sctp": 132, "mh": 135, "ipv6-mh": 135, "dccp": 33, "gre": 47, "igmp": 2, "ipip": 4}
PORT_PROTOCOLS = {"tcp": (6,), "udp": (17,), "sctp": (132,), "dccp": (33,),
                  "multiport": (6, 17, 136, 132, 33)}          # the protocols whose ports a match reads
MULTIPORT_MAX = 15                  # the kernel's XT_MULTI_PORTS: a range counts as two
CHAIN_NAME_MAX = 28                 # XT_EXTENSION_MAXNAMELEN less the closing NUL
INTERFACE_MAX = 15                  # IFNAMSIZ less the closing NUL

# Top-level options: the short and long names iptables takes.
TOP = {"-p": "protocol", "--protocol": "protocol", "-s": "source", "--source": "source", "--src": "source",
       "-d": "destination", "--destination": "destination", "--dst": "destination",
       "-i": "in-interface", "--in-interface": "in-interface", "-o": "out-interface",
       "--out-interface": "out-interface", "-j": "jump", "--jump": "jump", "-g": "goto", "--goto": "goto",
       "-m": "match", "--match": "match", "-f": "fragment", "--fragment": "fragment", "-c": "set-counters",
       "--set-counters": "set-counters", "-4": "ipv4", "--ipv4": "ipv4", "-6": "ipv6", "--ipv6": "ipv6"}
NEGATABLE = {"protocol", "source", "destination", "in-interface", "out-interface", "fragment"}

# The match modules read exactly, with their options (name -> how many values); `!` may precede each.
EXACT_MATCHES = {
    "tcp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1,
            "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1},
    "udp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1},
    "sctp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1, "--chunk-types": 2},
    "dccp": {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1, "--dccp-types": 1,
             "--dccp-option": 1},
    "multiport": {"--sports": 1, "--source-ports": 1, "--dports": 1, "--destination-ports": 1, "--ports": 1},
    "iprange": {"--src-range": 1, "--dst-range": 1},
    "state": {"--state": 1},
    "conntrack": {"--ctstate": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1, "--ctreplsrc": 1,
                  "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1,
                  "--ctrepldstport": 1, "--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1},
    "icmp": {"--icmp-type": 1},
    "icmp6": {"--icmpv6-type": 1},
    "comment": {"--comment": 1},
    "limit": {"--limit": 1, "--limit-burst": 1},
}
# Options of those modules that test what no flow field holds: approximated as for a module.
UNMODELLED_OPTIONS = {
    "--tcp-flags": "TCP flags of each packet", "--syn": "the SYN flag of each packet",
    "--tcp-option": "TCP options of each packet", "--chunk-types": "SCTP chunk types",
    "--dccp-types": "DCCP packet types", "--dccp-option": "DCCP options",
    **{o: "the connection's tuples, status or expiry" for o in
       ("--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst", "--ctorigsrcport",
        "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport", "--ctstatus", "--ctexpire", "--ctdir")},
}
# Real iptables match modules no flow field holds, with what they test.
UNMODELLED_MATCHES = {
    "addrtype": "the kind of address (local, broadcast, ...)", "ah": "IPsec AH headers", "bpf": "a BPF program",
    "cgroup": "the sending process's control group", "cluster": "a cluster hash", "connbytes": "bytes so far",
    "connlabel": "connection labels", "connlimit": "the number of connections", "connmark": "the connection mark",
    "cpu": "the CPU", "devgroup": "interface groups", "dscp": "the DSCP field", "dst": "IPv6 destination options",
    "ecn": "ECN bits", "esp": "IPsec ESP headers", "eui64": "EUI-64 addresses", "frag": "IPv6 fragment headers",
    "hashlimit": "packet rates per address", "hbh": "IPv6 hop-by-hop options", "helper": "the conntrack helper",
    "hl": "the hop limit", "ipv6header": "IPv6 extension headers", "ipvs": "IPVS", "length": "packet length",
    "limit": "a packet rate", "mac": "the MAC address", "mark": "the packet mark", "mh": "mobility headers",
    "nfacct": "accounting objects", "osf": "the OS fingerprint", "owner": "the sending process's owner",
    "physdev": "bridge ports", "pkttype": "the link-layer packet type", "policy": "IPsec processing",
    "quota": "a byte quota", "rateest": "rate estimators", "realm": "routing realms", "recent": "recently seen addresses",
    "rpfilter": "reverse-path lookups", "rt": "IPv6 routing headers", "set": "ipset sets",
    "socket": "local sockets", "statistic": "chance or counting", "string": "packet content",
    "tcpmss": "the TCP MSS option", "time": "the time of day", "tos": "the TOS field", "ttl": "the TTL",
    "u32": "packet bytes", "unclean": "malformed packets",
}
STATES = ("INVALID", "ESTABLISHED", "NEW", "RELATED", "UNTRACKED")
# The ICMP names iptables and ip6tables take (iptables -p icmp -h), each as (type,) or (type, code).
ICMP_NAMES = {
    "icmp": {"echo-reply": (0,), "pong": (0,), "destination-unreachable": (3,), "network-unreachable": (3, 0),
             "host-unreachable": (3, 1), "protocol-unreachable": (3, 2), "port-unreachable": (3, 3),
             "fragmentation-needed": (3, 4), "source-route-failed": (3, 5), "network-unknown": (3, 6),
             "host-unknown": (3, 7), "network-prohibited": (3, 9), "host-prohibited": (3, 10),
             "tos-network-unreachable": (3, 11), "tos-host-unreachable": (3, 12),
             "communication-prohibited": (3, 13), "host-precedence-violation": (3, 14),
             "precedence-cutoff": (3, 15), "source-quench": (4,), "redirect": (5,), "network-redirect": (5, 0),
             "host-redirect": (5, 1), "tos-network-redirect": (5, 2), "tos-host-redirect": (5, 3),
             "echo-request": (8,), "ping": (8,), "router-advertisement": (9,), "router-solicitation": (10,),
             "time-exceeded": (11,), "ttl-exceeded": (11,), "ttl-zero-during-transit": (11, 0),
             "ttl-zero-during-reassembly": (11, 1), "parameter-problem": (12,), "ip-header-bad": (12, 0),
             "required-option-missing": (12, 1), "timestamp-request": (13,), "timestamp-reply": (14,),
             "address-mask-request": (17,), "address-mask-reply": (18,)},
    "icmp6": {"destination-unreachable": (1,), "no-route": (1, 0), "communication-prohibited": (1, 1),
              "beyond-scope": (1, 2), "address-unreachable": (1, 3), "port-unreachable": (1, 4),
              "failed-policy": (1, 5), "reject-route": (1, 6), "packet-too-big": (2,), "time-exceeded": (3,),
              "ttl-exceeded": (3,), "ttl-zero-during-transit": (3, 0), "ttl-zero-during-reassembly": (3, 1),
              "parameter-problem": (4,), "bad-header": (4, 0), "unknown-header-type": (4, 1),
              "unknown-option": (4, 2), "echo-request": (128,), "ping": (128,), "echo-reply": (129,),
              "pong": (129,), "mld-listener-query": (130,), "mld-listener-report": (131,),
              "mld-listener-done": (132,), "mld-listener-reduction": (132,), "router-solicitation": (133,),
              "router-advertisement": (134,), "neighbour-solicitation": (135,), "neighbor-solicitation": (135,),
              "neighbour-advertisement": (136,), "neighbor-advertisement": (136,), "redirect": (137,)},
}
CT_ONLY_STATES = ("SNAT", "DNAT")           # --ctstate: the connection's addresses were translated

# Targets, by what they do to the verdict, each with its options (name -> how many values).
_LOG_OPTIONS = {"--log-level": 1, "--log-prefix": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
                "--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0}
_MARKS = {"--set-mark": 1, "--set-xmark": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1}
TARGETS = {
    "ACCEPT": ("accept", {}), "DROP": ("drop", {}), "RETURN": ("return", {}),
    "REJECT": ("reject", {"--reject-with": 1}),
    "LOG": ("log", _LOG_OPTIONS),
    "NFLOG": ("log", {"--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1, "--nflog-size": 1,
                      "--nflog-threshold": 1}),
    "ULOG": ("log", {"--ulog-nlgroup": 1, "--ulog-prefix": 1, "--ulog-cprange": 1, "--ulog-qthreshold": 1}),
    # they change marks, header fields or classification: no verdict, and no flow field they change
    "MARK": ("continue", _MARKS),
    "CONNMARK": ("continue", {**_MARKS, "--save-mark": 0, "--restore-mark": 0, "--mask": 1, "--nfmask": 1,
                              "--ctmask": 1}),
    "TOS": ("continue", {"--set-tos": 1, "--and-tos": 1, "--or-tos": 1, "--xor-tos": 1}),
    "DSCP": ("continue", {"--set-dscp": 1, "--set-dscp-class": 1}),
    "TTL": ("continue", {"--ttl-set": 1, "--ttl-dec": 1, "--ttl-inc": 1}),
    "HL": ("continue", {"--hl-set": 1, "--hl-dec": 1, "--hl-inc": 1}),
    "TCPMSS": ("continue", {"--set-mss": 1, "--clamp-mss-to-pmtu": 0}),
    "CLASSIFY": ("continue", {"--set-class": 1}), "CHECKSUM": ("continue", {"--checksum-fill": 0}),
    "SECMARK": ("continue", {"--selctx": 1}), "CONNSECMARK": ("continue", {"--save": 0, "--restore": 0}),
    "TRACE": ("continue", {}), "TEE": ("continue", {"--gateway": 1}), "AUDIT": ("continue", {"--type": 1}),
    # connection tracking left out: later chains see the flows as untracked
    "CT": ("untrack", {"--notrack": 0, "--helper": 1, "--ctevents": 1, "--expevents": 1, "--zone": 1,
                       "--zone-orig": 1, "--zone-reply": 1, "--timeout": 1}),
    "NOTRACK": ("untrack", {}),
    # the nat table: the first packet of a connection, rewritten, goes on
    "DNAT": ("destination", {"--to-destination": 1, "--random": 0, "--persistent": 0}),
    "REDIRECT": ("destination", {"--to-ports": 1, "--random": 0}),
    "SNAT": ("source", {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0}),
    "MASQUERADE": ("source", {"--to-ports": 1, "--random": 0, "--random-fully": 0}),
    "NETMAP": ("netmap", {"--to": 1}),
    # the verdict is given by something outside the rule set
    "NFQUEUE": ("queue", {"--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--queue-cpu-fanout": 0}),
    "QUEUE": ("queue", {}),
    "TPROXY": ("queue", {"--on-port": 1, "--on-ip": 1, "--tproxy-mark": 1}),
    "SYNPROXY": ("queue", {"--sack-perm": 0, "--timestamp": 0, "--wscale": 1, "--mss": 1, "--ecn": 0}),
}
NAT_TARGETS = ("destination", "source", "netmap")
NAT_CHAINS = {"destination": ("PREROUTING", "OUTPUT"), "source": ("POSTROUTING", "INPUT"),
              "netmap": ("PREROUTING", "OUTPUT", "POSTROUTING", "INPUT")}
REJECT_KINDS = {
    "ipv4": {"icmp-net-unreachable": "net-unreach", "icmp-host-unreachable": "host-unreach",
             "icmp-port-unreachable": "port-unreach", "icmp-proto-unreachable": "proto-unreach",
             "icmp-net-prohibited": "net-prohib", "icmp-host-prohibited": "host-prohib",
             "icmp-admin-prohibited": "admin-prohib", "tcp-reset": "tcp-rst"},
    "ipv6": {"icmp6-no-route": "no-route", "icmp6-adm-prohibited": "adm-prohibited",
             "icmp6-addr-unreachable": "addr-unreach", "icmp6-port-unreachable": "port-unreach",
             "icmp6-policy-fail": "policy-fail", "icmp6-reject-route": "reject-route", "tcp-reset": "tcp-rst"},
}


@dataclass(frozen=True)
class Token:
    text: str
    span: Span


class RuleError(Exception):
    """Bad input at one token: the file reader turns it into a diagnostic."""

    def __init__(self, code: str, message: str, span: Span, label: str = "", help: str | None = None):
        super().__init__(message)
        self.code, self.message, self.span, self.label, self.help = code, message, span, label, help


@dataclass(frozen=True)
class Context:
    """Where a rule stands: the dump's family, the table, the chain and the table's user chains."""
    family: str
    table: str
    chain: str
    builtin: bool
    user_chains: frozenset[str]
    tool: str                       # iptables or ip6tables, for messages


@dataclass(frozen=True)
class Pending:
    """A test of a field whose values depend on the whole file (interface names and patterns:
    the field's values are the names the file uses), turned into boxes once all are read."""
    field: str
    names: tuple[str, ...]
    negated: bool
    span: Span


@dataclass
class ReadRule:
    """A rule's options, read: the condition's factors (ANDed), the verdict, and what it approximates."""
    factors: list[Condition | Pending] = field(default_factory=list)
    verdict: Verdict = CONTINUE
    log: bool = False
    comment: str | None = None
    approximations: list[tuple[Span, str, str]] = field(default_factory=list)   # (where, what, instead)
    skipped: bool = False           # `-6` in an IPv4 dump (or `-4` in an IPv6 one): not loaded
    left_out: bool = False          # a match the table cannot hold: read as matching no packet


_LEFT_OUT = "the rule matching no packet (left out)"


class RuleReader:
    """Reads the options after `-A CHAIN` of one line."""

    def __init__(self, tokens: list[Token], context: Context, line: Span):
        self.tokens, self.context, self.line = tokens, context, line
        self.at = 0
        self.out = ReadRule()
        self.seen: dict[str, Token] = {}            # top-level options given
        self.protocol: tuple[IntervalSet, bool, Token] | None = None
        self.modules: list[tuple[str, Token, dict[str, Token]]] = []   # loaded matches and their options given
        self.target: tuple[str, Token] | None = None
        self.target_options: dict[str, tuple[Token, list[Token]]] = {}
        self.limit: Token | None = None

    # ----- the tokens -----------------------------------------------------------------------
    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def values(self, option: Token, count: int) -> list[Token]:
        """The values of an option: the next tokens, whatever they look like (as getopt takes them)."""
        if self.at + count > len(self.tokens):
            raise RuleError("E721", f"`{option.text}` needs {'a value' if count == 1 else f'{count} values'}",
                            option.span, "no value after it", help=f"write `{option.text} VALUE`")
        return [self.take() for _ in range(count)]

    # ----- the rule -------------------------------------------------------------------------
    def read(self) -> ReadRule:
        negation: Token | None = None
        while self.peek() is not None:
            token = self.take()
            if token.text == "!":
                if negation is not None:
                    raise RuleError("E725", "`!` given twice", token.span, "a second `!`")
                negation = token
                continue
            if token.text in TOP:
                self.top(TOP[token.text], token, negation)
            elif token.text.startswith("-") and len(token.text) > 1:
                self.option(token, negation)
            else:
                raise RuleError("E720", f"`{token.text}` is not an option", token.span, "expected an option",
                                help="a rule is options, each with its values: `-p tcp --dport 22 -j ACCEPT`")
            negation = None
        if negation is not None:
            raise RuleError("E725", "`!` at the end of the rule", negation.span, "nothing to negate",
                            help="`!` stands before the option it negates: `! -s 10.0.0.0/8`")
        for name, token, _ in self.modules:
            self.needs_protocol(name, token)
        self.finish()
        return self.out

    def top(self, option: str, token: Token, negation: Token | None) -> None:
        if negation is not None and option not in NEGATABLE:
            raise RuleError("E725", f"`{token.text}` cannot be negated", negation.span, "`!` here",
                            help="`!` negates a match: -p, -s, -d, -i, -o, -f and the options of matches")
        if option not in ("match", "set-counters") and option in self.seen:
            raise RuleError("E721", f"`{token.text}` is given twice", token.span, "again",
                            help=f"the first is at column {self.seen[option].span.column}; a rule takes one")
        self.seen[option] = token
        if option == "protocol":
            (value,) = self.values(token, 1)
            self.protocol = (self.protocol_values(value), negation is not None, value)
            self.out.factors.append(({"proto": self.complemented(self.protocol[0], negation, 0, 255)},))
        elif option in ("source", "destination"):
            (value,) = self.values(token, 1)
            if negation is not None and "," in value.text:
                raise RuleError("E725", f"`! {token.text}` with several addresses", negation.span, "`!` here",
                                help="iptables refuses to negate a list: write a prefix or `-m iprange` range that "
                                     "holds them, or one rule per address")
            name = "src.ip" if option == "source" else "dst.ip"
            values = self.addresses(value)
            lo, hi = FAMILY_RANGE[self.context.family]
            self.out.factors.append(({name: self.complemented(values, negation, lo, hi)},))
        elif option in ("in-interface", "out-interface"):
            (value,) = self.values(token, 1)
            self.interface(option, value, negation)
        elif option == "match":
            (value,) = self.values(token, 1)
            self.load(token, value)
        elif option in ("jump", "goto"):
            (value,) = self.values(token, 1)
            if "jump" in self.seen and "goto" in self.seen:
                raise RuleError("E721", "a rule has one of `-j` and `-g`, not both", token.span, "the second")
            self.target = (value.text, value) if option == "jump" else ("goto " + value.text, value)
        elif option == "fragment" and self.context.family == "ipv6":
            raise RuleError("E720", f"`{token.text}` is not an option of ip6tables", token.span, "IPv4 only",
                            help="ip6tables refuses it: an IPv6 fragment is matched with `-m frag`")
        elif option == "fragment":
            # conntrack reassembles packets before these tables: a later fragment is part of its flow
            self.approximate(token.span, f"`{'! ' if negation else ''}{token.text}` tests whether a packet is a "
                             "fragment after the first, which no flow field holds",
                             "every packet of a flow its first" if negation else _LEFT_OUT, left_out=not negation)
        elif option == "set-counters":
            self.values(token, 2)
        elif option in ("ipv4", "ipv6"):
            self.out.skipped |= (option == "ipv4") != (self.context.family == "ipv4")

    def option(self, token: Token, negation: Token | None) -> None:
        """An option of a match or of the target: after `-j`, the target's first."""
        if self.target is not None and token.text in self.target_table():
            if negation is not None:
                raise RuleError("E725", f"`{token.text}` cannot be negated", negation.span, "`!` here")
            if token.text in self.target_options:
                raise RuleError("E721", f"`{token.text}` is given twice", token.span, "again")
            self.target_options[token.text] = (token, self.values(token, self.target_table()[token.text]))
            return
        for name, _, given in reversed(self.modules):
            if token.text in EXACT_MATCHES[name]:
                self.match_option(name, given, token, negation)
                return
        implicit = self.implicit_module()
        if implicit is not None and token.text in EXACT_MATCHES[implicit]:
            self.modules.append((implicit, token, {}))
            self.match_option(implicit, self.modules[-1][2], token, negation)
            return
        raise RuleError("E720", f"`{token.text}` is an option of no match or target this rule loads", token.span,
                        "unknown here", help="load its match first (`-m tcp --dport 22`), or check the spelling")

    def implicit_module(self) -> str | None:
        """`-p tcp` loads the tcp match for its options, as iptables does (`-p udp --dport 53`, and
        `-p 6 --dport 22` by the protocol's number); a protocol without a match of this family's
        (`-p udplite`, `-p icmp` in ip6tables) loads none."""
        if self.protocol is None or self.protocol[1]:
            return None
        name = self.protocol[2].text.lower()
        if name.isdigit():
            name = next((n for n, number in PROTOCOLS.items() if number == int(name)), name)
        name = {"ipv6-icmp": "icmp6", "icmpv6": "icmp6"}.get(name, name)
        icmp = "icmp" if self.context.family == "ipv4" else "icmp6"
        return name if name in PORT_PROTOCOLS or name == icmp else None

    # ----- matches --------------------------------------------------------------------------
    def load(self, option: Token, module: Token) -> None:
        name = module.text.lower()
        if name in ("icmp", "icmp6") and (name == "icmp") != (self.context.family == "ipv4"):
            other = "icmp6" if name == "icmp" else "icmp"
            raise RuleError("E726", f"{self.context.tool} has no `{name}` match", module.span, "not this family",
                            help=f"write `-m {other}` in an {self.context.family.replace('ipv', 'IPv')} dump")
        if name in EXACT_MATCHES:
            self.modules.append((name, module, {}))
            return
        if name in UNMODELLED_MATCHES:
            span = Span(option.span.file, option.span.start, self.skip_options().span.end)
            self.approximate(span, f"`{span.text}` matches {UNMODELLED_MATCHES[name]}", _LEFT_OUT, left_out=True)
            return
        raise RuleError("E726", f"`{module.text}` is not an iptables match", module.span, "unknown match",
                        help="the matches are iptables-extensions(8)'s; check the spelling")

    def skip_options(self) -> Token:
        """The options of a match that is approximated, up to the next option it cannot own; the
        last token taken (the module's name when it has none)."""
        last = self.tokens[self.at - 1]
        while (token := self.peek()) is not None:
            after = self.tokens[self.at + 1] if token.text == "!" and self.at + 1 < len(self.tokens) else token
            if after.text in TOP or self.owned(after.text):
                break
            last = self.take()
        return last

    def owned(self, option: str) -> bool:
        """Whether an earlier match (or the protocol's) reads this option."""
        implicit = self.implicit_module()
        return any(option in EXACT_MATCHES[name] for name, _, _ in self.modules) or (
            implicit is not None and option in EXACT_MATCHES.get(implicit, {}))

    def needs_protocol(self, module: str, token: Token) -> None:
        """The kernel takes a port or ICMP match only under `-p` naming its protocol, given
        anywhere in the rule (`-m tcp --dport 22 -p tcp` loads)."""
        if module not in PORT_PROTOCOLS and module not in ("icmp", "icmp6"):
            return
        wanted = PORT_PROTOCOLS.get(module) or ((1,) if module == "icmp" else (58,))
        if self.protocol is None or self.protocol[1] or self.protocol[0].size() != 1 \
                or self.protocol[0].min() not in wanted:
            names = "/".join(n for n, v in PROTOCOLS.items() if v in wanted and n != "ipv6-icmp")
            raise RuleError("E723", f"`-m {module}` needs `-p {names}` in the same rule", token.span,
                            "no protocol for it", help=f"the kernel refuses this match without `-p {names.split('/')[0]}`")

    def match_option(self, module: str, given: dict[str, Token], token: Token, negation: Token | None) -> None:
        option = token.text
        if option in given or _synonym(option) in given:
            raise RuleError("E721", f"`{option}` is given twice in one `-m {module}`", token.span, "again",
                            help="give each option once; a second `-m` of the module tests again")
        given[option] = token
        values = self.values(token, EXACT_MATCHES[module][option])
        if option in UNMODELLED_OPTIONS:
            end = values[-1].span if values else token.span
            start = negation.span if negation is not None else token.span
            self.approximate(Span(token.span.file, start.start, end.end),
                             f"`{Span(token.span.file, start.start, end.end).text}` tests "
                             f"{UNMODELLED_OPTIONS[option]}", _LEFT_OUT, left_out=True)
            return
        negated = negation is not None
        if module in PORT_PROTOCOLS and module != "multiport":
            name = "src.port" if option in ("--sport", "--source-port") else "dst.port"
            self.factor({name: self.complemented(self.port_range(values[0]), negation, 0, 65535)})
        elif module == "multiport":
            ports = self.port_list(values[0])
            if option in ("--ports",):      # either port: one of two boxes, or (negated) neither
                if negated:
                    outside = ports.complement(0, 65535)
                    self.factor({"src.port": outside, "dst.port": outside})
                else:
                    self.out.factors.append(({"src.port": ports}, {"dst.port": ports}))
            else:
                name = "src.port" if option in ("--sports", "--source-ports") else "dst.port"
                self.factor({name: self.complemented(ports, negation, 0, 65535)})
        elif module == "iprange":
            name = "src.ip" if option == "--src-range" else "dst.ip"
            lo, hi = FAMILY_RANGE[self.context.family]
            self.factor({name: self.complemented(self.address_range(values[0]), negation, lo, hi)})
        elif module in ("state", "conntrack"):
            self.states(module, values[0], negation)
        elif module in ("icmp", "icmp6"):
            self.icmp_type(module, values[0], negation)
        elif module == "comment":
            if negated:
                raise RuleError("E725", "`--comment` cannot be negated", negation.span, "`!` here")
            self.out.comment = values[0].text
        elif module == "limit":
            if negated:
                raise RuleError("E725", f"`{option}` cannot be negated", negation.span, "`!` here")
            self.limit = self.limit or token

    def factor(self, box: dict[str, IntervalSet]) -> None:
        if any(v.is_empty() for v in box.values()):
            self.out.factors.append(())
        else:
            self.out.factors.append((box,))

    def approximate(self, span: Span, what: str, instead: str, left_out: bool = False) -> None:
        self.out.approximations.append((span, what, instead))
        self.out.left_out |= left_out

    # ----- values ---------------------------------------------------------------------------
    @staticmethod
    def complemented(values: IntervalSet, negation: Token | None, lo: int, hi: int) -> IntervalSet:
        return values.complement(lo, hi) if negation is not None else values

    def protocol_values(self, token: Token) -> IntervalSet:
        text = token.text.lower()
        if text in ("all", "0"):
            return IntervalSet.span(0, 255)
        if text.isdigit():
            if int(text) > 255:
                raise RuleError("E724", f"protocol {text} is out of range", token.span, "protocols are 0..255")
            return IntervalSet.point(int(text))
        if text in PROTOCOLS:
            return IntervalSet.point(PROTOCOLS[text])
        raise RuleError("E724", f"`{token.text}` is not a protocol this reader knows", token.span, "unknown protocol",
                        help="write its number (as /etc/protocols gives it), or one of " + ", ".join(PROTOCOLS))

    def addresses(self, token: Token) -> IntervalSet:
        """`-s`/`-d`: addresses and prefixes (`/len` or `/netmask`), comma-separated; iptables
        loads one rule per item, which first match makes one rule matching their union."""
        return IntervalSet.of(self.address(token, part) for part in token.text.split(","))

    def address(self, token: Token, text: str) -> tuple[int, int]:
        family = self.context.family
        address, _, mask = text.partition("/")
        try:
            host = ipaddress.ip_address(address)
        except ValueError:
            host = None
        if host is None:
            looks_like_name = any(c.isalpha() for c in address) and ":" not in address
            raise RuleError("E722", f"`{text}` is a host name" if looks_like_name else f"`{text}` is not an address",
                            token.span, "not an address", help="iptables resolves a host name once, when it loads "
                            "the rule; a dump holds the addresses (iptables-save writes them)" if looks_like_name
                            else "write an address or prefix, such as 192.0.2.0/24")
        if (host.version == 4) != (family == "ipv4"):
            raise RuleError("E722", f"`{text}` is an IPv{host.version} address in an {self.context.tool} dump",
                            token.span, "other family", help=f"{self.context.tool} matches "
                            f"{family.replace('ipv', 'IPv')} packets only; put it in the other family's dump")
        width = host.max_prefixlen
        length = width
        if mask:
            length = self.prefix_length(token, mask, host.version, width)
        network = ipaddress.ip_network(f"{address}/{length}", strict=False)    # iptables masks host bits
        base = 0 if host.version == 4 else IPV6_BASE
        return base + int(network.network_address), base + int(network.broadcast_address)

    @staticmethod
    def prefix_length(token: Token, mask: str, version: int, width: int) -> int:
        if mask.isdigit():
            if int(mask) > width:
                raise RuleError("E722", f"prefix length /{mask} is out of range", token.span, f"at most /{width}")
            return int(mask)
        try:
            bits = int(ipaddress.ip_address(mask))
            if ipaddress.ip_address(mask).version != version:
                raise ValueError
        except ValueError:
            raise RuleError("E722", f"`/{mask}` is not a prefix length or netmask", token.span, "bad mask") from None
        length = bin(bits).count("1")
        if bits != ((1 << width) - 1) ^ ((1 << (width - length)) - 1):
            raise RuleError("E722", f"netmask `{mask}` has gaps: it matches no one range of addresses", token.span,
                            "not a prefix", help="a prefix's netmask is ones then zeros (255.255.255.0)")
        return length

    def address_range(self, token: Token) -> IntervalSet:
        first, dash, last = token.text.partition("-")
        if not dash:
            raise RuleError("E722", f"`{token.text}` is not an address range", token.span, "expected FROM-TO",
                            help="for example 192.0.2.10-192.0.2.20")
        lo, _ = self.address(token, first)
        hi, _ = self.address(token, last)
        if lo > hi:
            raise RuleError("E722", f"the range `{token.text}` is empty", token.span, "FROM after TO")
        return IntervalSet.span(lo, hi)

    @staticmethod
    def port(token: Token, text: str) -> int:
        if not text.isdigit():
            raise RuleError("E723", f"`{text}` is not a port number", token.span, "not a number",
                            help="iptables-save writes port numbers; write the number (ssh is 22)")
        if int(text) > 65535:
            raise RuleError("E723", f"port {text} is out of range", token.span, "ports are 0..65535")
        return int(text)

    def port_range(self, token: Token, text: str | None = None) -> IntervalSet:
        text = token.text if text is None else text
        if ":" not in text:
            return IntervalSet.point(self.port(token, text))
        first, last = text.split(":", 1)
        lo = self.port(token, first) if first else 0
        hi = self.port(token, last) if last else 65535
        if lo > hi:
            raise RuleError("E723", f"the port range `{text}` is empty", token.span, "first port after the last",
                            help=f"write `{hi}:{lo}`")
        return IntervalSet.span(lo, hi)

    def port_list(self, token: Token) -> IntervalSet:
        items = token.text.split(",")
        if sum(1 + (":" in item) for item in items) > MULTIPORT_MAX:
            raise RuleError("E723", f"`-m multiport` takes at most {MULTIPORT_MAX} ports (a range counts as two)",
                            token.span, "too many", help="split the rule in two")
        out = IntervalSet(())
        for item in items:
            out = out.union(self.port_range(token, item))
        return out

    def interface(self, option: str, token: Token, negation: Token | None) -> None:
        """`-i`/`-o NAME`, `NAME+` matching every name that starts with NAME."""
        name = token.text
        body = name[:-1] if name.endswith("+") else name
        if len(body) > INTERFACE_MAX or not name or any(c in body for c in "/ +\t") or (not body and name != "+"):
            raise RuleError("E733", f"`{name}` is not an interface name", token.span, "bad name",
                            help="an interface name has 1 to 15 characters, and `+` at the end matches every name "
                                 "that starts with it (`tun+`)")
        chain = self.context.chain if self.context.builtin else None
        wrong = {"in-interface": ("OUTPUT", "POSTROUTING"), "out-interface": ("PREROUTING", "INPUT")}[option]
        if chain in wrong:
            raise RuleError("E733", f"`-{option[0]}` in chain {chain}: a packet there has no "
                            f"{'input' if option[0] == 'i' else 'output'} interface", token.span, "refused here",
                            help="iptables refuses this rule")
        if name == "+":         # every name
            if negation is not None:
                self.out.factors.append(())
            return
        pattern = body + "*" if name.endswith("+") else name
        field_name = "iface.in" if option == "in-interface" else "iface.out"
        self.out.factors.append(Pending(field_name, (pattern,), negation is not None, token.span))

    def states(self, module: str, token: Token, negation: Token | None) -> None:
        names = [s.upper() for s in token.text.split(",")]
        for name in names:
            if name not in STATES + CT_ONLY_STATES or (name in CT_ONLY_STATES and module == "state"):
                raise RuleError("E730", f"`{name.lower()}` is not a connection state", token.span, "unknown state",
                                help="states: " + ",".join(STATES))
        if self.context.table == "raw":
            raise RuleError("E734", "a state match in the raw table: connection tracking runs after it",
                            token.span, "no state yet", help="match states in the mangle, nat or filter table")
        if any(name in CT_ONLY_STATES for name in names):
            self.approximate(token.span, f"`--ctstate {token.text}` tests whether the connection's addresses were "
                             "translated", _LEFT_OUT, left_out=True)
            return
        values = ct_state_values(n.lower() for n in names)
        self.factor({CT_STATE: self.complemented(values, negation, 0, len(CT_STATES) - 1)})

    def icmp_type(self, module: str, token: Token, negation: Token | None) -> None:
        """`--icmp-type TYPE[/CODE]` or a name iptables knows; `any` is every type. The table has
        no field for the code: a code is an approximation."""
        text = token.text.lower()
        if text == "any":
            return
        named = ICMP_NAMES[module].get(text)
        kind, slash, code = (str(named[0]), "/" if len(named) > 1 else "", str(named[-1])) if named \
            else text.partition("/")
        if not kind.isdigit() or (slash and not code.isdigit()):
            raise RuleError("E731", f"`{token.text}` is not an {module} type", token.span, "unknown type",
                            help="write TYPE or TYPE/CODE as numbers (8 is echo-request), or a name: "
                                 + ", ".join(ICMP_NAMES[module]))
        if int(kind) > 255 or (slash and int(code) > 255):
            raise RuleError("E731", f"`{token.text}`: types and codes are 0..255", token.span, "out of range")
        if slash:
            self.approximate(token.span, f"`--icmp{'v6' if module == 'icmp6' else ''}-type {token.text}` tests the "
                             f"ICMP code {code} too, which no flow field holds", "the rule matching every code of "
                             f"type {kind}" if negation is None else _LEFT_OUT, left_out=negation is not None)
            if negation is not None:
                return
        values = IntervalSet.point(int(kind))
        self.factor({ICMP_TYPE: self.complemented(values, negation, 0, 255)})

    # ----- the target -----------------------------------------------------------------------
    def target_table(self) -> dict[str, int]:
        name = self.target[0] if self.target is not None else ""
        return TARGETS[name][1] if name in TARGETS else {}

    def finish(self) -> None:
        """The verdict, once every option is read (a target's options may come anywhere after it).
        A rule without a verdict, logging or a change to what later chains see (no target, MARK,
        ...) decides nothing whatever it matches: what it approximates does not matter."""
        self.verdict()
        if self.out.verdict == CONTINUE and not self.out.log and not self.untracks:
            self.out.approximations.clear()

    def verdict(self) -> None:
        self.untracks = False
        if self.target is None:
            return
        name, token = self.target
        context = self.context
        if name.startswith("goto "):
            chain = name[5:]
            self.user_chain(chain, token, "-g")
            self.out.verdict = Verdict("goto", f"{context.table} {chain}")
            return
        if name not in TARGETS:
            self.user_chain(name, token, "-j")
            self.out.verdict = Verdict("jump", f"{context.table} {name}")
            self.limited()
            return
        kind = TARGETS[name][0]
        self.allowed_in_table(name, kind, token)
        if kind == "log":
            self.out.log = True         # a limit on a logging rule only thins the log (docs/import.md)
            return
        self.limited()
        if kind in ("accept", "drop", "return"):
            self.out.verdict = Verdict(kind)
        elif kind == "reject":
            self.out.verdict = self.reject(token)
        elif kind == "untrack":
            self.untracks = True
            self.approximate(token.span, f"`-j {name}` leaves the packet untracked, which later chains see in its "
                             "connection state", "the target left out")
        elif kind in NAT_TARGETS:
            if kind == "netmap":
                kind = "destination" if context.chain in ("PREROUTING", "OUTPUT") else "source"
            self.out.verdict = Verdict("accept", rewrites=kind)
        elif kind == "queue":
            raise RuleError("E732", f"`-j {name}`: the verdict is given outside the rule set", token.span,
                            "not modelled", help="a queue or proxy target hands the packet to a program or socket "
                            "whose answer no rule set shows")

    def limited(self) -> None:
        if self.limit is not None:
            self.approximate(self.limit.span, "`-m limit` matches packets up to a rate", _LEFT_OUT, left_out=True)

    def user_chain(self, chain: str, token: Token, option: str) -> None:
        if chain not in self.context.user_chains:
            words = f"`{option} {chain}`: there is no target or user chain `{chain}` in table {self.context.table}"
            raise RuleError("E727", words, token.span, "unknown target",
                            help=f"declare it with `:{chain} - [0:0]` in *{self.context.table}, or check the "
                                 "spelling" + ("" if option == "-j" else "; `-g` goes to a user chain"))

    def allowed_in_table(self, name: str, kind: str, token: Token) -> None:
        """What the kernel and iptables refuse: a target outside the tables it belongs to."""
        table, chain = self.context.table, self.context.chain
        refused = None
        if kind == "drop" and table == "nat":
            refused = "the nat table is not for filtering: iptables refuses DROP there"
        elif kind == "reject" and table != "filter":
            refused = "REJECT belongs to the filter table"
        elif kind in NAT_TARGETS and table != "nat":
            refused = f"{name} belongs to the nat table"
        elif kind in NAT_TARGETS and self.context.builtin and chain not in NAT_CHAINS[kind]:
            refused = f"{name} is for chains {' and '.join(NAT_CHAINS[kind])}"
        elif kind == "untrack" and table != "raw":
            refused = f"{name} belongs to the raw table"
        if refused is not None:
            raise RuleError("E728", f"`-j {name}` in {table} {chain}: {refused}", token.span, "refused here")

    def reject(self, token: Token) -> Verdict:
        given = self.target_options.get("--reject-with")
        if given is None:
            return Verdict("reject")
        option, (kind,) = given
        kinds = REJECT_KINDS[self.context.family]
        canonical = next((k for k, alias in kinds.items() if kind.text in (k, alias)), None)
        if canonical is None:
            raise RuleError("E729", f"`{kind.text}` is not a reject kind of {self.context.tool}", kind.span,
                            "unknown kind", help="kinds: " + ", ".join(kinds))
        if canonical == "tcp-reset":
            if self.protocol is None or self.protocol[1] or self.protocol[0] != IntervalSet.point(6):
                raise RuleError("E729", "`--reject-with tcp-reset` on a rule that does not match `-p tcp`", kind.span,
                                "TCP only", help="the kernel refuses a TCP reset for other protocols: add `-p tcp`")
            return Verdict("reject", tcp_reset=True)
        return Verdict("reject")


def _synonym(option: str) -> str:
    return {"--sport": "--source-port", "--source-port": "--sport", "--dport": "--destination-port",
            "--destination-port": "--dport", "--sports": "--source-ports", "--source-ports": "--sports",
            "--dports": "--destination-ports", "--destination-ports": "--dports"}.get(option, option)


def conjunction(factors: list[Condition]) -> Condition:
    """The union of boxes that is the AND of unions of boxes."""
    out: Condition = EVERY_FLOW
    for factor in factors:
        out = tuple(both for a in out for b in factor if (both := intersect(a, b)) is not None)
        if not out:
            break
    return out
