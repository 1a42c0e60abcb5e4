"""Reading real nftables rule sets (compiler/importers/nftruleset.py): nft's text, loaded by the
real nft in a network namespace and listed back as JSON, flattened at one hook into the rule
table; each case checks the verdict of chosen flows, and every unsupported part is an error at
its JSON path, or with --approximate an approximation."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from dpipolicy.compiler.importers import nftruleset
from dpipolicy.compiler.importers.chains import flatten, schema_for
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.verifier.kernelprobe import given_flow
from dpipolicy.verifier.properties import TableModel

CATALOGUE = load_catalogue(())


def read(tmp_path, text: str, name: str = "rules.nft"):
    path = tmp_path / name
    path.write_text(text)
    return nftruleset.read_nft_text(path)


def table_of(tmp_path, text: str, hook: str = "input", approximate: bool = False):
    ruleset = read(tmp_path, text)
    table, approximations = flatten(ruleset, hook, schema_for(ruleset, CATALOGUE), approximate)
    return table, approximations


def verdict(table, flow: str) -> tuple[str, bool, str]:
    """(action, logged, deciding rule's name) of the flow written as for `explain --flow`."""
    model = TableModel(table)
    point = given_flow(table.schema, flow)
    i = model.decide(point)
    if i >= len(table.rules):
        return table.default.kind, table.default.log, "default"
    rule = table.rules[i]
    return rule.action.kind, rule.action.log, rule.origin.name


def errors(excinfo) -> list[tuple[str, str, str]]:
    return [(d.code, d.message, d.location_text) for d in excinfo.value.diagnostics]


HOST = """
table inet filter {
  set trusted { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.1.10-192.168.1.20 } }
  set web { type inet_service; elements = { 80, 443 } }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    ip saddr @trusted tcp dport 22 accept
    tcp dport @web accept
    ip6 saddr fe80::/10 udp dport 546 accept
    icmp type echo-request limit rate 5/second accept
    meta l4proto udp log prefix "udp: " counter drop
    tcp dport { 8000-8999 } reject with tcp reset
  }
}
"""


def test_host_firewall_sets_states_and_interfaces(tmp_path):
    table, approximations = table_of(tmp_path, HOST, approximate=True)
    assert verdict(table, "proto=tcp ct.state=established src.ip=8.8.8.8 dst.port=9")[0] == "allow"
    assert verdict(table, "proto=tcp ct.state=invalid dst.port=443")[0] == "block"
    assert verdict(table, "proto=tcp ct.state=new iface.in=lo dst.port=9")[0] == "allow"
    assert verdict(table, "proto=tcp ct.state=new iface.in=eth0 src.ip=10.1.2.3 dst.port=22") == \
        ("allow", False, "inet filter input #4")
    assert verdict(table, "proto=tcp ct.state=new iface.in=eth0 src.ip=192.168.1.15 dst.port=22")[0] == "allow"
    assert verdict(table, "proto=tcp ct.state=new iface.in=eth0 src.ip=192.168.1.21 dst.port=22") == \
        ("block", False, "default")
    assert verdict(table, "proto=tcp ct.state=new iface.in=eth0 src.ip=8.8.8.8 dst.port=443")[0] == "allow"
    assert verdict(table, "proto=udp ct.state=new iface.in=eth0 src.ip=fe80::1 dst.ip=fe80::2 dst.port=546")[0] \
        == "allow"
    assert verdict(table, "proto=udp ct.state=new iface.in=eth0 src.ip=8.8.8.8 dst.port=53") == \
        ("block", True, "inet filter input #8")
    assert verdict(table, "proto=tcp ct.state=new iface.in=eth0 src.ip=8.8.8.8 dst.port=8080") == \
        ("reset", False, "inet filter input #9")
    assert [a.rule for a in approximations] == ["inet filter input #7"]      # the rate limit
    assert "limit rate 5/second" in approximations[0].what


def test_approximation_is_an_error_without_approximate(tmp_path):
    with pytest.raises(DiagnosticError) as excinfo:
        table_of(tmp_path, HOST)
    [(code, message, where)] = errors(excinfo)
    assert code == "E711" and "decides by the rate" in message
    assert where.endswith("rules.nft: nftables[11].rule.expr[1]")


def test_jumps_gotos_returns_and_verdict_maps(tmp_path):
    table, _ = table_of(tmp_path, """
table inet filter {
  map zones { type ifname : verdict; elements = { "lan0" : jump lan, "wan0" : goto wan } }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname vmap @zones
    tcp dport 25 accept
  }
  chain lan {
    tcp dport 23 drop
    ip daddr 192.0.2.0/24 return
    accept
  }
  chain wan {
    tcp dport vmap { 80 : accept, 443 : accept, 22 : jump ssh }
  }
  chain ssh {
    ip saddr != 203.0.113.0/24 drop
    accept
  }
}
""", hook="forward")
    assert verdict(table, "proto=tcp iface.in=lan0 dst.port=23")[0] == "block"
    assert verdict(table, "proto=tcp iface.in=lan0 dst.ip=198.51.100.1 dst.port=80")[0] == "allow"
    # return: back to forward, where 25 is accepted and the rest meets the policy
    assert verdict(table, "proto=tcp iface.in=lan0 dst.ip=192.0.2.1 dst.port=25") == \
        ("allow", False, "inet filter forward #2")
    assert verdict(table, "proto=tcp iface.in=lan0 dst.ip=192.0.2.1 dst.port=80") == \
        ("block", False, "default")
    assert verdict(table, "proto=tcp iface.in=wan0 dst.port=443")[0] == "allow"
    assert verdict(table, "proto=tcp iface.in=wan0 src.ip=203.0.113.9 dst.port=22") == \
        ("allow", False, "inet filter ssh #2")
    assert verdict(table, "proto=tcp iface.in=wan0 src.ip=8.8.8.8 dst.port=22") == \
        ("block", False, "inet filter ssh #1")
    # goto: the end of wan returns to forward's caller, the hook: the policy, not `tcp dport 25`
    assert verdict(table, "proto=tcp iface.in=wan0 dst.port=25") == ("block", False, "default")
    assert verdict(table, "proto=tcp iface.in=eth7 dst.port=25")[0] == "allow"


def test_concatenations_negations_and_intervals(tmp_path):
    table, approximations = table_of(tmp_path, """
table inet filter {
  set allowed { type ipv4_addr . inet_proto . inet_service; flags interval;
                elements = { 10.0.0.0/24 . tcp . 1000-2000, 10.0.1.5 . udp . 53 } }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr . meta l4proto . th dport @allowed accept
    ip daddr != { 192.0.2.0/24, 198.51.100.7 } tcp dport != 1-1023 drop
    ip6 daddr 2001:db8::/32 tcp dport >= 8000 reject
  }
}
""", approximate=True)
    assert verdict(table, "proto=tcp src.ip=10.0.0.9 dst.ip=192.0.2.1 dst.port=1500")[2] == "inet filter input #1"
    assert verdict(table, "proto=udp src.ip=10.0.1.5 dst.ip=192.0.2.1 dst.port=53")[2] == "inet filter input #1"
    assert verdict(table, "proto=udp src.ip=10.0.1.6 dst.ip=192.0.2.1 dst.port=53")[2] == "default"
    assert verdict(table, "proto=tcp src.ip=10.0.0.9 dst.ip=8.8.8.8 dst.port=5000") == \
        ("block", False, "inet filter input #2")
    assert verdict(table, "proto=tcp src.ip=10.0.0.9 dst.ip=8.8.8.8 dst.port=80")[2] == "default"
    assert verdict(table, "proto=tcp src.ip=10.0.0.9 dst.ip=198.51.100.7 dst.port=5000")[2] == "default"
    assert verdict(table, "proto=tcp src.ip=2001:db8::1 dst.ip=2001:db8::2 dst.port=8000")[0] == "reset"
    assert verdict(table, "proto=tcp src.ip=2001:db8::1 dst.ip=2001:db8::2 dst.port=7999")[2] == "default"
    # a plain reject answers TCP with an ICMP error, not a reset: the table's `reset`, approximated
    assert [a.what for a in approximations] == ["the rule answers TCP flows with an ICMP error"]


def test_families_priorities_and_several_base_chains(tmp_path):
    """An ip table sees no IPv6 packet; base chains run by priority, `filter - 10` first; an
    accept passes the packet to the next base chain, a drop ends it."""
    ruleset = read(tmp_path, """
table ip early {
  chain input { type filter hook input priority filter - 10; policy accept;
    tcp dport 23 drop
    tcp dport 80 accept
  }
}
table ip6 v6 {
  chain input { type filter hook input priority 5; policy drop;
    tcp dport 80 accept
  }
}
table inet late {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport 80 drop
  }
}
""")
    assert [c.name for c in ruleset.base_chains("input")] == ["ip early input", "inet late input", "ip6 v6 input"]
    table, _ = flatten(ruleset, "input", schema_for(ruleset, CATALOGUE))
    assert verdict(table, "proto=tcp src.ip=10.0.0.1 dst.ip=10.0.0.2 dst.port=23")[0] == "block"
    assert verdict(table, "proto=tcp src.ip=10.0.0.1 dst.ip=10.0.0.2 dst.port=80") == \
        ("block", False, "inet late input #1")
    assert verdict(table, "proto=tcp src.ip=10.0.0.1 dst.ip=10.0.0.2 dst.port=22")[0] == "allow"
    assert verdict(table, "proto=tcp src.ip=2001:db8::1 dst.ip=2001:db8::2 dst.port=23") == \
        ("block", False, "default")         # the policy of the last base chain
    assert verdict(table, "proto=udp src.ip=2001:db8::1 dst.ip=2001:db8::2 dst.port=23")[0] == "block"


def test_log_counter_and_comments(tmp_path):
    table, _ = table_of(tmp_path, """
table inet filter {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport 22 counter log prefix "ssh " accept comment "ssh in"
    log level warn
    udp dport 53 counter drop
  }
}
""")
    assert verdict(table, "proto=tcp dst.port=22") == ("allow", True, "inet filter input #1")
    assert verdict(table, "proto=udp dst.port=53") == ("block", True, "inet filter input #3")
    assert verdict(table, "proto=udp dst.port=54") == ("allow", True, "inet filter input policy")


def test_unsupported_parts_are_errors_at_their_json_path(tmp_path):
    with pytest.raises(DiagnosticError) as excinfo:
        read(tmp_path, """
table netdev edge {
  chain ingress {
    type filter hook ingress device lo priority 0;
  }
}
table inet filter {
  chain input { type filter hook input priority 0;
    tcp dport 22 synproxy mss 1460 wscale 7
  }
}
""")
    found = errors(excinfo)
    assert [code for code, _, _ in found] == ["E741", "E745"]
    assert "netdev" in found[0][1] and found[0][2].endswith(": nftables[1]")
    assert "synproxy" in found[1][1] and found[1][2].endswith("nftables[5].rule.expr[1]")


def test_nat_chains_translating_only_decide_nothing(tmp_path):
    table, approximations = table_of(tmp_path, """
table ip nat {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    tcp dport 8080 dnat to 10.0.0.5:80
  }
}
table inet filter {
  chain prerouting { type filter hook prerouting priority 0; policy accept;
    tcp dport 8080 drop
  }
}
""", hook="prerouting", approximate=True)
    assert verdict(table, "proto=tcp src.ip=8.8.8.8 dst.ip=192.0.2.1 dst.port=8080")[0] == "block"
    assert any("rewrites" in a.what for a in approximations)


def test_json_of_nft_is_read_as_is(tmp_path):
    """`nft -j list ruleset` output, given directly, reads like the text it came from."""
    path = tmp_path / "rules.nft"
    path.write_text(HOST)
    listing = subprocess.run(["unshare", "-rn", "sh", "-c", 'nft -f "$1" && nft -j list ruleset', "sh", str(path)],
                             capture_output=True, text=True, check=True).stdout
    ruleset = nftruleset.read_nft_json(json.loads(listing), "rules.json")
    assert [c.name for c in ruleset.chains] == ["inet filter input"]
    assert [r.name for r in ruleset.chains[0].rules][:3] == ["inet filter input #1"] * 1 + \
        ["inet filter input #2", "inet filter input #3"]


def test_not_the_json_of_nft(tmp_path):
    with pytest.raises(DiagnosticError) as excinfo:
        nftruleset.read_nft_json({"rules": []}, "x.json")
    assert errors(excinfo) == [("E740", "not the JSON of `nft -j list ruleset`: no `nftables` list", "x.json: nftables")]


def test_nft_refusing_the_text_is_an_error_at_its_line_and_column(tmp_path):
    with pytest.raises(DiagnosticError) as excinfo:
        read(tmp_path, "table inet filter {\n  chain input {\n    tcp dport 22 acept\n  }\n}\n")
    code, message, where = errors(excinfo)[0]
    assert code == "E752" and message == "nft: syntax error, unexpected newline"
    assert where == f"{tmp_path / 'rules.nft'}:3:23"


def test_without_nft_the_error_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "rules.nft"
    path.write_text(HOST)
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    assert shutil.which("nft") is None
    with pytest.raises(DiagnosticError) as excinfo:
        nftruleset.read_nft_text(path)
    [(code, message, _)] = errors(excinfo)
    assert code == "E751" and "needs nft" in message
    assert "install nftables" in excinfo.value.diagnostics[0].help


def test_unreadable_file(tmp_path):
    with pytest.raises(DiagnosticError) as excinfo:
        nftruleset.read_nft_text(tmp_path / "missing.nft")
    assert errors(excinfo)[0][0] == "E753"
    assert os.path.basename(errors(excinfo)[0][2]) == "missing.nft"
