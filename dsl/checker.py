"""Name resolution and type checking: placed AST items to a `typed.Policy`.

Every error is collected (never just the first) with its own span; a literal takes the type of
the field it meets, so `{25, 465}` is a set of ports next to `dst.port` and an error next to `app`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field as dc_field

from . import ast, domains, icmp, interfaces, typed
from .catalogue import CATEGORIES, Catalogue
from .diagnostics import DiagnosticSink, did_you_mean
from .intervals import IntervalSet
from .loader import FileStart, PlacedItem
from .parser import ITEM_START, MAX_NESTING, ErrorItem, string_body
from .patterns import encoding_of, syntax, union
from .source import SourceFile, Span
from .schema import (ACTIONS, CT_STATE, CT_STATES, DAYS, DECLARABLE, DIRECTIONS, ENGINE_VIEWS, INTERFACE_FIELDS,
                     IPV6_BASE, OPTIONAL_FIELDS, ORDERED_KINDS, OUTCOME_PARTS, PATTERN_FIELDS, PROTOCOLS,
                     PURPOSES, RATE_MAX, RATS, SCOPES, Field, Schema, build_schema, optional_of, with_optional)
from .uses import may_name, used_fields
from .values import RATE_UNITS, VOLUME_UNITS, ValueError_, parse_ip, parse_quantity, units_help, whole_number

_ENUM_OF = {field: enum for enum, field in DECLARABLE.items()}     # `subscriber.plan` -> `plan`
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ENUM_EXAMPLES = {"plan": "payg, monthly", "addon": "vpn, tethering", "zone": "home, national, abroad",
                  "apn": "internet, ims", "charge": "standard, zero_rated", "priority": "high, normal, low"}
# The enums the language fixes, by field: their members are names of values like an application's.
_FIXED_ENUMS = {"direction": DIRECTIONS, "time.day": DAYS, "subscriber.rat": RATS, CT_STATE: CT_STATES}
_FIXED_WORDS = {"direction": "a direction", "time.day": "a day", "subscriber.rat": "a radio access technology",
                CT_STATE: "a connection-tracking state"}
_MEMBER_WORDS = {"geran": "geran (2G)", "utran": "utran (3G)", "eutran": "eutran (4G, LTE)", "nr": "nr (5G)",
                 "wlan": "wlan (Wi-Fi)"}
_KIND_WORDS = {"port": "a port", "hour": "an hour", "protocol": "a protocol", "ip": "an address",
               "volume": "a volume", "rate": "a rate", "bool": "true or false", "domain": "a domain name",
               "interface": "an interface name", "icmp": "an ICMP type"}
_KIND_PHRASES = {"enum": "an enum", "ip": "an address", "bool": "a boolean", "domain": "a domain name",
                 "interface": "an interface name"}


def _word_span(spec: ast.ActionSpec) -> Span:
    """The action word alone (`throttle` of `throttle, log`)."""
    return Span(spec.span.file, spec.span.start, spec.span.start + len(spec.kind))


def _kind_phrase(f: Field) -> str:
    return _KIND_PHRASES.get(f.kind, f.kind)


_FAMILY = {"number": "numbers", "ipv4": "addresses", "ipv6": "addresses", "volume": "volumes",
           "rate": "rates", "bool": "booleans", "string": "strings"}


@dataclass
class _Declarations:
    policy: ast.PolicyDecl | None = None
    enums: dict[str, ast.EnumDecl] = dc_field(default_factory=dict)
    sets: dict[str, ast.SetDecl] = dc_field(default_factory=dict)
    default: ast.DefaultDecl | None = None
    rules: list[ast.RuleDecl] = dc_field(default_factory=list)
    invariants: list[ast.InvariantDecl] = dc_field(default_factory=list)
    tests: list[ast.TestDecl] = dc_field(default_factory=list)


@dataclass(frozen=True)
class _RuleBody:
    """A rule's checked condition and action, from its `when` and `then` nodes, and the named
    sets its condition looked up, as (field, name, the ICMP protocol pinned there) in order."""
    when: ast.Expr
    then: ast.ActionSpec
    cond: typed.Cond
    action: typed.Action
    lookups: tuple[tuple[Field, ast.Ident, int | None], ...]


class RuleMemo:
    """The checked bodies of the rules of the last version checked with it, by syntax node.

    The next version of a policy, loaded through the same `reuse.ParseMemo`, shares the `when`
    and `then` nodes of every rule whose text is unchanged. A rule's body reads nothing but its
    nodes, the sets and enums declared (and whether the policy or only a spec declares them)
    and the catalogue. When those are as they were for the last version, word for word, such a
    rule checks to the same condition and action, with no error, and the checker takes them
    from here. Its named sets are looked up again, in the same order, so the set cache (and
    the named sets a report shows) come out as a whole check gives them.
    """

    def __init__(self) -> None:
        self.context: tuple | None = None
        self.bodies: dict[int, _RuleBody] = {}

    def usable(self, context: tuple) -> dict[int, _RuleBody]:
        return self.bodies if context == self.context else {}

    def keep(self, context: tuple, bodies: list[_RuleBody]) -> None:
        """After a check without errors: its bodies, for the next version."""
        if context != self.context:
            self.context, self.bodies = context, {}
        self.bodies.update((id(body.when), body) for body in bodies)


class _Checker:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.sink = DiagnosticSink()
        self.decls = _Declarations()
        self.used_sets: set[str] = set()
        self._set_cache: dict[tuple[str, str, int | None], IntervalSet] = {}    # (set, field, protocol)
        self._resolving: list[str] = []
        self._lookups: list[tuple[Field, ast.Ident, int | None]] | None = None    # while a rule's body is checked
        self._protocol: int | None = None    # ICMP or ICMPv6, when the condition around pins it (icmp_name)
        # Items that failed to parse, as (kind, name): their names are not reported as unknown.
        self.broken: set[tuple[str, str | None]] = set()
        self.duplicates: list[ast.RuleDecl | ast.InvariantDecl | ast.TestDecl] = []
        self.cyclic_sets: set[str] = set()
        self.policy_file: SourceFile | None = None   # the file named on the command line
        # Sets and enums declared only through spec files: the policy's rules cannot see them.
        self.spec_only: dict[tuple[str, str], ast.Ident] = {}
        self.first_declared: dict[tuple[str, str], ast.EnumDecl | ast.SetDecl] = {}   # see _restated
        self.pattern_places: dict[tuple[str, str], Span] = {}     # (field, pattern) -> its first literal

    # ----- declarations -------------------------------------------------------------------
    def declare(self, placed: list[PlacedItem]) -> None:
        seen: dict[tuple[str, str], ast.Ident] = {}

        def unique(kind: str, name: ast.Ident) -> bool:
            first = seen.get((kind, name.text))
            if first is not None:
                self.sink.error("E102", f"duplicate {kind} `{name.text}`", name.span, f"second {kind} with this name",
                                notes=(f"first defined at {first.span.location()}",),
                                help=f"{kind} names must be unique across the policy and its spec files"
                                + (" (the same set or enum written word for word in two files counts once)"
                                   if kind in ("set", "enum") else ""))
                return False
            seen[(kind, name.text)] = name
            return True

        d = self.decls
        for p in placed:
            item = p.item
            if isinstance(item, FileStart):
                if p.role == "policy" and self.policy_file is None:
                    self.policy_file = item.span.file
                continue
            if isinstance(item, ErrorItem):
                self.sink.add(item.diagnostic)
                if item.kind is not None:
                    self.broken.add((item.kind, item.name))
                continue
            if isinstance(item, ast.RuleDecl | ast.DefaultDecl | ast.PolicyDecl) and p.role == "spec":
                what = {"RuleDecl": "rules", "DefaultDecl": "`default`", "PolicyDecl": "`policy`"}[type(item).__name__]
                self.sink.error("E141", f"{what} belong in the policy file, not in a spec file", item.span,
                                "in a spec file", help="spec files hold invariants, tests and definitions")
                continue
            match item:
                case ast.PolicyDecl():
                    if d.policy is not None:
                        self.sink.error("E142", "a policy has at most one `policy` header", item.span, "second header",
                                        notes=(f"first at {d.policy.span.location()}",))
                    else:
                        d.policy = item
                case ast.EnumDecl() | ast.SetDecl() if self._restated(item):
                    continue
                case ast.EnumDecl():
                    if self._declare_enum(item, unique) and p.role == "spec":
                        self.spec_only[("enum", item.name.text)] = item.name
                case ast.SetDecl():
                    if unique("set", item.name):
                        d.sets[item.name.text] = item
                        self._check_set_family(item)
                        if p.role == "spec":
                            self.spec_only[("set", item.name.text)] = item.name
                case ast.DefaultDecl():
                    if d.default is not None:
                        self.sink.error("E143", "a policy has exactly one `default`", item.span, "second default",
                                        notes=(f"first at {d.default.span.location()}",), help="remove one of them")
                    else:
                        d.default = item
                case ast.RuleDecl():
                    reserved = item.name.text == "default"
                    if reserved:
                        self.sink.error("E107", "a rule cannot be named `default`", item.name.span, "reserved name",
                                        notes=("`rule == default` and every report use `default` for the default "
                                               "action",), help="give the rule another name")
                    (d.rules if not reserved and unique("rule", item.name) else self.duplicates).append(item)
                case ast.InvariantDecl():
                    (d.invariants if unique("invariant", item.name) else self.duplicates).append(item)
                case ast.TestDecl():
                    (d.tests if unique("test", item.name) else self.duplicates).append(item)
        self._check_set_cycles()

    def _restated(self, item: ast.EnumDecl | ast.SetDecl) -> bool:
        """True for a set or enum declared again, word for word, in another file: the same
        definition, kept once. This is how a spec that imports the current definitions file
        goes with an older checkout of the policy, which imports its own copy of that file."""
        key = (type(item).__name__, item.name.text)
        first = self.first_declared.setdefault(key, item)
        return first is not item and first.span.file is not item.span.file and \
            first.span.text.split() == item.span.text.split()

    def _missing_ok(self, kind: str, name: str) -> bool:
        """True when `name` is unknown only because its item failed to parse (already reported)."""
        return (kind, name) in self.broken or ("import", None) in self.broken or ("*", None) in self.broken

    def _check_duplicates(self) -> None:
        """A duplicate is not kept, but its body is still checked: its errors are errors too."""
        for item in self.duplicates:
            match item:
                case ast.RuleDecl():
                    self.cond(item.when, "rule")
                    self.action(item.action)
                case ast.InvariantDecl():
                    self.invariant(item)
                case ast.TestDecl():
                    self.cond(item.given, "spec")
                    self.action(item.expect, "expect")

    def _check_set_cycles(self) -> None:
        """A set that contains itself, directly or through other sets, is an error where the cycle
        closes, reported once whether or not a rule uses the set; so is a set holding sets nested
        more than MAX_NESTING deep (E004), since sets are resolved recursively. Neither is
        resolved. The walk is depth first, by an explicit stack: a chain of sets may be long."""
        sets = self.decls.sets
        state: dict[str, str] = {}          # name -> "open" while on the path, "done" after
        depth: dict[str, int] = {}          # name -> how deep sets nest in it (1: no set inside)

        def inner(name: str):
            return (e for e in sets[name].value.elements if isinstance(e, ast.Ident) and e.text in sets)

        for root in sets:
            if root in state:
                continue
            state[root] = "open"
            path, stack = [root], [inner(root)]
            while stack:
                for element in stack[-1]:
                    ref = element.text
                    if state.get(ref) == "open":
                        chain = path[path.index(ref):] + [ref]
                        self.cyclic_sets.update(chain)
                        self.sink.error("E129", f"set `{ref}` contains itself", element.span, "closes the cycle",
                                        notes=(" -> ".join(chain),),
                                        help="a set cannot contain itself, directly or through other sets")
                    elif ref not in state:
                        state[ref] = "open"
                        path.append(ref)
                        stack.append(inner(ref))
                        break
                else:
                    name = path.pop()
                    stack.pop()
                    state[name] = "done"
                    depth[name] = 1 + max((depth.get(e.text, 0) for e in inner(name)), default=0)
                    if depth[name] > MAX_NESTING:
                        self.cyclic_sets.add(name)
                    if depth[name] == MAX_NESTING + 1:
                        self.sink.error("E004", f"set `{name}` holds sets nested more than {MAX_NESTING} deep",
                                        sets[name].name.span, "nested too deeply",
                                        help="list the values of the innermost sets in fewer sets")

    def _check_set_scope(self) -> None:
        """A set the policy declares may not name a set that only a spec file declares: the policy
        must compile without its specs."""
        for name, decl in self.decls.sets.items():
            if ("set", name) in self.spec_only:
                continue
            for element in decl.value.elements:
                if isinstance(element, ast.Ident) and ("set", element.text) in self.spec_only:
                    self._spec_only_set(element)

    def _spec_only_set(self, ident: ast.Ident) -> None:
        self.sink.error("E101", f"unknown set `{ident.text}`", ident.span, "not declared by the policy",
                        notes=(self._spec_only_note("set", ident.text),),
                        help="declare it in the policy or in a file the policy imports")

    def _spec_only_note(self, kind: str, name: str) -> str:
        where = self.spec_only[(kind, name)].span.location()
        return (f"{kind} `{name}` is declared at {where}, which belongs to the specs: rules see only the policy "
                "and the files it imports")

    def _declare_enum(self, item: ast.EnumDecl, unique) -> bool:
        """Record an enum; False when it cannot be used (its errors are reported)."""
        if item.name.text not in DECLARABLE and item.name.text not in OUTCOME_PARTS:
            self.sink.error("E130", f"unknown enum `{item.name.text}`", item.name.span, "not a declarable enum",
                            help="the enums a policy declares are " + ", ".join(
                                f"`{enum}` ({field})" for enum, field in DECLARABLE.items())
                                 + ", and `charge` and `priority` (parts of an outcome)")
            return False
        if not unique("enum", item.name):
            return False
        if not item.members:
            example = _ENUM_EXAMPLES[item.name.text]
            self.sink.error("E132", f"enum `{item.name.text}` has no members", item.span, "empty",
                            help=f"list them, for example `enum {item.name.text} {{ {example} }}`, or remove the "
                                 "declaration if the policy does not use them")
            self.broken.add(("enum", item.name.text))
            return False
        members: set[str] = set()
        for m in item.members:
            if m.text in members:
                self.sink.error("E131", f"`{m.text}` is listed twice in enum `{item.name.text}`", m.span, "repeated")
            members.add(m.text)
        self.decls.enums[item.name.text] = item
        return True

    def _check_set_family(self, item: ast.SetDecl) -> None:
        families = []
        for element in item.value.elements:
            lit = element.low if isinstance(element, ast.Range) else element
            if isinstance(lit, ast.Literal):
                families.append((_FAMILY[lit.kind], element))
        if families:
            first = families[0][0]
            for family, element in families:
                if family != first:
                    self.sink.error("E120", f"set `{item.name.text}` mixes {first} and {family}", element.span,
                                    f"one of the {family}",
                                    help=f"a set holds values of one type: put the {family} in a set of their own")
                    break

    # ----- schema ---------------------------------------------------------------------------
    def build_schema(self) -> Schema:
        enums = self.decls.enums
        members = {name: tuple(m.text for m in decl.members) for name, decl in enums.items()}
        d = self.decls
        specs = [r.action for r in d.rules] + [t.expect for t in d.tests] + ([d.default.action] if d.default else [])
        targets = sorted({s.target for s in specs if s.kind == "redirect" and s.target})
        parts = {name: members[name] for name in OUTCOME_PARTS
                 if name in members and ("enum", name) not in self.spec_only}
        return build_schema(self.catalogue, {enum: m for enum, m in members.items() if enum in DECLARABLE},
                            tuple(r.name.text for r in d.rules), tuple(targets), parts=parts,
                            optional=self.used_fields())

    def used_fields(self) -> dict[str, tuple[str, ...]]:
        """The optional fields the check uses, with their declared patterns (uses.py): a policy
        that names none of them has none of them. Where each pattern is first written is kept
        for errors about it."""
        items = self.decls.rules + self.decls.invariants + self.decls.tests + self.duplicates
        conditions = [expr for item in items for expr in (getattr(item, k, None) for k in
                                                          ("when", "require", "exists", "given"))
                      if expr is not None and may_name(expr)]
        across = [ident for item in items if getattr(item, "same", None) is not None for ident in item.same.across]
        uses = used_fields(self.decls.sets, conditions, across)
        self.pattern_places = uses.places
        return uses.fields

    # ----- policy ---------------------------------------------------------------------------
    def check(self, placed: list[PlacedItem], memo: RuleMemo | None = None) -> typed.Policy:
        self.declare(placed)
        self._check_set_scope()
        self.schema = self.build_schema()
        return self.assemble(placed, memo)

    def check_spec_for(self, placed: list[PlacedItem], schema: Schema) -> typed.Policy:
        """Invariants and tests of spec files, against the schema of a compiled rule table. Every
        file here is a spec file (the loader reads the first as the main file): rules in them are
        E141, not silently ignored."""
        self.declare([dataclasses.replace(p, role="spec") for p in placed])
        self.schema = _with_spec_fields(schema, self.used_fields())
        for name, decl in self.decls.enums.items():
            theirs = getattr(schema.field(name), "members", ()) if name in OUTCOME_PARTS else schema.declared(name) or ()
            if tuple(m.text for m in decl.members) != tuple(theirs):
                self.sink.error("E144", f"enum `{name}` differs from the rule table's", decl.name.span,
                                "members differ", notes=(f"the table has {{{', '.join(theirs)}}}",),
                                help="check the table against the spec written for the same policy")
        invariants, tests = self._spec()
        return typed.Policy(None, None, self.schema, (), typed.Action("allow"), None, invariants, tests,
                            self._named_sets())

    def assemble(self, placed: list[PlacedItem], memo: RuleMemo | None = None) -> typed.Policy:
        d = self.decls
        context = self._definitions(placed) if memo is not None else None
        known = memo.usable(context) if memo is not None else {}
        bodies = [self._rule_body(r, known) for r in d.rules]
        if d.default is None:
            if not self._missing_ok("default", None):
                self.sink.error("E140", "the policy has no `default` action", self._policy_anchor(placed),
                                "this policy has no `default`",
                                help="add `default allow` (or the action for flows that no rule matches)")
            default = typed.Action("allow")
        else:
            default = self.action(d.default.action, "default")
        rules = tuple(typed.Rule(typed.Origin(r.name.text, r.span), body.cond, body.action.inheriting(default),
                                 r.because) for r, body in zip(d.rules, bodies))
        invariants, tests = self._spec()
        if memo is not None:
            memo.keep(context, bodies)
        return typed.Policy(d.policy.name.text if d.policy else None, d.policy.version if d.policy else None,
                            self.schema, rules, default, d.default.span if d.default else None, invariants, tests,
                            self._named_sets())

    def _spec(self) -> tuple[tuple[typed.Invariant, ...], tuple[typed.Test, ...]]:
        """Invariants and tests, then the checks that need everything resolved; raises on errors."""
        invariants = tuple(self.invariant(i) for i in self.decls.invariants)
        tests = tuple(typed.Test(t.name.text, self.cond(t.given, "spec"), self.action(t.expect, "expect"), t.span)
                      for t in self.decls.tests)
        self._check_duplicates()
        self._check_unused_sets()
        self._check_vacancy()
        self.sink.raise_if_any()
        return invariants, tests

    def _definitions(self, placed: list[PlacedItem]) -> tuple:
        """What a rule's body is checked against: the catalogue, and each set and enum
        declaration as text, with its role (see RuleMemo)."""
        return (self.catalogue, tuple(optional_of(self.schema).items())) + tuple(
            (p.role, p.item.span.text) for p in placed if isinstance(p.item, ast.SetDecl | ast.EnumDecl))

    def _rule_body(self, rule: ast.RuleDecl, known: dict[int, _RuleBody]) -> _RuleBody:
        """The rule's checked condition and action: from `known` for the same nodes, with its
        named sets looked up again as the check did; else checked, its lookups noted."""
        body = known.get(id(rule.when))
        if body is not None and body.when is rule.when and body.then is rule.action:
            for f, ident, protocol in body.lookups:
                self._protocol = protocol
                self.named_set(f, ident)
            self._protocol = None
            return body
        self._lookups = []
        cond, action = self.cond(rule.when, "rule"), self.action(rule.action)
        body = _RuleBody(rule.when, rule.action, cond, action, tuple(self._lookups))
        self._lookups = None
        return body

    def _named_sets(self) -> tuple[tuple[str, str, IntervalSet], ...]:
        """(set, field, values) for every named set used with a field: reports can name them."""
        return tuple((name, field, values) for (name, field, _), values in self._set_cache.items())

    def _policy_anchor(self, placed: list[PlacedItem]) -> Span | None:
        """Where to report something missing from the policy as a whole: its `policy` header, or
        the keyword of the first item written in the policy file itself."""
        if self.decls.policy is not None:
            return self.decls.policy.span
        file = self.policy_file
        if file is None:
            return None
        first = ITEM_START.search(file.text)
        return Span(file, 0, 0) if first is None else Span(file, first.start(1), first.end(1))

    def invariant(self, item: ast.InvariantDecl) -> typed.Invariant:
        when = self.cond(item.when, "spec") if item.when is not None else typed.TRUE
        require = self.cond(item.require, "spec") if item.require is not None else None
        exists = self.cond(item.exists, "spec") if item.exists is not None else None
        same = self.same(item.same) if item.same is not None else None
        return typed.Invariant(item.name.text, item.description, when, require, exists, item.span, same)

    def same(self, clause: ast.SameClause) -> typed.Same:
        """`same PARTS across FIELDS`: outcome variables (`outcome` for all but `rule`, the redirect
        target included) and flow fields (`subscriber.addons` for every add-on)."""
        outcome = [f.name for f in self.schema.outcome_fields if f.name != "rule"]
        written = [name for name in outcome if name != "target"]       # `target` is only `expect`'s
        parts: list[str] = []
        for ident in clause.parts:
            if ident.text == "rule":
                self.sink.error("E181", "`same rule` compares nothing a subscriber gets", ident.span,
                                "the deciding rule is not part of the treatment",
                                notes=("two flows decided by different rules with the same outcome are treated "
                                       "equally",), help="name the parts that matter, or `outcome` for all of them")
                continue
            if ident.text == "outcome":
                named = outcome
            elif ident.text in written:
                named = [ident.text]
            else:
                self.sink.error("E180", f"unknown outcome part `{ident.text}`", ident.span, "not an outcome variable",
                                help=did_you_mean(ident.text, written + ["outcome"])
                                or "the parts are " + ", ".join(f"`{n}`" for n in written + ["outcome"]))
                continue
            self._repeated(ident, [n for n in named if n in parts], "outcome part")
            parts += [n for n in named if n not in parts]
        across: list[str] = []
        for ident in clause.across:
            f = self.schema.field(ident.text)
            if ident.text == "subscriber.addons" and self.schema.addons:
                named = [self.schema.addon_field(a) for a in self.schema.addons]
            elif ident.text in ENGINE_VIEWS:
                real = ENGINE_VIEWS[ident.text]
                self.sink.error("E184", f"`across {ident.text}` alone is not supported", ident.span,
                                f"the engine's view varies with `{real}`",
                                notes=(f"two flows alike in `{real}` may be seen differently only under an engine "
                                       f"profile, and without one the engine sees `{real}` as it is",),
                                help=f"write `across {real}`: under a profile each flow then gets the engine's "
                                     "view of its own")
                continue
            elif f is not None and f.outcome and f.name != "target":
                self.sink.error("E182", f"`{ident.text}` is an outcome, not a field of a flow", ident.span,
                                "an outcome variable",
                                help=f"outcome parts go after `same` (`same {ident.text} across app`); after "
                                     "`across` name the fields the two flows may differ in")
                continue
            else:
                field = self.field(ident, "spec")
                if field is None:
                    continue
                named = [field.name]
            self._repeated(ident, [n for n in named if n in across], "field")
            across += [n for n in named if n not in across]
        return typed.Same(tuple(parts), tuple(across))

    def _repeated(self, ident: ast.Ident, repeated: list[str], what: str) -> None:
        """A part or field of `same ... across ...` named twice (itself, or within `outcome`)."""
        if repeated:
            also = "; `outcome` already stands for every part" if what == "outcome part" else ""
            self.sink.error("E183", f"{what} `{ident.text}` is named twice", ident.span, "already named",
                            help=f"name each {what} once{also}")

    def action(self, spec: ast.ActionSpec, role: str = "rule") -> typed.Action:
        """The action of a rule, of the default or of an `expect` (`role`), with its parts. A
        rule's parts that it does not write are the default's (`Action.inheriting`)."""
        rate, target = None, None
        if spec.kind == "throttle":
            if spec.rate is None:
                self.sink.error("E150", "`throttle` needs a rate", _word_span(spec), "no rate",
                                help="write for example `throttle 128kbps`")
            else:
                rate = self.quantity(spec.rate, RATE_UNITS, "rate")
                if rate is not None and not 0 < rate <= RATE_MAX:
                    self.sink.error("E151", f"rate `{spec.rate.text}` is out of range", spec.rate.span,
                                    "out of range", help="rates run from 1bps to 1000Gbps; to stop traffic use `block`")
            rate = rate or 1
        elif spec.kind == "redirect":
            if not spec.target:
                self.sink.error("E150", "`redirect` needs a target", _word_span(spec), "no target",
                                help='write for example `redirect "http://portal.example/topup"`')
            target = spec.target or ""
        elif spec.argument_span is not None:
            self.sink.error("E152", f"`{spec.kind}` takes no argument", spec.argument_span, "unexpected argument",
                            help="only `throttle RATE` and `redirect \"TARGET\"` take one")
        parts = self._outcome_parts(spec, role)
        return typed.Action(spec.kind, rate, target, spec.log, parts.get("charge"), parts.get("priority"),
                            self._scope(spec, role), self._purpose(spec, role))

    def _outcome_parts(self, spec: ast.ActionSpec, role: str) -> dict[str, str]:
        """`, charge KEY` and `, priority LEVEL`: members of the policy's enums; the default must
        give every part whose enum the policy declares (E172)."""
        found: dict[str, str] = {}
        for word, value in spec.parts:
            part = word.text
            if part in found:
                self.sink.error("E175", f"`{part}` is given twice", word.span, "second one",
                                help=f"an outcome has one {part}: keep one of them")
                continue
            field = self.schema.field(part)       # the policy's enum, or the rule table's
            if field is None:
                if not self._missing_ok("enum", part):
                    self.sink.error("E171", f"`{part}` needs `enum {part}` to be declared by the policy", word.span,
                                    "no members declared",
                                    help=f"declare its members first, for example `enum {part} {{ "
                                         f"{'standard, zero_rated' if part == 'charge' else 'high, normal, low'} }}`")
                continue
            members = list(field.members)
            if value.text not in members:
                self.sink.error("E170", f"unknown `{part}` member `{value.text}`", value.span, f"not in enum {part}",
                                help=did_you_mean(value.text, members)
                                or f"enum {part} has " + ", ".join(f"`{m}`" for m in members))
                continue
            found[part] = value.text
        if role == "default":
            for part in OUTCOME_PARTS:
                if part not in found and self.schema.field(part) is not None:
                    self.sink.error("E172", f"`default` must give the `{part}` of the flows no rule decides",
                                    spec.span, f"no {part}",
                                    notes=(f"the policy declares `enum {part}`, so every flow has a {part}; a rule "
                                           "that does not write one takes the default's",),
                                    help=f"write it after the action, for example `default {spec.kind}, {part} "
                                         f"{self.schema.field(part).members[0]}`")
        return found

    def _scope(self, spec: ast.ActionSpec, role: str) -> str | None:
        """A throttle's scope: None (per flow, the default) or "subscriber"; an `expect`
        compares it only if written, so there `per flow` stays "flow"."""
        if spec.scope is None:
            return None
        if spec.kind != "throttle":
            self.sink.error("E173", f"`{spec.kind}` has no scope", spec.scope.span, "only a throttle has one",
                            help="remove `per ...`, or throttle: `throttle 1Mbps per subscriber`")
            return None
        if spec.scope.text not in SCOPES:
            self.sink.error("E173", f"unknown scope `{spec.scope.text}`", spec.scope.span, "not a scope",
                            help=did_you_mean(spec.scope.text, SCOPES) or "write `per flow` or `per subscriber`")
            return None
        return spec.scope.text if spec.scope.text == "subscriber" or role == "expect" else None

    def _purpose(self, spec: ast.ActionSpec, role: str) -> str | None:
        if spec.purpose is None:
            return None
        purposes = PURPOSES[1:]
        if role == "default":
            self.sink.error("E174", "the default has no purpose", spec.purpose.span, "on `default`",
                            notes=("a purpose says why a rule interferes with traffic; flows no rule decides "
                                   "have purpose `none`",), help="remove `purpose ...` from the default")
            return None
        if spec.purpose.text not in purposes:
            self.sink.error("E174", f"unknown purpose `{spec.purpose.text}`", spec.purpose.span, "not a purpose",
                            help=did_you_mean(spec.purpose.text, purposes)
                            or "a purpose is one of " + ", ".join(f"`{p}`" for p in purposes))
            return None
        return spec.purpose.text

    # ----- conditions -----------------------------------------------------------------------
    def cond(self, expr: ast.Expr, ctx: str) -> typed.Cond:
        match expr:
            case ast.And(operands):
                outer = self._protocol
                self._protocol = _pinned_protocol(operands) or outer
                try:
                    return typed.All(tuple(self.cond(e, ctx) for e in operands))
                finally:
                    self._protocol = outer
            case ast.Or(operands):
                return typed.Any_(tuple(self.cond(e, ctx) for e in operands))
            case ast.Not(operand):
                return typed.Not(self.cond(operand, ctx))
            case ast.Compare():
                return self.compare(expr, ctx)
            case ast.Member():
                return self.member(expr, ctx)
            case ast.Literal(kind="bool", text=text):
                return typed.Const(text == "true")
            case ast.Ident():
                f = self.field(expr, ctx)
                if f is None:
                    return typed.FALSE
                if f.kind != "bool":
                    self.sink.error("E121", f"`{expr.text}` is not a condition", expr.span, f"a field of type {f.kind}",
                                    help=f"compare it, for example `{expr.text} == ...` or `{expr.text} in {{...}}`")
                    return typed.FALSE
                return typed.Atom(f.name, IntervalSet.point(1))
            case ast.Literal():
                self.sink.error("E121", f"`{expr.text}` is not a condition", expr.span, "a value alone",
                                help="compare a field with it, for example `dst.port == 25`")
                return typed.FALSE
        raise TypeError(expr)

    def field(self, ident: ast.Ident, ctx: str) -> Field | None:
        """The field an identifier names, or None after an error."""
        if ident.text in ENGINE_VIEWS:
            return self._engine_view(ident, ctx)
        f = self.schema.field(ident.text)
        if f is None or f.name == "target":
            names = [x.name for x in self.schema.flow_fields if ":" not in x.name]
            names.insert(names.index("subscriber.usage"), "subscriber.addons")
            enum = _ENUM_OF.get(ident.text)
            if enum is not None:
                if self._missing_ok("enum", enum):
                    return None
                self.sink.error("E104", f"`{ident.text}` needs `enum {enum}` to be declared", ident.span,
                                "no members declared", help=f"declare the members first: `enum {enum} {{ ... }}`")
            elif ident.text in OUTCOME_PARTS and ctx == "spec":
                if not self._missing_ok("enum", ident.text):
                    self.sink.error("E171", f"`{ident.text}` needs `enum {ident.text}` to be declared by the policy",
                                    ident.span, "no members declared",
                                    help=f"a policy that decides a {ident.text} declares `enum {ident.text} {{ ... }}` "
                                         "and gives it on `default`")
            else:
                if ctx == "spec":
                    names += [x.name for x in self.schema.outcome_fields if x.name != "target"]
                # the fields that exist only when used are spellings to suggest too (`iface.up`)
                self.sink.error("E101", f"unknown field `{ident.text}`", ident.span, "not a field of a flow",
                                help=did_you_mean(ident.text, names + list(OPTIONAL_FIELDS))
                                or "the fields of a flow are " + ", ".join(f"`{n}`" for n in names))
            return None
        if ctx == "rule" and f.name in _ENUM_OF and not self._enum_visible(_ENUM_OF[f.name], ident):
            return None
        if ctx == "rule" and f.outcome:
            self.sink.error("E161", f"rules cannot match on `{f.name}`", ident.span, "an outcome of the policy",
                            help="outcome variables belong in invariants and tests (`require`, `exists`, `expect`)")
            return None
        if ctx == "rule" and not f.observable:
            self.sink.error("E160", f"rules cannot match on `{f.name}`: the DPI engine cannot observe it",
                            ident.span, "not observable in traffic", notes=(f.why_unobservable,) if f.why_unobservable else (),
                            help="invariants and tests may use it; rules must use fields the engine sees")
            return None
        return f

    def _engine_view(self, ident: ast.Ident, ctx: str) -> Field | None:
        """`dpi.app` (the engine's label) and `dpi.tethered` (its detection of tethering) exist in
        invariants and tests: in rules `app` and `flow.tethered` already are what the engine says."""
        real = ENGINE_VIEWS[ident.text]
        if ctx == "rule":
            what, says = (("the engine's label", "the label the engine gives") if real == "app" else
                          ("the engine's detection", "whether the engine detects tethering"))
            self.sink.error("E162", f"rules cannot match on `{ident.text}`", ident.span, what,
                            help=f"in rules `{real}` already is {says}; write `{real}`")
            return None
        return dataclasses.replace(self.schema.field(real), name=ident.text)

    def _enum_visible(self, enum: str, ident: ast.Ident) -> bool:
        """In a rule: is the enum declared by the policy? (E104 if only a spec file declares it)."""
        if ("enum", enum) not in self.spec_only:
            return True
        self.sink.error("E104", f"`{ident.text}` needs `enum {enum}` to be declared by the policy", ident.span,
                        "declared only in spec files", notes=(self._spec_only_note("enum", enum),),
                        help="declare it in the policy or in a file the policy imports")
        return False

    def _is_value_name(self, name: str, ctx: str) -> bool:
        """A name that stands for a value somewhere (an application, protocol, member, set, ...)."""
        return (name in self.catalogue.app_names or name in PROTOCOLS or name in ACTIONS or name in icmp.ALL_NAMES
                or any(name in members for members in _FIXED_ENUMS.values())
                or name in self.decls.sets or name.startswith("category.") or name == "default"
                or any(name == m.text for d in self.decls.enums.values() for m in d.members)
                or ctx == "spec" and any(name == r.name.text for r in self.decls.rules))

    def _is_field(self, operand) -> bool:
        """A field a condition can name (`target`, the redirect target, is internal to `expect`)."""
        return isinstance(operand, ast.Ident) and operand.text != "target" and (
            self.schema.field(operand.text) is not None
            or operand.text in _ENUM_OF or operand.text in ENGINE_VIEWS)

    def compare(self, expr: ast.Compare, ctx: str) -> typed.Cond:
        left, op, right = expr.left, expr.op, expr.right
        is_rule = [isinstance(x, ast.Ident) and x.text == "rule" for x in (left, right)]
        if is_rule[1] and not is_rule[0]:
            left, right, op = right, left, _MIRROR[op]
        # Next to `rule`, the other side is a rule's name, even one spelt like a field (`rule == tls`).
        left_field, right_field = self._is_field(left), self._is_field(right)
        if not any(is_rule) and left_field and right_field:
            self.sink.error("E122", "a comparison of two fields is not supported", expr.span, "two fields",
                            help="compare a field with a value, for example `dst.port == 25`")
            return typed.FALSE
        if not any(is_rule) and not left_field and not right_field:
            unknown = next((x for x in (left, right) if isinstance(x, ast.Ident) and not self._is_value_name(x.text, ctx)),
                           None)
            if unknown is not None:         # `colour == red`: most likely a misspelt field
                self.field(unknown, ctx)
            else:
                self.sink.error("E122", "a comparison needs a field on one side", expr.span, "no field here",
                                help="compare a field with a value, for example `dst.port == 25`")
            return typed.FALSE
        if not any(is_rule) and right_field:
            left, right, op = right, left, _MIRROR[op]
        if left.text == "subscriber.addons":
            self.sink.error("E123", "`subscriber.addons` is a set of add-ons", left.span, "cannot be compared",
                            help="test membership: `vpn in subscriber.addons`")
            return typed.FALSE
        f = self.field(left, ctx)
        if f is None:
            return typed.FALSE
        if op not in ("==", "!=") and f.kind not in ORDERED_KINDS:
            self.sink.error("E124", f"`{op}` needs an ordered field, and `{f.name}` is {_kind_phrase(f)}", expr.span,
                            "not ordered", help="use `==`, `!=`, `in` or `not in`")
            return typed.FALSE
        interval = self.scalar(f, right)
        if interval is None:
            return typed.FALSE
        lo, hi = interval
        if f.kind == "ip" and lo != hi and op in ("==", "!="):
            self.sink.error("E125", f"`{right.text}` is a prefix, not one address", right.span, "a prefix",
                            help=f"test membership: `{f.name} {'in' if op == '==' else 'not in'} {right.text}`")
            return typed.FALSE
        first, last = {"==": (lo, hi), "!=": (lo, hi), "<": (0, lo - 1), "<=": (0, hi),
                       ">": (hi + 1, f.hi), ">=": (lo, f.hi)}[op]
        values = IntervalSet.span(first, last)
        atom = typed.Atom(f.name, values)
        return typed.Not(atom) if op == "!=" else atom

    def member(self, expr: ast.Member, ctx: str) -> typed.Cond:
        item, container = expr.item, expr.container
        if isinstance(container, ast.Ident) and container.text == "subscriber.addons":
            if ctx == "rule" and self.schema.addons and not self._enum_visible("addon", container):
                return typed.FALSE
            atom = self.addon_atom(item, container, expr)
        else:
            if isinstance(item, ast.Ident) and item.text == "subscriber.addons":
                self.sink.error("E123", "`subscriber.addons` is a set of add-ons", item.span, "a set, not a value",
                                help="put the add-on first: `vpn in subscriber.addons`")
                return typed.FALSE
            if isinstance(item, ast.Ident) and not self._is_field(item) and not self._is_value_name(item.text, ctx):
                self.field(item, ctx)           # reports the unknown field
                return typed.FALSE
            if not isinstance(item, ast.Ident) or not self._is_field(item):
                self.sink.error("E126", f"`{item.text}` is not a field", item.span, "expected a field",
                                help=did_you_mean(item.text, [f.name for f in self.schema.flow_fields])
                                or "write the field first: `dst.port in {25, 465}`")
                return typed.FALSE
            f = self.field(item, ctx)
            if f is None:
                return typed.FALSE
            values = self.container(f, container, ctx)
            if values is None:
                return typed.FALSE
            atom = typed.Atom(f.name, values)
        if atom is None:
            return typed.FALSE
        return typed.Not(atom) if expr.negated else atom

    def addon_atom(self, item, container: ast.Ident, expr: ast.Member) -> typed.Atom | None:
        if not self.schema.addons:
            if self._missing_ok("enum", "addon"):
                return None
            self.sink.error("E104", "`subscriber.addons` needs `enum addon` to be declared", container.span,
                            "no add-ons declared", help="declare them first: `enum addon { vpn, tethering }`")
            return None
        if not isinstance(item, ast.Ident) or item.text not in self.schema.addons:
            text = getattr(item, "text", "?")
            self.sink.error("E103", f"`{text}` is not an add-on", item.span, "not in `enum addon`",
                            help=self._wrong_enum_help(text, "addon") or did_you_mean(text, self.schema.addons))
            return None
        return typed.Atom(self.schema.addon_field(item.text), IntervalSet.point(1))

    # ----- values -----------------------------------------------------------------------------
    def container(self, f: Field, c, ctx: str) -> IntervalSet | None:
        """What follows `in`: a set literal, a range, a named set (never a member: `{x}` is the set of x)."""
        match c:
            case ast.SetLiteral(elements):
                return self.elements(f, elements, ctx)
            case ast.Range():
                return self.range(f, c)
            case ast.Ident() if ctx == "rule" and ("set", c.text) in self.spec_only:
                self._spec_only_set(c)
                return None
            case ast.Ident() if c.text in self.decls.sets:
                return self.named_set(f, c)
            case ast.Ident() if c.text.startswith("category."):
                return self.category(f, c)
            case ast.Literal(kind="ipv4" | "ipv6") if f.kind == "ip":
                interval = self.scalar(f, c)
                return None if interval is None else IntervalSet.span(*interval)
            case ast.Ident() if self._missing_ok("set", c.text):
                return None
            case ast.Ident():
                self.sink.error("E101", f"unknown set `{c.text}`", c.span, "not a declared set",
                                help=did_you_mean(c.text, list(self.decls.sets))
                                or f"write a set literal, for example `{{{c.text}}}`")
                return None
        self.sink.error("E127", f"`in` needs a set, not `{c.text}`", c.span, "a single value",
                        help=f"write `{{{c.text}}}` or use `==`")
        return None

    def elements(self, f: Field, elements, ctx: str) -> IntervalSet | None:
        parts, ok = [], True
        for e in elements:
            if isinstance(e, ast.Range):
                values = self.range(f, e)
            elif isinstance(e, ast.Ident) and e.text in self.decls.sets and self._member_name(f, e.text):
                self._ambiguous(f, e)
                values = None
            elif isinstance(e, ast.Ident) and (e.text in self.decls.sets or e.text.startswith("category.")
                                               or self._missing_ok("set", e.text)):
                values = self.container(f, e, ctx)
            else:
                interval = self.scalar(f, e)
                values = None if interval is None else IntervalSet.span(*interval)
            if values is None:
                ok = False
            else:
                parts.extend(values.intervals)
        return IntervalSet.of(parts) if ok else None

    def _member_name(self, f: Field, name: str) -> str | None:
        """What `name` is as a value of f (`an application`, ...), or None if it is not one."""
        if f.kind == "enum" and name in f.members:
            return {"app": "an application", "rule": "a rule", "day": "a day", "rat": "a radio access technology",
                    "state": "a connection-tracking state"}.get(f.enum, f"a member of `{f.enum}`")
        if f.kind == "protocol" and name in PROTOCOLS:
            return "a protocol"
        return None

    def _ambiguous(self, f: Field, e: ast.Ident) -> None:
        """A name inside braces that is both a set and a value of the field: either reading is a guess."""
        decl = self.decls.sets[e.text]
        self.sink.error("E108", f"`{e.text}` is both a set and {self._member_name(f, e.text)}", e.span, "ambiguous",
                        notes=(f"set `{e.text}` is declared at {decl.name.span.location()}",),
                        help=f"rename the set, for example `{e.text}_set`: inside braces `{e.text}` could mean "
                             f"the set or {self._member_name(f, e.text)}")

    def range(self, f: Field, r: ast.Range) -> IntervalSet | None:
        if f.kind not in ORDERED_KINDS and f.kind != "ip":
            listed = "list the members instead: `{a, b}`"
            if f.name == "time.day":
                listed = "list the days instead: `time.day in {mon, tue, wed, thu, fri}`"
            self.sink.error("E124", f"a range needs an ordered field, and `{f.name}` is {_kind_phrase(f)}", r.span,
                            "not ordered", help=listed)
            return None
        low, high = self.scalar(f, r.low), self.scalar(f, r.high)
        if low is None or high is None:
            return None
        if f.kind == "ip" and (low[0] < IPV6_BASE) != (high[1] < IPV6_BASE):
            self.sink.error("E128", f"range `{r.low.text}..{r.high.text}` mixes IPv4 and IPv6", r.span,
                            "ends in different address families",
                            help="write one range per family, or use prefixes")
            return None
        if low[0] > high[1]:
            self.sink.error("E128", f"empty range `{r.low.text}..{r.high.text}`", r.span, "low end above high end",
                            help=f"write `{r.high.text}..{r.low.text}`")
            return None
        return IntervalSet.span(low[0], high[1])

    def named_set(self, f: Field, ident: ast.Ident) -> IntervalSet | None:
        name = ident.text
        protocol = self._protocol if f.kind == "icmp" else None
        if self._lookups is not None and not self._resolving:
            self._lookups.append((f, ident, protocol))
        self.used_sets.add(name)
        key = (name, f.name, protocol)
        if key in self._set_cache:
            return self._set_cache[key]
        if name in self.cyclic_sets:
            return None                       # reported once, where the cycle closes
        if name in self._resolving:
            self.sink.error("E129", f"set `{name}` contains itself", ident.span, "cycle",
                            notes=(" -> ".join(self._resolving + [name]),))
            return None
        self._resolving.append(name)
        # Scope inside a set was checked where the set is declared (_check_set_scope).
        values = self.elements(f, self.decls.sets[name].value.elements, "set")
        self._resolving.pop()
        if values is not None:
            self._set_cache[key] = values
        return values

    def category(self, f: Field, ident: ast.Ident) -> IntervalSet | None:
        category = ident.text.split(".", 1)[1]
        if f.enum != "app":
            self.sink.error("E105", f"`{ident.text}` is a set of applications", ident.span, f"`{f.name}` is not `app`")
            return None
        if category not in CATEGORIES:
            self.sink.error("E101", f"unknown category `{category}`", ident.span, "not an application category",
                            help=did_you_mean(category, CATEGORIES) or "categories: " + ", ".join(CATEGORIES))
            return None
        return IntervalSet.of((f.index_of(a), f.index_of(a)) for a in self.catalogue.category(category))

    def quantity(self, lit: ast.Literal, units, what: str) -> int | None:
        try:
            return parse_quantity(lit.text, units, what)
        except ValueError_ as exc:
            self.sink.error("E110", exc.message, lit.span, exc.label or f"not a {what}", help=exc.help)
            return None

    def scalar(self, f: Field, v) -> tuple[int, int] | None:
        """One value (an interval for an address prefix) of field f, or None after an error."""
        if isinstance(v, ast.Range | ast.SetLiteral):
            self.sink.error("E127", f"expected one value of `{f.name}`", v.span, "a set or range here",
                            help="use `in` for sets and ranges")
            return None
        if f.kind == "enum" and not (isinstance(v, ast.Ident) and v.text in self.decls.sets
                                     and v.text not in f.members):
            return self.member_value(f, v)
        if f.kind == "domain" and isinstance(v, ast.Ident) and v.text == "none":
            return domains.NONE, domains.NONE
        if f.name in PATTERN_FIELDS and isinstance(v, ast.Literal) and v.kind == "string":
            return self.pattern_value(f, v)
        if isinstance(v, ast.Ident):
            if f.kind == "protocol" and v.text in PROTOCOLS:
                n = PROTOCOLS[v.text]
                return n, n
            if f.kind == "icmp" and v.text in icmp.ALL_NAMES:
                return self.icmp_name(v)
            if v.text in self.decls.sets:
                self.sink.error("E127", f"`{v.text}` is a set", v.span, "a set, not one value",
                                help=f"use `in`: `{f.name} in {v.text}`")
                return None
            known = PROTOCOLS if f.kind == "protocol" else icmp.ALL_NAMES if f.kind == "icmp" else None
            extra = (did_you_mean(v.text, known) if known else None) or self._belongs_help(v.text)
            self.sink.error("E106", f"`{v.text}` is not {_KIND_WORDS.get(f.kind, f.kind)}", v.span,
                            f"`{f.name}` needs {_KIND_WORDS.get(f.kind, f.kind)}",
                            help=extra or self._kind_help(f))
            return None
        kind = v.kind
        try:
            if f.kind == "ip" and kind in ("ipv4", "ipv6"):
                return parse_ip(v.text)
            if f.kind in ("port", "hour", "protocol", "icmp") and kind == "number":
                n = whole_number(v.text)
                if n > f.hi:
                    what = "ICMP type" if f.kind == "icmp" else f.kind
                    self.sink.error("E111", f"{what} {v.text} is out of range", v.span, f"{what}s are 0..{f.hi}",
                                    help=f"`{f.name}` takes values from 0 to {f.hi}")
                    return None
                return n, n
            if f.kind == "volume" and kind == "volume":
                n = parse_quantity(v.text, VOLUME_UNITS, "volume")
                if n > f.hi:
                    self.sink.error("E111", f"volume {v.text} is out of range", v.span, "above 1PB",
                                    help="volumes run from 0B to 1PB")
                    return None
                return n, n
            if f.kind == "rate" and kind == "rate":
                n = parse_quantity(v.text, RATE_UNITS, "rate")
                if n > f.hi:
                    self.sink.error("E111", f"rate {v.text} is out of range", v.span, "above 1000Gbps",
                                    help="rates run from 0bps to 1000Gbps")
                    return None
                return n, n
            if f.kind == "bool" and kind == "bool":
                return (1, 1) if v.text == "true" else (0, 0)
        except ValueError_ as exc:
            self.sink.error("E110", exc.message, v.span, exc.label or "invalid value", help=exc.help)
            return None
        self.sink.error("E106", f"`{v.text}` is not {_KIND_WORDS.get(f.kind, f.kind)}", v.span,
                        f"`{f.name}` needs {_KIND_WORDS.get(f.kind, f.kind)}", help=self._kind_help(f))
        return None

    def pattern_value(self, f: Field, lit: ast.Literal) -> tuple[int, int] | None:
        """The values a name or pattern of a pattern field stands for: those of the declared
        patterns under it."""
        canonical = self.pattern_literal(syntax(f.kind), lit)
        return None if canonical is None else encoding_of(f).meaning(canonical)

    def pattern_literal(self, kind, lit: ast.Literal) -> str | None:
        """A string as a name or pattern of `kind` (patterns.Encoding), or None after its error."""
        try:
            return kind.pattern(string_body(lit.text))
        except ValueError_ as exc:
            self.sink.error(kind.ERROR, exc.message, lit.span, exc.label, help=exc.help)
            return None

    def icmp_name(self, v: ast.Ident) -> tuple[int, int] | None:
        """An ICMP type's name, as the protocol the condition pins reads it (`_protocol`)."""
        if self._protocol is None:
            self.sink.error("E197", f"`{v.text}` names an ICMP type only once the protocol is known", v.span,
                            "the condition does not pin `proto` to icmp or icmpv6",
                            notes=(f"`{v.text}` is {icmp.meanings(v.text)}",),
                            help=f"pin the protocol in the same condition (`proto == icmp and icmp.type == "
                                 f"{v.text}`), or write the number")
            return None
        try:
            n = icmp.type_number(self._protocol, v.text)
        except ValueError_ as exc:
            self.sink.error("E197", exc.message, v.span, exc.label, help=exc.help)
            return None
        return n, n

    @staticmethod
    def _kind_help(f: Field) -> str | None:
        return {"volume": f"write a volume with its unit, for example `20GB`; {units_help(VOLUME_UNITS)}",
                "rate": f"write a rate with its unit, for example `128kbps`; {units_help(RATE_UNITS)}",
                "ip": "write an address or prefix, for example `10.0.0.0/8` or `2a01:4c8::/32`",
                "protocol": "write a protocol name (tcp, udp, ...) or a number 0..255",
                "bool": "write `true` or `false`",
                "domain": 'write the name in double quotes, for example `"spotify.com"` or `"*.spotify.com"`, '
                          "or `none` for a flow that sends no server name",
                "interface": 'write the name in double quotes, for example `"eth0"`, or a pattern such as `"tun*"`',
                "icmp": "write a number 0..255, or a type's name where the condition pins `proto` "
                        "(`proto == icmp and icmp.type == echo-request`)"}.get(f.kind)

    def member_value(self, f: Field, v) -> tuple[int, int] | None:
        if isinstance(v, ast.Ident) and v.text in f.members:
            n = f.index_of(v.text)
            return n, n
        text = v.text
        if f.enum == "rule" and self._missing_ok("rule", text):
            return None
        what = {"app": "application", "rule": "rule", "day": "day", "rat": "radio access technology",
                "state": "connection-tracking state"}.get(f.enum, f"`{f.enum}` member")
        label = {"app": "not in the application catalogue", "rule": "no rule with this name",
                 "day": "not a day of the week", "rat": "not a radio access technology",
                 "state": "not a connection-tracking state"}.get(f.enum, f"not a member of `{f.enum}`")
        help_text = self._wrong_enum_help(text, f.enum) or did_you_mean(text, f.members) or (
            f"`{f.name}` is one of " + ", ".join(_MEMBER_WORDS.get(m, m) for m in f.members)
            if f.name in _FIXED_ENUMS else None)
        self.sink.error("E103", f"unknown {what} `{text}`", v.span, label, help=help_text)
        return None

    def _wrong_enum_help(self, name: str, expected: str) -> str | None:
        """If the name belongs to another enum, say which and how it is used: the common mistake."""
        owners, uses = [], []
        for enum, decl in self.decls.enums.items():
            if enum != expected and name in (m.text for m in decl.members):
                owners.append(f"enum `{enum}`")
                uses.append(f"`{name} in subscriber.addons`" if enum == "addon" else f"`subscriber.{enum} == {name}`")
        if expected != "app" and name in self.catalogue.app_names:
            owners.append("the application catalogue")
            uses.append(f"`app == {name}`")
        if expected != "action" and name in ACTIONS:
            owners.append("the actions")
        for field, members in _FIXED_ENUMS.items():
            if expected != field.rpartition(".")[2] and name in members:
                owners.append(f"`{field}`")
                uses.append(f"`{field} == {name}`")
        if owners:
            use = f": write {' or '.join(uses)}" if uses else ""
            return f"`{name}` belongs to {' and '.join(owners)}, not to `{expected}`{use}"
        return None

    def _belongs_help(self, name: str) -> str | None:
        """For a name used as a port, address, ...: what it is, and how to test it instead."""
        if name in PROTOCOLS:
            return f"`{name}` is a protocol: write `proto == {name}`"
        if name in icmp.ALL_NAMES:
            return (f"`{name}` is an ICMP type ({icmp.meanings(name)}): write `icmp.type == {name}` where the "
                    "condition pins `proto`")
        if name in self.catalogue.app_names:
            return f"`{name}` is an application: write `app == {name}`"
        for field, members in _FIXED_ENUMS.items():
            if name in members:
                return f"`{name}` is {_FIXED_WORDS[field]}: write `{field} == {name}`"
        for enum, decl in self.decls.enums.items():
            if name in (m.text for m in decl.members):
                use = f"{name} in subscriber.addons" if enum == "addon" else f"subscriber.{enum} == {name}"
                return f"`{name}` is a member of enum `{enum}`: write `{use}`"
        return None

    def _check_unused_sets(self) -> None:
        """Sets that no condition uses are still checked: their names must mean something."""
        known = (set(self.catalogue.app_names) | set(PROTOCOLS) | set(ACTIONS) | set().union(*_FIXED_ENUMS.values())
                 | set(icmp.ALL_NAMES)
                 | set(self.decls.sets) | {m.text for d in self.decls.enums.values() for m in d.members})
        names_may_be_missing = any(kind in ("set", "enum", "import", "*") for kind, _ in self.broken)
        for name, decl in self.decls.sets.items():
            if name in self.used_sets:
                continue
            for e in decl.value.elements:
                for part in ((e.low, e.high) if isinstance(e, ast.Range) else (e,)):
                    if (isinstance(part, ast.Ident) and not part.text.startswith("category.") and part.text not in known
                            and not names_may_be_missing):
                        self.sink.error("E101", f"unknown name `{part.text}` in set `{name}`", part.span,
                                        "not an application, enum member or set", help=did_you_mean(part.text, known))
                    elif isinstance(part, ast.Literal) and part.kind == "string":
                        self._unused_string(part)
                    elif isinstance(part, ast.Literal) and part.kind in ("ipv4", "ipv6"):
                        try:
                            parse_ip(part.text)
                        except ValueError_ as exc:
                            self.sink.error("E110", exc.message, part.span, exc.label, help=exc.help)


    def _check_vacancy(self) -> None:
        """Interface names and patterns that leave a value no name (E198), at the literal that
        declares it (for `other`, at the first one of the field)."""
        for name in INTERFACE_FIELDS:
            field = self.schema.field(name)
            if field is None:
                continue
            encoding = encoding_of(field)
            for value in encoding.vacant():
                problem = interfaces.vacancy(encoding, value)
                text = encoding.text(value) if value != encoding.OTHER else encoding.patterns[0]
                self.sink.error("E198", problem.message, self.pattern_places.get((name, text)), problem.label,
                                help=problem.help)

    def _unused_string(self, lit: ast.Literal) -> None:
        """A string of a set that nothing uses: a server name or an interface name, or an error
        of the one it looks like (a dot: a server name)."""
        text = string_body(lit.text)
        candidates = (domains.Domains, interfaces.Interfaces)
        for encoding in candidates:
            try:
                encoding.pattern(text)
                return
            except ValueError_:
                pass
        self.pattern_literal(candidates[0] if "." in text else candidates[1], lit)


def _with_spec_fields(schema: Schema, used: dict[str, tuple[str, ...]]) -> Schema:
    """A table's schema, with the optional fields and patterns the specs add (the table is
    moved onto it); the very schema when they add none."""
    have = optional_of(schema)
    joint = union(have, used)
    return schema if joint == have else with_optional(schema, joint)


def _pinned_protocol(operands) -> int | None:
    """ICMP or ICMPv6 when one operand of a conjunction says `proto == icmp` (`icmpv6`, 1, 58, or
    `proto in {...}` of one of them) and none another protocol: the protocol its ICMP type names
    are read in."""
    pinned = set()
    for e in operands:
        if isinstance(e, ast.Compare) and e.op == "==":
            sides = (e.left, e.right)
        elif isinstance(e, ast.Member) and not e.negated and isinstance(e.container, ast.SetLiteral) \
                and len(e.container.elements) == 1:
            sides = (e.item, e.container.elements[0])
        else:
            continue
        words = [getattr(x, "text", None) for x in sides]
        if "proto" in words:
            other = words[1 - words.index("proto")]
            pinned.add(PROTOCOLS.get(other, int(other) if other and other.isdigit() else None))
    return pinned.pop() if len(pinned) == 1 and pinned <= {icmp.ICMP, icmp.ICMPV6} else None


def check_items(placed: list[PlacedItem], catalogue: Catalogue, memo: RuleMemo | None = None) -> typed.Policy:
    """Resolve and type-check; raises DiagnosticError listing every problem. With `memo`, the
    unchanged rules of the next version of the policy last checked with it are not checked again."""
    return _Checker(catalogue).check(placed, memo)


def check_spec_items(placed: list[PlacedItem], catalogue: Catalogue, schema: Schema) -> typed.Policy:
    """Check spec files against a rule table's schema; the result holds only invariants and tests."""
    return _Checker(catalogue).check_spec_for(placed, schema)
