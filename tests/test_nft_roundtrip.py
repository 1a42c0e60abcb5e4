"""The round trip: a policy compiled by the nftables backend, loaded into a fresh namespace and
imported back from the kernel's `nft -j list ruleset` (nftruleset.py, under the script's engine
contract), flattened at the contract's hook, is proved equal to the compiled table by the diff
(kernel.kernel_equivalence without tags), on every flow a kernel sees. Random policies of the
kernel property test go through the same loop.

DPIPOLICY_IMPORT_EXAMPLES sets the number of random policies (default 100).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.compiler.importers.chains import flatten, schema_for
from dpipolicy.compiler.importers.nftruleset import read_nft_json
from dpipolicy.verifier.kernel import kernel_equivalence, kernel_listing
from dpipolicy.verifier.solve import Limits

from helpers import EXAMPLES
from test_properties import cases

EXAMPLES_N = int(os.environ.get("DPIPOLICY_IMPORT_EXAMPLES", "100"))


def compiled_of(path: Path):
    return TARGETS["nftables"].compile(api.load(path).table, Options(str(path), approximate=True))


def imported(compiled):
    """The compiled script as the kernel holds it, imported back: its flattened table."""
    catalogue = compiled.table.schema.catalogue
    ruleset = read_nft_json(kernel_listing(compiled), "kernel", compiled.contract, catalogue)
    table, approximations = flatten(ruleset, compiled.contract.base_chain, schema_for(ruleset, catalogue))
    assert approximations == ()
    return table


def proved(compiled) -> str:
    table = imported(compiled)
    check = kernel_equivalence(compiled.table, (table, (None,) * len(table.rules)), Limits())
    return check.status


POLICIES = sorted(EXAMPLES.glob("policy-*.dpi")) + sorted(p for p in (EXAMPLES.parent / "terms").glob("*.dpi")
                                                         if not p.name.endswith(".spec.dpi"))


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_compiled_policies_come_back_equal(path):
    assert proved(compiled_of(path)) == "proved"


@settings(max_examples=EXAMPLES_N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_policies_come_back_equal(case):
    policy_text, _ = case.texts()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.dpi"
        path.write_text(policy_text, encoding="utf-8")
        compiled = compiled_of(path)
        assert proved(compiled) == "proved", policy_text
