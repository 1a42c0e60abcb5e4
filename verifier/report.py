"""Rendering results: text for people (one line per invariant, details under failures) and JSON."""
from __future__ import annotations

from typing import Mapping

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.schema import ADDON_PREFIX, PATTERN_FIELDS, Field, Schema
from dpipolicy.dsl.typed import Action
from dpipolicy.dsl.values import value_set_texts, value_text
from dpipolicy.dsl.words import counted

from .results import APPROXIMATE, FAILED, HOLDS, PASSED, UNKNOWN, VIOLATED, Decision, PairBox, Report, Result
from .witness import addons_of, flow_text, shown_name

REGION_SHOWN = 10
_COLOURS = {HOLDS: "32", PASSED: "32", VIOLATED: "31", FAILED: "31", UNKNOWN: "33", APPROXIMATE: "33"}


Names = tuple[tuple[str, str, IntervalSet], ...]     # (set name, field, values) from the policy


def field_condition(schema: Schema, name: str, values: IntervalSet, names: Names = ()) -> str:
    """One field of a box as a condition in the language: by a named set of the policy when one
    matches (`dst.ip not in operator_mail`), else with the shorter of the set and its complement.
    ICMP types are numbers, never a set's name: a set of type names means other numbers in ICMP
    and in ICMPv6."""
    f = schema.field(name)
    opposite = values.complement(0, f.hi)
    for set_name, field, set_values in names if f.kind != "icmp" else ():
        if field == name and values == set_values:
            return f"{name} in {set_name}"
        if field == name and opposite == set_values:
            return f"{name} not in {set_name}"
    if name.startswith(ADDON_PREFIX):
        addon = name[len(ADDON_PREFIX):]
        return f"{addon} in subscriber.addons" if 1 in values else f"{addon} not in subscriber.addons"
    if f.kind == "bool":
        return name if 1 in values else f"not {name}"
    if f.name in PATTERN_FIELDS:
        return _pattern_condition(f, values)
    positive = value_set_texts(f, values)
    negative = value_set_texts(f, opposite)
    if len(positive) == 1 and ".." not in positive[0] and "/" not in positive[0]:
        return f"{name} == {positive[0]}"
    if len(negative) == 1 and ".." not in negative[0] and "/" not in negative[0]:
        return f"{name} != {negative[0]}"
    if len(values.intervals) == 1 and f.kind in ("port", "volume", "hour", "rate", "protocol", "icmp"):
        lo, hi = values.intervals[0]
        if hi == f.hi:
            round_below = f.kind in ("volume", "rate") and lo > 1 and (lo - 1) % 1000 == 0
            return f"{name} > {value_text(f, lo - 1)}" if round_below else f"{name} >= {value_text(f, lo)}"
        if lo == 0:
            return f"{name} <= {value_text(f, hi)}"
    items, word = (negative, "not in") if len(negative) < len(positive) else (positive, "in")
    shown = items if len(items) <= 6 else items[:6] + [f"... {len(items) - 6} more"]
    return f"{name} {word} {{{', '.join(shown)}}}"


def _pattern_condition(f, values: IntervalSet) -> str:
    """`tls.sni`, `iface.in` or `iface.out` as the language says it: a pattern literal holds the
    patterns below it, so a set of values is said as literals less the patterns below them that
    it lacks (dsl/patterns.py). `other` (a name under no declared pattern) has no literal: a set
    holding it is said by what it lacks."""
    encoding = encoding_of(f)
    negated = encoding.OTHER in values
    pieces = encoding.pieces(values.complement(0, f.hi) if negated else values)
    whole = [encoding.literal(head) for head, excluded in pieces if not excluded]
    if len(whole) == len(pieces):
        return _members_text(f.name, whole, negated)
    parts = [_members_text(f.name, whole, False)] if whole else []
    parts += [f"({f.name} == {encoding.literal(head)} and "
              f"{_members_text(f.name, [encoding.literal(v) for v in excluded], True)})"
              for head, excluded in pieces if excluded]
    text = " or ".join(parts)
    return f"not ({text})" if negated else (text if len(parts) == 1 else f"({text})")


