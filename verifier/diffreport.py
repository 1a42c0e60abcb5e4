"""Rendering a semantic diff for reviewers: grouped summary lines first, then boxes with a
witness flow and the deciding rule on each side; as text, JSON or a Markdown PR comment."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from dpipolicy.dsl.catalogue import CATEGORIES
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import LABEL_FIELDS, NEW_LABEL, OLD_LABEL, Schema

from dpipolicy.compiler.boxes import hull

from .diff import EXCLUDING_NAMED, Change, Decider, Diff
from .escaping import md_code, md_html, md_text
from .report import (approximation_json, approximation_names, approximations_text, box_json, box_text, decision_json,
                     decision_line, field_condition, flow_json, outcome_json)
from .results import Result
from .witness import flow_text


@dataclass(frozen=True)
class StatusChange:
    kind: str
    name: str
    before: str
    after: str
    after_result: Result | None
    schema: Schema | None = None     # the schema of the new table, in which after_result's flow is written
    before_result: Result | None = None
    before_schema: Schema | None = None


@dataclass
class Group:
    """Changes read together: same headline (what flows, old -> new outcome)."""
    what: str
    how: str
    changes: list[Change]

    @property
    def exact(self) -> bool:
        return all(c.exact for c in self.changes)


AMONG_SHOWN = 5         # rules of a fan-out named in text


def decider_text(d: Decider) -> str:
    where = f" at {d.origin.location()}" if d.origin is not None and d.origin.location() else ""
    if not d.among:
        return f"{d.rule}{where}"
    others = [name for name in d.among if name != d.rule]
    shown = ", ".join(others[:AMONG_SHOWN]) + (f" and {len(others) - AMONG_SHOWN} more" if len(others) > AMONG_SHOWN else "")
    return f"one of {len(d.among)} rules: {d.rule}{where} (the witness's), {shown}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _apps_phrase(schema: Schema, values: IntervalSet | None) -> str:
    if values is None:
        return "any application"
    members = schema.field("app").members
    names = [members[v] for lo, hi in values.intervals for v in range(lo, hi + 1)]
    for category in CATEGORIES:
        if set(names) == set(schema.catalogue.category(category)):
            return f"category.{category}"
    return ", ".join(names) if len(names) <= 6 else ", ".join(names[:6]) + f" and {len(names) - 6} more"


class _Words:
    """A report's words for field values, each worked out once: the same few values recur across
    thousands of boxes (1,105 distinct conditions in 26,575 at 10k rules)."""

    def __init__(self, diff: Diff):
        self.condition = functools.cache(functools.partial(field_condition, diff.schema, names=diff.names))
        self.apps = functools.cache(functools.partial(_apps_phrase, diff.schema))


def _headline(changes: list[Change], words: _Words) -> str:
    """What the flows are, in a reviewer's terms: applications, then destination and plan; when no
    application is named, protocol and port too. A field is named only when every box agrees."""
    boxes = [c.box for c in changes]
    apps = None if any("app" not in b for b in boxes) else hull(boxes)["app"]
    named = ("proto", "dst.ip", "subscriber.plan", "dst.port") if apps is None else ("dst.ip", "subscriber.plan")
    conditions = [words.condition(n, boxes[0][n]) for n in named if all(n in b and b[n] == boxes[0][n] for b in boxes)]
    flows = words.apps(apps)
    labelled = [n for n in LABEL_FIELDS if apps is None and boxes[0].get(n) is not None and all(n in b for b in boxes)]
    if labelled:
        engine = {OLD_LABEL: "the old engine", NEW_LABEL: "the new engine"}.get(labelled[0], "the engine")
        flows = f"applications labelled {words.apps(hull(boxes)[labelled[0]])} by {engine}"
    return f"{flows} with {' and '.join(conditions)}" if conditions else flows


def grouped(diff: Diff) -> list[Group]:
    """One group per pair of deciding rules (one edit of the policy reads as one group), and
    pairs whose headlines coincide share a group."""
    pairs: dict[tuple[Decider, Decider], list[Change]] = {}
    for change in diff.changes:
        pairs.setdefault((change.old, change.new), []).append(change)
    words = _Words(diff)
    groups: dict[tuple[str, str], Group] = {}
    for (old, new), changes in pairs.items():
        what, how = _headline(changes, words), f"{old.action.text()} -> {new.action.text()}"
        groups.setdefault((what, how), Group(what, how, [])).changes.extend(changes)
    return list(groups.values())


def _count(group: Group) -> str:
    return _plural(len(group.changes), "box", "boxes") + ("" if group.exact else "; some only in part")


def partial_note(change: Change) -> str | None:
    """For a box that is a hull: which of its flows the change is about."""
    if change.exact:
        return None
    if change.old.among or change.new.among:
        one, side, many, other_side = ((change.new, "new", change.old, "old") if change.old.among
                                       else (change.old, "old", change.new, "new"))
        return (f"only the flows of this box that {one.rule} decides in the {side} version and one of the "
                f"{len(many.among)} rules below in the {other_side}")
    note = "only the flows of this box that these two rules decide"
    if change.excluding:
        more = len(change.excluding) - 5
        note += "; earlier rules take the rest: " + ", ".join(change.excluding[:5])
        if not change.excluding_complete:
            note += " and others"
        elif more > 0:
            note += f" and {more} more"
    return note


def change_details(diff: Diff, change: Change) -> list[str]:
    lines = [f"old: {change.old.action.text()} by {decider_text(change.old)}",
             f"new: {change.new.action.text()} by {decider_text(change.new)}",
             f"e.g. {flow_text(diff.schema, change.witness)}"]
    if change.approximations:
        lines.append(f"approximate: the kernel may decide these flows otherwise, because of "
                     f"{approximation_names(change.approximations)}")
    return lines


_APPROXIMATE = ("approximate: the diff is of the tables; where they hold a rule set only approximately, the kernels "
                "may differ otherwise")


def _approximate_lines(diff: Diff) -> list[str]:
    """Why a diff of imported tables read with --approximate is approximate as a whole."""
    return ["", _APPROXIMATE] + approximations_text(diff.approximations) if diff.approximations else []


def _status_lines(statuses: list[StatusChange]) -> list[str]:
    lines = [f"{_plural(len(statuses), 'invariant or test', 'invariants and tests')} changed status:"]
    for s in statuses:
        lines.append(f"  {s.kind} {s.name}: {s.before} -> {s.after}")
        if s.after_result is not None and s.after_result.counterexample is not None:
            lines.append(f"      counterexample: {flow_text(s.schema, s.after_result.counterexample.flow)}"
                         f" gets {decision_line(s.after_result.counterexample)}")
            if s.after_result.pair is not None:
                lines.append(f"      and: {flow_text(s.schema, s.after_result.pair.flow)}"
                             f" gets {decision_line(s.after_result.pair)}")
        elif s.before_result is not None and s.before_result.counterexample is not None:
            lines.append(f"      was: {flow_text(s.before_schema, s.before_result.counterexample.flow)}"
                         f" got {decision_line(s.before_result.counterexample)}")
            if s.before_result.pair is not None:
                lines.append(f"      and: {flow_text(s.before_schema, s.before_result.pair.flow)}"
                             f" got {decision_line(s.before_result.pair)}")
    return lines + [""]


def _unknown_headline(diff: Diff) -> str:
    return f"not settled: the solver gave no answer for {_plural(len(diff.unknown), 'part')} (these may change):"


def render_text(diff: Diff, statuses: list[StatusChange], limit: int = 50) -> str:
    lines = _status_lines(statuses) if statuses else []
    if diff.equivalent:
        lines.append(f"no semantic change (proved; {_plural(diff.queries, 'z3 query', 'z3 queries')})")
        return "\n".join(lines + _approximate_lines(diff))
    groups = grouped(diff)
    if diff.changes:
        lines.append(f"{_plural(len(diff.changes), 'changed region')} in {_plural(len(groups), 'group')}:")
        lines += [f"  {g.what}: {g.how}  ({_count(g)})" for g in groups]
    else:
        lines.append("no changed region found, but the diff is not complete")
    shown = 0
    for g in groups:
        lines += ["", f"{g.what}: {g.how}"]
        for change in g.changes:
            if shown == limit:
                break
            lines.append(f"  - {box_text(diff.schema, change.box, diff.names)}")
            note = partial_note(change)
            lines += [f"    ({note})"] if note else []
            lines += [f"    {line}" for line in change_details(diff, change)]
            shown += 1
    if shown < len(diff.changes):
        lines.append(f"... {len(diff.changes) - shown} more regions (see --format json)")
    if diff.unknown:
        lines += ["", _unknown_headline(diff)] + [f"  {part}" for part in diff.unknown]
    return "\n".join(lines + _approximate_lines(diff))


def _decider_json(d: Decider) -> dict:
    data = {**outcome_json(d.action), "rule": d.rule}
    if d.origin is not None and d.origin.location():
        data["rule_location"] = d.origin.location()
    if d.among:
        data["among"] = list(d.among[:EXCLUDING_NAMED])
        data["among_count"] = len(d.among)
    return data


def _status_json(s: StatusChange) -> dict:
    data = {"kind": s.kind, "name": s.name, "before": s.before, "after": s.after}
    if s.after_result is not None and s.after_result.counterexample is not None:
        data["counterexample"] = decision_json(s.schema, s.after_result.counterexample)
        if s.after_result.pair is not None:
            data["pair"] = decision_json(s.schema, s.after_result.pair)
    if s.before_result is not None and s.before_result.counterexample is not None:
        data["before_counterexample"] = decision_json(s.before_schema, s.before_result.counterexample)
        if s.before_result.pair is not None:
            data["before_pair"] = decision_json(s.before_schema, s.before_result.pair)
    return data


def render_json(diff: Diff, statuses: list[StatusChange]) -> dict:
    schema = diff.schema
    groups = grouped(diff)
    return {
        "equivalent": diff.equivalent,
        "summary": {"regions": len(diff.changes), "groups": len(groups), "unknown": len(diff.unknown),
                    "changed_rules": {"old": diff.changed_rules[0], "new": diff.changed_rules[1]},
                    "queries": diff.queries, "status_changes": len(statuses)},
        "status_changes": [_status_json(s) for s in statuses],
        "groups": [{"what": g.what, "change": g.how, "exact": g.exact, "regions": [
            {"match": box_json(schema, c.box), "text": box_text(schema, c.box, diff.names), "exact": c.exact,
             "excluding": list(c.excluding), "excluding_complete": c.excluding_complete, "old": _decider_json(c.old), "new": _decider_json(c.new),
             "witness": flow_json(schema, c.witness), "witness_text": flow_text(schema, c.witness),
             **({"approximations": [approximation_json(a) for a in c.approximations]} if c.approximations else {})}
            for c in g.changes]} for g in groups],
        "unknown": diff.unknown,
        **({"approximate": True, "approximations": [approximation_json(a) for a in diff.approximations]}
           if diff.approximations else {}),
    }


_MARKS = {"violated": ":x:", "failed": ":x:", "unknown": ":grey_question:"}


def render_markdown(diff: Diff, statuses: list[StatusChange], limit: int = 50) -> str:
    """Names, rule texts and paths are escaped (md_text, md_code, md_html): none can add a row,
    a heading or a link of its own, or end the `<details>` they are shown in."""
    out = ["### dpipolicy semantic diff", ""]
    if statuses:
        out += ["| | invariant or test | before | after |", "|---|---|---|---|"]
        for s in statuses:
            out.append(f"| {_MARKS.get(s.after, ':white_check_mark:')} | {md_code(s.name, cell=True)} | {s.before} "
                       f"| {s.after} |")
        out.append("")
    if diff.equivalent:
        out.append(f"**No semantic change** (proved; {_plural(diff.queries, 'z3 query', 'z3 queries')}).")
        return "\n".join(out + _approximate_markdown(diff))
    groups = grouped(diff)
    if groups:
        out += ["| flows | change | regions |", "|---|---|---:|"]
        out += [f"| {md_text(g.what)} | {md_text(g.how)} | {_count(g)} |" for g in groups]
    else:
        out.append("**No changed region found, but the diff is not complete.**")
    shown = 0
    for g in groups:
        out += ["", f"<details><summary>{md_html(g.what)}: {md_html(g.how)}</summary>", ""]
        for change in g.changes[: max(0, limit - shown)]:
            note = partial_note(change)
            out.append(f"- {md_code(box_text(diff.schema, change.box, diff.names))}"
                       + (f" ({md_text(note)})" if note else ""))
            out.extend(f"  - {md_text(line)}" for line in change_details(diff, change))
            shown += 1
        out += ["", "</details>"]
    if shown < len(diff.changes):
        out.append(f"\n{len(diff.changes) - shown} more regions: run `dpipolicy diff --format json`.")
    if diff.unknown:
        out += ["", f"**{md_text(_unknown_headline(diff))}**"] + [f"- {md_text(u)}" for u in diff.unknown]
    return "\n".join(out + _approximate_markdown(diff))


def _approximate_markdown(diff: Diff) -> list[str]:
    return (["", f"**{md_text(_APPROXIMATE)}**"] + [f"- {md_text(a.text())}" for a in diff.approximations]
            if diff.approximations else [])
