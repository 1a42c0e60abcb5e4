"""Lint of a rule set exported from an enforcement point (docs/import.md, "lint"): its rules
judged on the table of one hook, with lint's own exact questions (lint.py).

The flattening (compiler/importers/chains.py) emits, for each rule that gives a verdict, the
boxes of the flows that reach it and that it matches, each under the rule's name. So:

- a rule that emits no box never decides a flow: every flow it matches is decided, or has left
  its chain, before it (L101, shadowed; L104 when it matches no packet at all);
- a rule that emits boxes is redundant (L102) when, without them, every flow gets the same
  outcome from the table below, and overlaps an earlier rule (L103) as in a policy.

A finding that speaks of flows an approximation may decide otherwise says so (it is then the
table's finding, which the kernel may not share), and the approximations are listed with it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from dpipolicy.compiler.boxes import intersect, subtract_all
from dpipolicy.compiler.importers.chains import Judged
from dpipolicy.compiler.table import Approximation, RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.lintcodes import LintFinding, Undecided, rule_place
from dpipolicy.dsl.loader import PlacedItem
from dpipolicy.dsl.words import counted

from .approximated import meeting
from .labels import without_profile
from .lint import NAMES_SHOWN, LintResult, _rule_findings, _SpecLint
from .properties import TableModel
from .report import approximation_names
from .solve import Limits

_VERDICTS = {"accept": "allow", "drop": "block", "reject": "reset"}


@dataclass(frozen=True)
class _Rule:
    """What lint reads of a rule: its name and place, and its action."""
    origin: typed.Origin
    action: typed.Action


def lint_imported(table: RuleTable, judged: tuple[Judged, ...], placed: list[PlacedItem], spec: typed.Policy,
                  limits: Limits, assumed: Approximation | None = None) -> LintResult:
    """Findings on the rules that give verdicts at the table's hook (each once, in the order
    met), and on the invariants and tests of `spec` (`placed`: their items). `assumed`: the
    guess behind the table's default, when the file does not give the chain's policy."""
    model = TableModel(table)
    runs: dict[str, list[int]] = {}
    for k, r in enumerate(table.rules):
        runs.setdefault(r.origin.name, []).append(k)
    met: dict[str, list[Judged]] = {}
    for j in judged:
        met.setdefault(j.rule.name, []).append(j)
    judged_rules, findings, undecided = [], [], []
    for name, places in met.items():
        rule = places[0].rule
        origin = typed.Origin(name, rule.span, rule.location)
        run = runs.get(name)
        if run is None:
            if rule.condition or rule.reach is None:        # a rule left out by an approximation: no finding
                findings.append(_never_decides(model, places[0]))
        elif run[-1] - run[0] + 1 != len(run):
            undecided.append(Undecided("L101", f"could not decide whether rule `{name}` is shadowed or redundant",
                                       rule.span, rule.span, f"it is inlined at {counted(len(places), 'place')} of "
                                       "the hook, and lint judges a rule's flows in one run of the table",
                                       rule.location))
        else:
            judged_rules.append(_Rule(origin, model.entries[run[0]][0]))
    found, open_questions, queries = _rule_findings(_Rules(judged_rules), model, limits)
    rewriting = {n for n, places in met.items() if places[0].rule.verdict.rewrites}
    found = [f for f in found if not (f.code == "L102" and _rewrite_at_stake(model, runs.get(_named(f, met)),
                                                                             rewriting))]
    findings = [_marked(table, f, met) for f in findings + found]
    if assumed is not None:
        findings = [_on_assumed_default(f, model, runs.get(_named(f, met)), assumed) if f.code == "L102" else f
                    for f in findings]
    checks = _SpecLint(model, placed, without_profile(spec), limits)
    checks.run()
    return LintResult(sorted(findings + checks.findings, key=_place),
                      sorted(undecided + open_questions + checks.undecided, key=_place), 0, table.schema, len(met),
                      queries + checks.queries, approximations=table.approximations)


@dataclass(frozen=True)
class _Rules:
    rules: list[_Rule]


def _never_decides(model: TableModel, judged: Judged) -> LintFinding:
    """L101 for a rule no flow reaches (with the earlier rules that take its flows), L104 for
    one that matches no packet."""
    rule = judged.rule
    if not rule.condition:
        return LintFinding("L104", f"rule `{rule.name}` matches no packet: its matches can never hold together",
                           rule.span, rule.span, label="no flow satisfies this", location_text=rule.location,
                           hint="look for a field given two values that exclude each other")
    takers: dict[str, typed.Origin] = {}
    for k in range(judged.before):
        _, name, earlier, _ = model.entries[k]
        if name not in takers and any(intersect(model.boxes[k], part) is not None for part in rule.condition):
            takers[name] = earlier
    shown = list(takers.items())[:NAMES_SHOWN]
    notes = (f"and {counted(len(takers) - NAMES_SHOWN, 'more rule')}",) if len(takers) > NAMES_SHOWN else ()
    return LintFinding(
        "L101", f"rule `{rule.name}` is shadowed: no flow it matches reaches it (earlier rules decide them, or "
        "they leave its chain before it)", rule.span, rule.span, label="never decides a flow",
        location_text=rule.location,
        hint="remove it, or move it above the rules that take its flows if it should decide them",
        notes=notes + (() if shown else ("its flows leave the chain before it (a return, or an accept that passes "
                                         "them on to the next chain of the hook)",)),
        related=tuple((rule_place(o), f"rule `{n}` decides some of its flows first") for n, o in shown
                      if o is not None))


def _named(finding: LintFinding, met: dict[str, list[Judged]]) -> str | None:
    """The rule a finding on rules is about (its message names it first)."""
    return next((n for n in met if finding.message.startswith(f"rule `{n}`")), None)


def _rewrite_at_stake(model: TableModel, run: list[int] | None, rewriting: set[str]) -> bool:
    """Whether an address rewrite (NAT) may hang on the rule of match rules `run`: it rewrites,
    or a later rule that meets its flows does (`rewriting`: the rules that rewrite). The
    table's outcome is the verdict alone (accept), so it cannot tell a rewrite from none:
    without such a rule every flow may get the same verdict and yet be translated otherwise,
    and L102 would call a rule that exempts flows from NAT, or does it, redundant."""
    if not run:
        return False
    names = [name for _, name, *_ in model.entries]
    if names[run[0]] in rewriting:
        return True
    boxes = [model.boxes[k] for k in run]
    return any(names[k] in rewriting and any(intersect(model.boxes[k], b) is not None for b in boxes)
               for k in range(run[-1] + 1, len(model.table.rules)))


def _on_assumed_default(finding: LintFinding, model: TableModel, run: list[int] | None,
                        assumed: Approximation) -> LintFinding:
    """An L102 whose rule (match rules `run`), once removed, hands flows to the default, which
    the file does not give: the finding holds for the policy assumed, not necessarily for the
    kernel's."""
    if not run:
        return finding
    later = model.boxes[run[-1] + 1:len(model.table.rules)]
    for k in run:
        box = model.boxes[k]
        rest, complete = subtract_all(box, [b for b in later if intersect(b, box) is not None], model.fields, 1)
        if rest or not complete:
            note = (f"approximate: without it, some of its flows fall to the default, and {assumed.what}; "
                    f"read as {assumed.instead} ({assumed.location})")
            return replace(finding, notes=finding.notes + (note,))
    return finding


def _marked(table: RuleTable, finding: LintFinding, met: dict[str, list[Judged]]) -> LintFinding:
    """The finding, saying so when the flows it speaks of meet an approximation."""
    name = _named(finding, met)
    if name is None or not table.approximations:
        return finding
    rule = met[name][0].rule
    spoken = list(rule.reach if rule.reach is not None else rule.condition)
    spoken += [r.box() for r in table.rules if r.origin.name == name]
    approximations = meeting(table, spoken)
    if not approximations:
        return finding
    note = (f"approximate: it speaks of flows the kernel may decide otherwise than the table, because of "
            f"{approximation_names(approximations)}")
    return replace(finding, notes=finding.notes + (note,))


def _place(finding) -> tuple:
    span = finding.span
    return (span is None, span.file.display_name if span else "", span.start if span else 0, finding.code)
