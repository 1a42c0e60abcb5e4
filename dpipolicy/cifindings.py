"""`check`, `diff` and bad input as Findings and Cases (dpipolicy/findings.py), for the CI formats.

The words are the text reports' own (verifier/report.py, verifier/diffreport.py): a CI
annotation says what the terminal says. Findings point at the .dpi files: an invariant or
test at its declaration, with the rule that decided its counterexample as a related place;
a change of the diff at the rule that decides it in the new version.
"""
from __future__ import annotations

from pathlib import Path

from dpipolicy.dsl import inputfile
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.typed import Origin
from dpipolicy.findings import Case, Finding, Place
from dpipolicy.verifier.diff import Change, Decider, Diff
from dpipolicy.verifier.diffreport import StatusChange, change_details, grouped, partial_note
from dpipolicy.verifier.report import Names, TextReport, box_text
from dpipolicy.verifier.results import APPROXIMATE, FAILED, UNKNOWN, VIOLATED, Report, Result

CHANGES_SHOWN = 10          # regions written out in one diff finding; the JSON format has them all
_SUITES = {"invariant": "invariants", "test": "tests"}


def origin_place(origin: Origin | None) -> Place | None:
    """Where a rule is written: its whole declaration, or the `source` a rule table recorded."""
    if origin is None:
        return None
    if origin.span is not None:
        return Place.from_span(origin.span)
    return Place.from_location(origin.location_text or "")


def _start_of(path: str) -> Place:
    """A finding about a whole file (its translation, the diff of it) is shown at its start."""
    return Place(path, 1, 1)


def _rule_text(r: Result) -> str:
    return r.description or f"{r.kind} {r.name} {'holds' if r.kind == 'invariant' else 'passes'}"


def _result_lines(schema: Schema, names: Names, r: Result) -> list[str]:
    return TextReport(schema, False, names).details(r)


def _result_message(schema: Schema, names: Names, r: Result) -> str:
    """What the text report prints for the result: its status, then the counterexample and
    every violating region, or why the solver gave no answer."""
    return "\n".join([f"{r.kind} {r.name}: {r.status}"] + _result_lines(schema, names, r))


def _decided_by(r: Result | None, second: bool = False) -> tuple[Place, str] | None:
    """The rule deciding the counterexample (of an equal-treatment pair: its first flow, or
    with `second` its second flow), as a related place."""
    d = None if r is None else r.pair if second else r.counterexample
    place = None if d is None else origin_place(d.origin)
    what = ("second flow" if second else "first flow") if r is not None and r.pair is not None else "counterexample"
    return None if place is None else (place, f"rule {d.rule} decides the {what}: {d.action.text()}")


# ----- check --------------------------------------------------------------------------------
def check_findings(report: Report, schema: Schema, names: Names, policy: str) -> tuple[list[Finding], list[Case]]:
    """Each violated invariant or failed test an error, each unknown a warning, and an unproved
    translation a warning at the top of POLICY (the path given); every one of them a case."""
    findings, cases = [], []
    for r in report.results:
        place = Place.from_location(r.location)
        message = _result_message(schema, names, r)
        if r.status in (VIOLATED, FAILED, UNKNOWN, APPROXIMATE):
            related = tuple(d for d in (_decided_by(r), _decided_by(r, second=True)) if d is not None)
            findings.append(Finding(f"{r.kind}/{r.name}", _rule_text(r),
                                    "warning" if r.status in (UNKNOWN, APPROXIMATE) else "error", message, place,
                                    related))
        outcome = {VIOLATED: "failed", FAILED: "failed", UNKNOWN: "error", APPROXIMATE: "error"}.get(r.status, "passed")
        cases.append(Case(_SUITES[r.kind], r.name, outcome, message if outcome != "passed" else "", place))
    if report.validation is not None:
        proved = report.validation.status == "proved"
        text = f"translation validation: {report.validation.text()}"
        if not proved:
            findings.append(Finding("translation-validation", "the compiled table is proved equal to the policy",
                                    "warning", text, _start_of(policy), hint="raise --timeout"))
        cases.append(Case("validation", "compiled table equals the policy",
                          "passed" if proved else "error", "" if proved else text, _start_of(policy)))
    return findings, cases


# ----- diff ---------------------------------------------------------------------------------
def _decider_label(side: str, d: Decider) -> str:
    return f"{side}: {d.action.text()} by rule {d.rule}"


def _change_lines(diff: Diff, change: Change) -> list[str]:
    note = partial_note(change)
    part = f"  ({note})" if note else ""
    return [f"- {box_text(diff.schema, change.box, diff.names)}{part}"] + [
        f"  {line}" for line in change_details(diff, change)]


def _group_place(changes: list[Change]) -> Place | None:
    """The rule that decides the change in the new version, or in the old one where the new
    decider is the default (which is written nowhere)."""
    for side in ("new", "old"):
        for c in changes:
            place = origin_place(getattr(c, side).origin)
            if place is not None:
                return place
    return None


