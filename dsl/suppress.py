"""Suppression comments: `# dpipolicy: ignore L102` silences lint codes for one item.

A comment on a line of its own applies to the item (rule, set, enum, import, invariant,
test) directly below its run of comment lines (no blank line between); a comment at the end
of a line applies to the item that line belongs to. Two forms:

    # dpipolicy: ignore L102, L103
    # dpipolicy: ignore[L102, L103] any reason, in words

An unknown code is itself a finding (L001), so is a `dpipolicy:` comment that is not an
`ignore` (L002), and so is a code that silences nothing where it stands (L003).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Iterable

from .diagnostics import did_you_mean
from .lintcodes import CODES, UNSILENCEABLE, LintFinding, Undecided
from .source import SourceFile, Span

_MARK = "dpipolicy"
_DIRECTIVE = re.compile(r"#\s*dpipolicy\s*:\s*(?P<body>.*)$")
_BRACKETED = re.compile(r"ignore\s*\[(?P<codes>[^\]]*)\](?P<reason>.*)$")
_BARE = re.compile(r"ignore(?:\s+(?P<codes>.*))?$")
_CODE_SHAPE = re.compile(r"^[A-Za-z]\d{3}$")
_FORMS = "write `# dpipolicy: ignore L102` or `# dpipolicy: ignore[L102, L103] reason`"


@dataclass
class Directive:
    """One suppression comment: the codes it names, each with the span of its text."""
    file: SourceFile
    line: int
    span: Span
    codes: list[tuple[str, Span]]
    standalone: bool                        # on a comment line of its own
    used: set[str] = field(default_factory=set)


def _comment_start(line: str) -> int | None:
    """Where the comment of a line starts: the first `#` outside a string."""
    in_string = escaped = False
    for i, ch in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "#":
            return i
    return None


def read_directives(file: SourceFile) -> tuple[list[Directive], list[LintFinding]]:
    """The suppression comments of a file, and the findings about malformed ones."""
    directives: list[Directive] = []
    problems: list[LintFinding] = []
    if _MARK not in file.text:
        return directives, problems
    for number, start in enumerate(file.line_starts, start=1):
        text = file.line_text(number)
        if _MARK not in text:
            continue
        at = _comment_start(text)
        match = _DIRECTIVE.match(text, at) if at is not None else None
        if match is None:
            continue
        base = start + match.start("body")
        body = match["body"].rstrip()
        whole = Span(file, start + at, start + at + len(text[at:].rstrip()))
        form = _BRACKETED.match(body) or _BARE.match(body)
        if form is None or not (form["codes"] or "").strip():
            problems.append(LintFinding(
                "L002", "suppression comment not understood", whole, label="expected `ignore` and lint codes",
                hint=_FORMS))
            continue
        codes = []
        for word in re.finditer(r"[^\s,]+", form["codes"]):
            span = Span(file, base + form.start("codes") + word.start(), base + form.start("codes") + word.end())
            if word.group() in CODES:
                codes.append((word.group(), span))
                continue
            hint = did_you_mean(word.group().upper(), CODES) or "the lint codes are listed in docs/lint.md"
            if form.re is _BARE and not _CODE_SHAPE.match(word.group()):
                hint += "; to give a reason, write it after codes in brackets: `# dpipolicy: ignore[L102] reason`"
            problems.append(LintFinding("L001", f"unknown lint code `{word.group()}` in a suppression comment",
                                        span, label="not a lint code", hint=hint))
        directives.append(Directive(file, number, whole, codes, text[:at].strip() == ""))
    return directives, problems


class Suppressions:
    """The suppression comments of every file of a run, each attached to the item it applies to.

    `starts` are the spans of every item (their first lines are what matters). A comment on a
    line of its own applies to the item right below its run of comment lines; one at the end
    of a line applies to the item that line belongs to: the last item starting on or before it
    (so a comment that `dpipolicy fmt` moves to the last line of a rule still applies to it).
    """

    def __init__(self, files: Iterable[SourceFile], starts: Iterable[Span]):
        self.problems: list[LintFinding] = []
        self.directives: list[Directive] = []
        lines: dict[int, list[int]] = {}
        for span in starts:
            lines.setdefault(id(span.file), []).append(span.line)
        self.by_item: dict[tuple[int, int], list[Directive]] = {}
        for file in files:
            found, problems = read_directives(file)
            self.problems.extend(problems)
            self.directives.extend(found)
            first_lines = sorted(set(lines.get(id(file), ())))
            for d in found:
                owner = self._owner(file, d, first_lines)
                if owner is not None:
                    self.by_item.setdefault((id(file), owner), []).append(d)

    @staticmethod
    def _owner(file: SourceFile, d: Directive, first_lines: list[int]) -> int | None:
        """The first line of the item a directive applies to, or None."""
        if d.standalone:
            line = d.line + 1
            while line <= len(file.line_starts) and file.line_text(line).lstrip().startswith("#"):
                line += 1
            return line if first_lines and line in first_lines else None
        at = bisect.bisect_right(first_lines, d.line)
        return first_lines[at - 1] if at else None

    def at(self, item: Span) -> list[Directive]:
        """The directives that apply to the item starting at `item`."""
        return self.by_item.get((id(item.file), item.line), [])

    def silenced(self, finding: LintFinding) -> bool:
        """True if a directive at the finding's item names its code (and marks that code used)."""
        if finding.item is None or finding.code in UNSILENCEABLE:
            return False
        hit = False
        for d in self.at(finding.item):
            if any(code == finding.code for code, _ in d.codes):
                d.used.add(finding.code)
                hit = True
        return hit

    def keep_open(self, undecided: Undecided) -> None:
        """A check left undecided may yet find what a directive names: that code is not unused."""
        if undecided.item is not None:
            for d in self.at(undecided.item):
                d.used.add(undecided.code)

    def unused(self) -> list[LintFinding]:
        """L003 for every code of a directive that silenced nothing."""
        out = []
        for d in self.directives:
            for code, span in d.codes:
                if code in d.used:
                    continue
                why = ("findings about suppression comments cannot be silenced" if code in UNSILENCEABLE else
                       "a suppression applies to the item directly below its comment lines, or, at the end of a "
                       "line, to the item that line belongs to")
                out.append(LintFinding("L003", f"`ignore {code}` silences nothing here", span,
                                       label=f"no {code} finding for this item", notes=(why,),
                                       hint="remove it"))
        return out
