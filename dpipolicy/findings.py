"""One neutral shape for what CI formats render, so `check`, `lint` and `diff` each convert
their results once and every format (SARIF, JUnit, GitHub annotations) reads the same data.

A Finding is something to point at in a file (a SARIF result, a GitHub annotation); a Case is
one verdict of a run (a JUnit test case). Paths are as the user gave them on the command line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LEVELS = ("error", "warning", "note")
OUTCOMES = ("passed", "failed", "error")     # error: the solver gave no answer

_LOCATION = re.compile(r"(?P<path>.*):(?P<line>\d+):(?P<column>\d+)", re.S)     # a path may hold a line break


@dataclass(frozen=True)
class Place:
    path: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    @classmethod
    def from_span(cls, span) -> "Place":
        """From a dsl.source.Span."""
        line, column = span.file.line_col(span.start)
        end_line, end_column = span.file.line_col(max(span.start, span.end - 1))
        return cls(span.file.display_name, line, column, end_line, end_column + 1)

    @classmethod
    def from_location(cls, text: str) -> "Place | None":
        """From "file:line:col" (the form results and origins print); None for anything else,
        such as the location of a rule read from a JSON table."""
        found = _LOCATION.fullmatch(text or "")
        if found is None:
            return None
        return cls(found["path"], int(found["line"]), int(found["column"]))


@dataclass(frozen=True)
class Finding:
    rule_id: str                 # stable: a lint code such as "L101", or "invariant/<name>"
    rule_text: str               # one line on what the rule is about
    level: str                   # one of LEVELS
    message: str
    place: Place | None
    related: tuple[tuple[Place, str], ...] = ()
    hint: str | None = None      # how to fix it, where known

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level {self.level!r} is not one of {LEVELS}")


@dataclass(frozen=True)
class Case:
    suite: str                   # "invariants", "tests", "lint", "diff"
    name: str
    outcome: str                 # one of OUTCOMES
    message: str = ""            # for a failure: what went wrong, with the counterexample
    place: Place | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")
