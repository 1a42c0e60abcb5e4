"""`ct.state`, `icmp.type`, `iface.in` and `iface.out` (language.md, "Firewall fields"): fields
that exist only when used, the checker's errors, ICMP names by the protocol a condition pins,
rule tables, specs, witnesses, explain, diff, lint, fmt and profiles; and the nftables target
in a real kernel (the kernel check proves each field, and a kernel that differs is caught),
with `probe`, which lists what it cannot send."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.compiler.tablefile import table_text
from dpipolicy.dsl.schema import CT_STATE, ICMP_TYPE, IFACE_IN, IFACE_OUT, SNI
from dpipolicy.verifier.kernel import KernelMismatch, kernel_copy, kernel_equivalence
from dpipolicy.verifier.solve import Limits

from helpers import EXAMPLES, run_cli, write_policy

POLICY = """set uplinks = { "eth5", "ppp*" }
set pings = { echo-request, echo-reply }
default allow
rule established when ct.state in {established, related} then allow
rule invalid when ct.state == invalid then block
rule ping when proto == icmp and icmp.type in pings and iface.in in uplinks then allow, log
rule ping6 when proto == icmpv6 and icmp.type == echo-request then allow
rule tunnels when iface.out == "tun*" and iface.in != "eth0" then block
rule unreachable when icmp.type in {3, 11} then reset
rule lan when iface.in in {"eth*", "ppp0"} and iface.in not in {"eth0", "eth1"} then block
"""


def load(tmp_path, text: str = POLICY, *specs: str):
    paths = tuple(write_policy(tmp_path, spec, f"spec{k}.dpi") for k, spec in enumerate(specs))
    return api.load(write_policy(tmp_path, text), paths)


def check(tmp_path, text: str, *more: str):
    return run_cli("check", write_policy(tmp_path, text), *more)


def values(loaded, rule: str, field: str):
    return next(r for r in loaded.table.rules if r.origin.name == rule).box()[field]


# ----- the fields exist only when used --------------------------------------------------------

def test_a_policy_that_names_none_of_them_has_none_of_them(tmp_path):
    loaded = load(tmp_path, 'set s = { "spotify.com" }\ndefault allow\nrule r when dst.port == 25 then block\n')
    names = [f.name for f in loaded.table.schema.flow_fields]
    assert not {CT_STATE, ICMP_TYPE, IFACE_IN, IFACE_OUT} & set(names) and SNI in names
    assert not {"fields", "interfaces"} & set(json.loads(table_text(loaded.table)))


@pytest.mark.parametrize("condition, fields", [
    ("ct.state == new", [CT_STATE]), ("icmp.type == 8", [ICMP_TYPE]), ('iface.out == "tun*"', [IFACE_OUT]),
    ('iface.in == "eth0" and ct.state != invalid', [CT_STATE, IFACE_IN])])
def test_each_field_exists_when_a_condition_names_it_after_dst_port(tmp_path, condition, fields):
    schema = load(tmp_path, f"default allow\nrule r when {condition} then block\n").table.schema
    names = [f.name for f in schema.flow_fields]
    assert [n for n in names if n in (ICMP_TYPE, CT_STATE, IFACE_IN, IFACE_OUT)] == fields
    assert names[names.index("dst.port") + 1] == fields[0] and SNI not in names


def test_strings_belong_to_the_field_they_are_used_with(tmp_path):
    """A set of interface names used with `iface.in` declares no server names; one used with
    both fields declares its names for each."""
    loaded = load(tmp_path, 'set ifs = { "eth0", "wan" }\nset both = { "ppp*" }\ndefault allow\n'
                            'rule a when iface.in in ifs then block\n'
                            'rule b when iface.in in both or iface.out in both then block\n')
    schema = loaded.table.schema
    assert schema.field(SNI) is None
    assert schema.field(IFACE_IN).members == ("other", "eth0", "ppp*", "wan")
    assert schema.field(IFACE_OUT).members == ("other", "ppp*")


def test_a_set_nothing_uses_may_hold_interface_names(tmp_path):
    code, _, err = check(tmp_path, 'set ifs = { "eth0", "tun*", "a.com" }\nset bad = { "eth 0" }\ndefault allow\n')
    assert code == 2 and err.count("error[") == 1 and "error[E196]: `eth 0` has a space" in err


# ----- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, code_, where, message", [
    ('iface.in == "tun+"', "E196", "2:25", "`tun+` is written as iptables writes a pattern"),
    ('iface.out in {"eth0", "a*b"}', "E196", "2:35", "`a*b` has `*` inside it"),
    ('iface.in == "abcdefghijklmnop"', "E196", "2:25", "the interface name is 16 characters long"),
    ("icmp.type == echo-request", "E197", "2:26", "`echo-request` names an ICMP type only once the protocol"),
    ("proto in {icmp, icmpv6} and icmp.type == echo-reply", "E197", "2:54", "only once the protocol is known"),
    ("proto == icmp and icmp.type == nd-neighbor-solicit", "E197", "2:44", "is an icmpv6 type, not an icmp one"),
    ("proto == icmp and icmp.type == echo", "E106", "2:44", "`echo` is not an ICMP type"),
    ("icmp.type == 256", "E111", "2:26", "ICMP type 256 is out of range"),
    ("ct.state == open", "E103", "2:25", "unknown connection-tracking state `open`"),
    ("ct.state < new", "E124", "2:13", "`<` needs an ordered field"),
    ('iface.in < "eth0"', "E124", "2:13", "`iface.in` is an interface name"),
    ("iface.in == eth0", "E106", "2:25", "`eth0` is not an interface name")])
def test_bad_values_are_errors_at_their_place(tmp_path, condition, code_, where, message):
    code, _, err = check(tmp_path, f"default allow\nrule r when {condition} then block\n")
    assert code == 2 and f"error[{code_}]: " in err and f"policy.dpi:{where}" in err and message in err, err
    assert "Traceback" not in err


def test_the_fields_are_known_where_a_policy_does_not_test_them(tmp_path):
    """A misspelt one is suggested; a flow that gives one the policy does not test is told so."""
    code, _, err = check(tmp_path, 'default allow\nrule r when proto == tcp and iface.up == "x" then block\n')
    assert code == 2 and "error[E101]: unknown field `iface.up`" in err and "did you mean `iface.out`?" in err
    path = write_policy(tmp_path, "default allow\nrule r when dst.port == 25 then block\n")
    code, _, err = run_cli("explain", path, "--flow", "proto=tcp ct.state=new")
    assert code == 2 and "error[E310]: the policy does not test `ct.state`" in err
    assert "leave `ct.state` out of the flow" in err


def test_patterns_that_leave_a_value_no_name_are_an_error_at_the_pattern(tmp_path):
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-."
    many = ", ".join(['"ab"'] + [f'"ab{c}*"' for c in alphabet])
    code, _, err = check(tmp_path, f"set many = {{ {many} }}\ndefault allow\n"
                                   f'rule r when iface.in in many or iface.in == "ab*" then block\n')
    assert code == 2 and "error[E198]: `ab*` holds no interface name" in err and "policy.dpi:3:45" in err


# ----- ICMP type names, by the protocol a condition pins ---------------------------------------

def test_names_mean_the_numbers_of_the_protocol_the_conjunction_pins(tmp_path):
    loaded = load(tmp_path, """set pings = { echo-request, echo-reply }
