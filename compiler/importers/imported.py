"""A rule set read from a real enforcement point as the rule table of one hook (docs/import.md,
"Hooks and --chain"): which hook (`--chain`, else the only one the rule set has), and its
flattening, exact or with the approximations --approximate accepts."""
from __future__ import annotations

from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl.catalogue import Catalogue
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, did_you_mean

from .chains import Judged, Ruleset, flatten_judged, schema_for

# The netfilter hooks a base chain can be on, in the order a packet meets them.
HOOKS = ("ingress", "prerouting", "input", "forward", "output", "postrouting", "egress")


def chosen_hook(ruleset: Ruleset, given: str | None) -> str:
    """The hook the table describes: `given` (a hook's name, any case), else the only hook the
    rule set has chains on; several hooks and none given is an error listing them."""
    hooks = ruleset.hooks()
    if given is not None:
        hook = given.lower()
        if hook not in HOOKS:
            raise DiagnosticError([Diagnostic(
                "E702", f"`{given}` is not a hook", None, location_text="--chain",
                help=did_you_mean(hook, HOOKS) or "hooks: " + ", ".join(HOOKS))])
        return hook
    if len(hooks) == 1:
        return hooks[0]
    ordered = [h for h in HOOKS if h in hooks]
    raise DiagnosticError([Diagnostic(
        "E702", f"{ruleset.source} has base chains on {len(ordered)} hooks: the table describes one", None,
        location_text=ruleset.source, notes=tuple(
            f"{hook}: " + ", ".join(c.name for c in ruleset.base_chains(hook)) for hook in ordered),
        help=f"pick the hook with --chain, one of: {', '.join(ordered)}" if ordered else
        "this rule set has no base chain, so no packet passes through it")])


def rule_table(ruleset: Ruleset, catalogue: Catalogue, hook: str | None = None,
               approximate: bool = False) -> RuleTable:
    """The rule table deciding every flow as the rule set does at the hook chosen."""
    return judged_table(ruleset, catalogue, hook, approximate)[0]


def judged_table(ruleset: Ruleset, catalogue: Catalogue, hook: str | None = None,
                 approximate: bool = False) -> tuple[RuleTable, tuple[Judged, ...]]:
    """`rule_table`, with the rules that give verdicts at the hook (for lint)."""
    chosen = chosen_hook(ruleset, hook)
    table, _, judged = flatten_judged(ruleset, chosen, schema_for(ruleset, catalogue), approximate,
                                      name=f"{ruleset.source}, {chosen} hook")
    return table, judged
