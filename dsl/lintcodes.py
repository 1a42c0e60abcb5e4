"""The lint codes (docs/lint.md) and the finding every lint check produces.

A code never changes meaning once released: CI configurations and suppression comments name it.
Codes: L0xx suppression comments, L1xx rules, L2xx unused names, L3xx invariants and tests,
L4xx members of sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .source import Span


@dataclass(frozen=True)
class Code:
    level: str          # error, warning or note (`--strict` fails on warnings too)
    title: str          # one line: what the code is about


CODES: dict[str, Code] = {
    "L001": Code("warning", "unknown lint code in a suppression comment"),
    "L002": Code("warning", "suppression comment not understood"),
    "L003": Code("note", "suppression comment that silences nothing"),
    "L101": Code("error", "shadowed rule: earlier rules decide every flow it matches"),
    "L102": Code("warning", "redundant rule: removing it changes no outcome"),
    "L103": Code("note", "rule overlaps an earlier rule that has a different action"),
    "L104": Code("error", "rule whose condition no flow satisfies"),
    "L201": Code("warning", "unused set"),
    "L202": Code("warning", "unused enum"),
    "L203": Code("warning", "unused import"),
    "L301": Code("error", "vacuous invariant: no flow satisfies its `when`"),
    "L302": Code("error", "test whose `given` no flow satisfies"),
    "L401": Code("warning", "member listed twice in a set"),
    "L402": Code("warning", "overlapping members in a set"),
}
# Findings about suppression comments themselves cannot be silenced.
UNSILENCEABLE = frozenset({"L001", "L002", "L003"})


@dataclass(frozen=True)
class LintFinding:
    """One finding. `item` is the item (rule, set, invariant, ...) whose suppression comments
    apply to it; None for findings that cannot be silenced."""

    code: str
    message: str
    span: Span | None
    item: Span | None = None
    label: str = ""
    hint: str | None = None
    notes: tuple[str, ...] = ()
    # other places the finding names, each with a word: a span, or the location of a rule read
    # from a rule set or table (a JSON path), which has none
    related: tuple[tuple[Span | str, str], ...] = ()
    witness: Mapping[str, int] | None = None      # an example flow, as field integers
    location_text: str | None = None             # where it is, when it has no span (such a rule)

    @property
    def level(self) -> str:
        return CODES[self.code].level


@dataclass(frozen=True)
class Undecided:
    """A question the solver left open (time or memory limit): reported as unknown, never as
    "no finding"."""

    code: str           # the check that could not be completed
    message: str
    span: Span | None
    item: Span | None
    reason: str
    location_text: str | None = None


def place_text(place: Span | str | None) -> str:
    """A place a finding names, as file:line:col (a span) or as the location it was given."""
    return place.location() if isinstance(place, Span) else (place or "")


def rule_place(origin) -> Span | str | None:
    """Where a rule is (a typed.Origin): its span, or the location of a rule read from JSON."""
    return origin.span if origin.span is not None else origin.location_text


def failing(finding: LintFinding, strict: bool) -> bool:
    """Does this finding fail the run? Errors always; warnings under `--strict`."""
    return finding.level == "error" or (strict and finding.level == "warning")
