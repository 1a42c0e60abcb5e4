"""`explain`: the outcome of a (possibly partial) flow, the deciding rule, and why earlier rules
did not match. Fields left unpinned range over all values; where they matter, the explanation
lists which values lead to which outcome."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from dpipolicy.compiler.backends.contract import unseen_flows
from dpipolicy.compiler.boxes import Box, contains, intersect, subtract
from dpipolicy.compiler.table import RuleTable
from dpipolicy.compiler.tablefile import parse_value_text
from dpipolicy.dsl import domains, icmp
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.patterns import encoding_of, syntax
from dpipolicy.dsl.schema import ADDON_PREFIX, OPTIONAL_FIELDS, PATTERN_FIELDS, PROTOCOLS, Schema
from dpipolicy.dsl.typed import Action
from dpipolicy.dsl.values import ValueError_, value_text

from .report import box_text, outcome_json

_ITEM = re.compile(r"\S+")


def parse_flow(schema: Schema, text: str) -> dict[str, int]:
    """`proto=tcp dst.port=465 tls` (a bool alone means true; add-ons as `subscriber.addons=vpn,roaming_eu`;
    an ICMP type by its name in the protocol the flow gives, `proto=icmp icmp.type=echo-request`)."""
    pinned: dict[str, int] = {}
    errors = []
    protocol = next((PROTOCOLS.get(m.group()[6:], m.group()[6:]) for m in _ITEM.finditer(text)
                     if m.group().startswith("proto=")), None)

    def fail(match, message, help=None):
        errors.append(Diagnostic("E310", message, None, help=help,
                                 location_text=f"--flow:1:{match.start() + 1}"))

    for m in _ITEM.finditer(text):
        key, _, value = m.group().partition("=")
        if key == "subscriber.addons":
            chosen = [a for a in value.split(",") if a]
            unknown = [a for a in chosen if a not in schema.addons]
            if unknown:
                fail(m, f"`{unknown[0]}` is not an add-on", help="add-ons: " + ", ".join(schema.addons))
            for addon in schema.addons:
                pinned[ADDON_PREFIX + addon] = int(addon in chosen)
            continue
        f = schema.field(key)
        if f is None and key in OPTIONAL_FIELDS:
            fail(m, f"the policy does not test `{key}`",
                 help=f"`{key}` is a field only where a policy or spec tests it, and this one decides alike whatever "
                      f"its value: leave `{key}` out of the flow")
            continue
        if f is None or f.outcome or key.startswith(ADDON_PREFIX):
            names = [x.name for x in schema.flow_fields if ":" not in x.name] + ["subscriber.addons"]
            fail(m, f"unknown field `{key}`", help="fields: " + ", ".join(names))
            continue
        if not value and f.kind == "bool":
            value = "true"
        try:
            if f.name in PATTERN_FIELDS:
                lo, hi = _pattern_name(f, value)
            elif f.kind == "icmp" and not value.isdigit():
                lo = hi = _icmp_name(protocol, value)
            else:
                lo, hi = parse_value_text(f, value)
        except ValueError_ as exc:
            fail(m, exc.message, exc.help)
            continue
        if lo != hi:
            fail(m, f"`{value}` is not a single value of `{key}`", help="give one address, port or member")
            continue
        pinned[f.name] = lo
    if errors:
        raise DiagnosticError(errors)
    return pinned


def _pattern_name(f, text: str) -> tuple[int, int]:
    """A server name as a client sends it (`a.spotify.com`, or `none`), or an interface's name
    (`eth3`): the value of the most specific declared pattern it falls under. Quotes, as the
    language writes names, may stay."""
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if text == "none" and f.kind == "domain":
        return domains.NONE, domains.NONE
    value = encoding_of(f).encode(syntax(f.kind).name(text))
    return value, value


def _icmp_name(protocol, text: str) -> int:
    """An ICMP type's name, in the protocol the flow gives (`proto=icmp` or `proto=icmpv6`)."""
    if protocol not in icmp.PROTOCOL_WORDS and str(protocol) not in ("1", "58"):
        raise ValueError_(f"`{text}` names an ICMP type only with the protocol",
                          help=f"give `proto=icmp` or `proto=icmpv6` too (`{text}` is {icmp.meanings(text)}), "
                               "or the number" if text in icmp.ALL_NAMES else "give the type's number, 0..255")
    return icmp.type_number(int(protocol), text)


