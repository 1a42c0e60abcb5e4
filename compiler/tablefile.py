"""The rule-table file format (JSON, versioned): written by `compile`, read by `check` and `diff`.

Values are written as in the language (`"25"`, `"1024..65535"`, `"10.0.0.0/8"`, `"smtps"`), so a
table exported from a deployed system can be written by hand. A field's set is either a list
(the values matched) or `{"not": [...]}` (everything but those), whichever is shorter.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from dpipolicy.dsl.catalogue import Catalogue
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, byte_position, cannot_read, did_you_mean
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl import inputfile
from dpipolicy.dsl.interfaces import check_vacancy
from dpipolicy.dsl.patterns import syntax
from dpipolicy.dsl.schema import (ADDON_PREFIX, DECLARABLE, INTERFACE_FIELDS, OPTIONAL_FIELDS, OUTCOME_PARTS,
                                  PATTERN_FIELDS, PROTOCOLS, PURPOSES, RATE_MAX, SCOPES, SNI, Field, build_schema,
                                  declared_patterns, optional_field)
from dpipolicy.dsl.typed import Action, Origin
from dpipolicy.dsl.values import (RATE_UNITS, VOLUME_UNITS, ValueError_, parse_ip, parse_quantity, whole_number,
                                  value_set_texts)

from .table import Approximation, MatchRule, RuleTable

FORMAT = "dpipolicy-rule-table"
VERSION = 2             # 2: outcome parts (charge, priority, scope, purpose); 1 is still read


# ----- writing ------------------------------------------------------------------------------
def action_json(action: Action) -> dict:
    data: dict = {"kind": action.kind}
    if action.kind == "throttle":
        data["rate_bps"] = action.rate
    if action.kind == "redirect":
        data["target"] = action.target
    if action.scope == "subscriber":
        data["scope"] = action.scope
    data.update(action.parts())
    if action.purpose:
        data["purpose"] = action.purpose
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
        "enums": {"plan": list(plan.members) if plan else None, "addon": list(schema.addons),
                  **{enum: list(schema.declared(enum)) for enum in _LATER_ENUMS if schema.declared(enum)},
                  **{part: list(schema.field(part).members) for part in OUTCOME_PARTS if schema.field(part)}},
        **({"fields": fixed} if (fixed := [n for n in _FIXED_FIELDS if schema.field(n)]) else {}),
        **({"interfaces": {n: list(declared_patterns(schema.field(n))) for n in INTERFACE_FIELDS if schema.field(n)}}
           if any(schema.field(n) for n in INTERFACE_FIELDS) else {}),
        **({"domains": list(declared_patterns(sni))} if (sni := schema.field(SNI)) else {}),
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
        # an imported rule set read with --approximate: what the table holds only approximately
        **({"approximations": [{"rule": a.rule, "source": a.location, "what": a.what, "instead": a.instead,
                                "flows": [{name: _values_json(fields[name], values) for name, values in box.items()}
                                          for box in a.region]}
                               for a in table.approximations]} if table.approximations else {}),
    }


def table_text(table: RuleTable) -> str:
    """One rule per line, so a reviewer's text diff lines up with rules."""
    data = table_to_json(table)
    rules = data.pop("rules")
    approximations = data.pop("approximations", None)
    head = json.dumps(data, indent=2)[:-2]
    body = ",\n".join("    " + json.dumps(r, separators=(", ", ": ")) for r in rules)
    tail = "" if approximations is None else ',\n  "approximations": ' + json.dumps(approximations, indent=2).replace(
        "\n", "\n  ")
    return f'{head},\n  "rules": [\n{body}\n  ]{tail}\n}}\n'


def write_table(table: RuleTable, path: Path) -> None:
    path.write_text(table_text(table), encoding="utf-8")


# ----- reading ------------------------------------------------------------------------------
# The keys each object may have (required ones first); anything else is an error, so that a
# misspelt key (`"mach"`) cannot turn a rule into one that matches every flow.
_TOP_KEYS = ("format", "version", "policy", "enums", "fields", "interfaces", "domains", "default", "rules",
             "approximations")
