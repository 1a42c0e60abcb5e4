"""The straightforward z3 encoding of a rule table, as a baseline for dpipolicy's own check
(benchmarks/run.py, docs/performance.md): every outcome variable is one if-then-else chain over
the rules in order (the first match decides), and each `require` invariant is one query,
"a flow of `when` whose outcome breaks `require`", over the whole table.

It shares only the SMT-LIB text of fields and conditions with dpipolicy (verifier/encode.py), so
the comparison is of the encodings, not of the text building. Equal-treatment (`same`) and
`exists` invariants are left out: they are not one query of this kind.
"""
from __future__ import annotations

import time

import z3

from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl import typed
from dpipolicy.verifier import encode

# The outcome variables a `require` may read, and their value for each rule (typed.outcome_values).
OUTCOMES = ("action", "rate", "logged", "rule", "target", "scope", "purpose", "charge", "priority")


def check_baseline(table: RuleTable, spec: typed.Policy, timeout_s: float) -> dict:
    """Each `require` invariant of `spec` decided on `table` the straightforward way: its status
    (holds, violated, unknown) and seconds, and the time to build and parse the encoding."""
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields + schema.outcome_fields}
    start = time.perf_counter()
    matches = [encode.box(fields, r.box()) for r in table.rules]
    values = [typed.outcome_values(schema, r.action, r.origin.name) for r in table.rules]
    default = typed.outcome_values(schema, table.default, "default")
    text = [encode.declarations(schema.flow_fields + schema.outcome_fields)]
    for name in (n for n in OUTCOMES if schema.field(n) is not None):
        bits = fields[name].bits
        chain = [f"(ite {match} (_ bv{value[name]} {bits}) " for match, value in zip(matches, values)]
        chain += [f"(_ bv{default[name]} {bits})", ")" * len(matches)]      # rule 1 outermost
        text.append(f"(assert (= {encode.var(fields[name])} {''.join(chain)}))")
    solver = z3.Solver()
    solver.set(timeout=int(timeout_s * 1000))
    solver.from_string("\n".join(text))
    build = time.perf_counter() - start
    results = {}
    for inv in spec.invariants:
        if inv.require is None:
            continue
        t = time.perf_counter()
        solver.push()
        solver.from_string(f"(assert {encode.condition(fields, inv.when)})\n"      # the solver knows the fields
                           f"(assert (not {encode.condition(fields, inv.require)}))")
        answer = solver.check()
        solver.pop()
        status = "violated" if answer == z3.sat else "holds" if answer == z3.unsat else "unknown"
        results[inv.name] = {"status": status, "seconds": time.perf_counter() - t}
    return {"build_seconds": build, "invariants": results,
            "seconds": build + sum(r["seconds"] for r in results.values())}