@dataclass
class Step:
    """One source rule, however many match rules it compiled into."""
    rule: str
    location: str
    action: Action
    status: str                         # "no match", "shadowed", "decides", "decides some"
    failed: list[str] = field(default_factory=list)    # for "no match": each alternative, the part the flow fails
    flow_has: list[str] = field(default_factory=list)  # the flow's values of the fields in `failed`
    when: list[str] = field(default_factory=list)      # for "decides some": the unpinned conditions
    shadowed: bool = False              # some alternative holds, but only for flows earlier rules decide


class Outcome(NamedTuple):
    action: Action
    rule: str
    location: str
    when: list[str]                     # conditions on unpinned fields under which it applies


@dataclass
class Explanation:
    pinned: dict[str, int]
    steps: list[Step]
    outcomes: list[Outcome]             # one per deciding source rule (and the default)
    unpinned: list[str]
    deciding_fields: list[str]          # unpinned fields whose values change the outcome


def explain(table: RuleTable, pinned: dict[str, int]) -> Explanation:
    """Walk the match rules in order, folding each source rule's match rules into one step and one
    outcome: a rule compiled into several boxes fails (or decides) as one rule, alternative by
    alternative."""
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields}
    names = table.named_sets
    carried = remaining = _carried(table, pinned, fields)
    deciding: set[str] = set()
    steps: dict[str, Step] = {}
    outcomes: dict[str, Outcome] = {}
    failed_fields: dict[str, set[str]] = {}
    for rule in table.rules:
        if not remaining:
            break
        box = rule.box()
        name, location = rule.origin.name, rule.origin.location()
        step = steps.setdefault(name, Step(name, location, rule.action, "no match"))
        failing = {n: v for n, v in box.items() if n in pinned and pinned[n] not in v}
        if failing:
            _add_once(step.failed, box_text(schema, failing, names))
            failed_fields.setdefault(name, set()).update(failing)
            continue
        residual = {n: v for n, v in box.items() if n not in pinned}
        decided = [b for b in (intersect(r, residual) for r in remaining) if b is not None]
        if not decided:
            step.shadowed = True
            continue
        whole = remaining is carried and all(contains(residual, r) for r in remaining)
        step.status = "decides" if whole else "decides some"
        outcome = outcomes.setdefault(name, Outcome(rule.action, name, location, []))
        for b in decided:
            _add_once(step.when, box_text(schema, b, names))
            _add_once(outcome.when, box_text(schema, b, names))
        deciding.update(residual)
        remaining = [piece for r in remaining for piece in subtract(r, residual, fields)]
    for step in steps.values():
        if step.status != "no match":
            step.failed = []
        elif step.failed:
            step.flow_has = _pinned_values(schema, failed_fields[step.rule], pinned)
        else:
            step.status = "shadowed"
    if remaining:
        outcomes["default"] = Outcome(table.default, "default", "", [box_text(schema, b, names) for b in remaining])
    unpinned = [f.name for f in schema.flow_fields if f.name not in pinned and not f.name.startswith(ADDON_PREFIX)]
    if schema.addons and not any(ADDON_PREFIX + a in pinned for a in schema.addons):
        unpinned.append("subscriber.addons")
    if len(outcomes) == 1:
        deciding.clear()
    order = [f.name for f in schema.flow_fields]
    named = sorted({"subscriber.addons" if n.startswith(ADDON_PREFIX) else n for n in deciding},
                   key=lambda n: order.index(n) if n in order else len(order))
    return Explanation(pinned, list(steps.values()), list(outcomes.values()), unpinned, named)


