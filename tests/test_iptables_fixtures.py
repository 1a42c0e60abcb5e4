"""The real iptables-save dumps (../shared/fixtures/iptables/, see its README) through the CLI:
lint's findings on them, each checked against a reading of the dump (by hand in the comments, and
by a brute-force first-match oracle of its own for the 305 rules of openlab's FORWARD chain);
specs checked against them, one property that holds and one that is violated; the IPv4 dump
against an IPv6 counterpart; and the table `dpipolicy import` writes, read back by `check`."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import numpy as np
import pytest

from dpipolicy.dsl.loader import display_name

from helpers import FIXTURES, ROOT, run_cli, write_policy

OPENLAB = FIXTURES / "iptables" / "openlab-stettenstr.iptables-save"
MAJEK = FIXTURES / "iptables" / "majek-l2tp-ipsec-vpn.iptables-save"
MAJEK_V6 = ROOT / "tests" / "fixtures" / "iptables" / "majek-l2tp-ipsec-vpn.ip6tables-save"


def lint(path: Path, hook: str, *options: str) -> tuple[int, dict]:
    code, out, err = run_cli("lint", path, "--chain", hook, "--format", "json", *options)
    assert code in (0, 1, 3), err
    return code, json.loads(out)


def lines(report: dict, code: str) -> list[int]:
    return [f["line"] for f in report["findings"] if f["code"] == code]


def finding(report: dict, code: str, line: int) -> dict:
    (found,) = [f for f in report["findings"] if f["code"] == code and f["line"] == line]
    return found


# ----- lint: openlab's FORWARD chain ---------------------------------------------------------------

def test_openlab_forward_needs_approximate_for_physdev():
    code, out, err = run_cli("lint", OPENLAB, "--chain", "forward")
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"error[E711]: `-m physdev --physdev-is-bridged` matches bridge ports, which the rule table cannot hold " \
           f"exactly\n --> {OPENLAB}:85:12" in err


@pytest.fixture(scope="module")
def openlab_forward() -> dict:
    code, report = lint(OPENLAB, "forward", "--approximate")
    assert code == 1                         # L101 is an error
    return report


def test_openlab_forward_shadowed_rules(openlab_forward):
    report = openlab_forward
    assert report["summary"] | {"queries": 0} == {"errors": 10, "warnings": 167, "notes": 22, "failing": 10,
                                                  "undecided": 0, "silenced": 0, "rules": 305, "queries": 0}
    # 363 and 365 repeat 361 word for word (`-s 80.153.166.24/32 -o eth5 -p tcp -j REJECT --reject-with
    # tcp-reset`), 369 and 371 repeat 367 (the same for eth4): each block of three `! -p tcp -j DROP`
    # rules for 10.11.0.0/16, 172.16.0.0/24 and 172.16.16.0/24 got the same TCP rule pasted after it,
    # with the one source address of the first block, so the copies never decide a flow.
    # 384-389 accept ICMP to 10.10.0.0/16, and line 88 (`-d 10.10.0.0/16 ! -p tcp -j DROP`) drops all
    # of it first (ICMP is not TCP); only br0 is let in before line 88 (line 86), and none of them is br0.
    assert lines(report, "L101") == [363, 365, 369, 371, 384, 385, 386, 387, 388, 389]
    taken_by = {f["line"]: [r["line"] for r in f["related"]] for f in report["findings"] if f["code"] == "L101"}
    assert taken_by == {363: [361], 365: [361], 369: [367], 371: [367], **{n: [88] for n in range(384, 390)}}
    # the physdev rule (read as matching nothing) comes first: the kernel may decide any of them by it
    physdev = f"because of `filter FORWARD #1` ({OPENLAB}:85:12)"
    assert all(any(physdev in n for n in f["notes"]) for f in report["findings"] if f["code"] == "L101")
    assert report["approximations"] == [{"rule": "filter FORWARD #1", "location": f"{OPENLAB}:85:12",
                                         "what": "`-m physdev --physdev-is-bridged` matches bridge ports",
                                         "instead": "the rule matching no packet (left out)"}]


def test_openlab_forward_redundant_rules(openlab_forward):
    # FORWARD's policy is ACCEPT (line 80), so an ACCEPT rule matters only for flows a later rule
    # would drop or reset: line 88/89 (to 10.10.0.0/16), 360/362/364 and 366/368/370 (non-TCP from
    # the three LANs out of eth5/eth4), 361 and 367 (TCP from 80.153.166.24 out of eth5/eth4). So 90
    # (10.11.0.0/16 out of eth5, non-TCP dropped by 360 without it) is needed and 91 (into 10.11.0.0/16
    # from 95.142.77.32/27) is redundant; 111 (from 80.153.166.24, any output) is needed for 361,
    # and so is every `-d X -i IF` rule with any source, such as 157 and 159; every rule of the
    # tun+ block whose source is not 80.153.166.24 (270-290) is redundant, since no drop is for tun+
    # output; 372-383 are redundant, as nothing after them drops.
    report = openlab_forward
    redundant = lines(report, "L102")
    assert {90, 111, 157, 159, 291, 313, 335}.isdisjoint(redundant)
    assert {91, 158, 270, 271, 289, 290} | set(range(372, 384)) <= set(redundant)
    assert (set(redundant), set(lines(report, "L101"))) == oracle_findings(OPENLAB)


def oracle_findings(path: Path) -> tuple[set[int], set[int]]:
    """(redundant, shadowed) lines of the filter table's FORWARD chain, by brute force: every
    field is cut into cells by the values the rules name (addresses at every prefix's ends,
    interfaces by name, protocols TCP, ICMP, other), every combination of cells is a flow, and
    first match is run on all of them. The physdev rule matches no flow, as --approximate reads it."""
    rules = forward_rules(path)
    prefixes = {ipaddress.ip_network(r[o][0]) for r in rules for o in ("-s", "-d") if o in r}
    cuts = sorted({0} | {int(p.network_address) for p in prefixes} | {int(p.broadcast_address) + 1 for p in prefixes})
    addresses = [c for c in cuts if c < 2 ** 32]
    names = sorted({r[o][0] for r in rules for o in ("-i", "-o") if o in r})
    interfaces = [n.replace("+", "0") for n in names] + ["other0"]
    protocols = ["tcp", "icmp", "udp"]
    axes = {"-s": addresses, "-d": addresses, "-i": interfaces, "-o": interfaces, "-p": protocols}
    shape = [len(values) for values in axes.values()]

    def field_mask(k: int, option: str, rule: dict) -> np.ndarray:
        if option not in rule:
            cells = np.ones(shape[k], dtype=bool)
        else:
            value, negated = rule[option]
            if option in ("-s", "-d"):
                net = ipaddress.ip_network(value)
                cells = np.array([ipaddress.ip_address(a) in net for a in axes[option]])
            elif option == "-p":
                cells = np.array([p == value for p in protocols])
            else:
                cells = np.array([n.startswith(value[:-1]) if value.endswith("+") else n == value
                                  for n in axes[option]])
            cells = ~cells if negated else cells
        return cells.reshape([-1 if j == k else 1 for j in range(len(shape))])

    def first_two(skipped: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per flow, the first and the second rule matching it, of those not skipped (-1: none)."""
        first, second = np.full(shape, -1), np.full(shape, -1)
        for i, rule in enumerate(rules):
            if i in skipped:
                continue
            mask = np.ones(shape, dtype=bool)
            for k, option in enumerate(axes):
                mask = mask & field_mask(k, option, rule)
            second[(first >= 0) & (second < 0) & mask] = i
            first[(first < 0) & mask] = i
        return first, second

    physdev = {i for i, r in enumerate(rules) if r.get("physdev")}
    first, _ = first_two(physdev)
    shadowed = {i for i in range(len(rules)) if i not in physdev and not (first == i).any()}
    # as for a policy, a rule is redundant when the rules below it that decide flows (not the
    # shadowed ones) give its flows its outcome: of two copies, only the second is reported
    first, second = first_two(physdev | shadowed)
    outcome = {"ACCEPT": "allow", "DROP": "block", "REJECT": "reset"}
    outcomes = np.array([outcome[r["target"]] for r in rules] + ["allow"])      # [-1]: the policy, ACCEPT
    redundant = {i for i in range(len(rules)) if i not in physdev | shadowed
                 and (outcomes[second[first == i]] == outcomes[i]).all()}
    return {rules[i]["line"] for i in redundant}, {rules[i]["line"] for i in shadowed}


