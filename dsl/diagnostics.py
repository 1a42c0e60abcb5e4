"""Diagnostics with stable codes, rendered like a modern compiler (code, location, caret, help).

Codes: E0xx syntax and files, E1xx names and types, E2xx compilation limits,
E3xx rule tables and flows given on the command line.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from .source import Span


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    label: str = ""
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: str = "error"
    location_text: str | None = None   # for inputs without a Span (JSON tables, --flow)

    def location(self) -> str:
        if self.span is not None:
            return self.span.location()
        return self.location_text or "<input>"

    def render(self) -> str:
        """The diagnostic as a compiler prints it; `=` lines align with the `|` of the source lines."""
        gutter = " " * (len(str(self.span.line)) if self.span is not None else 1)
        out = [f"{self.severity}[{self.code}]: {self.message}", f"{gutter}--> {self.location()}"]
        if self.span is not None:
            line, col = self.span.file.line_col(self.span.start)
            src = self.span.file.line_text(line).rstrip("\r")
            end_line, end_col = self.span.file.line_col(max(self.span.start, self.span.end - 1))
            width = (end_col - col + 1) if end_line == line else len(src) - col + 1
            # Tabs are shown as four spaces, on the source line and under it alike.
            pad = len(src[:col - 1].replace("\t", "    "))
            width = len(src[col - 1:col - 1 + max(1, width)].replace("\t", "    "))
            out.append(f"{gutter} |")
            out.append(f"{line} | {src.replace(chr(9), '    ')}".rstrip())
            out.append(f"{gutter} | {' ' * pad}{'^' * max(1, width)} {self.label}".rstrip())
        for note in self.notes:
            out.append(f"{gutter} = note: {note}")
        if self.help:
            out.append(f"{gutter} = help: {self.help}")
        return "\n".join(out)

    def to_json(self) -> dict:
        data = {"code": self.code, "severity": self.severity, "message": self.message,
                "location": self.location()}
        if self.help:
            data["help"] = self.help
        return data


class DiagnosticError(Exception):
    """Bad input: carries every diagnostic found, so all errors are reported at once."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


@dataclass
class DiagnosticSink:
    """Collects diagnostics, dropping exact repeats (a set used twice reports its bad member once)."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set = field(default_factory=set)

    def error(self, code: str, message: str, span: Span | None, label: str = "",
              help: str | None = None, notes: tuple[str, ...] = ()) -> None:
        self.add(Diagnostic(code, message, span, label, help, notes))

    def add(self, diagnostic: Diagnostic) -> None:
        span = diagnostic.span
        key = (diagnostic.code, diagnostic.message, None if span is None else (id(span.file), span.start, span.end))
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(diagnostic)

    def raise_if_any(self) -> None:
        if self.items:
            ordered = sorted(self.items, key=lambda d: (d.span is None,
                                                        d.span.file.display_name if d.span else "",
                                                        d.span.start if d.span else 0))
            raise DiagnosticError(ordered)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None
