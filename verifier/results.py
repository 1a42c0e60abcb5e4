"""Results of invariants and tests, as data the reports render."""
from __future__ import annotations

from dataclasses import dataclass, field

from dpipolicy.compiler.table import Approximation
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.typed import Action, Origin

from .validate import Validation

HOLDS, VIOLATED, UNKNOWN = "holds", "violated", "unknown"
PASSED, FAILED = "passed", "failed"
# On a table read with --approximate: the table's answer, which the kernel's may not be (approximated.py).
APPROXIMATE = "approximate"


@dataclass(frozen=True)
class Decision:
    """A concrete flow and what the table does with it."""
    flow: dict[str, int]
    action: Action
    rule: str                      # deciding rule's name, or "default"
    origin: Origin | None          # None for the default
    because: str | None = None


@dataclass(frozen=True)
class PairBox:
    """Violating pairs of an equal-treatment invariant: every two flows with the same `shared`
    values (the fields outside `across`), the first with `first`'s values of the fields across
    which treatment must not change, decided by `first_rule`, the second with `second`'s,
    decided by `second_rule`."""
    shared: dict[str, IntervalSet]
    first: dict[str, IntervalSet]
    second: dict[str, IntervalSet]
    first_rule: str
    second_rule: str


@dataclass(frozen=True)
class Result:
    kind: str                      # "invariant" or "test"
    name: str
    description: str | None
    status: str                    # holds/violated/unknown, or passed/failed/unknown
    location: str
    counterexample: Decision | None = None    # violation, or failing completion of a test
    witness: Decision | None = None           # `exists` that holds
    region: tuple[dict[str, IntervalSet], ...] = ()
    region_complete: bool = True   # False when the list of boxes was capped
    reason: str | None = None      # why unknown, or why an `exists` is violated
    queries: int = 0               # solver calls made
    # An equal-treatment invariant (`require same ... across ...`) that is violated: the second
    # flow of the pair (`counterexample` is the first), the fields that may differ, and every
    # violating pair as pair boxes (`region_complete` says whether the list is).
    pair: Decision | None = None
    across: tuple[str, ...] = ()
    pair_region: tuple[PairBox, ...] = ()
    # An imported rule set read with --approximate: the approximations whose flows the result
    # speaks of, and for an APPROXIMATE result what the table says (holds, violated, ...).
    approximations: tuple[Approximation, ...] = ()
    table_status: str | None = None


@dataclass
class Report:
    policy_name: str | None
    results: list[Result] = field(default_factory=list)
    validation: "Validation | None" = None   # None: the input was a rule table
    approximations: tuple[Approximation, ...] = ()   # an imported table's, read with --approximate

    def summary(self) -> dict[str, int]:
        inv = [r for r in self.results if r.kind == "invariant"]
        tests = [r for r in self.results if r.kind == "test"]
        return {
            "invariants": len(inv),
            "holds": sum(r.status == HOLDS for r in inv),
            "violated": sum(r.status == VIOLATED for r in inv),
            "unknown": sum(r.status == UNKNOWN for r in self.results),
            "tests": len(tests),
            "passed": sum(r.status == PASSED for r in tests),
            "failed": sum(r.status == FAILED for r in tests),
            **({"approximate": approximate} if (approximate := sum(r.status == APPROXIMATE for r in self.results))
               else {}),
        }

    def exit_code(self) -> int:
        """1 for a violation or failure; 3 when something is unknown or approximate (or the
        translation is not proved); else 0."""
        s = self.summary()
        if s["violated"] or s["failed"]:
            return 1
        validated = self.validation is None or self.validation.status == "proved"
        return 3 if s["unknown"] or s.get("approximate") or not validated else 0
