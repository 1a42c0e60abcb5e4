"""Rendering a semantic diff for reviewers: grouped summary lines first, then boxes with a
witness flow and the deciding rule on each side; as text, JSON or a Markdown PR comment."""
from __future__ import annotations

from dataclasses import dataclass

from dpipolicy.dsl.catalogue import CATEGORIES
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Schema

from .diff import Change, Decider, Diff
from .report import box_json, box_text, field_condition, flow_json
from .results import Result
from .witness import flow_text


@dataclass(frozen=True)
class StatusChange:
    kind: str
    name: str
    before: str
    after: str
    after_result: Result | None


def decider_text(d: Decider) -> str:
    where = f" at {d.origin.location()}" if d.origin is not None and d.origin.location() else ""
    return f"{d.rule}{where}"


def _apps_phrase(schema: Schema, values: IntervalSet | None) -> str:
    if values is None:
        return "any application"
    members = schema.field("app").members
    names = [members[v] for lo, hi in values.intervals for v in range(lo, hi + 1)]
    for category in CATEGORIES:
        if set(names) == set(schema.catalogue.category(category)):
            return f"category.{category}"
    return ", ".join(names) if len(names) <= 6 else ", ".join(names[:6]) + f" and {len(names) - 6} more"


def group_key(diff: Diff, change: Change) -> tuple[str, str]:
    """(what the flows are, old -> new): the line a reviewer reads first. Flows are named by
    application, then destination and plan; ports too when no application is named."""
    schema = diff.schema
    flows = _apps_phrase(schema, change.box.get("app"))
    named = ("dst.ip", "subscriber.plan") + (("dst.port",) if "app" not in change.box else ())
    conditions = [field_condition(schema, n, change.box[n], diff.names) for n in named if n in change.box]
    what = f"{flows} with {' and '.join(conditions)}" if conditions else flows
    return what, f"{change.old.action.text()} -> {change.new.action.text()}"


def grouped(diff: Diff) -> dict[tuple[str, str], list[Change]]:
    groups: dict[tuple[str, str], list[Change]] = {}
    for change in diff.changes:
        groups.setdefault(group_key(diff, change), []).append(change)
    return groups


def change_text(diff: Diff, change: Change) -> list[str]:
    schema = diff.schema
    text = box_text(schema, change.box, diff.names)
    if not change.exact:
        text += "  (only the flows these two rules decide"
        if change.excluding:
            more = len(change.excluding) - 5
            text += "; earlier rules take the rest: " + ", ".join(change.excluding[:5]) + (f" and {more} more" if more > 0 else "")
        text += ")"
    return [text,
            f"old: {change.old.action.text()} by {decider_text(change.old)}",
            f"new: {change.new.action.text()} by {decider_text(change.new)}",
            f"e.g. {flow_text(schema, change.witness)}"]


def render_text(diff: Diff, statuses: list[StatusChange], limit: int = 50) -> str:
    lines = []
    for s in statuses:
        lines.append(f"{s.kind} {s.name}: {s.before} -> {s.after}")
        if s.after_result is not None and s.after_result.counterexample is not None:
            ce = s.after_result.counterexample
            lines.append(f"    counterexample: {flow_text(diff.schema, ce.flow)} gets {ce.action.text()} (rule {ce.rule})")
    if diff.equivalent:
        lines.append(f"no semantic change (proved; {diff.queries} z3 queries)")
        return "\n".join(lines)
    groups = grouped(diff)
    lines.append(f"{len(diff.changes)} changed region{'s' if len(diff.changes) != 1 else ''} in {len(groups)} group"
                 f"{'s' if len(groups) != 1 else ''}:")
    for (what, how), changes in groups.items():
        lines.append(f"  {what}: {how}  ({len(changes)} box{'es' if len(changes) != 1 else ''})")
    shown = 0
    for (what, how), changes in groups.items():
        lines.append("")
        lines.append(f"{what}: {how}")
        for change in changes:
            if shown == limit:
                break
            first, *rest = change_text(diff, change)
            lines.append(f"  - {first}")
            lines.extend(f"    {line}" for line in rest)
            shown += 1
    if shown < len(diff.changes):
        lines.append(f"... {len(diff.changes) - shown} more regions (see --format json)")
    for part in diff.unknown:
        lines.append(f"unknown: {part}")
    return "\n".join(lines)


def _decider_json(d: Decider) -> dict:
    data = {"action": d.action.kind, "action_text": d.action.text(), "rule": d.rule}
    if d.origin is not None and d.origin.location():
        data["rule_location"] = d.origin.location()
    return data


def render_json(diff: Diff, statuses: list[StatusChange]) -> dict:
    schema = diff.schema
    return {
        "equivalent": diff.equivalent,
        "summary": {"regions": len(diff.changes), "groups": len(grouped(diff)), "unknown": len(diff.unknown),
                    "changed_rules": {"old": diff.changed_rules[0], "new": diff.changed_rules[1]},
                    "queries": diff.queries, "status_changes": len(statuses)},
        "status_changes": [{"kind": s.kind, "name": s.name, "before": s.before, "after": s.after} for s in statuses],
        "groups": [{"what": what, "change": how, "regions": [
            {"match": box_json(schema, c.box), "text": box_text(schema, c.box, diff.names), "exact": c.exact, "excluding": list(c.excluding),
             "old": _decider_json(c.old), "new": _decider_json(c.new),
             "witness": flow_json(schema, c.witness), "witness_text": flow_text(schema, c.witness)}
            for c in changes]} for (what, how), changes in grouped(diff).items()],
        "unknown": diff.unknown,
    }


def render_markdown(diff: Diff, statuses: list[StatusChange], limit: int = 50) -> str:
    out = ["### dpipolicy semantic diff", ""]
    if statuses:
        out += ["| | invariant or test | before | after |", "|---|---|---|---|"]
        for s in statuses:
            mark = ":x:" if s.after in ("violated", "failed") else ":white_check_mark:"
            out.append(f"| {mark} | `{s.name}` | {s.before} | {s.after} |")
        out.append("")
    if diff.equivalent:
        out.append(f"**No semantic change** (proved; {diff.queries} z3 queries).")
        return "\n".join(out)
    groups = grouped(diff)
    out += ["| flows | change | regions |", "|---|---|---:|"]
    out += [f"| {what} | {how} | {len(changes)} |" for (what, how), changes in groups.items()]
    shown = 0
    for (what, how), changes in groups.items():
        out += ["", f"<details><summary>{what}: {how}</summary>", ""]
        for change in changes[: max(0, limit - shown)]:
            first, *rest = change_text(diff, change)
            out.append(f"- `{first}`")
            out.extend(f"  - {line}" for line in rest)
            shown += 1
        out += ["", "</details>"]
    if shown < len(diff.changes):
        out.append(f"\n{len(diff.changes) - shown} more regions: run `dpipolicy diff --format json`.")
    if diff.unknown:
        out += ["", "**Not settled** (the solver gave no answer):"] + [f"- {u}" for u in diff.unknown]
    return "\n".join(out)
