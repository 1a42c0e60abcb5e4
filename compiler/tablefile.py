"""The rule-table file format (JSON, versioned): written by `compile`, read by `check` and `diff`.

Values are written as in the language (`"25"`, `"1024..65535"`, `"10.0.0.0/8"`, `"smtps"`), so a
table exported from a deployed system can be written by hand. A field's set is either a list
(the values matched) or `{"not": [...]}` (everything but those), whichever is shorter.
"""
from __future__ import annotations

import json
from pathlib import Path

from dpipolicy.dsl.catalogue import Catalogue
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import PROTOCOLS, Field, build_schema
from dpipolicy.dsl.typed import Action, Origin
from dpipolicy.dsl.values import (RATE_UNITS, VOLUME_UNITS, ValueError_, parse_ip, parse_quantity,
                                  value_set_texts)

from .table import MatchRule, RuleTable

FORMAT = "dpipolicy-rule-table"
VERSION = 1


# ----- writing ------------------------------------------------------------------------------
def action_json(action: Action) -> dict:
    data: dict = {"kind": action.kind}
    if action.kind == "throttle":
        data["rate_bps"] = action.rate
    if action.kind == "redirect":
        data["target"] = action.target
    data["log"] = action.log
    return data


def _values_json(field: Field, values: IntervalSet):
    positive = value_set_texts(field, values)
    negative = value_set_texts(field, values.complement(0, field.hi))
    return {"not": negative} if len(negative) < len(positive) else positive


def table_to_json(table: RuleTable) -> dict:
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields}
    plan = schema.field("subscriber.plan")
    return {
        "format": FORMAT,
        "version": VERSION,
        "policy": {"name": table.policy_name, "version": table.policy_version},
        "enums": {"plan": list(plan.members) if plan else None, "addon": list(schema.addons)},
        "default": action_json(table.default),
        "rules": [
            {
                "index": r.index,
                "rule": r.origin.name,
                "source": r.origin.location(),
                **({"because": r.because} if r.because else {}),
                "action": action_json(r.action),
                "match": {name: _values_json(fields[name], values) for name, values in r.matches},
            }
            for r in table.rules
        ],
    }


def write_table(table: RuleTable, path: Path) -> None:
    """One rule per line, so a reviewer's text diff lines up with rules."""
    data = table_to_json(table)
    rules = data.pop("rules")
    head = json.dumps(data, indent=2)[:-2]
    body = ",\n".join("    " + json.dumps(r, separators=(", ", ": ")) for r in rules)
    path.write_text(f'{head},\n  "rules": [\n{body}\n  ]\n}}\n', encoding="utf-8")