default allow
rule v4 when proto == icmp and icmp.type in pings then block
rule v6 when proto == icmpv6 and (icmp.type in pings or icmp.type == packet-too-big) then block
rule numbers when icmp.type in {3, 11} then block
rule in_one when proto in {58} and not icmp.type == destination-unreachable then block
""")
    assert values(loaded, "v4", ICMP_TYPE).intervals == ((0, 0), (8, 8))
    assert values(loaded, "v6", ICMP_TYPE).intervals == ((2, 2), (128, 129))     # one protocol: one rule
    assert values(loaded, "numbers", ICMP_TYPE).intervals == ((3, 3), (11, 11))
    assert 1 not in values(loaded, "in_one", ICMP_TYPE) and 0 in values(loaded, "in_one", ICMP_TYPE)


def test_explain_reads_a_type_name_in_the_flows_protocol(tmp_path):
    path = write_policy(tmp_path, POLICY)
    code, out, _ = run_cli("explain", path, "--flow", "proto=icmpv6 icmp.type=echo-request ct.state=new")
    assert code == 0 and "outcome: allow (rule ping6" in out
    code, _, err = run_cli("explain", path, "--flow", "icmp.type=echo-request")
    assert code == 2 and "error[E310]: `echo-request` names an ICMP type only with the protocol" in err


# ----- tables, specs, reports -------------------------------------------------------------------

def test_a_table_lists_the_fields_and_the_interface_names_and_reads_back(tmp_path):
    code, _, err = run_cli("compile", write_policy(tmp_path, POLICY), "-o", tmp_path / "rules.json")
    assert code == 0, err
    data = json.loads((tmp_path / "rules.json").read_text())
    assert data["fields"] == ["icmp.type", "ct.state"]
    assert data["interfaces"] == {"iface.in": ["eth*", "eth0", "eth1", "eth5", "ppp*", "ppp0"],
                                  "iface.out": ["tun*"]}
    rule = next(r for r in data["rules"] if r["rule"] == "ping")
    assert rule["match"] == {"proto": ["icmp"], "icmp.type": ["0", "8"], "iface.in": ["eth5", "ppp*", "ppp0"]}
    table = api.load(tmp_path / "rules.json").table
    assert table.schema == load(tmp_path).table.schema


@pytest.mark.parametrize("change, message", [
    ({"fields": ["ct.state", "ct.state"]}, "`ct.state` is listed twice"),
    ({"fields": ["iface.in"]}, "`iface.in` is listed with its names under `interfaces`"),
    ({"interfaces": {"iface.in": ["eth0", "eth*"]}}, "each pattern right before the names that start with it"),
    ({"interfaces": {"iface.in": ["eth+"]}}, "iptables"),
    ({"interfaces": {"iface.up": []}}, "unknown key `iface.up`"),
    ({"rules": [{"rule": "r", "action": {"kind": "block"}, "match": {"iface.out": ["eth0"]}}]},
     "`iface.out` is a field only when `interfaces` lists it"),
    ({"rules": [{"rule": "r", "action": {"kind": "block"}, "match": {"iface.in": ["eth7"]}}]},
     "`eth7` is not a value of `iface.in`"),
    ({"rules": [{"rule": "r", "action": {"kind": "block"}, "match": {"ct.state": ["new"]}}], "fields": []},
     "`ct.state` is a field only when `fields` lists it")])
def test_a_table_with_bad_fields_is_an_error_at_its_path(tmp_path, change, message):
    data = {"format": "dpipolicy-rule-table", "version": 2, "default": {"kind": "allow"}, "rules": [],
            "interfaces": {"iface.in": ["eth*", "eth0"]}, **change}
    (tmp_path / "rules.json").write_text(json.dumps(data))
    code, _, err = run_cli("check", tmp_path / "rules.json")
    assert code == 2 and "error[E301]" in err and message in err, err


def test_a_spec_adds_fields_and_names_to_a_table(tmp_path):
    run_cli("compile", write_policy(tmp_path, POLICY), "-o", tmp_path / "rules.json")
    spec = write_policy(tmp_path, 'test ppp7 given proto == icmp and icmp.type == echo-request and ct.state == new '
                                  'and iface.in == "ppp7" expect allow, log\n'
                                  'invariant wlan_out when iface.out == "wlan*" and ct.state == invalid '
                                  'require action == block\n', "spec.dpi")
    code, out, err = run_cli("check", tmp_path / "rules.json", "--spec", spec)
    assert code == 0, out + err
    assert "passed   ppp7" in out and "holds    wlan_out" in out


def test_a_counterexample_shows_real_looking_interfaces_and_messages(tmp_path):
    """The counterexample is a flow of the first rule that violates (`tunnels`): a name under
    `eth*` that no declared name takes, and the first name under `tun*`."""
    code, out, _ = check(tmp_path, POLICY + 'invariant lan_pings when proto == icmp and icmp.type == echo-request '
                                             'and ct.state == new and iface.in == "eth*" require action == allow\n',
                         "--format", "json")
    result = json.loads(out)["results"][0]
    flow = result["counterexample"]["flow"]
    assert code == 1 and flow["iface.in"] == "eth2" and flow["icmp.type"] == 8 and flow["ct.state"] == "new"
    assert "icmp.type=echo-request ct.state=new iface.in=eth2 iface.out=tun0" in result["counterexample"]["flow_text"]
    assert [r["rule"] for r in result["region"]] == ["tunnels", "lan"]
    assert 'iface.in == "eth*"' in result["region"][0]["text"] and 'iface.out != "tun*"' in result["region"][1]["text"]


def test_diff_reports_what_a_new_interface_name_changes(tmp_path):
    old = write_policy(tmp_path, 'default allow\nrule wan when iface.in == "eth*" then block\n', "old.dpi")
    new = write_policy(tmp_path, 'default allow\nrule lan when iface.in == "eth0" then allow\n'
                                 'rule wan when iface.in == "eth*" then block\n', "new.dpi")
    code, out, _ = run_cli("diff", old, new)
    assert code == 1 and 'iface.in == "eth0"' in out and "block" in out and "allow" in out


def test_lint_fmt_and_profiles(tmp_path):
    path = write_policy(tmp_path, 'set ifs={"eth*","eth0"}\ndefault allow\n'
                                  'rule r when proto==icmp and icmp.type==echo-request and iface.in in ifs then block\n')
    code, out, _ = run_cli("lint", path)
    assert "L402" in out and '`"eth0"` is inside `"eth*"`' in out
    assert run_cli("fmt", path)[0] == 0
    assert 'icmp.type == echo-request and iface.in in ifs' in path.read_text()
    profile = tmp_path / "p.yaml"
    profile.write_text("version: 1\nname: p\nunobservable: [ct.state]\n")
    code, _, err = run_cli("check", path, "--profile", profile)
    assert code == 2 and "error[E404]" in err and "read by the firewall, not by the DPI engine" in err


# ----- the nftables target in a real kernel ----------------------------------------------------

def compiled_of(tmp_path, text: str = POLICY):
    return TARGETS["nftables"].compile(load(tmp_path, text).table, Options("policy.dpi"))


def test_the_script_tests_each_field_as_nft_does(tmp_path):
    """`ping`'s interfaces are eth5, ppp* and ppp0, which `"ppp*"` holds in nft's set (an interval
    set refuses elements that overlap)."""
    text = compiled_of(tmp_path).text
    for words in ("ct state @ct_states_1", "ct state invalid", "meta l4proto icmp icmp type @icmp_types_1",
                  'iifname @interfaces_1', "meta l4proto icmpv6 icmpv6 type 128", 'iifname != "eth0" oifname "tun*"',
                  'iifname "ppp0"', 'iifname "eth*" iifname != @interfaces_2',
                  'set interfaces_1 { type ifname; flags interval; elements = { "eth5", "ppp*" } }'):
        assert words in text, words


def test_the_kernels_copy_is_the_table(tmp_path):
    compiled = compiled_of(tmp_path)
    assert kernel_equivalence(compiled.table, kernel_copy(compiled), Limits()).status == "proved"


@pytest.mark.parametrize("before, after", [
    ("ct state invalid", "ct state new"),                       # another state
    ("elements = { established, related }", "elements = { established }"),
    ('iifname != "eth0"', 'iifname != "eth1"'),                 # another interface
    ('iifname "ppp0"', 'iifname "eth5"'),
    ("icmpv6 type 128", "icmpv6 type 129"),                      # another type
    ("elements = { 0, 8 }", "elements = { 0, 9 }"),
])
def test_a_kernel_that_differs_in_a_field_is_caught_with_a_flow(tmp_path, before, after):
    compiled = compiled_of(tmp_path)
    assert before in compiled.text
    wrong = dataclasses.replace(compiled, text=compiled.text.replace(before, after, 1))
    with pytest.raises(KernelMismatch, match="for example"):
        kernel_equivalence(compiled.table, kernel_copy(wrong), Limits())


def test_compile_runs_the_kernel_check(tmp_path):
    code, _, err = run_cli("compile", write_policy(tmp_path, POLICY), "--target", "nftables",
                           "-o", tmp_path / "p.nft", "--validate=required")
    assert code == 0 and "kernel check: the kernel's copy (9 kernel rules) proved equal" in err, err


def test_probe_sends_what_it_can_and_says_why_not_the_rest(tmp_path):
    policy = write_policy(tmp_path, """default allow
