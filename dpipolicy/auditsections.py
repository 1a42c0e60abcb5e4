"""The parts of an audit report beyond the clauses' own evidence, in each format of
auditformats.py: the engine upgrade (verifier/auditupgrade.py), clause by clause."""
from __future__ import annotations

from html import escape

from dpipolicy.dsl.words import counted
from dpipolicy.verifier.audit import Audit
from dpipolicy.verifier.auditupgrade import changes


def _words(audit: Audit) -> dict[str, str]:
    return {c.clause.id: c.clause.text.strip() for c in audit.clauses}


def _upgrade_headline(audit: Audit) -> str:
    up = audit.upgrade
    moved = changes(up, audit)
    broken = [c.clause for c in moved if c.broken]
    fixed = [c.clause for c in moved if c.fixed]
    return (f"engine upgrade {up.old} -> {up.new}: breaks {counted(len(broken), 'clause')}"
            f"{': ' + ', '.join(broken) if broken else ''}; fixes {counted(len(fixed), 'clause')}"
            f"{': ' + ', '.join(fixed) if fixed else ''} (the evidence below is under {up.new})")


def upgrade_text(audit: Audit) -> list[str]:
    """Lines for the text report: the headline, each clause's verdict under both engines, and the
    words of each clause the upgrade breaks."""
    if audit.upgrade is None:
        return []
    up, words = audit.upgrade, _words(audit)
    lines = [_upgrade_headline(audit)]
    for c in changes(up, audit):
        lines.append(f"  clause {c.clause}: {c.before} under {up.old}, {c.after} under {up.new}"
                     f"{'  (broken by the upgrade)' if c.broken else '  (fixed by the upgrade)' if c.fixed else ''}")
    for c in changes(up, audit):
        if c.broken:
            lines.append(f'  the upgrade breaks clause {c.clause}: "{words[c.clause]}"')
    return lines


def upgrade_markdown(audit: Audit) -> list[str]:
    if audit.upgrade is None:
        return []
    up, words = audit.upgrade, _words(audit)
    lines = ["", f"**{_upgrade_headline(audit)}**", "", f"| clause | under `{up.old}` | under `{up.new}` |",
             "|---|---|---|"]
    for c in changes(up, audit):
        note = " (broken by the upgrade)" if c.broken else " (fixed by the upgrade)" if c.fixed else ""
        lines.append(f"| `{c.clause}` | {c.before} | {c.after}{note} |")
    for c in changes(up, audit):
        if c.broken:
            lines += ["", f"The upgrade breaks `{c.clause}`:", "", f"> {words[c.clause]}"]
    return lines


def upgrade_html(audit: Audit, verdict_span) -> list[str]:
    if audit.upgrade is None:
        return []
    up, words = audit.upgrade, _words(audit)
    rows = "".join(f'<tr><td><a href="#clause-{escape(c.clause)}">{escape(c.clause)}</a></td>'
                   f"<td>{verdict_span(c.before)}</td><td>{verdict_span(c.after)}"
                   f"{' broken by the upgrade' if c.broken else ' fixed by the upgrade' if c.fixed else ''}</td></tr>"
                   for c in changes(up, audit))
    out = ['<section class="upgrade">', f"<h2>Engine upgrade {escape(up.old)} &rarr; {escape(up.new)}</h2>",
           f"<p>{escape(_upgrade_headline(audit))}.</p>",
           f"<table><tr><th>clause</th><th>under {escape(up.old)}</th><th>under {escape(up.new)}</th></tr>{rows}</table>"]
    for c in changes(up, audit):
        if c.broken:
            out += [f"<p>The upgrade breaks clause <code>{escape(c.clause)}</code>:</p>",
                    f"<blockquote>{escape(words[c.clause])}</blockquote>"]
    return out + ["</section>"]


def upgrade_json(audit: Audit) -> dict:
    """`upgrade` of the JSON report (docs/audit.md), only with two engine profiles."""
    if audit.upgrade is None:
        return {}
    up = audit.upgrade
    moved = changes(up, audit)
    return {"upgrade": {"old_profile": up.old, "new_profile": up.new,
                        "clauses": [{"id": c.clause, "before": c.before, "after": c.after} for c in moved],
                        "broken": [c.clause for c in moved if c.broken],
                        "fixed": [c.clause for c in moved if c.fixed]}}