_APPROXIMATION_KEYS = ("rule", "source", "what", "instead", "flows")
_TOP_REQUIRED = ("default", "rules")
# The optional fields (schema.OPTIONAL_FIELDS) a table lists by name under `fields`: those of no
# declared names or patterns (the others are listed with them, under `interfaces` and `domains`).
_FIXED_FIELDS = tuple(n for n in OPTIONAL_FIELDS if n not in PATTERN_FIELDS)
_RULE_KEYS, _RULE_REQUIRED = ("index", "rule", "source", "because", "action", "match"), ("rule", "action", "match")
_ACTION_KEYS = {1: ("kind", "rate_bps", "target", "log"),
                2: ("kind", "rate_bps", "target", "scope", "charge", "priority", "purpose", "log")}
_ENUM_KEYS = {1: ("plan", "addon"), 2: tuple(DECLARABLE) + OUTCOME_PARTS}
_ACTION_KINDS = ("allow", "block", "reset", "throttle", "redirect")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Enums written only when declared, so that the tables of policies without them read as before.
_LATER_ENUMS = ("zone", "apn")
_RULE_INDEX = re.compile(r"rules\[(\d+)\]")


class _Object(dict):
    """A JSON object that remembers the keys it had twice (json keeps only the last silently)."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.repeated = [key for key, n in Counter(k for k, _ in pairs).items() if n > 1]


def _type_words(value) -> str:
    """What a JSON value is, in the words of the format's description."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if value == "":
        return "an empty string"
    return next(words for kind, words in ((dict, "an object"), (list, "a list"), (str, "a string"),
                                          ((int, float), "a number")) if isinstance(value, kind))


def _at(where: str, key) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)


