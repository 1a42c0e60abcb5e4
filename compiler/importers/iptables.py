"""iptables-save and ip6tables-save dumps read into the rule-set model (chains.py), exactly, or
with every error at its line and column (docs/import.md, "iptables").

A dump is tables (`*filter` ... `COMMIT`), each with chain lines (`:INPUT DROP [0:0]`, `:NAME -
[0:0]` for a user chain) and rules (`-A CHAIN options`, iptablesrule.py). A table's built-in
chains sit on the kernel's hooks at its priorities: raw -300, mangle -150, nat -100 (PREROUTING
and OUTPUT, where it rewrites destinations) and 100 (INPUT and POSTROUTING, sources), filter 0,
security 50. Comments and blank lines are skipped; every other line is read or is an error.

iptables sees IPv4 packets only (ip6tables IPv6 only): the other family's flows are decided
first, as the kernel leaves them to this rule set: accepted, not seen by it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dpipolicy.compiler.table import Approximation
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.source import SourceFile, Span, file_from_text

from dpipolicy.dsl import interfaces
from dpipolicy.dsl.schema import INTERFACE_FIELDS, OPTIONAL_FIELDS
from dpipolicy.dsl.values import ValueError_

from .chains import Chain, ChainRule, Condition, Ruleset, Verdict, field_of, used_fields
from .iptablesrule import (CHAIN_NAME_MAX, FAMILY_RANGE, TARGETS, Context, Pending, ReadRule, RuleError,
                           RuleReader, Token, conjunction)

TOOLS = {"ipv4": "iptables", "ipv6": "ip6tables"}
_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
# Each table's built-in chains: (hook, priority).
BUILTIN = {
    "raw": {c: (c.lower(), -300) for c in ("PREROUTING", "OUTPUT")},
    "mangle": {c: (c.lower(), -150) for c in _HOOKS},
    "nat": {"PREROUTING": ("prerouting", -100), "INPUT": ("input", 100), "OUTPUT": ("output", -100),
            "POSTROUTING": ("postrouting", 100)},
    "filter": {c: (c.lower(), 0) for c in ("INPUT", "FORWARD", "OUTPUT")},
    "security": {c: (c.lower(), 50) for c in ("INPUT", "FORWARD", "OUTPUT")},
}
POLICIES = ("ACCEPT", "DROP")


@dataclass
class _Table:
    name: str
    span: Span                                   # the `*name` line
    chains: dict[str, tuple[str | None, Span]] = field(default_factory=dict)   # name -> (policy, its line)
    rules: list[tuple[str, Token, list[Token], Span]] = field(default_factory=list)  # chain, its token, options, text
    committed: bool = False


def read_iptables_save(text: str, source: str, family: str) -> Ruleset:
    """The rule set of an iptables-save (family "ipv4") or ip6tables-save ("ipv6") dump.
    Raises DiagnosticError with every error of the file, each at its line and column."""
    if family not in TOOLS:
        raise ValueError(f"family is ipv4 or ipv6, not {family!r}")
    return _Reader(file_from_text(text, source), family).read()


class _Reader:
    def __init__(self, file: SourceFile, family: str):
        self.file, self.family, self.tool = file, family, TOOLS[family]
        self.errors: list[Diagnostic] = []
        self.tables: list[_Table] = []

    def error(self, code: str, message: str, span: Span, label: str = "", help: str | None = None) -> None:
        self.errors.append(Diagnostic(code, message, span, label, help))

    def read(self) -> Ruleset:
        current: _Table | None = None
        for number, start in enumerate(self.file.line_starts, start=1):
            line = self.file.line_text(number).rstrip("\r")
            tokens = self.tokens(line, start)
            if tokens is None or not tokens or tokens[0].text.startswith("#"):
                continue
            current = self.line(tokens, current, Span(self.file, start, start + len(line.rstrip())))
        if current is not None and not current.committed:
            self.error("E717", f"table *{current.name} has no COMMIT", current.span, "never committed",
                       help="iptables-restore loads a table at its COMMIT line: end it with `COMMIT`")
        return self.ruleset()

    def raise_errors(self) -> None:
        if self.errors:
            raise DiagnosticError(sorted(self.errors, key=lambda d: d.span.start))

    # ----- lines ----------------------------------------------------------------------------
    def tokens(self, line: str, offset: int) -> list[Token] | None:
        """The words of a line as iptables-restore splits them: at blanks, with double or single
        quotes holding blanks and a backslash escaping the next character. None after an error."""
        out: list[Token] = []
        i, n = 0, len(line)
        while i < n:
            if line[i] in " \t":
                i += 1
                continue
            start, word, quote = i, [], None
            while i < n and (quote is not None or line[i] not in " \t"):
                c = line[i]
                if c == "\\" and i + 1 < n:
                    word.append(line[i + 1])
                    i += 2
                    continue
                if quote is None and c in "\"'" and not (out and out[0].text.startswith("#")):
                    quote = c
                elif c == quote:
                    quote = None
                else:
                    word.append(c)
                i += 1
            if quote is not None:
                self.error("E714", "a quote that is not closed", Span(self.file, offset + start, offset + n),
                           "opened here", help=f"close it with {quote}")
                return None
            out.append(Token("".join(word), Span(self.file, offset + start, offset + i)))
        return out

    def line(self, tokens: list[Token], current: _Table | None, whole: Span) -> _Table | None:
        first = tokens[0]
        if first.text.startswith("*"):
            return self.table(first, tokens, current)
        if first.text == "COMMIT":
            if current is None or current.committed:
                self.error("E715", "COMMIT outside a table", first.span, "no table to commit",
                           help="a table starts with `*NAME` (`*filter`)")
            else:
                current.committed = True
                if len(tokens) > 1:
                    self.error("E714", "COMMIT takes nothing after it", tokens[1].span, "unexpected")
            return current
        if current is None or current.committed:
            if first.text.startswith((":", "-", "[")):
                self.error("E715", "a chain or rule outside a table", first.span,
                           "after COMMIT" if current is not None else "before any table",
                           help="put it between `*TABLE` and `COMMIT`")
            else:
                self.not_a_line(first)
            return current
        if first.text.startswith(":"):
            self.chain(tokens, current)
        elif first.text.startswith("[") or first.text in ("-A", "--append"):
            self.rule(tokens, current, whole)
        elif first.text in ("-I", "--insert", "-D", "--delete", "-R", "--replace", "-N", "--new-chain", "-X",
                            "--delete-chain", "-P", "--policy", "-F", "--flush", "-Z", "--zero", "-E",
                            "--rename-chain"):
            self.error("E735", f"`{first.text}` in a dump", first.span, "not -A",
                       help="a dump declares chains with `:NAME POLICY [0:0]` lines and appends rules with `-A`; "
                            "write the rule set as iptables-save writes it")
        else:
            self.not_a_line(first)
        return current

    def not_a_line(self, token: Token) -> None:
        self.error("E714", f"`{token.text}` starts no line of an {self.tool}-save dump", token.span,
                   "not a table, chain, rule or COMMIT",
                   help="a dump holds `*TABLE`, `:CHAIN POLICY [0:0]`, `-A CHAIN ...` and `COMMIT` lines, "
                        "and `#` comments")

    def table(self, first: Token, tokens: list[Token], current: _Table | None) -> _Table:
        name = first.text[1:]
        if current is not None and not current.committed:
            self.error("E717", f"table *{name} starts before *{current.name} is committed", first.span,
                       f"*{current.name} has no COMMIT", help="end each table with `COMMIT`")
        if name not in BUILTIN:
            self.error("E716", f"`{first.text}` is not a table of {self.tool}", first.span, "unknown table",
                       help="tables: " + ", ".join(f"*{t}" for t in BUILTIN))
        elif any(t.name == name for t in self.tables):
            self.error("E716", f"table *{name} is given twice", first.span, "again",
                       help="a dump holds each table once")
        if len(tokens) > 1:
            self.error("E714", f"*{name} takes nothing after it", tokens[1].span, "unexpected")
        table = _Table(name, first.span)
        if name in BUILTIN and not any(t.name == name for t in self.tables):
            self.tables.append(table)
        return table

    def chain(self, tokens: list[Token], table: _Table) -> None:
        """`:NAME POLICY [packets:bytes]`: a built-in chain's policy, or `-` declaring a user chain."""
        first = tokens[0]
        name = first.text[1:]
        if len(tokens) < 2 or len(tokens) > 3:
            self.error("E718", f"`{first.text}` is not a chain line", first.span, "expected `:NAME POLICY [0:0]`",
                       help="for example `:INPUT DROP [0:0]`, or `:NAME - [0:0]` for a user chain")
            return
        policy = tokens[1]
        builtin = name in BUILTIN.get(table.name, {})
        if name in table.chains:
            self.error("E718", f"chain {name} is declared twice in *{table.name}", first.span, "again")
        elif not name or len(name) > CHAIN_NAME_MAX or name.startswith(("-", "!")) or name in TARGETS:
            self.error("E718", f"`{name}` is not a name for a chain", first.span, "bad name",
                       help=f"a chain's name has 1 to {CHAIN_NAME_MAX} characters, is no target's name and does "
                            "not start with `-` or `!`")
        elif builtin and policy.text not in POLICIES:
            self.error("E718", f"`{policy.text}` is not a policy for built-in chain {name}", policy.span,
                       "ACCEPT or DROP", help="the policy of a built-in chain is ACCEPT or DROP")
        elif not builtin and policy.text != "-":
            where = f"{table.name} has no built-in chain {name}" if name.isupper() else f"{name} is a user chain"
            self.error("E718", f"`{policy.text}`: {where}, which takes no policy", policy.span, "expected `-`",
                       help=f"declare a user chain with `:{name} - [0:0]`; built-in chains of *{table.name}: "
                            + ", ".join(BUILTIN.get(table.name, {})))
        elif table.name == "nat" and policy.text == "DROP":
            self.error("E718", "a DROP policy in the nat table", policy.span, "refused",
                       help="iptables refuses DROP in the nat table, which is not for filtering")
        elif len(tokens) == 3 and not _counters(tokens[2].text):
            self.error("E718", f"`{tokens[2].text}` is not a pair of counters", tokens[2].span,
                       "expected [PACKETS:BYTES]")
        else:
            table.chains[name] = (policy.text if builtin else None, first.span.to(tokens[-1].span))

    def rule(self, tokens: list[Token], table: _Table, whole: Span) -> None:
        if tokens[0].text.startswith("["):             # iptables-save -c: the rule's counters first
            if not _counters(tokens[0].text):
                self.error("E714", f"`{tokens[0].text}` is not a pair of counters", tokens[0].span,
                           "expected [PACKETS:BYTES]")
                return
            tokens = tokens[1:]
            if not tokens or tokens[0].text not in ("-A", "--append"):
                self.error("E714", "counters with no rule after them", whole, "expected `-A CHAIN ...`")
                return
        if len(tokens) < 2:
            self.error("E721", f"`{tokens[0].text}` needs a chain", tokens[0].span, "no chain",
                       help="write `-A CHAIN options`")
            return
        chain = tokens[1]
        if chain.text not in table.chains and chain.text not in BUILTIN[table.name]:
            self.error("E719", f"there is no chain {chain.text} in *{table.name}", chain.span, "unknown chain",
                       help=f"declare it first with `:{chain.text} - [0:0]`; built-in chains of *{table.name}: "
                            + ", ".join(BUILTIN[table.name]))
            return
        table.rules.append((chain.text, chain, tokens[2:], Span(self.file, tokens[0].span.start, whole.end)))

    # ----- the rule set ---------------------------------------------------------------------
    def ruleset(self) -> Ruleset:
        read: list[tuple[_Table, str, ReadRule, Span]] = []
        for table in self.tables:
            users = frozenset(n for n, (policy, _) in table.chains.items() if n not in BUILTIN[table.name])
            for chain, _, options, span in table.rules:
                context = Context(self.family, table.name, chain, chain in BUILTIN[table.name], users, self.tool)
                try:
                    rule = RuleReader(options, context, span).read()
                except RuleError as exc:
                    self.error(exc.code, exc.message, exc.span, exc.label, exc.help)
                    continue
                if not rule.skipped:
                    read.append((table, chain, rule, span))
        fields = self.fields_used(read)
        conditions = [self.condition(rule, fields) for _, _, rule, _ in read]
        self.raise_errors()
        names = self.names(read)
        chains: list[Chain] = []
        for table in self.tables:
            for chain in self.chain_order(table):
                rules = tuple(self.chain_rule(rule, condition, name, span, fields)
                              for (t, c, rule, span), condition, name in zip(read, conditions, names)
                              if t is table and c == chain)
                chains.append(self.chain_of(table, chain, rules))
        other = FAMILY_RANGE["ipv6" if self.family == "ipv4" else "ipv4"]
        unseen = IntervalSet.span(*other)
        words = "IPv6" if self.family == "ipv4" else "IPv4"
        never = ChainRule(({"src.ip": unseen}, {"dst.ip": unseen}), Verdict("accept"),
                          f"{words} packets: not seen by {self.tool}", self.file.display_name)
        return Ruleset(tuple(chains), self.file.display_name, unseen=(never,), optional=tuple(used_fields(fields).items()))

    def fields_used(self, read: list[tuple[_Table, str, ReadRule, Span]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The optional fields the rules test, with the interface names and patterns they match
        (`tun+` is the language's "tun*"); a name the language cannot hold is an error at it."""
        used: dict[str, list[str]] = {}
        first: dict[str, Span] = {}
        for _, _, rule, _ in read:
            for factor in rule.factors:
                if isinstance(factor, Pending):
                    first.setdefault(factor.field, factor.span)
                    try:
                        used.setdefault(factor.field, []).extend(interfaces.pattern(n) for n in factor.names)
                    except ValueError_ as exc:
                        self.error("E733", exc.message, factor.span, exc.label, exc.help)
                else:
                    for box in factor:
                        used.update({name: used.get(name, []) for name in box if name in OPTIONAL_FIELDS})
        fields = tuple((name, tuple(dict.fromkeys(patterns))) for name, patterns in used.items())
        for name in INTERFACE_FIELDS:
            if name in used:
                try:
                    interfaces.check_vacancy(field_of(name, fields))
                except ValueError_ as exc:
                    self.error("E733", exc.message, first[name], exc.label, exc.help)
        return fields

    def condition(self, rule: ReadRule, fields) -> Condition:
        """The rule's condition (no flow when it is left out), its interface tests made values of
        the fields every rule of the file shares."""
        if rule.left_out:
            return ()
        return conjunction(self.resolved(rule.factors, fields))

    def resolved(self, factors: list, fields) -> list[Condition]:
        out = []
        for factor in factors:
            if isinstance(factor, Pending):
                field = field_of(factor.field, fields)
                try:
                    values = interfaces.values_of(field, factor.names)
                except ValueError_:
                    continue                # reported by fields_used
                out.append(({field.name: values.complement(0, field.hi) if factor.negated else values},))
            else:
                out.append(factor)
        return out

    @staticmethod
    def chain_order(table: _Table) -> list[str]:
        """The table's chains in the order of the file, and the built-in ones it does not declare."""
        return list(table.chains) + [c for c in BUILTIN[table.name] if c not in table.chains]

    def names(self, read: list[tuple[_Table, str, ReadRule, Span]]) -> list[str]:
        """Each rule's name for reports: its comment, unless another rule has it too (then with its
        place), else table, chain and its number in the chain (as `iptables -L --line-numbers`)."""
        places, numbers = [], {}
        for table, chain, _, _ in read:
            numbers[(table.name, chain)] = numbers.get((table.name, chain), 0) + 1
            places.append(f"{table.name} {chain} #{numbers[(table.name, chain)]}")
        comments = [rule.comment for _, _, rule, _ in read]
        reserved = {"default"} | {f"{t.name} {c} policy" for t in self.tables for c in BUILTIN[t.name]} | set(places)
        once = {c for c in comments if c is not None and comments.count(c) == 1 and c not in reserved and c.strip()}
        return [c if c in once else (f"{c} ({place})" if c else place) for c, place in zip(comments, places)]

    def chain_rule(self, rule: ReadRule, condition: Condition, name: str, span: Span, fields) -> ChainRule:
        approximations = tuple(Approximation(name, where.location(), what, instead)
                               for where, what, instead in rule.approximations)
        reach = conjunction(self.resolved(rule.factors, fields)) if rule.left_out else None
        return ChainRule(condition, rule.verdict, name, span.location(), rule.log, approximations, span, reach)

    def chain_of(self, table: _Table, name: str, rules: tuple[ChainRule, ...]) -> Chain:
        qualified = f"{table.name} {name}"
        policy, span = table.chains.get(name, (None, table.span))
        if name not in BUILTIN[table.name]:
            return Chain(qualified, rules, location=span.location())
        hook, priority = BUILTIN[table.name][name]
        guess = None
        if policy is None and table.name != "nat":     # nat chains accept: iptables refuses DROP there
            guess = Approximation(f"{qualified} policy", table.span.location(),
                                  f"the file does not give the policy of built-in chain {name} of *{table.name} "
                                  "(iptables-restore keeps the one the kernel has)",
                                  "ACCEPT, the policy of a chain the kernel has just made")
        return Chain(qualified, rules, hook, priority, (policy or "ACCEPT").lower(), span.location(), guess)


def _counters(text: str) -> bool:
    """`[PACKETS:BYTES]`"""
    inner = text[1:-1].split(":") if text.startswith("[") and text.endswith("]") else []
    return len(inner) == 2 and all(part.isdigit() for part in inner)