def _members_text(name: str, items: list[str], negated: bool) -> str:
    if len(items) == 1:
        return f"{name} {'!=' if negated else '=='} {items[0]}"
    shown = items if len(items) <= 6 else items[:6] + [f"... {len(items) - 6} more"]
    return f"{name} {'not in' if negated else 'in'} {{{', '.join(shown)}}}"


def _fields_of(schema: Schema, box: Mapping[str, IntervalSet]) -> list[Field]:
    """The fields the box constrains, in the schema's order however the box was built: a box's
    text and JSON list them alike, and the same in every run."""
    return [f for f in schema.flow_fields if f.name in box]


def box_text(schema: Schema, box: Mapping[str, IntervalSet], names: Names = ()) -> str:
    if not box:
        return "every flow"
    return " and ".join(field_condition(schema, f.name, box[f.name], names) for f in _fields_of(schema, box))


def varied_text(schema: Schema, box: Mapping[str, IntervalSet], across: tuple[str, ...], names: Names = ()) -> str:
    """One flow's values of the fields that may differ in a pair box (`any app` where unconstrained)."""
    return " and ".join(field_condition(schema, n, box[n], names) if n in box else f"any {n}"
                        for n in across if not (n.startswith(ADDON_PREFIX) and n not in box))


def pair_box_text(schema: Schema, pair: PairBox, across: tuple[str, ...], names: Names = ()) -> str:
    return (f"{box_text(schema, pair.shared, names)}: first {varied_text(schema, pair.first, across, names)} "
            f"[decided by {pair.first_rule}], second {varied_text(schema, pair.second, across, names)} "
            f"[decided by {pair.second_rule}]")


def decision_line(d: Decision) -> str:
    where = f", {d.origin.location()}" if d.origin is not None and d.origin.location() else ""
    return f"{d.action.text()} (rule {d.rule}{where})"


