"""The commands on imported nftables rule sets, through the real CLI: lint findings point at the
rule's JSON path, and a diff of tables read with --approximate says which regions meet an
approximation and is approximate (exit 3) as a whole, never a plain "no change"."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli

NFT = Path(__file__).parent / "fixtures" / "nft"
LOGGED = NFT / "07-log-and-drop.nft"          # its last rule logs under a limit: an approximation


def test_lint_of_an_nft_rule_set_points_at_json_paths():
    code, out, _ = run_cli("lint", NFT / "01-host-basic.nft", "--chain", "input", "--format", "json")
    findings = json.loads(out)["findings"]
    # `ct state invalid drop` comes before ssh, web and ICMP accepts: each overlaps it (L103, a note)
    assert code == 0 and [f["code"] for f in findings] == ["L103"] * 5
    assert findings[0]["location"].endswith("01-host-basic.nft: nftables[7].rule") and findings[0]["line"] is None
    assert findings[0]["related"][0]["location"].endswith("nftables[6].rule")


def test_lint_text_names_the_rule_and_its_json_path():
    _, out, _ = run_cli("lint", NFT / "01-host-basic.nft", "--chain", "input")
    assert "--> " + str(NFT / "01-host-basic.nft") + ": nftables[7].rule" in out


def test_diff_of_approximate_tables_is_approximate_even_when_nothing_changes():
    code, out, _ = run_cli("diff", LOGGED, LOGGED, "--chain", "input", "--approximate")
    assert code == 3
    assert out.startswith("no semantic change (proved")
    assert "approximate: the diff is of the tables" in out and "limit rate 10/minute" in out
    assert out.count("limit rate 10/minute") == 1          # the versions share it: listed once


def _with_policy_accept(tmp_path) -> Path:
    """The rule set with 8080 accepted by its own rule (decided before the limited log rule:
    exact) and the policy accept (decided after it: the flows the approximation speaks of)."""
    changed = tmp_path / "changed.nft"
    changed.write_text(LOGGED.read_text().replace("tcp dport 8080 counter drop", "tcp dport 8080 counter accept")
                       .replace("policy drop;", "policy accept;"))
    return changed


def test_diff_marks_only_the_regions_that_meet_an_approximation(tmp_path):
    code, out, _ = run_cli("diff", LOGGED, _with_policy_accept(tmp_path), "--chain", "input", "--approximate",
                           "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["approximate"] is True and len(data["approximations"]) == 2
    regions = [r for g in data["groups"] for r in g["regions"]]
    exact = [r for r in regions if "approximations" not in r]
    assert [r["witness"]["dst.port"] for r in exact] == [8080]
    marked = [r for r in regions if "approximations" in r]
    assert marked and all(r["old"]["rule"] == r["new"]["rule"] == "inet filter input policy" for r in marked)
    assert {a["what"] for r in marked for a in r["approximations"]} == {
        "`limit rate 10/minute` logs only part of the traffic"}


def test_diff_text_says_which_region_is_approximate(tmp_path):
    _, out, _ = run_cli("diff", LOGGED, _with_policy_accept(tmp_path), "--chain", "input", "--approximate",
                        "--fail-on", "regression")
    assert "approximate: the kernel may decide these flows otherwise, because of `inet filter input #6`" in out


def test_diff_of_approximate_tables_exits_3_when_only_regressions_fail(tmp_path):
    code, _, _ = run_cli("diff", LOGGED, _with_policy_accept(tmp_path), "--chain", "input", "--approximate",
                         "--fail-on", "regression")
    assert code == 3