def forward_rules(path: Path) -> list[dict]:
    """The `-A FORWARD` rules of *filter, read with the few options they use (any other fails)."""
    rules, table = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("*"):
            table = line[1:]
        if table != "filter" or not line.startswith("-A FORWARD "):
            continue
        rule, negated, words = {"line": number}, False, iter(line.split()[2:])
        for word in words:
            if word == "!":
                negated = True
                continue
            if word in ("-s", "-d", "-i", "-o", "-p"):
                rule[word] = (next(words), negated)
            elif word == "-j":
                rule["target"] = next(words)
            elif word == "--reject-with":
                assert next(words) == "tcp-reset" and rule["-p"] == ("tcp", False)
            elif word == "-m" and next(words) == "physdev":
                assert next(words) == "--physdev-is-bridged"
                rule["physdev"] = True
            else:
                raise AssertionError(f"line {number}: the oracle does not read {word}")
            negated = False
        rules.append(rule)
    assert len(rules) == 305
    return rules


# ----- lint: the other chains ---------------------------------------------------------------------

def test_openlab_postrouting_snat_chains_never_run():
    code, report = lint(OPENLAB, "postrouting", "--approximate")
    assert code == 1 and report["summary"]["errors"] == 2
    # line 72 jumps to KABELSNAT for `-o eth5`, but line 64 (`-o eth5 -j SNAT`) has decided every
    # such packet before: KABELSNAT's only rule (73) never runs. Likewise line 71 to PPPSNAT for eth4
    # after line 63 (`-o eth4 -j SNAT`), so 74 never runs.
    assert lines(report, "L101") == [73, 74]
    assert [r["line"] for r in finding(report, "L101", 73)["related"]] == [64]
    assert [r["line"] for r in finding(report, "L101", 74)["related"]] == [63]
    # The table holds verdicts, and a NAT rule's is ACCEPT, as the nat chain's policy: each NAT rule
    # that runs is "redundant" for the verdict, though removing it changes the addresses (not what
    # a table holds). The RETURN rules (58, 67-69) and jumps (71, 72) give no verdict of their own.
    assert lines(report, "L102") == [57, 59, 60, 61, 62, 63, 64, 65, 66, 70]


