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
    # one region per family: the flows of an IPv4 source and an IPv6 destination are no packet's
    assert [r["witness"]["dst.port"] for r in exact] == [8080, 8080]
    assert [(":" in r["witness"]["src.ip"], ":" in r["witness"]["dst.ip"]) for r in exact] == [(False, False),
                                                                                                (True, True)]
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


# ----- the flows packets carry ------------------------------------------------------------------
# `ip saddr` implies IPv4, so the rule's flows have an IPv4 destination too; a flow of an IPv4
# source and an IPv6 destination is no packet's, and no claim about the rule set speaks of it.

_SSH_V4 = """table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ip saddr 10.0.0.0/8 tcp dport 22 accept
  }
}
"""


def _file(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_check_of_a_rule_set_has_no_counterexample_no_packet_carries(tmp_path):
    spec = _file(tmp_path, "spec.dpi", """invariant admin_ssh
    when src.ip in 10.0.0.0/8 and proto == tcp and dst.port == 22
    require action == allow

invariant ssh_alike_everywhere
    when src.ip in 10.0.0.0/8 and proto == tcp and dst.port == 22
    require same action across dst.ip

invariant others_dropped
    when not src.ip in 10.0.0.0/8 and proto == tcp and dst.port == 22
    require action == block
""")
    code, out, _ = run_cli("check", _file(tmp_path, "ssh.nft", _SSH_V4), "--spec", spec, "--format", "json")
    results = {r["name"]: r["status"] for r in json.loads(out)["results"]}
    assert code == 0 and results == {"admin_ssh": "holds", "ssh_alike_everywhere": "holds", "others_dropped": "holds"}


def test_a_violation_of_a_rule_set_is_shown_by_a_flow_one_packet_carries(tmp_path):
    spec = _file(tmp_path, "spec.dpi", "invariant all_ssh\n    when proto == tcp and dst.port == 22\n"
                                       "    require action == allow\n")
    code, out, _ = run_cli("check", _file(tmp_path, "ssh.nft", _SSH_V4), "--spec", spec, "--format", "json")
    (result,) = json.loads(out)["results"]
    flow = result["counterexample"]["flow"]
    assert code == 1 and (":" in flow["src.ip"]) == (":" in flow["dst.ip"])
    # the region is one box per family: IPv4 from outside 10/8, and IPv6 (`::/0` is the IPv6 space)
    assert [box["text"] for box in result["region"]] == [
        "proto == tcp and src.ip not in {10.0.0.0/8, ::/0} and dst.ip in {0.0.0.0/0} and dst.port == 22",
        "proto == tcp and src.ip in {::/0} and dst.ip in {::/0} and dst.port == 22"]


def test_diff_of_one_rule_for_both_families_and_one_per_family_is_no_change(tmp_path):
    both = _file(tmp_path, "both.nft", _SSH_V4.replace("ip saddr 10.0.0.0/8 tcp dport 22", "tcp dport 22"))
    each = _file(tmp_path, "each.nft", _SSH_V4.replace(
        "ip saddr 10.0.0.0/8 tcp dport 22 accept", "ip saddr 0.0.0.0/0 tcp dport 22 accept\n"
                                                   "    ip6 saddr ::/0 tcp dport 22 accept"))
    code, out, _ = run_cli("diff", both, each)
    assert code == 0 and out.startswith("no semantic change (proved")


def test_explain_of_a_flow_no_packet_carries_is_an_error(tmp_path):
    ruleset = _file(tmp_path, "ssh.nft", _SSH_V4)
    code, _, err = run_cli("explain", ruleset, "--flow", "proto=tcp src.ip=10.0.0.7 dst.ip=2001:db8::25 dst.port=22")
    assert code == 2 and "error[E310]: no packet carries this flow" in err
    # a flow that leaves the destination open is explained over the destinations of its family
    code, out, _ = run_cli("explain", ruleset, "--flow", "proto=tcp src.ip=10.0.0.7 dst.port=22")
    assert code == 0 and out.startswith("outcome: allow (rule inet filter input #1")
    assert "matches and decides: allow" in out


def test_the_imported_table_file_keeps_the_flows_packets_carry(tmp_path):
    ruleset, table = _file(tmp_path, "ssh.nft", _SSH_V4), tmp_path / "table.json"
    code, _, _ = run_cli("import", ruleset, "-o", table)
    assert code == 0 and json.loads(table.read_text())["packet_filter"] is True
    spec = _file(tmp_path, "spec.dpi", "invariant admin_ssh\n    when src.ip in 10.0.0.0/8 and proto == tcp and "
                                       "dst.port == 22\n    require action == allow\n")
    assert run_cli("check", table, "--spec", spec)[0] == 0
    data = json.loads(table.read_text())
    data["packet_filter"] = "yes"
    table.write_text(json.dumps(data))
    code, _, err = run_cli("check", table)
    assert code == 2 and "`packet_filter` must be true or false, not a string" in err


def test_lint_calls_no_rule_redundant_that_a_nat_rewrite_hangs_on(tmp_path):
    # 3 exempts the office from the masquerade of 4: removing it keeps every verdict (accept) but
    # changes addresses. 5 accepts what the policy would, and no rewrite comes after it: redundant.
    dump = _file(tmp_path, "nat.iptables-save", """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -d 192.168.1.0/24 -j ACCEPT
-A POSTROUTING -o eth0 -j MASQUERADE
-A POSTROUTING -o eth1 -j ACCEPT
COMMIT
""")
    code, out, _ = run_cli("lint", dump, "--chain", "postrouting", "--format", "json")
    found = [(f["code"], f["line"]) for f in json.loads(out)["findings"]]
    assert code == 0 and found == [("L102", 6)]


def test_diff_of_a_policy_with_the_rule_set_that_implements_it(tmp_path):
    policy = _file(tmp_path, "ssh.dpi", 'policy ssh version "1"\n\nrule admin_ssh\n'
                                        '    when src.ip in 10.0.0.0/8 and proto == tcp and dst.port == 22\n'
                                        '    then allow\n\ndefault block\n')
    ruleset = _file(tmp_path, "ssh.nft", _SSH_V4)
    code, out, _ = run_cli("diff", policy, ruleset, "--chain", "input")
    assert code == 0 and out.startswith("no semantic change (proved")
    opened = _file(tmp_path, "open.nft", _SSH_V4.replace("ip saddr 10.0.0.0/8 ", ""))
    code, out, _ = run_cli("diff", ruleset, policy, "--chain", "input", "--format", "json")
    assert code == 0
    code, out, _ = run_cli("diff", policy, opened, "--chain", "input", "--format", "json")
    regions = [r for g in json.loads(out)["groups"] for r in g["regions"]]
    assert code == 1 and {(r["old"]["rule"], r["new"]["action"]) for r in regions} == {("default", "allow")}
    # --chain where neither side is a rule set is still an error
    code, _, err = run_cli("diff", policy, policy, "--chain", "input")
    assert code == 2 and "error[E703]" in err


# ----- a path of hooks ------------------------------------------------------------------------------

_PATH_DUMP = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s 192.0.2.0/24 -j DROP
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A FORWARD -p tcp --dport 443 -j ACCEPT
COMMIT
"""


def test_a_path_of_hooks_is_the_verdict_of_each_hook_in_turn(tmp_path):
    dump = _file(tmp_path, "path.iptables-save", _PATH_DUMP)
    flows = {"routed https": "proto=tcp src.ip=198.51.100.7 dst.ip=203.0.113.9 dst.port=443",
             "https from the dropped net": "proto=tcp src.ip=192.0.2.7 dst.ip=203.0.113.9 dst.port=443",
             "ssh": "proto=tcp src.ip=198.51.100.7 dst.ip=203.0.113.9 dst.port=22"}
    seen = {}
    for path in ("forward", "prerouting,forward", "prerouting,input"):
        for what, flow in flows.items():
            code, out, _ = run_cli("explain", dump, "--chain", path, "--flow", flow, "--format", "json")
            assert code == 0
            seen[path, what] = json.loads(out)["outcomes"][0]["action"]
    assert seen == {("forward", "routed https"): "allow", ("forward", "https from the dropped net"): "allow",
                    ("forward", "ssh"): "block",
                    ("prerouting,forward", "routed https"): "allow",
                    ("prerouting,forward", "https from the dropped net"): "block",   # raw PREROUTING drops it first
                    ("prerouting,forward", "ssh"): "block",
                    ("prerouting,input", "routed https"): "block", ("prerouting,input", "https from the dropped net"):
                    "block", ("prerouting,input", "ssh"): "allow"}


def test_hooks_no_packet_passes_in_turn_are_an_error(tmp_path):
    dump = _file(tmp_path, "path.iptables-save", _PATH_DUMP)
    code, _, err = run_cli("import", dump, "--chain", "prerouting,postrouting")
    assert code == 2 and "error[E702]: no packet passes the hooks prerouting, postrouting in that order" in err
    code, _, err = run_cli("import", dump, "--chain", "input,forward")
    assert code == 2 and "error[E702]" in err


# ----- the engine contract from the command line ------------------------------------------------

UK = Path(__file__).parent.parent / "examples" / "uk-mobile"


def test_the_contract_file_reads_back_as_the_contract_it_was_written_from(tmp_path):
    from dpipolicy import api
    from dpipolicy.compiler.backends import TARGETS, Options
    from dpipolicy.compiler.backends.contractfile import read_contract
    policies = [p for p in sorted(UK.parent.glob("*/*.dpi")) if "\npolicy " in "\n" + p.read_text()]
    assert len(policies) >= 5
    for policy in policies:
        loaded = api.load(policy)
        contract = TARGETS["nftables"].compile(loaded.table, Options(str(policy), approximate=True)).contract
        written = tmp_path / "contract.json"
        written.write_text(json.dumps(contract.to_json()))
        assert read_contract(written) == contract, policy


def test_the_deployed_september_rule_set_under_its_contract_resets_authenticated_submission():
    code, out, _ = run_cli("check", UK / "policy-2011-09.nft", "--contract", UK / "contract-2011-09.json",
                           "--spec", UK / "spec.dpi", "--format", "json")
    results = {r["name"]: r for r in json.loads(out)["results"]}
    violated = results["auth_smtp_third_party_never_blocked"]
    assert code == 1 and violated["status"] == "violated"
    assert violated["counterexample"]["action"] == "reset" and violated["counterexample"]["flow"]["app"] in (
        "submission", "smtps")
    code, out, _ = run_cli("check", UK / "policy-2011-08.nft", "--contract", UK / "contract-2011-09.json",
                           "--spec", UK / "spec.dpi")
    assert code == 0, out


def test_a_policy_diffs_equal_to_its_deployed_rule_set_under_the_contract():
    code, out, _ = run_cli("diff", UK / "policy-2011-09.dpi", UK / "policy-2011-09.nft",
                           "--contract", UK / "contract-2011-09.json")
    assert code == 0 and out.startswith("no semantic change (proved")
    code, out, _ = run_cli("diff", UK / "policy-2011-08.dpi", UK / "policy-2011-09.nft",
                           "--contract", UK / "contract-2011-09.json")
    assert code == 1 and "reset" in out


def test_contract_errors(tmp_path):
    code, _, err = run_cli("check", UK / "policy-2011-09.dpi", "--contract", UK / "contract-2011-09.json")
    assert code == 2 and "error[E703]: --contract applies to rule sets" in err
    dump = _file(tmp_path, "path.iptables-save", _PATH_DUMP)
    code, _, err = run_cli("import", dump, "--chain", "input", "--contract", UK / "contract-2011-09.json")
    assert code == 2 and "error[E703]: --contract applies to nftables rule sets" in err
    data = json.loads((UK / "contract-2011-09.json").read_text())
    del data["subscriber_sets"][0]["field"]
    bad = _file(tmp_path, "contract.json", json.dumps(data))
    code, _, err = run_cli("check", UK / "policy-2011-09.nft", "--contract", bad)
    assert code == 2 and "error[E756]: `field` is missing" in err and "contract.json: subscriber_sets[0].field" in err
    data["format"] = "something-else"
    bad.write_text(json.dumps(data))
    code, _, err = run_cli("check", UK / "policy-2011-09.nft", "--contract", bad)
    assert code == 2 and "error[E756]: not an engine contract" in err
