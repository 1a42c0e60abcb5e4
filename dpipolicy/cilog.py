"""Standard output and standard error as a CI log reads them: GitHub Actions runs any line of a
job's output that looks like a workflow command, so a name or string of the policy (a rule's
`because`, a path, a clause of a terms file) must never look like one. Each report's format
spells the two characters that would start one (verifier/escaping.py, inert_commands) in its
own inert way; the `github` format's own lines are the commands, with every value encoded."""
from __future__ import annotations

from typing import TextIO

from dpipolicy.verifier.escaping import character_reference, inert_commands, json_escape, zero_width

# The commands whose standard output is a report, and each format's spelling.
REPORTS = ("check", "diff", "lint", "audit", "explain", "probe", "replay")
_SPELLING = {"text": zero_width, "markdown": zero_width, "json": json_escape, "sarif": json_escape,
             "junit": character_reference, "html": character_reference}


class InertStream:
    """A text stream that writes through inert_commands, remembering across writes whether the
    next one starts a line. Everything else (isatty, flush) is the stream's own."""

    def __init__(self, stream: TextIO, spell):
        self.stream, self.spell, self.at_line_start = stream, spell, True

    def write(self, text: str) -> int:
        if text:
            self.stream.write(inert_commands(text, self.spell, self.at_line_start))
            self.at_line_start = text[-1] in "\r\n"
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def log_streams(command: str | None, fmt: str | None, stdout: TextIO, stderr: TextIO) -> tuple[TextIO, TextIO]:
    """STDOUT and STDERR for COMMAND writing format FMT (None: text): a report's standard output
    and every standard error, as inert streams. Other output (a rule table, `fmt`'s policy text,
    the `github` format's commands) is written as it is."""
    spell = _SPELLING.get(fmt or "text") if command in REPORTS else None
    return (InertStream(stdout, spell) if spell else stdout), InertStream(stderr, zero_width)
