"""The match-rule table: what a DPI engine or a firewall loads. First matching rule decides."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Schema
from dpipolicy.dsl.source import Span
from dpipolicy.dsl.typed import Action, Origin


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A conjunction of per-field value sets; fields not listed match anything."""
    index: int
    matches: tuple[tuple[str, IntervalSet], ...]
    action: Action
    origin: Origin
    because: str | None = None

    def box(self) -> dict[str, IntervalSet]:
        return dict(self.matches)


@dataclass(frozen=True)
class Approximation:
    """Something in an imported rule set the table does not hold exactly (read with
    --approximate): what the kernel does, what the table says instead, and the flows whose
    outcome may therefore differ from the kernel's (`region`, boxes; empty until flattened)."""
    rule: str
    location: str
    what: str                       # what the kernel does
    instead: str                    # what the table says instead
    region: tuple[Mapping[str, IntervalSet], ...] = ()

    def text(self) -> str:
        return f"{self.location}: rule `{self.rule}`: {self.what}; read as {self.instead}"

    def key(self) -> tuple[str, str, str, str]:
        """The approximation without its region: the same one met on several paths."""
        return self.rule, self.location, self.what, self.instead


@dataclass(frozen=True)
class RuleTable:
    policy_name: str | None
    policy_version: str | None
    schema: Schema
    rules: tuple[MatchRule, ...]
    default: Action
    named_sets: tuple[tuple[str, str, IntervalSet], ...] = ()   # (set, field, values): names for reports
    default_span: Span | None = None        # the policy's `default`, for errors a backend finds in it
    approximations: tuple[Approximation, ...] = ()  # an imported rule set read with --approximate

    def source_rule_names(self) -> tuple[str, ...]:
        """Names of the source rules, in order, each once."""
        return tuple(dict.fromkeys(r.origin.name for r in self.rules))