def test_majek_output_accept_all_is_redundant():
    code, report = lint(MAJEK, "output", "--approximate")
    assert code == 0
    # `-A OUTPUT -j ACCEPT` (25) accepts what the policy would: the dump gives no `:OUTPUT` line, and
    # the policy is read as ACCEPT. Lines 19-20 only concern UDP from port 1701, and 19 is read as
    # matching nothing (`-m policy`), so the finding is approximate.
    assert lines(report, "L102") == [25] and lines(report, "L101") == []
    assert any(f"because of `filter OUTPUT #1` ({MAJEK}:19:11)" in n for n in finding(report, "L102", 25)["notes"])


@pytest.mark.parametrize("hook", ["input", "forward"])
def test_majek_input_and_forward_decide_with_every_rule(hook):
    # INPUT ends in `-j DROP` (51) and FORWARD in `-j DROP` (58): every ACCEPT before them is needed,
    # and no rule's flows are all taken by earlier ones (the overlaps are notes, L103)
    code, report = lint(MAJEK, hook, "--approximate")
    assert code == 0 and report["summary"]["errors"] == report["summary"]["warnings"] == 0
    assert {f["code"] for f in report["findings"]} == {"L103"}


# ----- specs checked against the dumps ------------------------------------------------------------

V4 = "src.ip in 0.0.0.0/0 and dst.ip in 0.0.0.0/0"       # iptables decides IPv4 flows only
MAJEK_SPEC = f"""invariant ssh_open "New SSH connections to the gateway are accepted"
    when proto == tcp and dst.port == 22 and ct.state == new and not dst.ip in 127.0.0.0/8 require action == allow
invariant web_and_ssh_only "New TCP connections from outside reach SSH and the web ports only"
    when proto == tcp and ct.state == new and iface.in != "lo" and not dst.port in {{22, 80, 443}} and {V4}
    require action != allow
"""
OPENLAB_SPEC = f"""invariant ssh_reachable "SSH to the firewall is accepted from every interface"
    when proto == tcp and dst.port == 22 and {V4} require action == allow
invariant vpn_ftp "Users on the VPN tunnels reach the firewall's FTP server"
    when proto == tcp and dst.port == 21 and iface.in == "tun*" and {V4} require action == allow
"""


