"""`lint` results as Findings and Cases (dpipolicy/findings.py), for the CI formats.

A finding keeps its code as the rule id and its level; its notes (the example flow, for one)
follow the message, and the places it names (covering rules, the other member of a set) are
related locations. Checks the solver left undecided are notes, and errors in JUnit.
"""
from __future__ import annotations

from dpipolicy.dsl.lintcodes import CODES, failing
from dpipolicy.dsl.source import Span
from dpipolicy.findings import Case, Finding, Place
from dpipolicy.verifier.lint import LintResult


def _place(span: Span | None) -> Place | None:
    return None if span is None else Place.from_span(span)


def lint_findings(result: LintResult, strict: bool) -> tuple[list[Finding], list[Case]]:
    findings = [Finding(f.code, CODES[f.code].title, f.level, "\n".join((f.message,) + f.notes), _place(f.span),
                        tuple((Place.from_span(span), label) for span, label in f.related), f.hint)
                for f in result.findings]
    findings += [Finding(u.code, CODES[u.code].title, "note", f"{u.message}: {u.reason}", _place(u.span),
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
            message = "\n".join(f"{f.span.location() if f.span else ''}: {f.message}" for f in failed)
            cases.append(Case("lint", name, "failed", message, _place(failed[0].span)))
        elif undecided:
            message = "\n".join(f"{u.span.location() if u.span else ''}: {u.message} ({u.reason})"
                                for u in undecided)
            cases.append(Case("lint", name, "error", message, _place(undecided[0].span)))
        else:
            cases.append(Case("lint", name, "passed"))
    return cases
