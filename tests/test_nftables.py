"""The nftables backend: every action and field written as docs/enforcement.md says, every
script loaded by the real `nft` in a fresh network namespace, and what it cannot express
refused at the rule (or, with --approximate, listed)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.compiler.netns import run_in_namespace

from helpers import EXAMPLES, run_cli, write_policy

HEADER = """policy p
enum plan { payg, monthly, business }
enum addon { vpn, tethering }
"""


def compiled(tmp_path: Path, body: str, approximate: bool = False, header: str = HEADER):
    path = write_policy(tmp_path, header + body)
    return TARGETS["nftables"].compile(api.load(path).table, Options(str(path), approximate=approximate))


def rules_of(text: str) -> list[str]:
    """The lines of chain match_rules, each set of constants written in place (`@ports_1` as
    `{ 25, 465-587 }`), as a reader of the rules takes them."""
    sets = dict(re.findall(r"^    set ((?:protocols|ports|addresses_v[46]|marks|hours)_\d+) \{ [^;]+; flags interval; "
                           r"elements = (\{ .* \}) \}$", text, re.M))
    text = re.sub(r"@(\w+)", lambda m: sets.get(m.group(1), m.group(0)), text)
    lines = text.splitlines()
    start = lines.index("    chain match_rules {")
    end = lines.index("    }", start)
    return [line.strip() for line in lines[start + 1:end]]


def loaded(text: str, tmp_path: Path, before: str = "") -> str:
    """The kernel's listing of the script's table, after `before` (more nft commands) and the script."""
    script = tmp_path / "policy.nft"
    script.write_text(text, encoding="utf-8")
    run = run_in_namespace(["sh", "-c", f'{before} nft -f "$1" && nft -f "$1" && nft list ruleset', "sh", str(script)])
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout.decode()


@pytest.mark.parametrize("action, words", [
    ("allow", "counter accept"),
    ("block", "counter drop"),
    ("allow, log", 'counter log prefix "dpipolicy r " accept'),
    ('redirect "http://portal.example/topup"', "counter meta mark set 1 accept"),
    ("throttle 128kbps", "counter goto throttle_16000"),
])
def test_each_action(tmp_path, action, words):
    out = compiled(tmp_path, f"default allow\nrule r when proto == udp then {action}\n")
    first = rules_of(out.text)[0]
    assert first == f'meta l4proto udp {words} comment "dpipolicy rule r #0"'
    assert "table inet dpipolicy" in loaded(out.text, tmp_path)


def test_throttle_polices_each_flow_with_one_meter_per_rate(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when proto == udp then throttle 128kbps\n"
                             "rule s when proto == tcp then throttle 128kbps\n"
                             "rule t when proto == icmp then throttle 64kbps\n")
    assert out.text.count("typeof ct id;") == 2
    assert "set throttle_16000_flows { typeof ct id; size 65535; flags dynamic,timeout; timeout 10m; }" in out.text
    assert "update @throttle_16000_flows { ct id limit rate over 16000 bytes/second } counter drop" in out.text
    assert "update @throttle_8000_flows { ct id limit rate over 8000 bytes/second } counter drop" in out.text
    assert re.findall(r"goto (throttle_\d+) comment \"dpipolicy rule (\w)", out.text) == \
        [("throttle_16000", "r"), ("throttle_16000", "s"), ("throttle_8000", "t")]
    listing = loaded(out.text, tmp_path)
    assert "limit rate over 16000 bytes/second" in listing


def test_reset_is_a_tcp_reset_for_tcp_and_an_icmp_error_for_the_rest(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when dst.ip in 192.0.2.0/24 then reset\n")
    rules = rules_of(out.text)
    assert rules[0].startswith("meta nfproto ipv4 meta l4proto tcp ct original ip daddr 192.0.2.0/24 counter "
                               "reject with tcp reset")
    assert rules[1].startswith("meta nfproto ipv4 meta l4proto { 0-5, 7-255 } ct original ip daddr 192.0.2.0/24")
    assert rules[1].endswith('reject with icmpx admin-prohibited comment "dpipolicy rule r #0"')
    loaded(out.text, tmp_path)


def test_default_reset_splits_too(tmp_path):
    out = compiled(tmp_path, "default reset\n")
    assert rules_of(out.text) == ['meta l4proto tcp counter reject with tcp reset comment "dpipolicy rule default"',
                                  'meta l4proto != tcp counter reject with icmpx admin-prohibited comment '
                                  '"dpipolicy rule default"']
    loaded(out.text, tmp_path)


def test_addresses_by_family_on_the_original_tuple(tmp_path):
    out = compiled(tmp_path, "default allow\nset mail = { 149.254.200.0/24, 2a01:4c8:100::/48 }\n"
                             "rule r when dst.ip not in mail and src.ip in 10.0.0.0/8 then block\n")
    # a source of IPv4 only: IPv6 flows cannot match, so one kernel rule
    assert rules_of(out.text)[0] == ("meta nfproto ipv4 ct original ip saddr 10.0.0.0/8 ct original ip daddr != "
                                     '149.254.200.0/24 counter drop comment "dpipolicy rule r #0"')
    out = compiled(tmp_path, "default allow\nset mail = { 149.254.200.0/24, 2a01:4c8:100::/48 }\n"
                             "rule r when dst.ip not in mail then block\n")
    assert [r.split(" counter")[0] for r in rules_of(out.text)[:2]] == [
        "meta nfproto ipv4 ct original ip daddr != 149.254.200.0/24",
        "meta nfproto ipv6 ct original ip6 daddr != 2a01:4c8:100::/48"]
    loaded(out.text, tmp_path)


def test_ports_need_one_transport_protocol(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when dst.port in {25, 465..587} then block\n")
    heads = [r.split(" counter")[0] for r in rules_of(out.text)[:-1]]
    assert heads == [f"meta l4proto {p} ct original proto-dst {{ 25, 465-587 }}"
                     for p in ("tcp", "udp", "dccp", "sctp", "udplite")]
    # port 0 is the port of every protocol without ports
    out = compiled(tmp_path, "default allow\nrule r when src.port in 0..1023 and proto in {udp, icmp} then block\n")
    heads = [r.split(" counter")[0] for r in rules_of(out.text)[:-1]]
    assert heads == ["meta l4proto udp ct original proto-src 0-1023", "meta l4proto icmp"]
    loaded(out.text, tmp_path)


def test_mark_fields(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when app in {smtp, submission} and tls and direction == downlink "
                             "then block\n")
    contract = out.contract.to_json()
    numbers = {name: int(n) for n, name in contract["connection_mark"]["app"].items()}
    smtp = numbers["smtp"]
    assert numbers["submission"] == smtp + 1
    assert rules_of(out.text)[0] == (f"ct mark and 0x800 == 0x800 ct mark and 0x3ff == 0x{smtp:x}-0x{smtp + 1:x} "
                                     'ct mark and 0x400 == 0x400 counter drop comment "dpipolicy rule r #0"')
    loaded(out.text, tmp_path)


def test_subscriber_sets_by_side_and_family(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when subscriber.plan == payg and vpn not in subscriber.addons "
                             "and direction == uplink then block\n")
    assert [r.split(" counter")[0] for r in rules_of(out.text)[:2]] == [
        "meta nfproto ipv4 ct mark and 0x800 == 0x0 ct original ip saddr @plan_payg_v4 "
        "ct original ip saddr != @addon_vpn_v4",
        "meta nfproto ipv6 ct mark and 0x800 == 0x0 ct original ip6 saddr @plan_payg_v6 "
        "ct original ip6 saddr != @addon_vpn_v6"]
    # without the direction, one kernel rule per side: the subscriber is the destination downlink
    out = compiled(tmp_path, "default allow\nrule r when subscriber.plan != business then block\n")
    rules = rules_of(out.text)
    assert len(rules) == 5
    assert "ct mark and 0x800 == 0x800 ct original ip daddr != @plan_business_v4" in rules[1]
    loaded(out.text, tmp_path)


def test_plans_as_one_set_or_the_others(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when subscriber.plan in {payg, monthly} "
                             "and direction == uplink then block\n")
    assert "ct original ip saddr != @plan_business_v4" in rules_of(out.text)[0]


def test_usage_tiers(tmp_path):
    out = compiled(tmp_path, "default allow\nrule a when subscriber.usage > 3GB and direction == uplink then block\n"
                             "rule b when subscriber.usage > 20GB and direction == uplink then block\n")
    tiers = [s for s in out.contract.to_json()["subscriber_sets"] if s["field"] == "subscriber.usage"]
    assert [(t["usage"]["from_bytes"], t["usage"]["to_bytes"]) for t in tiers] == [
        (0, 3 * 10**9), (3 * 10**9 + 1, 20 * 10**9), (20 * 10**9 + 1, 10**15)]
    rules = rules_of(out.text)
    assert "ct original ip saddr != @usage_0_v4" in rules[0]
    assert "ct original ip saddr @usage_2_v4" in rules[2]
    loaded(out.text, tmp_path)


def test_hours_never_cross_midnight(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when time.hour >= 22 or time.hour < 6 then block\n")
    heads = [r.split(" counter")[0] for r in rules_of(out.text)[:-1]]
    assert heads == ['meta hour { "00:00"-"05:59:59", "22:00"-"23:59:59" }']
    loaded(out.text, tmp_path)


def test_protocol_numbers(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when proto in {gre, 200..210} then block\n")
    assert rules_of(out.text)[0].startswith("meta l4proto { gre, 200-210 } counter drop")
    loaded(out.text, tmp_path)


def test_the_script_replaces_its_own_table_only(tmp_path):
    out = compiled(tmp_path, "default allow\nrule r when proto == udp then block\n")
    listing = loaded(out.text, tmp_path, before="nft add table inet other && nft add chain inet other c && ")
    assert "table inet other" in listing
    assert listing.count("table inet dpipolicy") == 1 and listing.count("meta l4proto udp") == 1


def test_inexact_rate_is_an_error_at_the_rule(tmp_path):
    with pytest.raises(DiagnosticError) as err:
        compiled(tmp_path, "default allow\nrule r when proto == udp then throttle 1001bps\n")
    d = err.value.diagnostics[0]
    assert d.code == "E501" and d.location().endswith("policy.dpi:5:1")
    assert "--approximate" in d.help


def test_approximation_is_listed_and_in_the_contract(tmp_path):
    path = write_policy(tmp_path, HEADER + "default allow\nrule r when proto == udp then throttle 1001bps\n")
    code, _, err = run_cli("compile", path, "--target", "nftables", "--approximate", "-o", tmp_path / "p.nft",
                           "--contract", tmp_path / "c.json", "--validate=off")
    assert code == 0, err
    assert "approximated:" in err and "policed at 126 bytes per second (1008 bps)" in err
    contract = json.loads((tmp_path / "c.json").read_text())
    assert contract["approximations"][0]["rule"] == "r"
    assert "limit rate over 126 bytes/second" in (tmp_path / "p.nft").read_text()


def test_nftables_options_need_the_target(tmp_path):
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--contract", tmp_path / "c.json")
    assert code == 2 and "E322" in err
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--target", "nftables", "--table", "1x")
    assert code == 2 and "E322" in err


def test_uk_mobile_script_loads(tmp_path):
    code, out, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "--target", "nftables", "--validate=off")
    assert code == 0, err
    assert "reject with tcp reset" in out
    loaded(out, tmp_path)


def test_sets_of_constants_are_named_once(tmp_path):
    out = compiled(tmp_path, "default allow\nrule a when proto == tcp and dst.port in {25, 587} then block\n"
                             "rule b when proto == tcp and dst.port in {25, 587} and src.ip in 10.0.0.0/8 then reset\n")
    assert out.text.count("set ports_1 { type inet_service; flags interval; elements = { 25, 587 } }") == 1
    assert "ports_2" not in out.text
    assert [r.count("@ports_1") for r in out.text.splitlines() if "comment" in r] == [1, 1, 0]
    loaded(out.text, tmp_path)


@pytest.mark.parametrize("name", ["policy-2011-08", "policy-2011-09"])
def test_shipped_scripts_are_what_compile_writes(tmp_path, monkeypatch, name):
    """examples/uk-mobile/ ships the scripts (and September's contract) for readers; they must
    stay what the compiler writes. Refresh: dpipolicy compile POLICY --target nftables -o ..."""
    monkeypatch.chdir(EXAMPLES.parents[1])
    extra = ["--contract", str(tmp_path / "contract.json")] if name == "policy-2011-09" else []
    code, _, err = run_cli("compile", f"examples/uk-mobile/{name}.dpi", "--target", "nftables",
                           "-o", tmp_path / "out.nft", *extra)
    assert code == 0, err
    assert (tmp_path / "out.nft").read_text() == (EXAMPLES / f"{name}.nft").read_text()
    if extra:
        assert (tmp_path / "contract.json").read_text() == (EXAMPLES / "contract-2011-09.json").read_text()
