"""`explain`: the outcome of a (possibly partial) flow, the deciding rule, and why earlier rules
did not match. Fields left unpinned range over all values; where they matter, the explanation
lists which values lead to which outcome."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from dpipolicy.compiler.boxes import Box, intersect, subtract
from dpipolicy.compiler.tablefile import parse_value_text
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.schema import ADDON_PREFIX, Schema
from dpipolicy.dsl.typed import Action, Origin
from dpipolicy.dsl.values import ValueError_, value_text

from .report import box_text, field_condition

_ITEM = re.compile(r"\S+")


def parse_flow(schema: Schema, text: str) -> dict[str, int]:
    """`proto=tcp dst.port=465 tls` (a bool alone means true; add-ons as `subscriber.addons=vpn,roaming_eu`)."""
    pinned: dict[str, int] = {}
    errors = []

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
        if f is None or f.outcome or key.startswith(ADDON_PREFIX):
            names = [x.name for x in schema.flow_fields if ":" not in x.name] + ["subscriber.addons"]
            fail(m, f"unknown field `{key}`", help="fields: " + ", ".join(names))
            continue
        if not value and f.kind == "bool":
            value = "true"
        try:
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


@dataclass
class Step:
    rule: str
    location: str
    action: Action
    status: str                         # "no match", "decides", "decides some"
    failed: list[str] = field(default_factory=list)    # conditions the pinned flow fails
    when: list[str] = field(default_factory=list)      # for "decides some": the unpinned conditions


@dataclass
class Explanation:
    pinned: dict[str, int]
    steps: list[Step]
    outcomes: list[tuple[Action, str, str, list[str]]]   # action, rule, location, conditions on unpinned fields
    unpinned: list[str]
    deciding_fields: list[str]          # unpinned fields whose values change the outcome


def explain(loaded, pinned: dict[str, int]) -> Explanation:
    table = loaded.table
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields}
    names = table.named_sets
    remaining: list[Box] = [{}]
    deciding: set[str] = set()
    steps: dict[str, Step] = {}
    outcomes = []
    for rule in table.rules:
        box = rule.box()
        name, location = rule.origin.name, rule.origin.location()
        step = steps.setdefault(name, Step(name, location, rule.action, "no match"))
        failing = [field_condition(schema, n, v, names) for n, v in box.items() if n in pinned and pinned[n] not in v]
        if failing:
            if step.status == "no match" and not step.failed:
                step.failed = [f"{c} (flow has {_pinned_text(schema, c, pinned)})" for c in failing]
            continue
        residual = {n: v for n, v in box.items() if n not in pinned}
        decided = [b for b in (intersect(r, residual) for r in remaining) if b is not None]
        if not decided:
            continue
        step.status, step.failed = ("decides" if not residual and remaining == [{}] else "decides some"), []
        step.when.extend(box_text(schema, b, names) for b in decided)
        deciding.update(residual)
        outcomes.append((rule.action, name, location, [box_text(schema, b, names) for b in decided]))
        remaining = [piece for r in remaining for piece in subtract(r, residual, fields)]
        if not remaining:
            break
    if remaining:
        outcomes.append((table.default, "default", "", [box_text(schema, b, names) for b in remaining]))
    unpinned = [f.name for f in schema.flow_fields if f.name not in pinned and not f.name.startswith(ADDON_PREFIX)]
    if schema.addons and not any(ADDON_PREFIX + a in pinned for a in schema.addons):
        unpinned.append("subscriber.addons")
    if len(outcomes) == 1:
        deciding.clear()
    named = sorted({"subscriber.addons" if n.startswith(ADDON_PREFIX) else n for n in deciding},
                   key=lambda n: [f.name for f in schema.flow_fields].index(n) if schema.field(n) else 99)
    return Explanation(pinned, list(steps.values()), outcomes, unpinned, named)


def _pinned_text(schema: Schema, condition: str, pinned: dict[str, int]) -> str:
    name = condition.split(" ", 1)[0] if not condition.startswith("not ") else condition[4:]
    if " in subscriber.addons" in condition:
        addon = condition.split(" ", 1)[0]
        return f"{addon} {'in' if pinned.get(ADDON_PREFIX + addon) else 'not in'} subscriber.addons"
    f = schema.field(name)
    return f"{name}={value_text(f, pinned[name])}" if f and name in pinned else condition


def explanation_text(schema: Schema, e: Explanation) -> str:
    lines = []
    if len(e.outcomes) == 1:
        action, rule, location, _ = e.outcomes[0]
        lines.append(f"outcome: {action.text()} (rule {rule}{', ' + location if location else ''})")
    else:
        lines.append("outcome: depends on fields the flow leaves open")
        for action, rule, location, conditions in e.outcomes:
            lines.append(f"  {action.text()} (rule {rule}{', ' + location if location else ''}) when:")
            lines.extend(f"    - {c}" for c in conditions[:8])
    lines.append("rules in order:")
    for s in e.steps:
        if s.status == "no match":
            lines.append(f"  {s.rule} ({s.location}): no match: " + "; ".join(s.failed))
        elif s.status == "decides":
            lines.append(f"  {s.rule} ({s.location}): matches and decides: {s.action.text()}")
        else:
            lines.append(f"  {s.rule} ({s.location}): decides {s.action.text()} only when: " + " | ".join(s.when[:4]))
    if e.unpinned:
        lines.append("unpinned fields: " + ", ".join(e.unpinned))
        if e.deciding_fields:
            lines.append("  the outcome depends on: " + ", ".join(e.deciding_fields))
        else:
            lines.append("  none of them changes the outcome")
    return "\n".join(lines)


def explanation_json(schema: Schema, e: Explanation) -> dict:
    return {
        "outcomes": [{"action": a.kind, "action_text": a.text(), "rule": r, "rule_location": loc, "when": conds}
                     for a, r, loc, conds in e.outcomes],
        "determined": len(e.outcomes) == 1,
        "steps": [{"rule": s.rule, "location": s.location, "status": s.status, "failed": s.failed, "when": s.when}
                  for s in e.steps],
        "unpinned": e.unpinned,
        "deciding_fields": e.deciding_fields,
    }
