"""The kernel's rules read back (compiler/importers/nftjson.py) and the kernel check
(verifier/kernel.py), against the real nft: each script is loaded into a fresh network
namespace and read back with `nft -j`, as the kernel holds it."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import subprocess

import pytest

from dpipolicy import api
from dpipolicy.compiler.backends.contract import build_contract
from dpipolicy.compiler.importers.nftjson import read_kernel_rules, read_kernel_table
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import IP_MAX, IPV6_BASE
from dpipolicy.dsl.typed import Action
from dpipolicy.verifier.kernel import KernelMismatch, kernel_equivalence
from dpipolicy.verifier.solve import Limits

from helpers import write_policy

# nft 1.0.6 reads `policy` as a keyword wherever a chain name goes (`chain policy`, `jump policy`,
# quoted or not), so these scripts name the rules' chain `rules` through the contract.
CHAIN = "rules"
V4, V6 = IntervalSet.span(0, IPV6_BASE - 1), IntervalSet.span(IPV6_BASE, IP_MAX)
POLICY = """
enum plan { payg, monthly }
enum addon { vpn }
default allow
rule smtp when proto == tcp and dst.port == 25 then block
rule mail when proto == tcp and dst.port in 465..587 and dst.ip in 10.0.0.0/8 then reset, log
rule vpn when app == openvpn and subscriber.plan == payg and direction == uplink then throttle 128kbps
rule night when time.hour in {22..23, 0..5} and proto == udp then block
rule portal when app == openvpn and vpn not in subscriber.addons and direction == downlink then redirect "topup"
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    loaded = api.load(write_policy(tmp_path_factory.mktemp("policy"), POLICY))
    table = loaded.table
    contract = build_contract(table.schema, [r.box() for r in table.rules], "dpipolicy")
    return table, dataclasses.replace(contract, chain=CHAIN)