class TextReport:
    def __init__(self, schema: Schema, colour: bool, names: Names = ()):
        self.schema, self.colour, self.names = schema, colour, names

    def paint(self, status: str) -> str:
        word = f"{status:<8}"
        return f"\x1b[{_COLOURS[status]}m{word}\x1b[0m" if self.colour else word

    def render(self, report: Report) -> str:
        lines = []
        if not report.results:
            lines.append("nothing to prove: no invariants or tests (write them in the policy or give --spec FILE)")
        width = max((len(r.name) for r in report.results), default=0)
        for r in report.results:
            lines.append(f"{r.kind:<9} {self.paint(r.status)} {r.name:<{width}}  {r.location}")
            lines.extend("    " + line for line in self.details(r))
        validation = report.validation.text() if report.validation else "not applicable (the input is a rule table)"
        lines.append(f"translation validation: {validation}")
        lines += approximations_text(report.approximations)
        s = report.summary()
        holds = f"{s['holds']} hold{'s' if s['holds'] == 1 else ''}"
        approximate = f", {s['approximate']} approximate" if s.get("approximate") else ""
        lines.append(f"summary: {counted(s['invariants'], 'invariant')} ({holds}, {s['violated']} violated), "
                     f"{counted(s['tests'], 'test')} ({s['passed']} passed, {s['failed']} failed), "
                     f"{s['unknown']} unknown{approximate}")
        return "\n".join(lines)

    def details(self, r: Result) -> list[str]:
        out = []
        if r.status in (VIOLATED, FAILED) or r.status == UNKNOWN:
            if r.description:
                out.append(f'"{r.description}"')
        if r.pair is not None:
            out += self.pair_details(r)
        elif r.counterexample is not None:
            out += self.decision_lines(r)
            more = "" if r.region_complete else " (list capped; more flows violate)"
            out.append(f"all violating flows ({counted(len(r.region), 'box', 'boxes')}{more}):")
            out += self.region_lines(r)
        elif r.witness is not None:
            out.append(f"witness: {flow_text(self.schema, r.witness.flow)} gets {decision_line(r.witness)}")
        elif r.status == VIOLATED and r.reason:
            out.append(r.reason)
        if r.status == UNKNOWN:
            out.append(f"the solver gave no answer: {r.reason}; raise --timeout")
        if r.approximations:
            said = f"the table says {r.table_status}, the kernel may not" if r.status == APPROXIMATE else \
                "exact: its flow lies outside what the approximations may change"
            out.append(f"{'approximate' if r.status == APPROXIMATE else 'depends on approximations'}: {said}; "
                       f"it speaks of flows of {approximation_names(r.approximations)}")
        return out

    def pair_details(self, r: Result) -> list[str]:
        """A violated equal-treatment invariant: its two flows, then every violating pair."""
        out = [f"two flows that differ only in {', '.join(shown_fields(r.across))} are treated differently:",
               *self.decision_lines(r)]
        total = len(r.pair_region)
        more = "" if r.region_complete else " (list capped; more pairs violate)"
        if not total:
            out.append("the violating pairs could not be written as boxes in the work allowed")
        else:
            out.append(f"all violating pairs ({counted(total, 'box', 'boxes')}{more}):")
        return out + self.region_lines(r)

    def decision_lines(self, r: Result) -> list[str]:
        """The counterexample of a violated item (or failing flow of a test), or both flows of a
        violated equal-treatment invariant, each with what it gets and why."""
        if r.pair is None:
            d = r.counterexample
            out = [f"{'counterexample' if r.kind == 'invariant' else 'failing flow'}: {flow_text(self.schema, d.flow)}",
                   f"gets:  {decision_line(d)}"]
            return out + ([f'       because "{d.because}"'] if d.because else [])
        out = []
        for word, d in (("first", r.counterexample), ("second", r.pair)):
            out.append(f"{word + ':':<7} {flow_text(self.schema, d.flow)}")
            out.append(f"gets:   {decision_line(d)}")
            if d.because:
                out.append(f'        because "{d.because}"')
        return out

    def region_lines(self, r: Result) -> list[str]:
        """The violating boxes of a violated item (its pair boxes, for equal treatment), the first
        REGION_SHOWN of them."""
        if r.pair is not None:
            shown = [pair_box_text(self.schema, pair, r.across, self.names) for pair in r.pair_region]
        else:
            shown = [f"{box_text(self.schema, box, self.names)}  [decided by {rule}]" for box, rule in r.region]
        out = [f"  - {text}" for text in shown[:REGION_SHOWN]]
        if len(shown) > REGION_SHOWN:
            out.append(f"  ... {counted(len(shown) - REGION_SHOWN, 'more box', 'more boxes')} (see --format json)")
        return out


def approximation_names(approximations) -> str:
    return ", ".join(f"`{a.rule}` ({a.location})" for a in approximations)


def approximations_text(approximations) -> list[str]:
    """What an imported table read with --approximate holds only approximately (docs/import.md)."""
    if not approximations:
        return []
    return [f"approximated ({counted(len(approximations), 'approximation')}, --approximate):"] + [
        f"  - {a.text()}" for a in approximations]


def approximation_json(a) -> dict:
    return {"rule": a.rule, "location": a.location, "what": a.what, "instead": a.instead}


def shown_fields(across: tuple[str, ...]) -> list[str]:
    """The fields a pair may differ in as written: the add-ons as `subscriber.addons`."""
    return list(dict.fromkeys("subscriber.addons" if n.startswith(ADDON_PREFIX) else n for n in across))