def check(tmp_path: Path, path: Path, hook: str, spec: str, *options: str) -> tuple[int, dict]:
    code, out, err = run_cli("check", path, "--chain", hook, "--spec", write_policy(tmp_path, spec, "spec.dpi"),
                             "--format", "json", *options)
    assert code in (0, 1, 3), err
    return code, {r["name"]: r for r in json.loads(out)["results"]}


def test_majek_input_spec(tmp_path):
    code, results = check(tmp_path, MAJEK, "input", MAJEK_SPEC, "--approximate")
    assert code == 1
    # SSH: line 28 accepts it when new; before it, only line 11 (127.0.0.0/8 from outside lo) refuses
    # anything, and the IPv6 flows iptables never sees are accepted too. No approximation meets it.
    assert results["ssh_open"]["status"] == "holds" and "approximations" not in results["ssh_open"]
    # the web ports and SSH are meant to be all (the comment above lines 28-31 says HTTP and HTTPS),
    # but line 29 opens TCP port 44 as well
    violated = results["web_and_ssh_only"]
    assert violated["status"] == "violated"
    example = violated["counterexample"]
    assert (example["flow"]["proto"], example["flow"]["dst.port"], example["flow"]["ct.state"]) == ("tcp", 44, "new")
    assert (example["action"], example["rule"], example["rule_location"]) == ("allow", "filter INPUT #7",
                                                                             f"{MAJEK}:29:1")
    assert [box["rule"] for box in violated["region"]] == ["filter INPUT #7"]
    # its flow lies outside every approximation (line 11's ICMP answer to TCP meets the condition,
    # not this flow): the violation is the kernel's too
    assert [a["location"] for a in violated["approximations"]] == [f"{MAJEK}:11:1"]


def test_openlab_input_spec(tmp_path):
    code, results = check(tmp_path, OPENLAB, "input", OPENLAB_SPEC)
    assert code == 1
    # INPUT refuses only FTP (lines 82-84), and its policy is ACCEPT (line 79)
    assert results["ssh_reachable"]["status"] == "holds"
    # line 84 resets FTP coming in from tun+
    violated = results["vpn_ftp"]
    assert violated["status"] == "violated"
    example = violated["counterexample"]
    assert example["flow"]["dst.port"] == 21 and example["flow"]["iface.in"].startswith("tun")
    assert (example["action"], example["rule"], example["rule_location"]) == ("reset", "filter INPUT #3",
                                                                             f"{OPENLAB}:84:1")


