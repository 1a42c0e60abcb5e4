"""Rendering an audit (verifier/audit.py): text for the terminal, Markdown for pull requests, one
self-contained HTML file for auditors (inline CSS, no scripts, nothing fetched), and JSON with
the schema of docs/audit.md. Each item's evidence is said in the words of the check reports
(verifier/report.py)."""
from __future__ import annotations

import json
from html import escape

from dpipolicy.auditsections import (upgrade_html, upgrade_json, upgrade_markdown, upgrade_text, waiver_clause_lines,
                                     waiver_headline, waivers_json)
from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.words import counted
from dpipolicy.traceformats import limits_lines, trace_html, trace_json, trace_markdown, trace_text
from dpipolicy.verifier.audit import Audit, ClauseVerdict
from dpipolicy.verifier.report import (Names, TextReport, box_text, decision_line, pair_box_text, report_json,
                                       shown_fields)
from dpipolicy.verifier.results import Decision, Result
from dpipolicy.verifier.witness import flow_text

FORMATS = ("text", "markdown", "html", "json")
SUFFIXES = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}
JSON_FORMAT = "dpipolicy-audit"
JSON_VERSION = 1


def render(fmt: str, audit: Audit, schema: Schema, names: Names = ()) -> str:
    return {"text": render_text, "markdown": render_markdown, "html": render_html,
            "json": lambda *a: json.dumps(render_json(*a), indent=2) + "\n"}[fmt](audit, schema, names)


def summary_line(audit: Audit) -> str:
    s = audit.summary()
    return (f"{counted(s['clauses'], 'clause')}: {s['holds']} held, {s['violated']} violated, "
            f"{s['unknown']} unknown" + (f", {s['waived']} waived" if "waived" in s else ""))


def _validation(audit: Audit) -> str:
    v = audit.report.validation
    return v.text() if v is not None else "not applicable (the input is a rule table)"


# ----- text and Markdown: the check report's own lines ----------------------------------------
def _item_lines(text: TextReport, r: Result) -> list[str]:
    return [f"{r.kind} {r.status}: {r.name}  {r.location}", *("    " + line for line in text.details(r))]


def render_text(audit: Audit, schema: Schema, names: Names = ()) -> str:
    text = TextReport(schema, False, names)
    lines = [f"audit of {audit.report.policy_name or 'the policy'} against {audit.terms.title} ({audit.terms.where})",
             f"summary: {summary_line(audit)}", f"translation validation: {_validation(audit)}",
             *limits_lines(audit, "text"), *upgrade_text(audit), *waiver_headline(audit)]
    for c in audit.clauses:
        lines += ["", f"clause {c.clause.id}: {c.verdict}", f'  "{c.clause.text.strip()}"',
                  f"  source: {c.clause.source}"]
        if c.reason:
            lines.append(f"  {c.reason}")
        lines += ["  " + line for line in waiver_clause_lines(audit, c.clause.id, text)]
        for r in c.items:
            lines += ["  " + line for line in _item_lines(text, r)]
    if audit.uncited:
        lines += ["", "not named by any clause:"]
        for r in audit.uncited:
            lines += ["  " + line for line in _item_lines(text, r)]
    lines += trace_text(audit, schema, names)
    return "\n".join(lines) + "\n"


_MARK = {"holds": "✅", "passed": "✅", "violated": "❌", "failed": "❌", "unknown": "❔", "approximate": "❔",
         "waived": "☑️"}


def render_markdown(audit: Audit, schema: Schema, names: Names = ()) -> str:
    text = TextReport(schema, False, names)
    lines = [f"## Audit: {audit.terms.title}", "",
             f"`{audit.report.policy_name or 'the policy'}` against `{audit.terms.where}`: **{summary_line(audit)}**.",
             f"Translation validation: {_validation(audit)}.", "", *limits_lines(audit, "markdown"),
             *upgrade_markdown(audit),
             *(["", "```", *waiver_headline(audit), "```"] if audit.waivers is not None else []), "",
             "| clause | verdict | invariants and tests |", "|---|---|---|"]
    for c in audit.clauses:
        items = ", ".join(f"{_MARK[r.status]} `{r.name}`" for r in c.items)
        lines.append(f"| `{c.clause.id}` | {_MARK[c.verdict]} {c.verdict} | {items} |")
    for c in audit.clauses:
        lines += ["", f"### {_MARK[c.verdict]} `{c.clause.id}`: {c.verdict}", "",
                  *("> " + line for line in c.clause.text.strip().splitlines()), "", f"Source: {c.clause.source}"]
        if c.reason:
            lines += ["", c.reason]
        waived = waiver_clause_lines(audit, c.clause.id, text)
        if waived:
            lines += ["", "```", *waived, "```"]
        if any(text.details(r) for r in c.items):
            lines += ["", "```", *(line for r in c.items for line in _item_lines(text, r)), "```"]
    if audit.uncited:
        lines += ["", "### Not named by any clause", "", "```",
                  *(line for r in audit.uncited for line in _item_lines(text, r)), "```"]
    lines += trace_markdown(audit, schema, names)
    return "\n".join(lines) + "\n"


