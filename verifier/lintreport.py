"""Rendering lint results: text like the compiler's diagnostics, and JSON (docs/lint.md)."""
from __future__ import annotations

from dpipolicy.dsl.diagnostics import Diagnostic
from dpipolicy.dsl.lintcodes import CODES, LintFinding, Undecided, failing, place_text
from dpipolicy.dsl.source import Span
from dpipolicy.dsl.words import counted

from .lint import LintResult
from .report import approximation_json, approximations_text, flow_json
from .witness import flow_text

LEVELS = ("error", "warning", "note")


def status(result: LintResult, strict: bool) -> str:
    """failed (a failing finding), unknown (some check undecided, nothing failing) or passed."""
    if any(failing(f, strict) for f in result.findings):
        return "failed"
    return "unknown" if result.undecided else "passed"


def _diagnostic(f: LintFinding) -> Diagnostic:
    notes = f.notes + tuple(f"{label}: {place_text(place)}" for place, label in f.related)
    return Diagnostic(f.code, f.message, f.span, f.label, f.hint, notes, severity=f.level,
                      location_text=f.location_text)


def _undecided_diagnostic(u: Undecided) -> Diagnostic:
    return Diagnostic(u.code, u.message, u.span, "undecided", "raise --timeout (seconds per solver query)",
                      (u.reason,), severity="unknown", location_text=u.location_text)


def summary(result: LintResult, strict: bool) -> dict[str, int]:
    counts = {level: sum(f.level == level for f in result.findings) for level in LEVELS}
    return {"errors": counts["error"], "warnings": counts["warning"], "notes": counts["note"],
            "failing": sum(failing(f, strict) for f in result.findings), "undecided": len(result.undecided),
            "silenced": result.silenced, "rules": result.rules, "queries": result.queries}


def render_text(result: LintResult, strict: bool) -> str:
    blocks = [_diagnostic(f).render() for f in result.findings]
    blocks += [_undecided_diagnostic(u).render() for u in result.undecided]
    s = summary(result, strict)
    line = (f"lint: {counted(s['errors'], 'error')}, {counted(s['warnings'], 'warning')}, "
            f"{counted(s['notes'], 'note')}, {s['undecided']} undecided")
    if s["silenced"]:
        line += f" ({s['silenced']} silenced by comments)"
    line += f"; {counted(s['rules'], 'rule')} checked"
    verdict = status(result, strict)
    if verdict == "failed":
        line += f"; failed{' (--strict: warnings fail)' if strict and s['warnings'] else ''}"
    elif verdict == "unknown":
        line += "; unknown: the solver gave no answer for some checks"
    approximated = approximations_text(result.approximations)
    return "\n\n".join(blocks + (["\n".join(approximated)] if approximated else []) + [line])


def _place_json(span: Span | str | None, location_text: str | None = None) -> dict:
    """A place as JSON; a rule read from a rule set has a location (a JSON path) and no line."""
    if not isinstance(span, Span):
        text = span if isinstance(span, str) else location_text
        return {"location": text, "file": None, "line": None, "column": None}
    return {"location": span.location(), "file": span.file.display_name, "line": span.line, "column": span.column}


def finding_json(result: LintResult, f: LintFinding, strict: bool) -> dict:
    data = {"code": f.code, "level": f.level, "title": CODES[f.code].title, "failing": failing(f, strict),
            "message": f.message, **_place_json(f.span, f.location_text), "label": f.label, "notes": list(f.notes),
            "help": f.hint, "related": [{"message": label, **_place_json(span)} for span, label in f.related]}
    if f.witness is not None:
        data["witness"] = {"flow": flow_json(result.schema, f.witness),
                           "flow_text": flow_text(result.schema, f.witness)}
    return data


def render_json(result: LintResult, strict: bool) -> dict:
    return {
        "status": status(result, strict),
        "strict": strict,
        "summary": summary(result, strict),
        "findings": [finding_json(result, f, strict) for f in result.findings],
        "undecided": [{"code": u.code, "message": u.message, **_place_json(u.span, u.location_text),
                       "reason": u.reason}
                      for u in result.undecided],
        **({"approximations": [approximation_json(a) for a in result.approximations]} if result.approximations
           else {}),
    }