# ----- reading ------------------------------------------------------------------------------
class _TableReader:
    def __init__(self, path: Path, catalogue: Catalogue):
        self.path, self.catalogue = path, catalogue
        self.errors: list[Diagnostic] = []

    def fail(self, where: str, message: str, help: str | None = None) -> None:
        self.errors.append(Diagnostic("E301", message, None, help=help, location_text=f"{self.path}: {where}"))

    def read(self) -> RuleTable:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DiagnosticError([Diagnostic("E010", f"cannot read `{self.path}`: {exc.strerror}", None,
                                              location_text=str(self.path))]) from None
        except json.JSONDecodeError as exc:
            raise DiagnosticError([Diagnostic("E300", f"invalid JSON: {exc.msg}", None,
                                              location_text=f"{self.path}:{exc.lineno}:{exc.colno}")]) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DiagnosticError([Diagnostic("E301", f"not a dpipolicy rule table (no \"format\": \"{FORMAT}\")",
                                              None, location_text=str(self.path),
                                              help="write one with `dpipolicy compile POLICY -o rules.json`")])
        if data.get("version") != VERSION:
            raise DiagnosticError([Diagnostic("E302", f"rule table version {data.get('version')!r} is not supported",
                                              None, location_text=str(self.path),
                                              help=f"this dpipolicy reads version {VERSION}")])
        enums = data.get("enums") or {}
        rules_data = data.get("rules")
        if not isinstance(rules_data, list):
            self.fail("rules", "`rules` must be a list")
            raise DiagnosticError(self.errors)
        names = tuple(dict.fromkeys(str(r.get("rule", f"rule_{i}")) for i, r in enumerate(rules_data)
                                    if isinstance(r, dict)))
        actions = [self.action(r.get("action"), f"rules[{i}].action") for i, r in enumerate(rules_data)
                   if isinstance(r, dict)]
        default = self.action(data.get("default"), "default")
        targets = tuple(sorted({a.target for a in actions + [default] if a.kind == "redirect" and a.target}))
        schema = build_schema(self.catalogue, _names(enums.get("plan")), _names(enums.get("addon")) or (),
                              names, targets)
        fields = {f.name: f for f in schema.flow_fields}
        rules = []
        for i, (entry, action) in enumerate(zip(rules_data, actions)):
            if not isinstance(entry, dict):
                self.fail(f"rules[{i}]", "each rule is an object")
                continue
            matches = []
            for name, values in (entry.get("match") or {}).items():
                if name not in fields:
                    self.fail(f"rules[{i}].match", f"unknown field `{name}`",
                              help="fields: " + ", ".join(fields))
                    continue
                parsed = self.value_set(fields[name], values, f"rules[{i}].match.{name}")
                if parsed is not None and parsed != fields[name].domain:
                    matches.append((name, parsed))
            origin = Origin(str(entry.get("rule", f"rule_{i}")), None,
                            str(entry.get("source") or f"{self.path}: rules[{i}]"))
            rules.append(MatchRule(len(rules), tuple(matches), action, origin, entry.get("because")))
        if self.errors:
            raise DiagnosticError(self.errors)
        policy = data.get("policy") or {}
        return RuleTable(policy.get("name"), policy.get("version"), schema, tuple(rules), default)

    def action(self, data, where: str) -> Action:
        if not isinstance(data, dict) or data.get("kind") not in ("allow", "block", "reset", "throttle", "redirect"):
            self.fail(where, "an action is an object with `kind` allow, block, reset, throttle or redirect")
            return Action("allow")
        kind = data["kind"]
        rate = data.get("rate_bps") if kind == "throttle" else None
        if kind == "throttle" and (not isinstance(rate, int) or rate <= 0):
            self.fail(where, "a throttle needs a positive integer `rate_bps`")
            rate = 1
        target = str(data.get("target") or "") if kind == "redirect" else None
        return Action(kind, rate, target, bool(data.get("log", False)))

    def value_set(self, field: Field, values, where: str) -> IntervalSet | None:
        negate = isinstance(values, dict)
        items = values.get("not") if negate else values
        if not isinstance(items, list):
            self.fail(where, "a value set is a list of values, or {\"not\": [...]}")
            return None
        parts = []
        for k, text in enumerate(items):
            try:
                parts.append(parse_value_text(field, str(text)))
            except ValueError_ as exc:
                self.fail(f"{where}[{k}]", exc.message, help=exc.help)
        result = IntervalSet.of(parts)
        return result.complement(0, field.hi) if negate else result


def _names(values) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


def parse_value_text(field: Field, text: str) -> tuple[int, int]:
    """One item of a value set as written in a table: a value or a range `a..b`."""
    if ".." in text and field.kind != "ip":
        low, high = text.split("..", 1)
        lo, hi = parse_value_text(field, low)[0], parse_value_text(field, high)[1]
        if lo > hi:
            raise ValueError_(f"empty range `{text}`")
        return lo, hi
    if field.kind == "ip":
        return parse_ip(text)
    if field.kind == "enum":
        if text not in field.members:
            raise ValueError_(f"`{text}` is not a member of `{field.name}`",
                              help="members: " + ", ".join(field.members[:12]))
        n = field.index_of(text)
        return n, n
    if field.kind == "bool":
        if text not in ("true", "false"):
            raise ValueError_(f"`{text}` is not true or false")
        return (1, 1) if text == "true" else (0, 0)
    if field.kind == "volume":
        n = parse_quantity(text, VOLUME_UNITS, "volume")
    elif field.kind == "rate":
        n = parse_quantity(text, RATE_UNITS, "rate")
    elif field.kind == "protocol" and text in PROTOCOLS:
        n = PROTOCOLS[text]
    elif text.isdigit():
        n = int(text)
    else:
        raise ValueError_(f"`{text}` is not a value of `{field.name}`")
    if n > field.hi:
        raise ValueError_(f"`{text}` is out of range for `{field.name}` (0..{field.hi})")
    return n, n


def read_table(path: Path, catalogue: Catalogue) -> RuleTable:
    return _TableReader(path, catalogue).read()
