"""The one module that runs z3. Every query is bounded in time and memory; `unknown` is a result.

A query is SMT-LIB text (declarations and assertions). The answer is SAT with a model as field
integers, UNSAT, or UNKNOWN with z3's reason (timeout, `max. memory exceeded`, incompleteness).

Memory is bounded by the solver's `max_memory`, which z3 checks as it works (bit-blasting
included) against all it has allocated in the process, and answers unknown past it. Not by the
global `memory_max_size`: z3 reaching that one fails inside an allocation and can take the
process down (a segmentation fault, seen after two out-of-memory queries in one process).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import z3

from dpipolicy.dsl.schema import Field

DEFAULT_TIMEOUT_S = 30.0
MEMORY_LIMIT_MB = 4096      # z3's memory in one process (each --jobs worker has its own)


class Answer(enum.Enum):
    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    answer: Answer
    model: dict[str, int] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = MEMORY_LIMIT_MB


def _outcome(solver, fields: tuple[Field, ...]) -> Outcome:
    result = solver.check()
    if result == z3.unsat:
        return Outcome(Answer.UNSAT)
    if result == z3.unknown:
        return Outcome(Answer.UNKNOWN, reason=solver.reason_unknown() or "unknown")
    model = solver.model()
    values = {}
    for f in fields:
        value = model.eval(z3.BitVec(f.name, f.bits, solver.ctx), model_completion=True)
        values[f.name] = value.as_long()
    return Outcome(Answer.SAT, values)


class Session:
    """An incremental query: one base problem, then assertions added between checks (z3 keeps
    what it learnt). Each check has the same time limit as a single query. A session has a z3
    context of its own unless it is given its scope's, so its models depend only on the
    queries of that context, not on the rest of the process: witnesses and reports are the
    same from run to run, and with or without --jobs."""

    def __init__(self, smtlib: str, fields: tuple[Field, ...], limits: Limits, context: z3.Context | None = None):
        self.fields = fields
        self.solver = z3.SolverFor("QF_BV", ctx=context or z3.Context())
        self.solver.set("timeout", max(1, int(limits.timeout_s * 1000)))
        self.solver.set("max_memory", limits.memory_mb)
        self.solver.from_string(smtlib)

    def add(self, smtlib: str) -> None:
        self.solver.from_string(smtlib)

    def check(self) -> Outcome:
        return _outcome(self.solver, self.fields)


class Scope:
    """Queries that belong together (one search of an invariant, one translation validation)
    share one z3 context, made when first needed: a context takes about 7 ms to make, and the
    queries of a scope run in the same order in every run and every worker process."""

    def __init__(self) -> None:
        self._context: z3.Context | None = None

    def solve(self, smtlib: str, fields: tuple[Field, ...], limits: Limits) -> Outcome:
        """Decide the assertions in `smtlib`; a model gives a value for every field in `fields`."""
        if self._context is None:
            self._context = z3.Context()
        return Session(smtlib, fields, limits, self._context).check()
