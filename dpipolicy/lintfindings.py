"""`lint` results as Findings and Cases (dpipolicy/findings.py), for the CI formats.

A finding keeps its code as the rule id and its level; its notes (the example flow, for one)
follow the message, and the places it names (covering rules, the other member of a set) are
related locations. Checks the solver left undecided are notes, and errors in JUnit.
"""
from __future__ import annotations

from dpipolicy.dsl.lintcodes import CODES, failing, place_text
from dpipolicy.dsl.source import Span
from dpipolicy.findings import Case, Finding, Place
from dpipolicy.verifier.lint import LintResult


def _place(span: Span | str | None) -> Place | None:
    """A span's place; a location text (a rule read from a rule set) is one only as file:line:col."""
    if span is None:
        return None
    return Place.from_span(span) if isinstance(span, Span) else Place.from_location(span)


def lint_findings(result: LintResult, strict: bool) -> tuple[list[Finding], list[Case]]:
    findings = [Finding(f.code, CODES[f.code].title, f.level, "\n".join((f.message,) + f.notes), _place(f.span or f.location_text),
                        tuple((p, label) for place, label in f.related if (p := _place(place)) is not None), f.hint)
                for f in result.findings]
    findings += [Finding(u.code, CODES[u.code].title, "note", f"{u.message}: {u.reason}", _place(u.span or u.location_text),
                         hint="raise --timeout (seconds per solver query)") for u in result.undecided]
    return findings, _cases(result, strict)


def _cases(result: LintResult, strict: bool) -> list[Case]:
    """One case per lint code: failed if a finding of it fails the run (errors; warnings too
    under --strict), error if a check of it was left undecided, passed otherwise."""
    cases = []
    for code, info in CODES.items():
        name = f"{code} {info.title}"
        failed = [f for f in result.findings if f.code == code and failing(f, strict)]
        undecided = [u for u in result.undecided if u.code == code]
        if failed:
            message = "\n".join(f"{place_text(f.span or f.location_text)}: {f.message}" for f in failed)
            cases.append(Case("lint", name, "failed", message, _place(failed[0].span or failed[0].location_text)))
        elif undecided:
            message = "\n".join(f"{place_text(u.span or u.location_text)}: {u.message} ({u.reason})"
                                for u in undecided)
            cases.append(Case("lint", name, "error", message, _place(undecided[0].span or undecided[0].location_text)))
        else:
            cases.append(Case("lint", name, "passed"))
    return cases
