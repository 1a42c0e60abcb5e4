"""The kernel check: what `nft` really loaded, read back from the kernel, is proved equal to the
compiled table, and any difference is caught with a flow. Random policies go through the
whole loop: compile, load into a fresh namespace, read back, prove, both by runs of tagged
rules and by the diff.

helpers.examples sets the number of random policies (200 in CI; docs/reliability.md).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.verifier.kernel import KernelMismatch, kernel_copy, kernel_equivalence
from dpipolicy.compiler.netns import run_in_namespace
from dpipolicy.verifier.solve import Limits

from helpers import EXAMPLES, examples, run_cli
from test_properties import cases

EXAMPLES_N = examples(200)


def compiled_of(path: Path, approximate: bool = False):
    return TARGETS["nftables"].compile(api.load(path).table, Options(str(path), approximate=approximate))


def test_uk_mobile_kernel_copy_is_the_table():
    for name in ("policy-2011-08.dpi", "policy-2011-09.dpi"):
        compiled = compiled_of(EXAMPLES / name)
        check = kernel_equivalence(compiled.table, kernel_copy(compiled), Limits())
        assert check.status == "proved", check.text()


@pytest.mark.parametrize("before, after", [
    ("ct original proto-dst 25 ", "ct original proto-dst 26 "),                 # a port off by one
    ("counter reject with tcp reset", "counter drop"),                          # another verdict
    ("ct mark and 0x3ff == 0x1-0x3", "ct mark and 0x3ff == 0x1-0x2"),           # a label left out
    ("ct original ip saddr @plan_payg_v4", "ct original ip saddr @plan_monthly_v4"),
    ("limit rate over 16000 bytes/second", "limit rate over 16001 bytes/second"),
])
def test_a_kernel_that_differs_is_caught_with_a_flow(before, after):
    compiled = compiled_of(EXAMPLES / "policy-2011-09.dpi")
    assert before in compiled.text
    wrong = dataclasses.replace(compiled, text=compiled.text.replace(before, after, 1))
    with pytest.raises(KernelMismatch) as err:
        kernel_equivalence(compiled.table, kernel_copy(wrong), Limits())
    assert "for example" in str(err.value) and " -> " in str(err.value)


def test_a_missing_family_is_caught():
    compiled = compiled_of(EXAMPLES / "policy-2011-09.dpi")
    lines = compiled.text.splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "meta nfproto ipv6" in line and "#0" in line)
    wrong = dataclasses.replace(compiled, text="".join(lines[:cut] + lines[cut + 1:]))
    with pytest.raises(KernelMismatch, match=r"\[2001:db8::25\]|\["):
        kernel_equivalence(compiled.table, kernel_copy(wrong), Limits())


def test_compile_reports_the_kernel_check(tmp_path):
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--target", "nftables",
                           "-o", tmp_path / "p.nft", "--validate=required")
    assert code == 0, err
    assert "kernel check: the kernel's copy (14 kernel rules) proved equal to the compiled table" in err


def test_without_nft_the_check_is_skipped_or_required(tmp_path, monkeypatch):
    from dpipolicy.compiler import netns
    monkeypatch.setattr(netns, "kernel_unavailable", lambda: "nft (nftables) is not on PATH")
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--target", "nftables", "-o", tmp_path / "p.nft")
    assert code == 0 and "kernel check: skipped: nft (nftables) is not on PATH" in err
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--target", "nftables", "-o", tmp_path / "p.nft",
                           "--validate=required")
    assert code == 2 and "error[E503]" in err


@settings(max_examples=EXAMPLES_N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_policies_survive_the_kernel(case):
    policy_text, _ = case.texts()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.dpi"
        path.write_text(policy_text, encoding="utf-8")
        compiled = compiled_of(path, approximate=True)
        rules, tags = kernel_copy(compiled)
        by_runs = kernel_equivalence(compiled.table, (rules, tags), Limits())
        by_diff = kernel_equivalence(compiled.table, (rules, (None,) * len(tags)), Limits())   # no tags: the diff
    assert by_runs.status == by_diff.status == "proved", f"{by_runs.text()}\n{by_diff.text()}\n{policy_text}"


def test_without_root_a_big_script_is_loaded_in_batches(tmp_path, monkeypatch):
    """In a user namespace nft cannot enlarge its netlink buffer: one `nft -f` of a few hundred
    kernel rules is refused as "Message too long". Without root the kernel check loads the
    script in batches (nftables.batches) and proves what the kernel holds."""
    from dpipolicy.compiler.backends.nftables import batches
    from dpipolicy.compiler import netns
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)     # as an unprivileged user: `unshare -rn`
    rules = "".join(f"rule r{i} when proto == tcp and dst.port == {1000 + i} and dst.ip in 2001:db8:{i:x}::/48 "
                    f"then block\n" for i in range(600))
    path = tmp_path / "big.dpi"
    path.write_text("default allow\n" + rules)
    compiled = TARGETS["nftables"].compile(api.load(path, ()).table, Options(str(path)))
    whole = run_in_namespace(["nft", "-f", "-"], input=compiled.text.encode())
    assert whole.returncode != 0 and b"Message too long" in whole.stderr      # the limit is real here
    assert len(batches(compiled.text, compiled.contract)) > 2
    kernel = kernel_copy(compiled)
    assert len(kernel[0].rules) == 600           # one kernel rule each: IPv6 and TCP only
    assert kernel_equivalence(compiled.table, kernel, Limits()).status == "proved"
