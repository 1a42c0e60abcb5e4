"""Backends: one module per target, from a registry that says what each target is and does.

Each target turns a rule table into the text a real engine loads. A part of a rule that the
target cannot express exactly is an error at the rule, or, with `approximate`, the nearest
rule, listed in `Compiled.approximations`; `Compiled.table` is then the table the text really
means, the one a kernel check compares the engine's copy with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..table import RuleTable
from .contract import Approximation, Contract


@dataclass(frozen=True)
class Options:
    source: str                    # the policy file, named in the output's header
    table_name: str = "dpipolicy"
    approximate: bool = False


@dataclass(frozen=True)
class Compiled:
    text: str
    table: RuleTable                           # what `text` means (approximations applied)
    contract: Contract | None = None

    @property
    def approximations(self) -> tuple[Approximation, ...]:
        return self.contract.approximations if self.contract is not None else ()


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    compile: Callable[[RuleTable, Options], Compiled]
    loads_into_kernel: bool = False            # the kernel check applies (nftables)


def _table(table: RuleTable, options: Options) -> Compiled:
    from ..tablefile import table_text
    return Compiled(table_text(table), table)


def _nftables(table: RuleTable, options: Options) -> Compiled:
    from .nftables import compile_nftables
    return compile_nftables(table, options)


TARGETS = {
    "table": Target("table", "the versioned JSON rule table (check, diff and explain read it)", _table),
    "nftables": Target("nftables", "an `nft -f` script for Linux nftables (docs/enforcement.md)", _nftables,
                       loads_into_kernel=True),
}