def test_openlab_forward_results_are_approximate(tmp_path):
    # line 88 drops all non-TCP traffic to 10.10.0.0/16 that 86 (in from br0) and 87 (from 10.10.0.0/16
    # out to br0) do not let through first, so ICMP from the uplinks is dropped, whatever 384-385 meant;
    # but line 85 accepts bridged packets first, which the table cannot tell: the table says holds,
    # the result is approximate
    spec = f"""invariant no_icmp_in "ICMP from the uplinks to 10.10.0.0/16 is dropped"
    when proto == icmp and dst.ip in 10.10.0.0/16 and not src.ip in 10.10.0.0/16 and iface.in in {{"eth4", "eth5"}}
        and {V4} require action == block
"""
    code, results = check(tmp_path, OPENLAB, "forward", spec, "--approximate")
    assert code == 3
    result = results["no_icmp_in"]
    assert (result["status"], result["table_status"]) == ("approximate", "holds")
    assert [a["location"] for a in result["approximations"]] == [f"{OPENLAB}:85:12"]


# ----- dpipolicy import ---------------------------------------------------------------------------

@pytest.mark.parametrize("path, hook, spec", [(MAJEK, "input", MAJEK_SPEC), (OPENLAB, "forward", f"""
invariant lan_smb_out "SMB from the LAN 10.11.0.0/16 to the internet is dropped"
    when proto == udp and dst.port == 445 and src.ip in 10.11.0.0/16 and iface.out == "eth5" and {V4}
    require action == block
""")])
def test_an_imported_table_checks_as_its_rule_set(tmp_path, path, hook, spec):
    table = tmp_path / "table.json"
    code, out, err = run_cli("import", path, "--chain", hook, "--approximate", "-o", table)
    assert code == 0 and out == "", err
    written = json.loads(table.read_text(encoding="utf-8"))
    direct_code, direct, _ = run_cli("check", path, "--chain", hook, "--approximate", "--format", "json", "--spec",
                                     write_policy(tmp_path, spec, "spec.dpi"))
    code, read_back, err = run_cli("check", table, "--format", "json", "--spec", tmp_path / "spec.dpi")
    assert (code, json.loads(read_back)) == (direct_code, json.loads(direct)), err
    # the approximations stay with the table, each with the flows it may decide otherwise
    approximations = json.loads(direct)["approximations"]
    assert [{k: a[k] for k in ("rule", "what", "instead")} for a in written["approximations"]] == \
        [{k: a[k] for k in ("rule", "what", "instead")} for a in approximations]
    assert [a["source"] for a in written["approximations"]] == [a["location"] for a in approximations]
    assert all(a["flows"] for a in written["approximations"])
    if path == OPENLAB:
        assert direct_code == 3 and json.loads(direct)["results"][0]["status"] == "approximate"


def test_an_imported_table_takes_no_reading_options(tmp_path):
    table = tmp_path / "table.json"
    assert run_cli("import", MAJEK, "--chain", "output", "--approximate", "-o", table)[0] == 0
    code, _, err = run_cli("check", table, "--approximate")
    assert code == 2 and "error[E703]: --approximate applies to rule sets exported from an enforcement point" in err


# ----- the IPv4 dump against its IPv6 half --------------------------------------------------------

def diff(old: Path, new: Path, hook: str, *options: str) -> tuple[int, dict]:
    code, out, err = run_cli("diff", old, new, "--chain", hook, "--approximate", "--format", "json", *options)
    assert code in (0, 1, 3), err
    return code, json.loads(out)


def test_the_two_families_are_decided_by_different_halves():
    """iptables decides IPv4 packets and ip6tables IPv6 ones: each dump's table accepts the other
    family's flows as the kernel lets them by ("not seen"). So a diff of the two dumps compares,
    for every flow, one half's verdict with the other's "not seen": each changed region is decided
    by a "not seen" rule on one side, and the diff is the union of what either half refuses, never
    the difference between them. Like is compared with like by a spec (below) or within a family."""
    code, report = diff(MAJEK, MAJEK_V6, "input")
    assert code == 1
    unseen = {"IPv6 packets: not seen by iptables", "IPv4 packets: not seen by ip6tables"}
    regions = [r for g in report["groups"] for r in g["regions"]]
    assert regions and all({r["old"]["rule"], r["new"]["rule"]} & unseen for r in regions)


