"""A rule set read from a real enforcement point as the rule table of one hook (docs/import.md,
"Hooks and --chain"): which hook (`--chain`, else the only one the rule set has), and its
flattening, exact or with the approximations --approximate accepts."""
from __future__ import annotations

from dpipolicy.compiler.table import Approximation, RuleTable
from dpipolicy.dsl.catalogue import Catalogue
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError, did_you_mean

from .chains import Judged, Ruleset, flatten_judged, schema_for

# The netfilter hooks a base chain can be on, in the order a packet meets them.
HOOKS = ("ingress", "prerouting", "input", "forward", "output", "postrouting", "egress")
# The IP hooks a packet passes in turn: to a local socket, routed through, sent from the host.
PATHS = (("prerouting", "input"), ("prerouting", "forward", "postrouting"), ("output", "postrouting"))


def chosen_hooks(ruleset: Ruleset, given: str | None) -> tuple[str, ...]:
    """The hooks the table describes: `given` (a hook's name, any case, or hooks a packet
    passes in turn, `prerouting,forward`), else the only hook the rule set has chains on;
    several hooks and none given is an error listing them."""
    hooks = ruleset.hooks()
    if given is not None:
        chosen = tuple(h.strip().lower() for h in given.split(","))
        for hook in chosen:
            if hook not in HOOKS:
                raise DiagnosticError([Diagnostic(
                    "E702", f"`{hook}` is not a hook", None, location_text="--chain",
                    help=did_you_mean(hook, HOOKS) or "hooks: " + ", ".join(HOOKS))])
        if len(chosen) > 1 and not any(_within(chosen, path) for path in PATHS):
            raise DiagnosticError([Diagnostic(
                "E702", f"no packet passes the hooks {', '.join(chosen)} in that order", None, location_text="--chain",
                help="give hooks a packet passes one after the other: " + "; ".join(",".join(p) for p in PATHS)
                     + ", or a part of one")])
        return chosen
    if len(hooks) == 1:
        return hooks
    ordered = [h for h in HOOKS if h in hooks]
    raise DiagnosticError([Diagnostic(
        "E702", f"{ruleset.source} has base chains on {len(ordered)} hooks: the table describes one", None,
        location_text=ruleset.source, notes=tuple(
            f"{hook}: " + ", ".join(c.name for c in ruleset.base_chains(hook)) for hook in ordered),
        help=f"pick the hook with --chain, one of: {', '.join(ordered)}, or hooks a packet passes in turn "
             "(prerouting,input)" if ordered else "this rule set has no base chain, so no packet passes through it")])


def _within(hooks: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether `hooks` are consecutive hooks of `path`."""
    return any(path[k:k + len(hooks)] == hooks for k in range(len(path)))


def rule_table(ruleset: Ruleset, catalogue: Catalogue, hook: str | None = None,
               approximate: bool = False) -> RuleTable:
    """The rule table deciding every flow as the rule set does at the hook chosen."""
    return judged_table(ruleset, catalogue, hook, approximate)[0]


def judged_table(ruleset: Ruleset, catalogue: Catalogue, hook: str | None = None,
                 approximate: bool = False) -> tuple[RuleTable, tuple[Judged, ...], Approximation | None]:
    """`rule_table`, with the rules that give verdicts at the hook and the assumed policy behind
    the table's default, if any (for lint)."""
    chosen = chosen_hooks(ruleset, hook)
    table, _, judged, assumed = flatten_judged(ruleset, chosen, schema_for(ruleset, catalogue), approximate,
                                               name=f"{ruleset.source}, {' then '.join(chosen)} "
                                                    f"hook{'s' if len(chosen) > 1 else ''}")
    return table, judged, assumed
