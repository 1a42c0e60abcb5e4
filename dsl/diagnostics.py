"""Diagnostics with stable codes, rendered like a modern compiler (code, location, caret, help).

Codes: E0xx syntax and files, E1xx names and types, E2xx compilation limits, E3xx rule tables,
captures and flows given on the command line, E4xx engine profiles, E5xx the nftables target
(docs/errors.md).
"""
from __future__ import annotations

import difflib
import errno
import re
from dataclasses import dataclass, field
from typing import Iterable

from .source import Span
from .words import counted

# `FILE:LINE:COL` and `FILE: JSON.PATH`, the two shapes of a location given as text (see errors.md).
_LINE_COL = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<column>\d+)$")
_JSON_PATH = re.compile(r"^(?P<file>[^:]*): (?P<path>.+)$")


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
        out = [f"{self.severity}[{self.code}]: {_one_line(self.message)}", f"{gutter}--> {self.location()}"]
        if self.span is not None:
            line, col = self.span.file.line_col(self.span.start)
            src = self.span.file.line_text(line).rstrip("\r")
            end_line, end_col = self.span.file.line_col(max(self.span.start, self.span.end - 1))
            width = (end_col - col + 1) if end_line == line else len(src) - col + 1
            src, col, width = _window(src, col, width)
            # Tabs are shown as four spaces, on the source line and under it alike.
            pad = len(src[:col - 1].replace("\t", "    "))
            width = len(src[col - 1:col - 1 + max(1, width)].replace("\t", "    "))
            out.append(f"{gutter} |")
            out.append(f"{line} | {src.replace(chr(9), '    ')}".rstrip())
            out.append(f"{gutter} | {' ' * pad}{'^' * max(1, width)} {self.label}".rstrip())
        for note in self.notes:
            out.append(f"{gutter} = note: {_one_line(note)}")
        if self.help:
            out.append(f"{gutter} = help: {_one_line(self.help)}")
        return "\n".join(out)

    def to_json(self) -> dict:
        """The diagnostic for programs: the location split into file, line and column (null where
        the input has none), and `path` for a place in a JSON rule table."""
        data = {"code": self.code, "severity": self.severity, "message": self.message,
                "location": self.location(), "file": self.location(), "line": None, "column": None, "path": None}
        if self.span is not None:
            data.update(file=self.span.file.display_name, line=self.span.line, column=self.span.column)
        elif (m := _LINE_COL.match(self.location())) is not None:
            data.update(file=m["file"], line=int(m["line"]), column=int(m["column"]))
        elif (m := _JSON_PATH.match(self.location())) is not None:
            data.update(file=m["file"], path=m["path"])
        if self.label:
            data["label"] = self.label
        data["notes"] = list(self.notes)
        data["help"] = self.help
        return data


class DiagnosticError(Exception):
    """Bad input: carries every diagnostic found, so all errors are reported at once."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    def __reduce__(self):       # rebuilt from the diagnostics when it crosses from a worker process
        return DiagnosticError, (self.diagnostics,)

    def summary(self) -> str:
        """The last line: the errors counted once each (a `note` such as E003 is not an error)."""
        errors = sum(d.severity == "error" for d in self.diagnostics)
        more = ", and more may follow in a file not read to the end" if any(
            d.severity == "note" for d in self.diagnostics) else ""
        return f"{counted(errors, 'error')}{more}; nothing was checked"

    def to_json(self) -> dict:
        return {"status": "bad input", "errors": sum(d.severity == "error" for d in self.diagnostics),
                "summary": self.summary(), "diagnostics": [d.to_json() for d in self.diagnostics]}


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


SHOWN_LINE = 200        # characters of a source line shown under a diagnostic; a longer line is cut around the caret


def _one_line(text: str) -> str:
    """A message on one line: a value quoted from the input may hold line breaks, which would
    split the report's header from its `-->` location."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _window(src: str, col: int, width: int) -> tuple[str, int, int]:
    """The part of a long line around columns col..col+width-1 (a minified or generated file can
    put megabytes on one line), marked `...` where cut; the column and width within it."""
    if len(src) <= SHOWN_LINE:
        return src, col, width
    width = min(width, SHOWN_LINE // 2)
    start = max(0, min(col - 1 - SHOWN_LINE // 4, len(src) - SHOWN_LINE))
    end = start + SHOWN_LINE
    shown = ("..." if start else "") + src[start:end] + ("..." if end < len(src) else "")
    return shown, col - start + (3 if start else 0), width


def cannot_read(code: str, what: str, name: str, exc: OSError, help: str) -> Diagnostic:
    """`cannot read the WHAT `NAME`: REASON`, in the same words for every file a command is given."""
    reason = {errno.ENOENT: "there is no such file", errno.EISDIR: "it is a folder, not a file",
              errno.EACCES: "permission denied"}.get(exc.errno, (exc.strerror or str(exc)).lower())
    return Diagnostic(code, f"cannot read the {what} `{name}`: {reason}", None, location_text=name, help=help)


def byte_position(raw: bytes, offset: int) -> str:
    """`LINE:COL` of a byte in a file that could not be decoded (the column counts bytes)."""
    newline = b"\n"
    return f"{raw.count(newline, 0, offset) + 1}:{offset - raw.rfind(newline, 0, offset)}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None