SERVICES = """invariant ssh "New SSH connections to the gateway are accepted"
    when proto == tcp and dst.port == 22 and ct.state == new and not dst.ip in {127.0.0.0/8, ::1}
    require action == allow
invariant web "HTTP and HTTPS to the gateway are accepted"
    when proto == tcp and dst.port in {80, 443} and not dst.ip in {127.0.0.0/8, ::1} require action == allow
invariant ike "IKE and IPsec NAT traversal reach the gateway"
    when proto == udp and dst.port in {500, 4500} and not dst.ip in {127.0.0.0/8, ::1} require action == allow
invariant port44 "New connections to TCP port 44 are accepted"
    when proto == tcp and dst.port == 44 and ct.state == new and not dst.ip in {127.0.0.0/8, ::1}
    require action == allow
invariant ping "Echo requests of either family are answered"
    when (proto == icmp and icmp.type == 8 and src.ip in 0.0.0.0/0 and dst.ip in 0.0.0.0/0)
        or (proto == icmpv6 and icmp.type == 128 and src.ip in ::/0 and dst.ip in ::/0)
    require action == allow
invariant replies "Replies to the gateway's own connections come back"
    when ct.state in {established, related} and not dst.ip in {127.0.0.0/8, ::1} require action == allow
"""


def test_a_spec_of_what_is_open_compares_the_families(tmp_path):
    """What a service may reach holds of either table for the other family (it is let by), so
    an invariant that something is accepted, written for both families, compares like with like:
    only the deliberate difference changes status."""
    spec = write_policy(tmp_path, SERVICES, "services.dpi")
    code, report = diff(MAJEK, MAJEK_V6, "input", "--spec", spec, "--fail-on", "regression")
    assert code == 1
    [change] = report["status_changes"]
    assert (change["name"], change["before"], change["after"]) == ("port44", "holds", "violated")
    example = change["counterexample"]
    assert example["flow"]["dst.ip"].startswith("2001:db8:") and example["flow"]["dst.port"] == 44
    assert (example["action_text"], example["rule"], example["rule_location"]) == (
        "block, log", "filter INPUT #13", f"{display_name(MAJEK_V6)}:25:1")


def as_ipv6(text: str) -> str:
    """The IPv4 dump as ip6tables would take it, with the translations the IPv6 half's header lists."""
    for v4, v6 in (("127.0.0.0/8", "::1/128"), ("10.0.0.0/24", "fd00:10::/64"),
                   ("-p icmp -m icmp --icmp-type 8", "-p ipv6-icmp -m icmp6 --icmpv6-type 128"),
                   ("icmp-admin-prohibited", "icmp6-adm-prohibited")):
        text = text.replace(v4, v6)
    nat = text[:text.index("*filter")]
    return "\n" * nat.count("\n") + text[len(nat):]        # no nat table, the other lines where they were


@pytest.mark.parametrize("hook, changed", [("input", True), ("forward", False), ("output", False)])
def test_within_one_family_the_diff_is_exactly_the_difference(tmp_path, hook, changed):
    transcribed = dump_text(tmp_path, "majek.ip6tables-save", as_ipv6(MAJEK.read_text(encoding="utf-8")))
    code, report = diff(transcribed, MAJEK_V6, hook)
    if not changed:
        # the same verdicts, but over tables holding majek's ipsec and reject matches approximately
        assert code == 3 and report["equivalent"] and report["approximate"], report["groups"]
        return
    assert code == 1
    [group] = report["groups"]
    [region] = group["regions"]
    assert group["change"] == "allow -> block, log"
    assert region["match"]["proto"] == ["tcp"] and region["match"]["dst.port"] == ["44"]
    assert region["match"]["ct.state"] == ["new"]
    assert (region["old"]["rule"], region["old"]["rule_location"]) == ("filter INPUT #7", f"{transcribed}:29:1")
    assert (region["new"]["rule"], region["new"]["rule_location"]) == ("filter INPUT #13",
                                                                       f"{display_name(MAJEK_V6)}:25:1")


def dump_text(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
