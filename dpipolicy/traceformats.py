"""The traceability and coverage part of an audit report (verifier/trace.py), in each of the
audit's formats, and the terms' stated limits; dpipolicy/auditformats.py places them."""
from __future__ import annotations

from html import escape

from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.words import counted
from dpipolicy.verifier.audit import Audit
from dpipolicy.verifier.escaping import md_code, md_fence, md_text
from dpipolicy.verifier.report import Names, box_text
from dpipolicy.verifier.trace import RuleTrace, Trace

_NO_CLAUSE = '<span class="verdict violated">no clause (finding)</span>'
_CAPPED = "the list is capped: more flows are unconstrained"


def _clauses(audit: Audit, r: RuleTrace) -> str:
    """The clauses constraining a rule, each with its verdict: what the rule is answerable to."""
    verdicts = {c.clause.id: c.verdict for c in audit.clauses}
    return ", ".join(f"{c} ({verdicts[c]})" for c in r.clauses)


def _rule_line(audit: Audit, r: RuleTrace) -> str:
    return f"{r.rule} ({r.action})  {r.location}: {_clauses(audit, r) or 'no clause (finding)'}"


def _summary(t: Trace) -> str:
    interfering = [r for r in t.rules if r.interferes]
    return (f"{counted(len(interfering), 'interfering rule')}, {len(t.findings)} constrained by no clause; "
            f"{counted(len(t.unconstrained_rules), 'rule')} and {counted(len(t.uncovered), 'flow region')} "
            f"constrained by no invariant or test")


def _uncovered(t: Trace, schema: Schema, names: Names) -> list[str]:
    return [box_text(schema, b, names) for b in t.uncovered] + ([] if t.uncovered_complete else [f"({_CAPPED})"])


def _too_large(t: Trace) -> str:
    return f"conditions too large to flatten, taken to constrain nothing: {', '.join(t.too_large)}"


def limits_lines(audit: Audit, fmt: str) -> list[str]:
    """The terms' own statement of what the check cannot show, for the top of a report."""
    limits = audit.terms.limits
    if not limits:
        return []
    return {"text": [f"limits of this check: {limits}"],
            "markdown": [f"**Limits of this check:** {md_text(limits)}", ""],
            "html": [f'<p id="limits"><strong>Limits of this check:</strong> {escape(limits)}</p>']}[fmt]


def trace_text(audit: Audit, schema: Schema, names: Names = ()) -> list[str]:
    t = audit.trace
    if t is None:
        return []
    lines = ["", f"traceability: {_summary(t)}"]
    lines += [f"  {_rule_line(audit, r)}" for r in t.rules if r.interferes]
    if t.unconstrained_rules:
        lines += ["coverage: rules no invariant or test constrains:",
                  *(f"  {name}" for name in t.unconstrained_rules)]
    if t.uncovered:
        lines += ["coverage: flows no invariant or test constrains:",
                  *(f"  - {line}" for line in _uncovered(t, schema, names))]
    if t.too_large:
        lines.append(f"  ({_too_large(t)})")
    return lines


def trace_markdown(audit: Audit, schema: Schema, names: Names = ()) -> list[str]:
    t = audit.trace
    if t is None:
        return []
    lines = ["", "### Traceability and coverage", "", f"{md_text(_summary(t))}.", "",
              "| interfering rule | outcome | clauses |", "|---|---|---|"]
    lines += [f"| {md_code(r.rule, cell=True)} | {md_code(r.action, cell=True)} | "
              f"{md_text(_clauses(audit, r)) or '❌ no clause (finding)'} |" for r in t.rules if r.interferes]
    if t.unconstrained_rules:
        lines += ["", "Rules no invariant or test constrains: " + ", ".join(md_code(n) for n in t.unconstrained_rules)]
    if t.uncovered:
        lines += ["", "Flows no invariant or test constrains:", "",
                  *md_fence([f"- {line}" for line in _uncovered(t, schema, names)])]
    if t.too_large:
        lines += ["", md_text(_too_large(t)) + "."]
    return lines


def trace_html(audit: Audit, schema: Schema, names: Names = ()) -> list[str]:
    t = audit.trace
    if t is None:
        return []
    rows = "".join(f"<tr><td><code>{escape(r.rule)}</code></td><td><code>{escape(r.action)}</code></td>"
                   f"<td>{escape(_clauses(audit, r)) or _NO_CLAUSE}</td></tr>" for r in t.rules if r.interferes)
    out = ['<section class="clause" id="traceability">', "<h2>Traceability and coverage</h2>",
            f"<p>{escape(_summary(t))}.</p>",
            f"<table><tr><th>interfering rule</th><th>outcome</th><th>clauses</th></tr>{rows}</table>"]
    if t.unconstrained_rules:
        out.append("<p>Rules no invariant or test constrains: "
                   + ", ".join(f"<code>{escape(n)}</code>" for n in t.unconstrained_rules) + "</p>")
    if t.uncovered:
        items = "".join(f'<li class="flow">{escape(line)}</li>' for line in _uncovered(t, schema, names))
        out.append(f"<p>Flows no invariant or test constrains:</p><ul>{items}</ul>")
    if t.too_large:
        out.append(f"<p>{escape(_too_large(t))}.</p>")
    return out + ["</section>"]


def trace_json(audit: Audit, schema: Schema, names: Names = ()) -> dict:
    t = audit.trace
    out: dict = {"limits": audit.terms.limits} if audit.terms.limits else {}
    if t is None:
        return out
    out["traceability"] = {
        "rules": [{"rule": r.rule, "location": r.location, "outcome": r.action, "interferes": r.interferes,
                   "clauses": list(r.clauses)} for r in t.rules],
        "findings": [r.rule for r in t.findings],
        "unconstrained_rules": list(t.unconstrained_rules),
        "unconstrained_flows": [box_text(schema, b, names) for b in t.uncovered],
        "unconstrained_flows_complete": t.uncovered_complete,
        "too_large": list(t.too_large),
    }
    return out