def _status_finding(diff: Diff, s: StatusChange) -> tuple[Finding, Case]:
    now_bad, now_unknown = s.after in (VIOLATED, FAILED), s.after == UNKNOWN
    lines = [f"{s.kind} {s.name}: {s.before} -> {s.after}"]
    if s.after_result is not None:
        lines += _result_lines(s.schema, diff.names, s.after_result)
    if s.before_result is not None and s.before in (VIOLATED, FAILED):
        lines += ["before:"] + [f"  {line}" for line in _result_lines(s.before_schema, diff.names, s.before_result)]
    message = "\n".join(lines)
    declared = None if s.after_result is None else Place.from_location(s.after_result.location)
    deciders = [d for d in (_decided_by(s.after_result), _decided_by(s.before_result)) if d is not None]
    place = deciders[0][0] if deciders else declared
    related = tuple(deciders[1:]) + (((declared, f"{s.kind} {s.name} is declared here"),) if declared else ())
    rule_text = _rule_text(s.after_result) if s.after_result is not None else f"{s.kind} {s.name}"
    level = "error" if now_bad else "warning" if now_unknown else "note"
    finding = Finding(f"{s.kind}/{s.name}", rule_text, level, message, place, related)
    outcome = "failed" if now_bad else "error" if now_unknown else "passed"
    return finding, Case("diff", f"{s.kind} {s.name}", outcome, message if outcome != "passed" else "", place)


def diff_findings(diff: Diff, statuses: list[StatusChange], results: list[Result], new: str,
                  fail_on: str) -> tuple[list[Finding], list[Case]]:
    """Each invariant or test whose status changed; each one still unknown in the new version
    (RESULTS, that version's results), as `check` shows it; each group of changed regions (an
    error when changes fail the run, FAIL_ON `change`, else a warning); each unsettled part of
    the diff (a warning at the top of NEW, the new version's path as given). Each is a case."""
    findings, cases = [], []
    for s in statuses:
        finding, case = _status_finding(diff, s)
        findings.append(finding)
        cases.append(case)
    changed = {(s.kind, s.name) for s in statuses}
    for r in results:
        if r.status == UNKNOWN and (r.kind, r.name) not in changed:
            message = _result_message(diff.schema, diff.names, r)
            place = Place.from_location(r.location)
            findings.append(Finding(f"{r.kind}/{r.name}", _rule_text(r), "warning", message, place))
            cases.append(Case("diff", f"{r.kind} {r.name}", "error", message, place))
    failing = fail_on == "change"
    for g in grouped(diff):
        lines = [f"{g.what}: {g.how}"]
        for change in g.changes[:CHANGES_SHOWN]:
            lines += _change_lines(diff, change)
        if len(g.changes) > CHANGES_SHOWN:
            lines.append(f"... {len(g.changes) - CHANGES_SHOWN} more regions (see --format json)")
        message = "\n".join(lines)
        place = _group_place(g.changes)
        related = {}
        for c in g.changes:
            for side, d in (("old", c.old), ("new", c.new)):
                where = origin_place(d.origin)
                if where is not None and where != place:
                    related.setdefault((where, _decider_label(side, d)), None)
        findings.append(Finding("diff/changed-outcome", "flows whose outcome differs between the two versions",
                                "error" if failing else "warning", message, place, tuple(related)))
        cases.append(Case("diff", f"{g.what}: {g.how}", "failed" if failing else "passed",
                          message if failing else "", place))
    for part in diff.unknown:
        text = f"not settled: {part}"
        findings.append(Finding("diff/unknown", "parts of the diff the solver did not settle", "warning", text,
                                _start_of(new), hint="raise --timeout"))
        cases.append(Case("diff", text, "error", text, _start_of(new)))
    if diff.equivalent:
        cases.append(Case("diff", "no semantic change", "passed"))
    return findings, cases


# ----- bad input ----------------------------------------------------------------------------
def diagnostic_findings(error: DiagnosticError) -> tuple[list[Finding], list[Case]]:
    """Each diagnostic at its place (a file without a position at its start), and as an error
    case, so a CI report of bad input is not an empty, green one."""
    findings, cases = [], []
    for d in error.diagnostics:
        data = d.to_json()
        if d.span is not None:
            place = Place.from_span(d.span)
        elif data["line"] is not None:
            place = Place(data["file"], data["line"], data["column"])
        else:
            place = _start_of(data["file"]) if inputfile.problem(Path(data["file"])) is None else None
        message = "\n".join([d.message] + ([d.label] if d.label else []) + [f"note: {n}" for n in d.notes])
        findings.append(Finding(d.code, f"bad input {d.code} (see docs/errors.md)",
                                "error" if d.severity == "error" else "note", message, place, hint=d.help))
        if d.severity == "error":
            cases.append(Case("input", f"{d.code} {d.location()}", "error", f"{d.message}\n{d.location()}", place))
    return findings, cases