# ----- HTML ------------------------------------------------------------------------------------
_CSS = """
body { font-family: Georgia, serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.summary { display: flex; gap: 1em; margin: 1em 0; }
.summary div { border: 1px solid #999; padding: 0.5em 1em; border-radius: 4px; }
.summary strong { font-size: 1.4em; display: block; }
section.clause { border-top: 2px solid #ccc; padding-top: 0.5em; margin-top: 1.5em; page-break-inside: avoid; }
blockquote { border-left: 4px solid #bbb; margin: 0.5em 0; padding: 0.2em 1em; font-style: italic; }
.verdict { font-family: sans-serif; font-weight: bold; padding: 0.1em 0.5em; border-radius: 3px; }
.holds, .passed { background: #dfd; color: #060; }
.violated, .failed { background: #fdd; color: #900; }
.unknown { background: #ffd; color: #750; }
.waived { background: #def; color: #035; }
code, .flow { font-family: monospace; font-size: 0.95em; }
dl { margin: 0.3em 0 0.3em 1em; } dt { font-weight: bold; margin-top: 0.4em; } dd { margin-left: 1.5em; }
table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; } }
"""


def _verdict_span(status: str) -> str:
    return f'<span class="verdict {escape(status)}">{escape(status)}</span>'


def _decision_html(label: str, d: Decision, schema: Schema) -> list[str]:
    out = [f"<dt>{escape(label)}</dt><dd class=\"flow\">{escape(flow_text(schema, d.flow))}</dd>",
           f"<dt>What the policy does with it</dt><dd>{escape(decision_line(d))}</dd>"]
    if d.because:
        out.append(f"<dt>The rule's stated reason</dt><dd>&ldquo;{escape(d.because)}&rdquo;</dd>")
    return out


def _evidence_html(r: Result, schema: Schema, names: Names) -> list[str]:
    out = ["<dl>"]
    if r.description:
        out.append(f"<dt>What it states</dt><dd>&ldquo;{escape(r.description)}&rdquo;</dd>")
    if r.pair is not None:
        out.append(f"<dt>Two flows that differ only in {escape(', '.join(shown_fields(r.across)))} "
                   "are treated differently</dt><dd></dd>")
        out += _decision_html("First flow", r.counterexample, schema) + _decision_html("Second flow", r.pair, schema)
        regions = [pair_box_text(schema, p, r.across, names) for p in r.pair_region]
        out += _region_html("Every violating pair", regions, r.region_complete)
    elif r.counterexample is not None:
        word = "A flow that breaks it" if r.kind == "invariant" else "A flow that fails it"
        out += _decision_html(word, r.counterexample, schema)
        regions = [f"{box_text(schema, box, names)} [decided by {rule}]" for box, rule in r.region]
        out += _region_html("Every flow that breaks it", regions, r.region_complete)
    elif r.witness is not None:
        out.append(f"<dt>A flow that shows it</dt><dd class=\"flow\">{escape(flow_text(schema, r.witness.flow))}"
                   f"</dd><dd>{escape(decision_line(r.witness))}</dd>")
    elif r.status in ("holds", "passed"):
        out.append("<dt>Evidence</dt><dd>proved for every flow by the solver and exact box algebra</dd>")
    if r.reason:
        out.append(f"<dt>{'Why unknown' if r.status == 'unknown' else 'Why'}</dt><dd>{escape(r.reason)}</dd>")
    return out + ["</dl>"]


def _region_html(label: str, regions: list[str], complete: bool) -> list[str]:
    more = "" if complete else " (the list is capped: more flows break it)"
    items = "".join(f"<li class=\"flow\">{escape(t)}</li>" for t in regions)
    return [f"<dt>{escape(label)}{escape(more)}</dt><dd><ul>{items}</ul></dd>"]