class _TableReader:
    """Checks every value of the file against the format before using it; all problems are
    reported together, each at its JSON path."""

    def __init__(self, path: Path, catalogue: Catalogue):
        self.path, self.catalogue = path, catalogue
        self.errors: list[tuple[int, Diagnostic]] = []      # (rule index or -1, error): file order
        self.unreadable: list[str] = []     # fields of enums already reported as bad: not unknown again

    def fail(self, where: str, message: str, help: str | None = None) -> None:
        location = f"{self.path}: {where}" if where else str(self.path)
        rule = _RULE_INDEX.match(where)
        self.errors.append((int(rule[1]) if rule else -1,
                            Diagnostic("E301", message, None, help=help, location_text=location)))

    def raise_errors(self) -> None:
        """All errors, in the order of the file: a rule's shape and its matches are read in two passes."""
        if self.errors:
            raise DiagnosticError(d for _, d in sorted(self.errors, key=lambda e: e[0]))

    def read(self) -> RuleTable:
        data = self.load()
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DiagnosticError([Diagnostic("E301", f"not a dpipolicy rule table (no \"format\": \"{FORMAT}\")",
                                              None, location_text=str(self.path),
                                              help="write one with `dpipolicy compile POLICY -o rules.json`")])
        version = data.get("version")
        if type(version) is not int or version not in _ACTION_KEYS:
            words = "has no `version`" if version is None else f"version {json.dumps(version)} is not supported"
            raise DiagnosticError([Diagnostic("E302", f"rule table {words}",
                                              None, location_text=str(self.path),
                                              help=f"this dpipolicy reads versions 1 to {VERSION}")])
        self.version = version
        self.keys(data, "", _TOP_KEYS, _TOP_REQUIRED)
        policy = self.obj(data.get("policy"), "policy", ("name", "version"), (), "with `name` and `version`") or {}
        name, version_text = (self.text(policy.get(k), _at("policy", k)) for k in ("name", "version"))
        enums = self.obj(data.get("enums"), "enums", _ENUM_KEYS[version], (),
                         "with `plan` and `addon` (and `zone`, `apn`, `charge`, `priority` when declared)")
        if enums is None and data.get("enums") is not None:
            self.unreadable += [ADDON_PREFIX if enum == "addon" else field for enum, field in DECLARABLE.items()]
        declared = {enum: self.members((enums or {}).get(enum), _at("enums", enum),
                                       ADDON_PREFIX if enum == "addon" else field)
                    for enum, field in DECLARABLE.items()}
        self.parts = {part: members for part in OUTCOME_PARTS
                      if (members := self.members((enums or {}).get(part), _at("enums", part), part)) is not None}
        optional = self.fixed_fields(data["fields"]) if "fields" in data else {}
        optional.update(self.interfaces(data["interfaces"]) if "interfaces" in data else {})
        if "domains" in data and (patterns := self.patterns(data["domains"], "domains", SNI)) is not None:
            optional[SNI] = patterns
        default = self.action(data["default"], "default") if "default" in data else Action("allow")
        rules_data = data.get("rules")
        if not isinstance(rules_data, list):
            if "rules" in data:
                self.fail("rules", f"`rules` must be a list of rules, not {_type_words(rules_data)}")
            self.raise_errors()
        entries = [self.rule(entry, i) for i, entry in enumerate(rules_data)]
        actions = [e[1] for e in entries if e is not None] + [default]
        targets = tuple(sorted({a.target for a in actions if a.kind == "redirect" and a.target}))
        schema = build_schema(self.catalogue, {enum: m for enum, m in declared.items() if m is not None},
                              tuple(dict.fromkeys(e[0].name for e in entries if e is not None)), targets,
                              parts=self.parts, optional=optional)
        fields = {f.name: f for f in schema.flow_fields}
        rules = []
        for i, entry in enumerate(entries):
            if entry is not None:
                origin, action, match, because = entry
                box = self.matches(match, fields, f"rules[{i}].match")
                if any(values.is_empty() for _, values in box):
                    continue        # it matches no flow (`[]`): left out, so every box has flows; its name stays
                rules.append(MatchRule(len(rules), box, action, origin, because))
        approximations = self.approximations(data.get("approximations", []), fields)
        self.raise_errors()
        return RuleTable(name, version_text, schema, tuple(rules), default, approximations=approximations)

    def approximations(self, entries, fields: dict[str, Field]) -> tuple[Approximation, ...]:
        """What an imported table holds only approximately (`dpipolicy import --approximate`)."""
        if not isinstance(entries, list):
            self.fail("approximations", f"`approximations` must be a list, not {_type_words(entries)}")
            return ()
        out = []
        for i, entry in enumerate(entries):
            where = f"approximations[{i}]"
            if not isinstance(entry, dict):
                self.fail(where, f"an approximation must be an object, not {_type_words(entry)}")
                continue
            self.keys(entry, where, _APPROXIMATION_KEYS, _APPROXIMATION_KEYS)
            texts = [self.text(entry.get(k), _at(where, k)) for k in _APPROXIMATION_KEYS[:4]]
            flows = entry.get("flows")
            if not isinstance(flows, list):
                if "flows" in entry:
                    self.fail(_at(where, "flows"), f"`flows` must be a list of matches, not {_type_words(flows)}")
                continue
            region = tuple(dict(self.matches(box, fields, f"{_at(where, 'flows')}[{k}]"))
                           for k, box in enumerate(flows))
            if all(t is not None for t in texts):
                out.append(Approximation(*texts, region))
        return tuple(out)

    def load(self):
        try:
            return json.loads(inputfile.read_text(self.path), object_pairs_hook=_Object)
        except OSError as exc:
            raise DiagnosticError([cannot_read("E010", "rule table", str(self.path), exc,
                                               "check the path; it is relative to the current folder")]) from None
        except UnicodeDecodeError as exc:
            raise DiagnosticError([Diagnostic("E300", f"invalid JSON: byte 0x{exc.object[exc.start]:02x} is not UTF-8",
                                              None, location_text=f"{self.path}:{byte_position(exc.object, exc.start)}",
                                              help="save the file as UTF-8")]) from None
        except json.JSONDecodeError as exc:
            raise DiagnosticError([Diagnostic("E300", f"invalid JSON: {exc.msg}", None,
                                              location_text=f"{self.path}:{exc.lineno}:{exc.colno}")]) from None
        except (ValueError, RecursionError) as exc:     # a number past Python's 4300 digits, arrays nested too deep
            raise DiagnosticError([Diagnostic("E300", f"invalid JSON: {_json_refusal(exc)}", None,
                                              location_text=str(self.path))]) from None

    # ----- shapes ---------------------------------------------------------------------------
    def keys(self, data: dict, where: str, allowed: tuple[str, ...] | None, required: tuple[str, ...]) -> None:
        """Keys given twice, unknown keys (unless `allowed` is None: any key) and missing keys."""
        for key in data.repeated:
            self.fail(_at(where, key), f"`{key}` is given twice", help="keep one of them")
        for key in data:
            if allowed is not None and key not in allowed:
                self.fail(_at(where, key), f"unknown key `{key}`",
                          help=did_you_mean(key, allowed) or "keys here: " + ", ".join(allowed))
        missing = [f"`{key}`" for key in required if key not in data]
        if missing:
            self.fail(where, "missing " + ", ".join(missing), help="keys here: " + ", ".join(allowed))

    def obj(self, data, where: str, allowed: tuple[str, ...], required: tuple[str, ...], what: str) -> dict | None:
        """An optional object (absent or null is None) with exactly the keys allowed."""
        if data is None:
            return None
        if not isinstance(data, dict):
            self.fail(where, f"`{where}` must be an object {what}, not {_type_words(data)}")
            return None
        self.keys(data, where, allowed, required)
        return data

    def text(self, value, where: str) -> str | None:
        """An optional string (absent or null is None)."""
        if value is None or isinstance(value, str):
            return value
        self.fail(where, f"`{where.rsplit('.', 1)[-1]}` must be a string, not {_type_words(value)}")
        return None

    def members(self, values, where: str, field: str) -> tuple[str, ...] | None:
        """The members of `enums.plan`, `enums.addon`, `enums.zone` or `enums.apn`: null (not
        declared) or a list of names. No add-ons may be an empty list (what `compile` writes); no
        plans (zones, APNs) may not, since a field without members would leave no flow at all."""
        if values is None or values == [] and field == ADDON_PREFIX:
            return None
        if not isinstance(values, list) or not values:
            self.fail(where, f"`{where}` must be null or a non-empty list of names, not "
                      + ("an empty list" if values == [] else _type_words(values)))
            self.unreadable.append(field)
            return None
        names: list[str] = []
        for k, value in enumerate(values):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                self.fail(f"{where}[{k}]", f"{json.dumps(value)} is not a name",
                          help="names are letters, digits and `_`, not starting with a digit")
            elif value in names:
                self.fail(f"{where}[{k}]", f"`{value}` is listed twice")
            else:
                names.append(value)
        if len(names) != len(values):
            self.unreadable.append(field)
            return None
        return tuple(names)

    def fixed_fields(self, values) -> dict[str, tuple[str, ...]]:
        """`fields`: the optional fields the table has that declare no names (`ct.state`, `icmp.type`)."""
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.fail("fields", f"`fields` must be a list of field names, not {_type_words(values)}",
                      help="for example " + json.dumps(list(_FIXED_FIELDS)))
            self.unreadable += list(_FIXED_FIELDS)
            return {}
        for k, value in enumerate(values):
            if value not in _FIXED_FIELDS:
                self.fail(f"fields[{k}]", f"`{value}` is not a field a table lists under `fields`",
                          help="these fields are " + ", ".join(_FIXED_FIELDS)
                          + (f"; `{value}` is listed with its names under `interfaces`" if value in INTERFACE_FIELDS
                             else "; `tls.sni` is listed with its patterns under `domains`" if value == SNI else ""))
            elif value in values[:k]:
                self.fail(f"fields[{k}]", f"`{value}` is listed twice")
        return {value: () for value in values if value in _FIXED_FIELDS}

    def interfaces(self, data) -> dict[str, tuple[str, ...]]:
        """`interfaces`: per interface field the table has, its declared names and patterns."""
        data = self.obj(data, "interfaces", INTERFACE_FIELDS, (), 'such as {"iface.in": ["eth0", "ppp*"]}')
        if data is None:
            self.unreadable += list(INTERFACE_FIELDS)
            return {}
        # an unknown key is reported by `obj`; only the interface fields are read
        return {field: patterns for field, values in data.items() if field in INTERFACE_FIELDS
                and (patterns := self.patterns(values, _at("interfaces", field), field)) is not None}

    def patterns(self, values, where: str, field: str) -> tuple[str, ...] | None:
        """The declared names and patterns of a pattern field, each once, in their canonical order
        (the order gives the values: dsl/domains.py, dsl/interfaces.py)."""
        encoding = syntax(PATTERN_FIELDS[field])
        words = "domain names and patterns" if field == SNI else "interface names and patterns"
        example = '["spotify.com", "*.spotify.com"]' if field == SNI else '["eth0", "ppp*"]'
        if not isinstance(values, list):
            self.fail(where, f"`{where}` must be a list of {words}, not {_type_words(values)}",
                      help=f"for example {example}")
            self.unreadable.append(field)
            return None
        patterns = []
        for k, value in enumerate(values):
            try:
                if not isinstance(value, str):
                    raise ValueError_(f"a {'domain' if field == SNI else 'name or'} pattern must be a string, "
                                      f"not {_type_words(value)}")
                patterns.append(encoding.pattern(value))
            except ValueError_ as exc:
                self.fail(f"{where}[{k}]", exc.message, help=exc.help)
        if len(patterns) != len(values):
            self.unreadable.append(field)
            return None
        if tuple(patterns) != encoding.ordered(patterns):
            order = ("lower case, in the order of their labels read from the right" if field == SNI
                     else "each pattern right before the names that start with it")
            self.fail(where, f"`{where}` must list each {'pattern' if field == SNI else 'name'} once, {order}",
                      help="write " + json.dumps(list(encoding.ordered(patterns))))
            self.unreadable.append(field)
            return None
        if field in INTERFACE_FIELDS:
            try:
                check_vacancy(optional_field(field, tuple(patterns)))
            except ValueError_ as exc:
                self.fail(where, exc.message, help=exc.help)
                self.unreadable.append(field)
                return None
        return tuple(patterns)

    def rule(self, entry, i: int) -> tuple[Origin, Action, object, str | None] | None:
        where = f"rules[{i}]"
        if not isinstance(entry, dict):
            self.fail(where, f"a rule must be an object, not {_type_words(entry)}")
            return None
        self.keys(entry, where, _RULE_KEYS, _RULE_REQUIRED)
        index = entry.get("index", i)
        if type(index) is not int or index != i:
            self.fail(_at(where, "index"), f"`index` is {json.dumps(index)}, but this is rule {i} of the list",
                      help="rules are evaluated in list order; number them from 0, or leave `index` out")
        name = entry.get("rule")
        if not isinstance(name, str) or not name:
            if "rule" in entry:
                self.fail(_at(where, "rule"), f"`rule` must be the source rule's name, not {_type_words(name)}")
            name = None
        elif name == "default":
            self.fail(_at(where, "rule"), "a rule cannot be named `default`",
                      help="`default` names the default action in reports and in `rule == default`; rename the rule")
            name = None
        source = self.text(entry.get("source"), _at(where, "source"))
        because = self.text(entry.get("because"), _at(where, "because"))
        action = self.action(entry.get("action"), _at(where, "action")) if "action" in entry else None
        if name is None or action is None or "match" not in entry:
            return None
        return Origin(name, None, source or f"{self.path}: {where}"), action, entry.get("match"), because

    def action(self, data, where: str) -> Action:
        help = 'for example {"kind": "throttle", "rate_bps": 128000, "log": true}'
        if not isinstance(data, dict) or "kind" not in data:
            got = _type_words(data) if not isinstance(data, dict) else "an object without `kind`"
            self.fail(where, f"an action is an object with a `kind`, not {got}", help=help)
            return Action("allow")
        if data["kind"] not in _ACTION_KINDS:
            self.fail(_at(where, "kind"), "`kind` is allow, block, reset, throttle or redirect, "
                      f"not {json.dumps(data['kind'])}", help=help)
            return Action("allow")
        self.keys(data, where, _ACTION_KEYS[self.version], ("kind",))
        kind, rate, target, log = data["kind"], data.get("rate_bps"), data.get("target"), data.get("log", False)
        if kind == "throttle" and (type(rate) is not int or not 0 < rate <= RATE_MAX):
            self.fail(_at(where, "rate_bps"), f"a throttle needs `rate_bps`, a whole number of bits per second "
                      f"from 1 to {RATE_MAX}, not {json.dumps(rate)}", help=help)
        if kind == "redirect" and (not isinstance(target, str) or not target):
            self.fail(_at(where, "target"), f"a redirect needs `target`, a non-empty string, not {json.dumps(target)}",
                      help='for example {"kind": "redirect", "target": "http://portal.example/topup"}')
        for key, needed_by in (("rate_bps", "throttle"), ("target", "redirect")):
            if key in data and kind != needed_by:
                self.fail(_at(where, key), f"`{key}` belongs to a {needed_by}, not to {kind}")
        if not isinstance(log, bool):
            self.fail(_at(where, "log"), f"`log` must be true or false, not {_type_words(log)}")
        scope = data.get("scope")
        if "scope" in data and (kind != "throttle" or scope not in SCOPES):
            self.fail(_at(where, "scope"), "`scope` belongs to a throttle and is \"flow\" or \"subscriber\", not "
                      + (json.dumps(scope) if kind == "throttle" else f"part of {kind}"))
        purpose = data.get("purpose")
        if purpose is not None and (purpose not in PURPOSES[1:] or where == "default"):
            self.fail(_at(where, "purpose"), "the default has no purpose" if where == "default" else
                      f"`purpose` is one of {', '.join(PURPOSES[1:])}, not {json.dumps(purpose)}")
        parts = {part: self.part(data, where, part) for part in OUTCOME_PARTS}
        return Action(kind, rate if kind == "throttle" and type(rate) is int else None,
                      target if kind == "redirect" and isinstance(target, str) else None, log is True,
                      parts["charge"], parts["priority"], "subscriber" if scope == "subscriber" else None,
                      purpose if purpose in PURPOSES[1:] and where != "default" else None)

    def part(self, data: dict, where: str, part: str) -> str | None:
        """`charge` or `priority` of an action: a member of the table's enum, which every action
        of a table that declares it gives (as `compile` writes them)."""
        members = self.parts.get(part)
        value = data.get(part)
        if members is None:
            if part in data:
                self.fail(_at(where, part), f"`{part}` needs `enums.{part}`, which this table does not declare")
            return None
        if value not in members:
            self.fail(_at(where, part), f"this action must give its `{part}`, one of {', '.join(members)}"
                      if part not in data else f"{json.dumps(value)} is not a member of `enums.{part}`",
                      help=did_you_mean(str(value), members) if part in data else None)
            return None
        return value

    def matches(self, data, fields: dict[str, Field], where: str) -> tuple[tuple[str, IntervalSet], ...]:
        if not isinstance(data, dict):
            self.fail(where, f"`match` must be an object from field names to value sets, not {_type_words(data)}",
                      help='for example {"proto": ["tcp"], "dst.port": ["25", "465"]}; {} matches every flow')
            return ()
        self.keys(data, where, None, ())
        out = []
        for name, values in data.items():
            if name not in fields:
                if not name.startswith(tuple(self.unreadable)):
                    declare = name.startswith((ADDON_PREFIX,) + tuple(f for e, f in DECLARABLE.items() if e != "addon"))
                    self.fail(_at(where, name), f"unknown field `{name}`", help=(
                        "plans, add-ons, zones and APNs are fields only when `enums` lists them" if declare
                        else "`tls.sni` is a field only when `domains` lists its patterns" if name == SNI
                        else f"`{name}` is a field only when `interfaces` lists it" if name in INTERFACE_FIELDS
                        else f"`{name}` is a field only when `fields` lists it" if name in _FIXED_FIELDS
                        else did_you_mean(name, fields) or "fields: " + ", ".join(fields)))
                continue
            parsed = self.value_set(fields[name], values, _at(where, name))
            if parsed is not None and parsed != fields[name].domain:
                out.append((name, parsed))
        return tuple(out)

    def value_set(self, field: Field, values, where: str) -> IntervalSet | None:
        negate = isinstance(values, dict) and list(values) == ["not"] and not values.repeated
        items, where = (values["not"], _at(where, "not")) if negate else (values, where)
        if not isinstance(items, list):
            got = _type_words(items) if not isinstance(values, dict) or negate else (
                "an object with " + (", ".join(f"`{k}`" for k in values) or "no keys"))
            what = "`not` takes a list of values" if negate else 'a value set is a list of values, or {"not": [...]}'
            self.fail(where, f"{what}, not {got}", help='for example ["25", "465"] or {"not": ["10.0.0.0/8"]}')
            return None
        parts = []
        for k, text in enumerate(items):
            if not isinstance(text, str):
                self.fail(f"{where}[{k}]", f"a value must be a string, not {_type_words(text)}",
                          help=f'write it as in the language, in quotes: "{text}"' if isinstance(text, int) else None)
                continue
            try:
                parts.append(parse_value_text(field, text))
            except ValueError_ as exc:
                self.fail(f"{where}[{k}]", exc.message, help=exc.help)
        result = IntervalSet.of(parts)
        return result.complement(0, field.hi) if negate else result


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
    if field.kind in ("enum", "domain", "interface"):
        if text not in field.members:
            if field.kind == "domain":
                raise ValueError_(f"`{text}` is not a value of `{field.name}`",
                                  help="its values are none, other and the patterns `domains` lists")
            if field.kind == "interface":
                raise ValueError_(f"`{text}` is not a value of `{field.name}`",
                                  help="its values are other and the names and patterns `interfaces` lists for it")
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
        n = whole_number(text)
    else:
        raise ValueError_(f"`{text}` is not a value of `{field.name}`")
    if n > field.hi:
        raise ValueError_(f"`{text}` is out of range for `{field.name}` (0..{field.hi})")
    return n, n


def _json_refusal(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "arrays or objects nested too deeply"
    return "a number too long to read (over 4300 digits)" if "digits" in str(exc) else str(exc)


def read_table(path: Path, catalogue: Catalogue) -> RuleTable:
    return _TableReader(path, catalogue).read()
