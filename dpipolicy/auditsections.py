"""The parts of an audit report beyond the clauses' own evidence, in each format of
auditformats.py: the engine upgrade (verifier/auditupgrade.py), clause by clause, and the
waivers (verifier/waivers.py)."""
from __future__ import annotations

from html import escape

from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.words import counted
from dpipolicy.verifier.audit import Audit
from dpipolicy.verifier.auditupgrade import changes
from dpipolicy.verifier.escaping import md_code, md_quote, md_text
from dpipolicy.verifier.report import Names, TextReport, box_text, pair_box_text, result_json
from dpipolicy.verifier.results import UNKNOWN, Result
from dpipolicy.verifier.waivers import ItemWaiver


def _words(audit: Audit) -> dict[str, str]:
    return {c.clause.id: c.clause.text.strip() for c in audit.clauses}


def _upgrade_headline(audit: Audit) -> str:
    up = audit.upgrade
    moved = changes(up, audit)
    broken = [c.clause for c in moved if c.broken]
    fixed = [c.clause for c in moved if c.fixed]
    return (f"{up.what} {up.old} -> {up.new}: breaks {counted(len(broken), 'clause')}"
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
    lines = ["", f"**{md_text(_upgrade_headline(audit))}**", "",
             f"| clause | under {md_code(up.old, cell=True)} | under {md_code(up.new, cell=True)} |", "|---|---|---|"]
    for c in changes(up, audit):
        note = " (broken by the upgrade)" if c.broken else " (fixed by the upgrade)" if c.fixed else ""
        lines.append(f"| {md_code(c.clause, cell=True)} | {c.before} | {c.after}{note} |")
    for c in changes(up, audit):
        if c.broken:
            lines += ["", f"The upgrade breaks {md_code(c.clause)}:", "", *md_quote(words[c.clause])]
    return lines


def upgrade_html(audit: Audit, verdict_span) -> list[str]:
    if audit.upgrade is None:
        return []
    up, words = audit.upgrade, _words(audit)
    rows = "".join(f'<tr><td><a href="#clause-{escape(c.clause)}">{escape(c.clause)}</a></td>'
                   f"<td>{verdict_span(c.before)}</td><td>{verdict_span(c.after)}"
                   f"{' broken by the upgrade' if c.broken else ' fixed by the upgrade' if c.fixed else ''}</td></tr>"
                   for c in changes(up, audit))
    out = ['<section class="upgrade">', f"<h2>{escape(up.what.capitalize())} {escape(up.old)} &rarr; {escape(up.new)}</h2>",
           f"<p>{escape(_upgrade_headline(audit))}.</p>",
           f"<table><tr><th>clause</th><th>under {escape(up.old)}</th><th>under {escape(up.new)}</th></tr>"
           f"{rows}</table>"]
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
    policies = {"old_policy": up.old_policy, "new_policy": up.new_policy} if up.old_policy is not None else {}
    return {"upgrade": {"old_profile": up.old_profile, "new_profile": up.new_profile, **policies,
                        "clauses": [{"id": c.clause, "before": c.before, "after": c.after} for c in moved],
                        "broken": [c.clause for c in moved if c.broken],
                        "fixed": [c.clause for c in moved if c.fixed]}}


# ----- waivers (verifier/waivers.py) ---------------------------------------------------------------
def _waiver_words(w) -> str:
    return f'{w.kind} {w.name}, owner {w.owner}, expires {w.expires.isoformat()}: "{w.reason}" ({w.location})'


def waiver_headline(audit: Audit) -> list[str]:
    """The waivers' findings, said at the top: an expired waiver, one that matches no violation,
    and one not known to match any."""
    rv = audit.waivers
    if rv is None:
        return []
    unsure = f", {len(rv.unsure)} not known to match one" if rv.unsure else ""
    lines = [f"waivers: {rv.where} (today is {rv.today.isoformat()}): {counted(len(rv.expired), 'expired waiver')}, "
             f"{len(rv.unmatched)} matching no violation{unsure}"]
    lines += [f"  EXPIRED on {w.expires.isoformat()}, no longer applies: waiver of {_waiver_words(w)}"
              for w in rv.expired]
    lines += [f"  MATCHES NO VIOLATION: waiver of {_waiver_words(w)}, accepting {w.accepts()}"
              for w in rv.unmatched]
    lines += [f"  NOT KNOWN TO MATCH A VIOLATION: waiver of {_waiver_words(w)}, accepting {w.accepts()}: "
              f"the solver gave no answer on {why}; raise --timeout" for w, why in rv.unsure]
    return lines


def _not_proved(item: ItemWaiver) -> str | None:
    """Why an item the waivers may accept is not waived, when no part of it is shown as left."""
    if item.why_not:
        return item.why_not
    if item.rest is not None and item.rest.status == UNKNOWN:
        return (f"not proved that the waivers accept every violation: the solver gave no answer: {item.rest.reason}; "
                "raise --timeout")
    return None


def waiver_clause_lines(audit: Audit, clause_id: str, text: TextReport) -> list[str]:
    """Under a clause: each waiver that accepts its violations, with who and why, and each
    violated item not (wholly) waived, with what no waiver accepts: its violating boxes and its
    counterexample, as `text` says them."""
    if audit.waivers is None:
        return []
    lines = []
    for item in audit.waivers.items.get(clause_id, ()):
        r = item.result
        for w in item.waivers:
            lines.append(f"{'waived' if item.waived else 'partly waived'}: {r.kind} {r.name} by the waiver of "
                         f"{_waiver_words(w)}")
            lines.append(f"    accepting {w.accepts(pairs=r.pair is not None)}")
        if item.waived and not r.region_complete:
            what = "pairs" if r.pair is not None else "flows"
            lines.append(f"    its list of violating {what} is capped: the waivers are proved to accept all of them, "
                         "not only those listed")
        why = _not_proved(item)
        if why:
            lines.append(f"not waived: {r.kind} {r.name}: {why}")
        elif item.rest is not None and not item.waivers:
            lines.append(f"not waived: {r.kind} {r.name}: no waiver is proved to accept any of its violations")
        elif item.waivers and not item.waived:
            rest = item.rest
            what = "pairs" if rest.pair is not None else "flows"
            total = len(rest.pair_region if rest.pair is not None else rest.region)
            more = "" if rest.region_complete else f"; list capped, more {what} violate"
            lines.append(f"not waived: {r.kind} {r.name}: these violating {what} are outside every waiver "
                         + (f"({counted(total, 'box', 'boxes')}{more}):" if total else
                            "(not written as boxes in the work allowed), for example:"))
            lines += ["  " + line for line in text.region_lines(rest)]
            lines += ["    " + line for line in text.decision_lines(rest)]
    return lines


def waivers_json(audit: Audit, clause_id: str | None = None, schema: Schema | None = None, names: Names = ()) -> dict:
    """`waivers` of a clause (with `clause_id`, said with `schema` and the policy's `names`) or of
    the report, in the JSON of docs/audit.md."""
    rv = audit.waivers
    if rv is None:
        return {}

    def one(w) -> dict:
        return {"kind": w.kind, "name": w.name, "rule": w.rule, "region": w.region, "owner": w.owner,
                "reason": w.reason, "expires": w.expires.isoformat(), "location": w.location}

    def not_waived(r: Result) -> list[dict]:
        if r.pair is not None:
            return [{"first_rule": p.first_rule, "second_rule": p.second_rule,
                     "text": pair_box_text(schema, p, r.across, names)} for p in r.pair_region]
        return [{"rule": rule, "text": box_text(schema, box, names)} for box, rule in r.region]
    if clause_id is not None:
        return {"waivers": [{"item": i.result.name, "kind": i.result.kind, "waived": i.waived,
                             "by": [one(w) for w in i.waivers],
                             **({"why_not": _not_proved(i)} if _not_proved(i) else {}),
                             "not_waived": [] if i.waived else not_waived(i.left),
                             **({"rest": result_json(schema, i.rest, names)} if i.rest is not None else {})}
                            for i in rv.items.get(clause_id, ())]}
    return {"waivers": {"file": rv.where, "today": rv.today.isoformat(), "expired": [one(w) for w in rv.expired],
                        "unmatched": [one(w) for w in rv.unmatched],
                        "unsure": [{"waiver": one(w), "reason": why} for w, why in rv.unsure]}}
