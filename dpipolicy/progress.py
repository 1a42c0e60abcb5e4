"""A progress count for long checks, on a terminal only.

On a terminal the line "checked 7 of 16 invariants and tests" is rewritten in place (a carriage
return, no newline) and wiped when the work ends, so the report that follows starts on a clean
line. Anything that is not a terminal (a file, a pipe, a CI log) gets nothing at all.
"""
from __future__ import annotations

from typing import TextIO


class Progress:
    """A `progress(done, total)` callback that draws on `stream` if it is a terminal. Use it as a
    context manager: leaving the block wipes the line, also when an error ends the work."""

    def __init__(self, stream: TextIO, what: str = "invariants and tests"):
        self.stream = stream if hasattr(stream, "isatty") and stream.isatty() else None
        self.what = what
        self.width = 0          # characters on the line now

    def __call__(self, done: int, total: int) -> None:
        if self.stream is None:
            return
        text = f"checked {done} of {total} {self.what}"
        self._draw(text + " " * max(0, self.width - len(text)))
        self.width = len(text)

    def clear(self) -> None:
        if self.stream is not None and self.width:
            self._draw(" " * self.width + "\r")
            self.width = 0

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text)
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.clear()