def _carried(table: RuleTable, pinned: dict[str, int], fields) -> list[Box]:
    """The flows of the pinned values a claim about `table` speaks of, as boxes over the other
    fields: all of them, but on a packet filter's table only those packets carry (a flow of
    none is bad input: the rule set never meets it)."""
    remaining: list[Box] = [{}]
    if not table.packet_filter:
        return remaining
    for box in unseen_flows(table.schema):
        if all(pinned[n] in v for n, v in box.items() if n in pinned):
            residual = {n: v for n, v in box.items() if n not in pinned}
            remaining = [piece for r in remaining for piece in subtract(r, residual, fields)]
    if not remaining:
        raise DiagnosticError([Diagnostic(
            "E310", "no packet carries this flow, so the rule set never decides it", None, location_text="--flow",
            help="give both addresses in one family, and ports or an ICMP type only with a protocol that has "
                 "them (docs/import.md, \"What a rule set never sees\")")])
    return remaining


def _add_once(items: list[str], text: str) -> None:
    if text not in items:
        items.append(text)


def _pinned_values(schema: Schema, names: set[str], pinned: dict[str, int]) -> list[str]:
    """The flow's values of some fields, as `--flow` writes them (add-ons as one list), in field order."""
    out = []
    for f in schema.flow_fields:
        if f.name in names and not f.name.startswith(ADDON_PREFIX):
            out.append(f"{f.name}={value_text(f, pinned[f.name])}")
    if any(n.startswith(ADDON_PREFIX) for n in names):
        chosen = [a for a in schema.addons if pinned.get(ADDON_PREFIX + a)]
        out.append("subscriber.addons=" + (",".join(chosen) if chosen else "(none)"))
    return out


def _rule_words(rule: str, location: str) -> str:
    return f"rule {rule}{', ' + location if location else ''}"


def explanation_text(schema: Schema, e: Explanation) -> str:
    lines = []
    if len(e.outcomes) == 1:
        o = e.outcomes[0]
        lines.append(f"outcome: {o.action.text()} ({_rule_words(o.rule, o.location)})")
    else:
        lines.append("outcome: depends on fields the flow leaves open")
        for o in e.outcomes:
            lines.append(f"  {o.action.text()} ({_rule_words(o.rule, o.location)}) when:")
            lines.extend(f"    - {c}" for c in o.when[:8])
            if len(o.when) > 8:
                lines.append(f"    ... {len(o.when) - 8} more (see --format json)")
    lines.append("rules in order:")
    for s in e.steps:
        head = f"  {s.rule} ({s.location}): "
        if s.status == "no match":
            either = [f"({c})" if " and " in c and len(s.failed) > 1 else c for c in s.failed]
            shadowed = "; the rest of it holds only for flows earlier rules decide" if s.shadowed else ""
            lines.append(f"{head}no match: {' or '.join(either)} (flow has {' '.join(s.flow_has)}){shadowed}")
        elif s.status == "shadowed":
            lines.append(f"{head}no match: it holds only for flows earlier rules decide")
        elif s.status == "decides":
            lines.append(f"{head}matches and decides: {s.action.text()}")
        else:
            lines.append(f"{head}decides {s.action.text()} only when: " + " | ".join(s.when[:4])
                         + (f" | ... {len(s.when) - 4} more" if len(s.when) > 4 else ""))
    if e.unpinned:
        lines.append("unpinned fields: " + ", ".join(e.unpinned))
        if e.deciding_fields:
            lines.append("  the outcome depends on: " + ", ".join(e.deciding_fields))
        else:
            lines.append("  none of them changes the outcome")
    return "\n".join(lines)


def explanation_json(schema: Schema, e: Explanation) -> dict:
    return {
        "outcomes": [{**outcome_json(o.action), "rule": o.rule, "rule_location": o.location, "when": o.when}
                     for o in e.outcomes],
        "determined": len(e.outcomes) == 1,
        "steps": [{"rule": s.rule, "location": s.location, "status": s.status, "failed": s.failed,
                   "flow_has": s.flow_has, "when": s.when} for s in e.steps],
        "unpinned": e.unpinned,
        "deciding_fields": e.deciding_fields,
    }