# ----- JSON ---------------------------------------------------------------------------------
def flow_json(schema: Schema, flow: Mapping[str, int]) -> dict:
    out: dict = {}
    for f in schema.flow_fields:
        if f.name.startswith(ADDON_PREFIX):
            continue
        v = flow[f.name]
        if f.kind in ("port", "volume", "hour", "icmp"):
            out[f.name] = v
        elif f.kind == "bool":
            out[f.name] = bool(v)
        elif f.kind == "protocol":
            out[f.name] = value_text(f, v) if not value_text(f, v).isdigit() else v
        elif f.name in PATTERN_FIELDS:
            out[f.name] = shown_name(schema, flow, f.name)
        else:
            out[f.name] = value_text(f, v)
    if schema.addons:
        out["subscriber.addons"] = addons_of(schema, flow)
    return out


def box_json(schema: Schema, box: Mapping[str, IntervalSet]) -> dict:
    out = {}
    for f in _fields_of(schema, box):
        values = box[f.name]
        positive = value_set_texts(f, values)
        negative = value_set_texts(f, values.complement(0, f.hi))
        out[f.name] = {"not": negative} if len(negative) < len(positive) else positive
    return out


def outcome_json(action: Action) -> dict:
    """An outcome in JSON reports: the action's kind and text, and each part that is set."""
    data = {"action": action.kind, "action_text": action.text(), **dict(action.parts())}
    if action.scope == "subscriber":
        data["scope"] = action.scope
    if action.purpose:
        data["purpose"] = action.purpose
    return data


def decision_json(schema: Schema, d: Decision) -> dict:
    data = {"flow": flow_json(schema, d.flow), "flow_text": flow_text(schema, d.flow), **outcome_json(d.action),
            "rule": d.rule}
    if d.origin is not None:
        data["rule_location"] = d.origin.location()
    return data


def result_json(schema: Schema, r: Result, names: Names = ()) -> dict:
    data: dict = {"kind": r.kind, "name": r.name, "status": r.status, "location": r.location}
    if r.description:
        data["description"] = r.description
    if r.pair is not None:
        data.update(pair_json(schema, r, names))
    elif r.counterexample is not None:
        data["counterexample"] = decision_json(schema, r.counterexample)
        data["region"] = [{"rule": rule, "match": box_json(schema, box), "text": box_text(schema, box, names)}
                          for box, rule in r.region]
        data["region_complete"] = r.region_complete
    if r.witness is not None:
        data["witness"] = decision_json(schema, r.witness)
    if r.reason:
        data["reason"] = r.reason
    if r.approximations:
        data["approximations"] = [approximation_json(a) for a in r.approximations]
        if r.table_status is not None:
            data["table_status"] = r.table_status
    return data


def pair_json(schema: Schema, r: Result, names: Names = ()) -> dict:
    """A violated equal-treatment invariant: both flows, and every violating pair as a pair box."""
    def side(box: Mapping[str, IntervalSet], rule: str) -> dict:
        return {"rule": rule, "match": box_json(schema, box), "text": varied_text(schema, box, r.across, names)}
    return {"across": list(r.across), "counterexample": decision_json(schema, r.counterexample),
            "pair": decision_json(schema, r.pair),
            "pair_region": [{"shared": {"match": box_json(schema, p.shared), "text": box_text(schema, p.shared, names)},
                             "first": side(p.first, p.first_rule), "second": side(p.second, p.second_rule)}
                            for p in r.pair_region],
            "region_complete": r.region_complete}


def report_json(schema: Schema, report: Report, names: Names = ()) -> dict:
    return {
        "policy": report.policy_name,
        "summary": report.summary(),
        "translation_validation": (
            {"status": "not applicable"} if report.validation is None else
            {"status": report.validation.status, "rules": report.validation.rules,
             "queries": report.validation.queries, "reason": report.validation.reason}),
        "results": [result_json(schema, r, names) for r in report.results],
        **({"approximations": [approximation_json(a) for a in report.approximations]} if report.approximations
           else {}),
    }