def kernel_json(tmp_path, rules: str, chains: str = "") -> dict:
    """The kernel's JSON of a script of the enforcement.md shape whose chain `rules` holds `rules`."""
    sets = "".join(f"set {name}_v{n} {{ type ipv{n}_addr; flags interval; }}\n"
                   for name in ("plan_payg", "plan_monthly", "addon_vpn") for n in (4, 6))
    script = tmp_path / "policy.nft"
    script.write_text(f"""table inet dpipolicy
delete table inet dpipolicy
table inet dpipolicy {{
{sets}
chain forward {{
  type filter hook forward priority filter; policy accept;
  jump {CHAIN}
}}
{chains}
chain {CHAIN} {{
{rules}
}}
}}
""", encoding="utf-8")
    done = subprocess.run(["unshare", "-rn", "sh", "-c", 'nft -f "$0" && nft -j list table inet dpipolicy', str(script)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def read_tagged(tmp_path, compiled, rules: str, chains: str = ""):
    """The kernel's table with its rules' tags, as the kernel check reads it."""
    table, contract = compiled
    return read_kernel_rules(kernel_json(tmp_path, rules, chains), contract, table.schema)


def read(tmp_path, compiled, rules: str, chains: str = ""):
    table, contract = compiled
    return read_kernel_table(kernel_json(tmp_path, rules, chains), contract, table.schema)


def unread(tmp_path, compiled, rules: str, chains: str = "") -> list[tuple[str, str, str]]:
    with pytest.raises(DiagnosticError) as err:
        read(tmp_path, compiled, rules, chains)
    return [(d.code, d.location(), d.message) for d in err.value.diagnostics]


def boxes(table) -> list[dict]:
    return [r.box() for r in table.rules]


def ip(text: str) -> int:
    address = ipaddress.ip_address(text)
    return int(address) + (IPV6_BASE if address.version == 6 else 0)


def net(text: str) -> IntervalSet:
    network = ipaddress.ip_network(text)
    return IntervalSet.span(ip(str(network.network_address)), ip(str(network.broadcast_address)))


def label(compiled, app: str) -> int:
    return compiled[1].label_number(compiled[1].labels.index(app))


def app(compiled, *names: str) -> IntervalSet:
    index = compiled[0].schema.member_index("app")
    return IntervalSet.of((index[n], index[n]) for n in names)


THROTTLE = """
set throttle_vpn_flows { typeof ct id; size 65535; flags dynamic,timeout; timeout 1m; }
chain throttle_vpn {
  update @throttle_vpn_flows { ct id limit rate over RATE/second } counter drop
  counter accept
}
"""


def test_each_verdict_and_the_default(tmp_path, compiled):
    table = read(tmp_path, compiled, """
        meta l4proto tcp ct original proto-dst 25 counter accept comment "dpipolicy rule a #0"
        meta l4proto tcp ct original proto-dst 26 counter log prefix "dpipolicy b " drop comment "dpipolicy rule b #1"
        meta l4proto tcp ct original proto-dst 27 counter reject with tcp reset
        meta l4proto udp ct original proto-dst 27 counter reject with icmpx admin-prohibited
        meta l4proto tcp ct original proto-dst 28 counter meta mark set 1 accept
        meta l4proto tcp ct original proto-dst 29 counter log goto throttle_vpn
        counter drop comment "dpipolicy rule default"
    """, THROTTLE.replace("RATE", "16000 bytes"))
    assert [r.action for r in table.rules] == [
        Action("allow"), Action("block", log=True), Action("reset"), Action("reset"),
        Action("redirect", target="topup"), Action("throttle", rate=128_000, log=True)]
    assert table.default == Action("block")
    assert boxes(table)[3] == {"proto": IntervalSet.point(17), "dst.port": IntervalSet.point(27)}
    names = [(r.origin.name, r.origin.location()) for r in table.rules[:3]]
    assert names[:2] == [("a", names[0][1]), ("b", names[1][1])] and names[0][1].startswith("kernel: chain rules, handle ")
    assert names[2][0].startswith("handle ")


def test_a_chain_without_a_final_rule_allows_what_falls_off(tmp_path, compiled):
    table = read(tmp_path, compiled, "meta l4proto tcp drop")
    assert table.default == Action("allow") and boxes(table) == [{"proto": IntervalSet.point(6)}]


def test_addresses_of_each_family_and_their_complements(tmp_path, compiled):
    table = read(tmp_path, compiled, """
        meta nfproto ipv4 ct original ip daddr { 10.0.0.1, 10.1.0.0/16, 10.2.0.1-10.2.0.9 } drop
        meta nfproto ipv6 ct original ip6 saddr != 2001:db8::/32 drop
        ct original ip saddr != 10.0.0.0/8 drop
        meta nfproto != ipv4 drop
        meta nfproto ipv6 ct original ip6 saddr 2001:db8::1 ct original ip6 saddr 2001:db8::2 drop
    """)
    assert boxes(table) == [
        {"src.ip": V4, "dst.ip": IntervalSet.point(ip("10.0.0.1")).union(net("10.1.0.0/16"))
         .union(IntervalSet.span(ip("10.2.0.1"), ip("10.2.0.9")))},
        {"src.ip": V6.difference(net("2001:db8::/32")), "dst.ip": V6},
        {"src.ip": V4.difference(net("10.0.0.0/8")), "dst.ip": V4},
        {"src.ip": V6, "dst.ip": V6},
    ]       # the last kernel rule meets no flow


def test_protocols_and_ports(tmp_path, compiled):
    table = read(tmp_path, compiled, """
        meta l4proto { icmp, 50-51, 132, 0, 41 } accept
        meta l4proto != tcp accept
        meta l4proto tcp ct original proto-dst { 25, 465-587 } drop
        meta l4proto udp ct original proto-src != 1024-65535 drop
        meta l4proto { 4-7 } accept
        meta l4proto sctp ct original proto-dst { 80, 1024-2047 } accept
    """)
    assert boxes(table) == [
        {"proto": IntervalSet.of([(0, 1), (41, 41), (50, 51), (132, 132)])},
        {"proto": IntervalSet.point(6).complement(0, 255)},
        {"proto": IntervalSet.point(6), "dst.port": IntervalSet.of([(25, 25), (465, 587)])},
        {"proto": IntervalSet.point(17), "src.port": IntervalSet.span(0, 1023)},
        {"proto": IntervalSet.span(4, 7)},
        {"proto": IntervalSet.point(132), "dst.port": IntervalSet.of([(80, 80), (1024, 2047)])},
    ]


def test_a_jump_to_a_chain_of_protocol_tests(tmp_path, compiled):
    """A rule that jumps to a chain (nftables.ProtocolChains) stands for one rule per rule of
    that chain, within its own tests, all with its tag; a flow none of them takes goes on."""
    rules, tags = read_tagged(tmp_path, compiled, """
        ct mark & 0x800 == 0 counter jump protocols_1 comment "dpipolicy rule a #0"
        meta l4proto tcp counter jump protocols_1 comment "dpipolicy rule b #1"
        meta l4proto udp counter accept comment "dpipolicy rule c #2"
    """, """
chain protocols_1 {
  meta l4proto tcp ct original proto-dst 25 counter log prefix "dpipolicy a " reject with tcp reset
  meta l4proto udp ct original proto-dst 25 counter reject with icmpx admin-prohibited
}
""")
    smtp = IntervalSet.point(25)
    assert [(r.box(), r.action) for r in rules.rules] == [
        ({"proto": IntervalSet.point(6), "dst.port": smtp, "direction": IntervalSet.point(0)},
         Action("reset", log=True)),
        ({"proto": IntervalSet.point(17), "dst.port": smtp, "direction": IntervalSet.point(0)}, Action("reset")),
        ({"proto": IntervalSet.point(6), "dst.port": smtp}, Action("reset", log=True)),
        ({"proto": IntervalSet.point(17)}, Action("allow"))]        # udp within tcp meets no flow
    assert tags == (0, 0, 1, 2)


def test_the_connection_mark_fields(tmp_path, compiled):
    many = len(compiled[1].labels) + 1
    table = read(tmp_path, compiled, f"""
        ct mark & 0x3ff {{ {label(compiled, 'smtp')}, {label(compiled, 'imap')}-{label(compiled, 'imaps')}, {many} }} drop
        ct mark & 0x3ff 0 drop
        ct mark & 0x400 != 0 ct mark & 0x800 == 0x800 drop
        ct mark & 0x800 {{ 0, 1 }} drop
        ct mark & 0x3ff != 0 ct mark & 0x400 {{ 0, 0x400 }} drop
        meta l4proto tcp drop
    """)
    assert table.default == Action("allow") and boxes(table)[:-1] == [
        {"app": app(compiled, "smtp", "imap", "imaps")},
        {"direction": IntervalSet.point(1), "tls": IntervalSet.point(1)},
        {"direction": IntervalSet.point(0)},
        {},
    ]       # label 0 and an unknown label match no flow; 1 under the direction's mask is no direction


def test_subscriber_sets_on_the_subscriber_side(tmp_path, compiled):
    table = read(tmp_path, compiled, """
        ct mark & 0x800 == 0 meta nfproto ipv4 ct original ip saddr @plan_payg_v4 drop
        meta nfproto ipv6 ct original ip6 daddr != @addon_vpn_v6 ct mark & 0x800 == 0x800 drop
        ct mark & 0x800 == 0 ct original ip6 saddr != @plan_monthly_v6 drop
    """)
    assert boxes(table) == [
        {"src.ip": V4, "dst.ip": V4, "direction": IntervalSet.point(0), "subscriber.plan": IntervalSet.point(0)},
        {"src.ip": V6, "dst.ip": V6, "direction": IntervalSet.point(1), "subscriber.addons:vpn": IntervalSet.point(0)},
        {"src.ip": V6, "dst.ip": V6, "direction": IntervalSet.point(0), "subscriber.plan": IntervalSet.point(0)},
    ]


def test_a_subscriber_set_on_the_other_side_is_an_error(tmp_path, compiled):
    errors = unread(tmp_path, compiled, """
        meta nfproto ipv4 ct original ip saddr @plan_payg_v4 drop
        ct mark & 0x800 == 0x800 meta nfproto ipv4 ct original ip saddr @plan_payg_v4 drop
        ct mark & 0x800 == 0 meta nfproto ipv4 ct original ip daddr @addon_vpn_v4 drop
    """)
    assert [(code, where.rsplit(".expr", 1)[1]) for code, where, _ in errors] == [
        ("E512", "[1].match.right"), ("E512", "[2].match.right"), ("E512", "[2].match.right")]
    assert "only on uplink flows" in errors[0][2] and "only on downlink flows" in errors[2][2]


def test_hours(tmp_path, compiled):
    table = read(tmp_path, compiled, """
        meta hour { "08:00"-"11:59:59", "13:00"-"14:59:59" } drop
        meta hour "21:59:59"-"06:00" drop
        meta hour "00:00"-"23:59:59" drop
        meta l4proto tcp drop
    """)
    assert boxes(table) == [{"time.hour": IntervalSet.of([(8, 11), (13, 14)])},
                            {"time.hour": IntervalSet.of([(0, 5), (22, 23)])}, {}, {"proto": IntervalSet.point(6)}]


def test_a_partial_hour_is_an_error(tmp_path, compiled):
    """nft keeps `"08:00"-"12:00"` inclusive of 12:00:00, and rewrites a range crossing midnight
    as the complement of its swapped ends, which leaves out both ends: not whole hours."""
    json_rules = kernel_json(tmp_path, 'meta hour "22:00"-"06:00" drop\nmeta hour "08:00"-"12:00" drop')
    shown = [r["rule"]["expr"][0]["match"] for r in json_rules["nftables"] if "rule" in r and r["rule"]["chain"] == CHAIN]
    assert (shown[0]["op"], shown[0]["right"]) == ("!=", {"range": ["06:00", "22:00"]})
    errors = unread(tmp_path, compiled, 'meta hour "22:00"-"06:00" drop\nmeta hour "08:00"-"12:00" drop\nmeta hour "08:00" drop')
    assert [code for code, *_ in errors] == ["E512"] * 3
    assert "part of hour 22 (22:00:01-22:59:59)" in errors[0][2] and "part of hour 12 (12:00:00-12:00:00)" in errors[1][2]


@pytest.mark.parametrize("rate, bps", [("1025 bytes", 8200), ("1500 kbytes", 1500 * 1024 * 8),
                                       ("1048576 bytes", 1024 ** 2 * 8), ("3 mbytes", 3 * 1024 ** 2 * 8)])
def test_throttle_rates_as_nft_prints_them(tmp_path, compiled, rate, bps):
    table = read(tmp_path, compiled, "goto throttle_vpn", THROTTLE.replace("RATE", rate))
    assert table.default == Action("throttle", rate=bps)


UNSUPPORTED = [         # (kernel rule, code, JSON path within the rule, words of the message)
    ("jump throttle_vpn", "E513", ".expr[0]", "`jump throttle_vpn`: a rule of that chain is not one"),
    ("log jump protocols_1", "E513", ".expr[1]", "`log` before `jump`"),
    ("jump protocols_2", "E513", ".expr[0]", "`jump` in a chain a rule jumps to"),
    ("reject", "E513", ".expr[0]", "icmpx"),
    ("meta l4proto tcp reject with icmpx admin-prohibited", "E513", ".expr[1]", "matches TCP"),
    ("ip saddr 1.2.3.4 accept", "E511", ".expr[0].match.left", "payload"),
    ("ct mark 5 accept", "E511", ".expr[0].match.left", "not a field"),
    ("ct mark & 0xc00 == 0 accept", "E511", ".expr[0].match.left", "not one field of the connection mark"),
    ("meta l4proto { tcp, udp } ct original proto-dst 53 accept", "E512", ".expr[1]", "naming one protocol"),
    ("ct original ip saddr @operator_mail accept", "E511", ".expr[0].match.right", "not a subscriber set"),
    ("log group 1 accept", "E513", ".expr[0]", "`log` with options"),
    ("counter log meta l4proto tcp accept", "E513", ".expr[2]", "a match after a statement"),
    ("meta l4proto tcp ct original proto-dst 25", "E513", "", "without a verdict"),
    ("meta mark set 1 drop", "E513", ".expr[1]", "followed by `drop`"),
    ("meta mark set 7 accept", "E513", ".expr[0]", "not a redirect target"),
    ("goto throttle_burst", "E513", ".expr[0]", "no burst"),      # the path is the throttle chain's rule
]
BAD_CHAINS = """
chain protocols_1 {
  meta l4proto tcp ct original proto-dst 25 counter drop
}
chain protocols_2 {
  meta l4proto tcp jump protocols_1
}
set operator_mail { type ipv4_addr; flags timeout; }
set throttle_burst_flows { typeof ct id; size 65535; flags dynamic,timeout; timeout 1m; }
chain throttle_burst {
  update @throttle_burst_flows { ct id limit rate over 16000 bytes/second burst 1000 bytes } drop
  accept
}
"""


def test_what_the_contract_does_not_define_is_an_error_at_its_path(tmp_path, compiled):
    """One error per kernel rule not understood, all of them at once, each at its JSON path."""
    ruleset = kernel_json(tmp_path, "\n".join(text for text, *_ in UNSUPPORTED), THROTTLE.replace("RATE", "16000 bytes") + BAD_CHAINS)
    at = {body["handle"]: i for i, o in enumerate(ruleset["nftables"]) if (body := o.get("rule"))}
    handles = [o["rule"]["handle"] for o in ruleset["nftables"] if "rule" in o and o["rule"]["chain"] == CHAIN]
    [burst] = [o["rule"]["handle"] for o in ruleset["nftables"] if "rule" in o and o["rule"]["chain"] == "throttle_burst"][:1]
    handles[-1] = burst
    table, contract = compiled
    with pytest.raises(DiagnosticError) as err:
        read_kernel_table(ruleset, contract, table.schema)
    got = [(d.code, d.location(), d.message) for d in err.value.diagnostics]
    assert [(code, where) for code, where, _ in got] == [
        (code, f"kernel: nftables[{at[h]}].rule{path}") for (_, code, path, _), h in zip(UNSUPPORTED, handles)]
    for (_, _, _, words), (_, _, message) in zip(UNSUPPORTED, got):
        assert words in message, message


def test_a_statement_after_the_verdict_and_a_strange_base_chain(tmp_path, compiled):
    table, contract = compiled
    ruleset = kernel_json(tmp_path, "meta l4proto tcp drop")
    [rule] = [o["rule"] for o in ruleset["nftables"] if "rule" in o and o["rule"]["chain"] == CHAIN]
    rule["expr"].append({"counter": None})
    with pytest.raises(DiagnosticError, match="after the rule's verdict"):
        read_kernel_table(ruleset, contract, table.schema)
    [chain] = [o["chain"] for o in ruleset["nftables"] if "chain" in o and o["chain"]["name"] == "forward"]
    chain["policy"] = "drop"
    with pytest.raises(DiagnosticError, match="policy drop"):
        read_kernel_table(ruleset, contract, table.schema)
    with pytest.raises(DiagnosticError, match="no chain `rules`"):
        read_kernel_table(ruleset, dataclasses.replace(contract, table="other"), table.schema)


def kernel_of_policy(compiled, mail_ports="465-587", smtp="drop", vpn_v6=True) -> str:
    vpn, v6 = label(compiled, "openvpn"), ""
    if vpn_v6:
        v6 = (f'ct mark & 0x800 == 0 ct mark & 0x3ff {vpn} meta nfproto ipv6 ct original ip6 saddr @plan_payg_v6 '
              f'counter goto throttle_vpn comment "dpipolicy rule vpn #2"')
    return f"""
        meta l4proto tcp ct original proto-dst 25 counter {smtp} comment "dpipolicy rule smtp #0"
        meta nfproto ipv4 meta l4proto tcp ct original ip daddr 10.0.0.0/8 ct original proto-dst {mail_ports} counter log prefix "dpipolicy mail " reject with tcp reset comment "dpipolicy rule mail #1"
        ct mark & 0x800 == 0 ct mark & 0x3ff {vpn} meta nfproto ipv4 ct original ip saddr @plan_payg_v4 counter goto throttle_vpn comment "dpipolicy rule vpn #2"
        {v6}
        meta hour != "06:00"-"21:59:59" meta l4proto udp counter drop comment "dpipolicy rule night #3"
        ct mark & 0x800 == 0x800 ct mark & 0x3ff {vpn} meta nfproto ipv4 ct original ip daddr != @addon_vpn_v4 counter meta mark set 1 accept comment "dpipolicy rule portal #4"
        ct mark & 0x800 == 0x800 ct mark & 0x3ff {vpn} meta nfproto ipv6 ct original ip6 daddr != @addon_vpn_v6 counter meta mark set 1 accept comment "dpipolicy rule portal #4"
        counter accept comment "dpipolicy rule default"
    """


LIMITS = Limits(timeout_s=30)


@pytest.mark.parametrize("tags", ["as written", "none", "lying"])
def test_the_kernel_check_proves_an_equivalent_kernel_table(tmp_path, compiled, tags):
    """By runs of tagged rules, or by the diff when the tags are missing or group the rules
    wrongly (tags only speed the proof up; a wrong one must not make it pass or fail)."""
    rules = kernel_of_policy(compiled)
    if tags == "none":
        rules = re.sub(r' comment "[^"]*"', "", rules)
    elif tags == "lying":
        rules = rules.replace('"dpipolicy rule mail #1"', '"dpipolicy rule mail #0"')
    kernel = read_tagged(tmp_path, compiled, rules, THROTTLE.replace("RATE", "16000 bytes"))
    check = kernel_equivalence(compiled[0], kernel, LIMITS)
    assert check.status == "proved" and (check.rules, check.kernel_rules) == (5, 7)
    assert check.text().startswith("the kernel's copy (7 kernel rules) proved equal to the compiled table (5 match rules)")


@pytest.mark.parametrize("change, shows", [
    ({"mail_ports": "465-588"}, [" -> 10.", ":588 ", "the kernel reset, log by rule `mail` (kernel: chain rules, handle "]),
    ({"vpn_v6": False}, ["udp [", "app=openvpn", "throttle 128kbps by rule `vpn` (", "policy.dpi:7:1)"]),
    ({"smtp": "accept"}, [":25 ", "block by rule `smtp`", "allow by rule `smtp` (kernel: chain rules, handle "]),
])
def test_the_kernel_check_shows_a_flow_the_kernel_decides_otherwise(tmp_path, compiled, change, shows):
    kernel = read_tagged(tmp_path, compiled, kernel_of_policy(compiled, **change), THROTTLE.replace("RATE", "16000 bytes"))
    with pytest.raises(KernelMismatch) as err:
        kernel_equivalence(compiled[0], kernel, LIMITS)
    for words in shows:
        assert words in str(err.value), str(err.value)