def _item_html(r: Result, schema: Schema, names: Names) -> list[str]:
    return [f"<h3>{escape(r.kind)} <code>{escape(r.name)}</code>: {_verdict_span(r.status)}</h3>",
            f"<p>Stated at <code>{escape(r.location)}</code></p>", *_evidence_html(r, schema, names)]


def _clause_html(c: ClauseVerdict, schema: Schema, names: Names, audit: Audit) -> list[str]:
    out = [f'<section class="clause" id="clause-{escape(c.clause.id)}">',
           f"<h2>Clause <code>{escape(c.clause.id)}</code>: {_verdict_span(c.verdict)}</h2>",
           f"<blockquote>{escape(c.clause.text.strip())}</blockquote>",
           f"<p>Source: {escape(c.clause.source)}</p>"]
    if c.reason:
        out.append(f"<p>{escape(c.reason)}</p>")
    waived = waiver_clause_lines(audit, c.clause.id, TextReport(schema, False, names))
    if waived:
        out.append(f'<pre class="waivers">{escape(chr(10).join(waived))}</pre>')
    for r in c.items:
        out += _item_html(r, schema, names)
    return out + ["</section>"]


def render_html(audit: Audit, schema: Schema, names: Names = ()) -> str:
    s = audit.summary()
    title = f"Audit: {audit.terms.title}"
    rows = "".join(f'<tr><td><a href="#clause-{escape(c.clause.id)}">{escape(c.clause.id)}</a></td>'
                   f"<td>{_verdict_span(c.verdict)}</td></tr>" for c in audit.clauses)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{escape(title)}</h1>",
           f"<p>Policy <code>{escape(audit.report.policy_name or 'the policy')}</code> against the terms in "
           f"<code>{escape(audit.terms.where)}</code>.</p>",
           '<div class="summary">',
           f"<div><strong>{s['holds']}</strong>held</div>",
           f"<div><strong>{s['violated']}</strong>violated</div>",
           f"<div><strong>{s['unknown']}</strong>unknown</div>",
           *([f"<div><strong>{s['waived']}</strong>waived</div>"] if "waived" in s else []),
           f"<div><strong>{s['clauses']}</strong>{'clause' if s['clauses'] == 1 else 'clauses'}</div>", "</div>",
           f"<p>Translation validation: {escape(_validation(audit))}.</p>", *limits_lines(audit, "html"),
           f"<table><tr><th>clause</th><th>verdict</th></tr>{rows}</table>", *upgrade_html(audit, _verdict_span),
           *([f'<pre class="waivers">{escape(chr(10).join(waiver_headline(audit)))}</pre>']
             if audit.waivers is not None else [])]
    for c in audit.clauses:
        out += _clause_html(c, schema, names, audit)
    if audit.uncited:
        out += ['<section class="clause">', "<h2>Invariants and tests no clause names</h2>"]
        for r in audit.uncited:
            out += _item_html(r, schema, names)
        out.append("</section>")
    out += trace_html(audit, schema, names)
    return "\n".join(out + ["</body>", "</html>"]) + "\n"


# ----- JSON --------------------------------------------------------------------------------------
def render_json(audit: Audit, schema: Schema, names: Names = ()) -> dict:
    """The audit as the JSON of docs/audit.md: each item is `check --format json`'s result, with
    the deciding rules' `because` added."""
    checked = report_json(schema, audit.report, names)
    results = {(r.kind, r.name): (r, data) for r, data in zip(audit.report.results, checked["results"])}

    def item(r: Result) -> dict:
        data = results[(r.kind, r.name)][1]
        for key, d in (("counterexample", r.counterexample), ("pair", r.pair), ("witness", r.witness)):
            if d is not None and d.because and key in data:
                data[key]["because"] = d.because
        return data

    return {
        "format": JSON_FORMAT, "version": JSON_VERSION, "title": audit.terms.title, "terms": audit.terms.where,
        "policy": audit.report.policy_name, "summary": audit.summary(),
        "translation_validation": checked["translation_validation"],
        "clauses": [{"id": c.clause.id, "text": c.clause.text, "source": c.clause.source,
                     "location": c.clause.location, "verdict": c.verdict,
                     **({"reason": c.reason} if c.reason else {}),
                     **waivers_json(audit, c.clause.id, schema, names),
                     "results": [item(r) for r in c.items]} for c in audit.clauses],
        "uncited": [item(r) for r in audit.uncited], **upgrade_json(audit), **waivers_json(audit),
        **trace_json(audit, schema, names),
    }