rule invalid when ct.state == invalid then block
rule ssh when ct.state == new and proto == tcp and dst.port == 22 then reset
rule wan_ping when proto == icmp and icmp.type == echo-request and iface.in == "eth0" then block
rule ping when proto == icmp and icmp.type == echo-request then block, log
rule dns when iface.out == "lo" and proto == udp and dst.port == 53 then block
rule tunnels when iface.out == "tun*" then block
""")
    code, out, err = run_cli("probe", policy, "--format", "json",
                             "--flow", "proto=icmp icmp.type=echo-reply", "--flow", "proto=tcp dst.port=80")
    assert code == 0, out + err
    report = json.loads(out)
    sent = {f["why"]: f for f in report["flows"]}
    assert all(f["agrees"] for f in report["flows"])
    assert "iface.out=lo" in sent["witness of rule dns #4"]["flow"]
    # ICMP has no ports; the probe's packets come from the host (no input interface) and leave by `lo`
    assert sent["witness of rule ping #3"]["flow"].startswith("icmp 10.0.0.7 -> 74.125.206.108 icmp.type=echo-request "
                                                              'ct.state=new iface.in="" iface.out=lo ')
    assert "--flow proto=tcp dst.port=80" in sent
    why_not = {u["why"]: u["reason"] for u in report["not_sent"]}
    assert "cannot send a packet of another state" in why_not["witness of rule invalid #0"]
    assert "decides by #1 and the default" in why_not["witness of rule ssh #1"]
    assert "no input interface" in why_not["witness of rule wan_ping #2"]
    assert "leave through `lo`" in why_not["witness of rule tunnels #5"]
    assert "echo requests only" in why_not["--flow proto=icmp icmp.type=echo-reply"]


def test_the_uk_mobile_policies_compile_as_before(tmp_path):
    """No firewall field: the script and table are those of before (the goldens hold them too)."""
    compiled = TARGETS["nftables"].compile(api.load(EXAMPLES / "policy-2011-09.dpi").table,
                                           Options("policy-2011-09.dpi"))
    assert "ct state" not in compiled.text and "iifname" not in compiled.text and "icmp type" not in compiled.text
