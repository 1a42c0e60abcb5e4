"""The kernel check: load a compiled nftables script into a fresh network namespace, read the
kernel's own copy back, and prove it gives every flow the kernel can see the outcome the
table gives it.

The comparison is the semantic diff of the two tables, each behind the same first rules that
take the flows no packet carries (contract.unseen_flows): with those decided alike on both
sides, the diff finds exactly the seen flows whose outcomes differ.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace

from dpipolicy.compiler.backends import Compiled
from dpipolicy.compiler.backends.contract import unseen_flows
from dpipolicy.compiler.backends.nftables import batches
from dpipolicy.compiler.boxes import contains, merge, subtract_all
from dpipolicy.compiler.importers.nftjson import read_kernel_rules
from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl.words import counted

from .diff import diff_tables
from dpipolicy.compiler.netns import NamespaceError, nft_failure, run_in_namespace, unprivileged
from .solve import Limits
from .validate import MistranslationError
from .witness import flow_text

LOAD_TIMEOUT_S = 1800       # a 10k-rule script takes minutes in the kernel (docs/performance.md)


class KernelMismatch(MistranslationError):
    """The kernel's copy differs from the compiled table: a dpipolicy bug, shown with a flow."""


@dataclass(frozen=True)
class KernelCheck:
    status: str                 # "proved" or "unknown"
    rules: int                  # match rules of the compiled table
    kernel_rules: int           # rules read back from the kernel
    reason: str | None = None

    def text(self) -> str:
        if self.status == "proved":
            return (f"the kernel's copy ({counted(self.kernel_rules, 'kernel rule')}) proved equal to the "
                    f"compiled table ({counted(self.rules, 'match rule')}) on every flow a kernel sees")
        return f"the kernel's copy was not proved equal to the compiled table: {self.reason}"


def load_scripts(compiled: Compiled) -> list[str]:
    """The `nft -f` runs that load the script here: one as root, as it is deployed; in a user
    namespace the batches its small netlink buffer can take (nftables.batches)."""
    return batches(compiled.text, compiled.contract) if unprivileged() else [compiled.text]


def kernel_copy(compiled: Compiled) -> tuple[RuleTable, tuple]:
    """Load the script with `nft -f` in a fresh namespace and read the kernel's JSON back as a
    rule table under the script's contract, with each rule's tag (nftjson.read_kernel_rules).
    Times are read in UTC both ways (`meta hour`)."""
    listing = kernel_listing(compiled, f"table inet {compiled.contract.table}")
    return read_kernel_rules(listing, compiled.contract, compiled.table.schema)


def kernel_listing(compiled: Compiled, what: str = "ruleset") -> dict:
    """The kernel's JSON (`nft -j list WHAT`) of the script loaded in a fresh namespace."""
    scripts = load_scripts(compiled)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k, script in enumerate(scripts):
            paths.append(os.path.join(folder, f"part{k}.nft"))
            with open(paths[-1], "w", encoding="utf-8") as out:
                out.write(script)
        load = 'for f in "$@"; do nft -f "$f" || exit 1; done'
        try:
            done = run_in_namespace(["sh", "-c", f'{load} && nft -j list {what}', "sh", *paths],
                                    timeout=LOAD_TIMEOUT_S, env={**os.environ, "TZ": "UTC"})
        except NamespaceError as exc:
            raise KernelMismatch(f"the kernel check could not run: {exc}") from None
    if done.returncode != 0:
        raise KernelMismatch("the kernel refused the compiled script: "
                             + nft_failure(done.stderr.decode(errors="replace").strip()[:2000]))
    return json.loads(done.stdout)


def kernel_equivalence(table: RuleTable, kernel: tuple[RuleTable, tuple], limits: Limits) -> KernelCheck:
    """Prove the kernel's table (with its rules' tags) equal to `table` on the flows a kernel
    sees; a difference raises KernelMismatch with a flow. When the tags group the kernel's
    rules as the table's, in order, the proof is per group, by box algebra (`_by_groups`);
    otherwise, or when that cannot settle it, it is the diff of the two tables."""
    rules, tags = kernel
    if _by_groups(table, rules, tags):
        return KernelCheck("proved", len(table.rules), len(rules.rules))
    # both as packet filters: the diff takes the flows no packet carries out (diff.diff_tables)
    diff = diff_tables(replace(table, packet_filter=True), replace(rules, packet_filter=True), limits)
    if diff.changes:
        change = diff.changes[0]
        raise KernelMismatch(
            f"the kernel's copy differs from the compiled table on {counted(len(diff.changes), 'region')}, "
            f"for example {flow_text(table.schema, change.witness)}: the table gives {change.old.action.text()} "
            f"by {_words(change.old)}, the kernel {change.new.action.text()} by {_words(change.new)}")
    if diff.unknown:
        return KernelCheck("unknown", len(table.rules), len(rules.rules), "; ".join(diff.unknown[:3]))
    return KernelCheck("proved", len(table.rules), len(rules.rules))




def _by_groups(table: RuleTable, kernel: RuleTable, tags: tuple) -> bool:
    """True when the kernel's rules fall, in order, into one run per match rule (then the
    default's), each run with the rule's action and, on the flows a kernel sees, holding the
    very flows of the rule's box. Then the first run holding a flow is that of the first match
    rule holding it, so both give every seen flow one outcome. False: not shown this way."""
    fields = {f.name: f for f in table.schema.flow_fields}
    unseen = list(unseen_flows(table.schema))
    runs: dict = {}
    order = []
    for rule, tag in zip(kernel.rules, tags):
        if tag not in runs:
            order.append(tag)
            runs[tag] = []
        elif order[-1] != tag:
            return False                      # a run broken by another rule's
        runs[tag].append(rule)
    wanted = [r.index for r in table.rules]
    if [t for t in order if t != "default"] != [i for i in wanted if i in runs] or \
            any(t == "default" for t in order[:-1]):
        return False
    if kernel.default != table.default or any(r.action != table.default for r in runs.get("default", ())):
        return False
    for rule in table.rules:
        box, run = rule.box(), runs.get(rule.index, [])
        if any(k.action != rule.action for k in run):
            return False
        held = [k.box() for k in run]
        # merged first: the run of a rule is its box cut by protocol, family and direction, which
        # merging mostly fuses back, so the subtraction has few boxes to take away
        if not _empty(box, merge(held, fields) + unseen, fields):
            return False                      # a flow of the rule no kernel rule of its run holds
        if not all(contains(box, k) or _empty(k, [box] + unseen, fields) for k in held):
            return False                      # a kernel rule holding a flow outside the rule
    return True


def _empty(box, others, fields) -> bool:
    """box minus the boxes `others` is empty (False also when the subtraction was cut short)."""
    pieces, complete = subtract_all(box, others, fields, cap=1)
    return complete and not pieces


def _words(decider) -> str:
    if decider.origin is None:
        return "the default"
    among = f", one of {len(decider.among)} rules with this outcome there" if decider.among else ""
    return f"rule `{decider.rule}` ({decider.origin.location()}{among})"
