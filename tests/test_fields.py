"""The fields of language.md section 11 (but `tls.sni`): `time.day`, `network.congested`,
`flow.tethered` (and `dpi.tethered` under a profile), `subscriber.zone`, `subscriber.apn` and
`subscriber.rat`, each through the checker (errors at their place), the compiler and rule table,
invariants and tests, the witness and `explain`, lint, engine profiles, the nftables target
with its contract, the kernel check and `probe`, against the real kernel."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.compiler.importers.nftjson import read_kernel_table
from dpipolicy.compiler.tablefile import read_table, table_text
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.frontend import load_policy
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.profiles import parse_profile
from dpipolicy.dsl.schema import DAYS, RATS
from dpipolicy.verifier import kernelprobe, trafficworker
from dpipolicy.verifier.kernel import KernelMismatch, kernel_copy, kernel_equivalence
from dpipolicy.compiler.netns import run_in_namespace
from dpipolicy.verifier.solve import Limits

from helpers import run_cli, write_policy

DECLARED = """enum plan { payg, monthly }
enum zone { home, national, abroad }
enum apn { internet, ims, corporate }
default allow
"""
LINE = DECLARED.count("\n") + 1          # the line of the first item written after DECLARED

POLICY = DECLARED + """\
rule weekend_video when app == youtube and time.day in {sat, sun} then throttle 1Mbps
rule congested_p2p when app == bittorrent and network.congested then block
rule no_tethering when flow.tethered and subscriber.plan == payg then reset
rule abroad_2g when subscriber.zone == abroad and subscriber.rat in {geran, utran} then throttle 128kbps
rule corporate when subscriber.apn == corporate and time.day != sun then allow, log
"""


def policy_file(tmp_path: Path, text: str = POLICY, name: str = "policy.dpi") -> Path:
    return write_policy(tmp_path, text, name)


def errors(tmp_path: Path, text: str, spec: str | None = None) -> list:
    policy = policy_file(tmp_path, text)
    specs = (write_policy(tmp_path, spec, "spec.dpi"),) if spec is not None else ()
    with pytest.raises(DiagnosticError) as info:
        load_policy(policy, specs)
    return list(info.value.diagnostics)


def at(d) -> tuple[str, str, int, int]:
    return d.code, d.span.file.path.name, d.span.line, d.span.column


def check_json(*argv) -> tuple[int, dict[str, dict]]:
    code, out, err = run_cli("check", *argv, "--format", "json")
    assert code in (0, 1), err
    return code, {r["name"]: r for r in json.loads(out)["results"]}


# ----- the checker: each error at its own place ------------------------------------------------

@pytest.mark.parametrize("text, code, column, message, help_words", [
    ("rule r when subscriber.zone == home then block", "E104", 13,
     "`subscriber.zone` needs `enum zone` to be declared", ["enum zone {"]),
    ("rule r when subscriber.apn in {ims} then block", "E104", 13,
     "`subscriber.apn` needs `enum apn` to be declared", ["enum apn {"]),
    ("rule r when dpi.tethered then block", "E162", 13,
     "rules cannot match on `dpi.tethered`", ["`flow.tethered` already is whether the engine detects tethering"]),
    ("rule r when time.day == satur then block", "E103", 25, "unknown day `satur`", ["did you mean `sat`?"]),
    ("rule r when subscriber.rat == lte then block", "E103", 31, "unknown radio access technology `lte`",
     ["`subscriber.rat` is one of geran (2G), utran (3G), eutran (4G, LTE), nr (5G), wlan (Wi-Fi)"]),
    ("rule r when time.day in mon..fri then block", "E124", 25,
     "a range needs an ordered field, and `time.day` is an enum", ["time.day in {mon, tue, wed, thu, fri}"]),
    ("rule r when time.day < fri then block", "E124", 13, "`<` needs an ordered field", ["`in`"]),
    ("rule r when network.congested == 3 then block", "E106", 34, "`3` is not true or false", ["`true` or `false`"]),
    ("rule r when time.day then block", "E121", 13, "`time.day` is not a condition", ["time.day =="]),
    ("rule r when dst.port == sat then block", "E106", 25, "`sat` is not a port", ["write `time.day == sat`"]),
    ("rule r when subscriber.plan == nr then block", "E103", 32, "unknown `plan` member `nr`",
     ["belongs to `subscriber.rat`", "`subscriber.rat == nr`"]),
])
def test_errors_of_the_new_fields(tmp_path, text, code, column, message, help_words):
    found = errors(tmp_path, "enum plan { payg }\ndefault allow\n" + text + "\n")
    assert len(found) == 1, "\n".join(d.render() for d in found)
    d = found[0]
    assert at(d) == (code, "policy.dpi", 3, column), d.render()
    assert message in d.message, d.render()
    for words in help_words:
        assert words in (d.help or ""), d.render()


def test_a_member_of_another_declared_enum_is_named(tmp_path):
    d, = errors(tmp_path, DECLARED + "rule r when subscriber.zone == internet then block\n")
    assert at(d) == ("E103", "policy.dpi", LINE, 32)
    assert d.message == "unknown `zone` member `internet`"
    assert "belongs to enum `apn`" in d.help and "`subscriber.apn == internet`" in d.help


def test_zone_and_apn_are_declarable_enums(tmp_path):
    d, = errors(tmp_path, "enum region { north }\ndefault allow\n")
    assert at(d) == ("E130", "policy.dpi", 1, 6)
    assert "`zone` (subscriber.zone)" in d.help and "`apn` (subscriber.apn)" in d.help
    d, = errors(tmp_path, "enum zone { }\ndefault allow\n")
    assert d.code == "E132" and "enum zone { home, national, abroad }" in d.help
    d, = errors(tmp_path, "enum apn { ims, ims }\ndefault allow\n")
    assert at(d) == ("E131", "policy.dpi", 1, 17)


def test_a_zone_declared_by_a_spec_only_is_not_the_policys(tmp_path):
    found = errors(tmp_path, "default allow\nrule r when subscriber.zone == home then block\n",
                   spec="enum zone { home, abroad }\ninvariant i require true\n")
    d, = found
    assert at(d) == ("E104", "policy.dpi", 2, 13)
    assert "declared by the policy" in d.message


def test_dpi_tethered_is_a_spec_field(tmp_path):
    """In specs `dpi.tethered` is the engine's detection; without a profile it is the truth."""
    _, results = check_json(policy_file(tmp_path, "default allow\nrule t when flow.tethered then block\n"
                                        "test detected given dpi.tethered expect block\n"
                                        "invariant truth when not flow.tethered require action == allow\n"))
    assert results["detected"]["status"] == "passed" and results["truth"]["status"] == "holds"


def test_a_spec_with_another_zone_enum_than_the_table(tmp_path):
    table = tmp_path / "rules.json"
    code, _, err = run_cli("compile", policy_file(tmp_path), "-o", table)
    assert code == 0, err
    spec = write_policy(tmp_path, "enum zone { home, abroad }\ninvariant i require true\n", "spec.dpi")
    code, _, err = run_cli("check", table, "--spec", spec)
    assert code == 2 and "error[E144]: enum `zone` differs from the rule table's" in err
    assert "the table has {home, national, abroad}" in err and "spec.dpi:1:6" in err


# ----- compile, the rule table, invariants, witnesses, explain -------------------------------

def test_the_table_keeps_the_fields_and_their_enums(tmp_path):
    loaded = api.load(policy_file(tmp_path))
    data = json.loads(table_text(loaded.table))
    assert data["enums"] == {"plan": ["payg", "monthly"], "addon": [], "zone": ["home", "national", "abroad"],
                             "apn": ["internet", "ims", "corporate"]}
    matches = [r["match"] for r in data["rules"]]
    assert matches[0]["time.day"] == ["sat", "sun"]
    assert matches[1]["network.congested"] == ["true"]
    assert matches[2]["flow.tethered"] == ["true"]
    assert matches[3]["subscriber.zone"] == ["abroad"] and matches[3]["subscriber.rat"] == ["geran", "utran"]
    assert matches[4]["subscriber.apn"] == ["corporate"] and matches[4]["time.day"] == {"not": ["sun"]}
    path = tmp_path / "rules.json"
    path.write_text(table_text(loaded.table), encoding="utf-8")
    again = read_table(path, loaded.table.schema.catalogue)
    assert [r.matches for r in again.rules] == [r.matches for r in loaded.table.rules]
    assert again.schema.declared("zone") == ("home", "national", "abroad")


def test_a_table_without_zones_or_apns_reads_as_before(tmp_path):
    loaded = api.load(policy_file(tmp_path, "enum plan { payg }\ndefault allow\n"
                                  "rule r when time.day == sat then block\n"))
    assert set(json.loads(table_text(loaded.table))["enums"]) == {"plan", "addon"}


@pytest.mark.parametrize("invariant, status, shown", [
    ("when app == youtube and time.day in {mon, tue, wed, thu, fri} require rule != weekend_video", "holds", None),
    ("when app == youtube and not flow.tethered and subscriber.zone != abroad require action == allow", "violated",
     "day=sat"),
    ("when app == bittorrent and not network.congested require rule != congested_p2p", "holds", None),
    ("when app == bittorrent require action != block", "violated", " congested "),
    ("when subscriber.plan == payg and proto == tcp require action != reset", "violated", " tethered "),
    ("when subscriber.plan != payg require rule != no_tethering", "holds", None),
    ("when subscriber.zone != abroad require rule != abroad_2g", "holds", None),
    ("when subscriber.zone == abroad and app == http and not flow.tethered require action == allow", "violated",
     "zone=abroad apn=internet rat=geran"),
    ("when subscriber.rat in {eutran, nr, wlan} require rule != abroad_2g", "holds", None),
    ("when subscriber.apn == corporate and app == http and not flow.tethered and subscriber.rat == eutran"
     " require logged", "violated", "apn=corporate hour=12 day=sun"),
])
def test_an_invariant_over_each_field(tmp_path, invariant, status, shown):
    _, results = check_json(policy_file(tmp_path, POLICY + f"invariant i {invariant}\n"))
    result = results["i"]
    assert result["status"] == status
    if shown is not None:
        assert shown in result["counterexample"]["flow_text"] + " ", result["counterexample"]["flow_text"]


def test_a_counterexample_names_every_value(tmp_path):
    _, results = check_json(policy_file(tmp_path, POLICY + "invariant i when app == youtube and not flow.tethered "
                                                  "and subscriber.zone != abroad require action == allow\n"))
    flow = results["i"]["counterexample"]["flow"]
    assert flow["time.day"] == "sat" and flow["subscriber.rat"] == "eutran"
    assert flow["network.congested"] is False and flow["flow.tethered"] is False
    assert flow["subscriber.zone"] == "home" and flow["subscriber.apn"] == "internet"
    text = results["i"]["counterexample"]["flow_text"]
    assert text == "tcp 10.0.0.7:50000 -> 74.125.206.108:443 app=youtube plan=payg zone=home apn=internet hour=12 day=sat"


def test_explain_shows_the_fields_readably(tmp_path):
    path = policy_file(tmp_path)
    code, out, _ = run_cli("explain", path, "--flow", "app=youtube time.day=sat subscriber.rat=nr")
    assert code == 0
    assert "outcome: throttle 1Mbps (rule weekend_video" in out
    code, out, _ = run_cli("explain", path, "--flow", "app=youtube time.day=wed subscriber.zone=abroad")
    assert "weekend_video (" in out and "no match: time.day in {sat, sun} (flow has time.day=wed)" in out
    assert "subscriber.rat in {geran, utran}" in out      # what decides abroad_2g, the field left open
    assert "the outcome depends on: flow.tethered, subscriber.plan, subscriber.apn, subscriber.rat" in out
    code, out, _ = run_cli("explain", path, "--flow", "app=bittorrent network.congested flow.tethered=false")
    assert "outcome: block (rule congested_p2p" in out
    code, out, _ = run_cli("explain", path, "--flow", "time.day=someday")
    assert code == 2 and "`someday` is not a member of `time.day`" in out + _


def test_lint_names_the_field_of_an_unused_enum(tmp_path):
    code, out, _ = run_cli("lint", policy_file(tmp_path, DECLARED + "rule r when subscriber.zone == home then block\n"))
    assert "L202" in out and "enum `apn` is never used: no rule, invariant or test mentions `subscriber.apn`" in out
    assert "enum `zone`" not in out


def test_diff_of_a_day_changed(tmp_path):
    old = policy_file(tmp_path, "default allow\nrule r when app == youtube and time.day in {sat, sun} then block\n",
                      "old.dpi")
    new = policy_file(tmp_path, "default allow\nrule r when app == youtube and time.day == sun then block\n", "new.dpi")
    code, out, _ = run_cli("diff", old, new)
    assert code == 1
    assert "time.day == sat" in out and "day=sat" in out and "block -> allow" in out


# ----- engine profiles: the engine's detection of tethering ----------------------------------

TETHERING = """\
version: 1
name: ttl-detector
engine: "a tethering detector that reads the IP TTL"
tethering:
  flagged:
    - when: {proto: udp}
      evidence: "assumed: the phone's own UDP flows through a VPN app leave with the TTL of a tethered device"
  missed:
    - evidence: "assumed: a router behind the phone that rewrites the TTL hides every flow behind it"
"""
TETHER_POLICY = """\
default allow
rule no_tethering when flow.tethered then block
invariant own_traffic_allowed "The phone's own traffic is never blocked" when not flow.tethered require action == allow
invariant tethering_blocked when flow.tethered require action == block
test detection given dpi.tethered expect block
"""


def test_a_profile_that_may_flag_untethered_flows(tmp_path):
    """The rule blocks what the engine detects as tethered; under a profile that may flag the
    phone's own UDP flows and miss tethered ones, the promises about the truth break, each
    with a flow whose detection differs from the truth."""
    policy = policy_file(tmp_path, TETHER_POLICY)
    (tmp_path / "engine.yaml").write_text(TETHERING)
    code, results = check_json(policy)
    assert code == 0 and {r["status"] for r in results.values()} == {"holds", "passed"}
    code, results = check_json(policy, "--profile", tmp_path / "engine.yaml")
    assert code == 1
    flagged = results["own_traffic_allowed"]["counterexample"]
    assert flagged["flow"]["flow.tethered"] is False and flagged["flow"]["dpi.tethered"] is True
    assert flagged["flow"]["proto"] == "udp" and flagged["rule"] == "no_tethering"
    assert "dpi.tethered=true" in flagged["flow_text"]
    assert [b["text"] for b in results["own_traffic_allowed"]["region"]] == [
        "proto == udp and not flow.tethered and dpi.tethered"]
    missed = results["tethering_blocked"]["counterexample"]
    assert missed["flow"]["flow.tethered"] is True and missed["flow"]["dpi.tethered"] is False
    assert " tethered dpi.tethered=false " in missed["flow_text"]
    assert results["detection"]["status"] == "passed"       # the rule does what it says on the detection


def test_a_profile_silent_on_tethering_detects_it_exactly(tmp_path):
    code, results = check_json(policy_file(tmp_path, TETHER_POLICY), "--profile", "ndpi-4.2")
    assert code == 0 and {r["status"] for r in results.values()} == {"holds", "passed"}


def test_a_profile_that_only_misses(tmp_path):
    (tmp_path / "engine.yaml").write_text(TETHERING.split("  missed:")[0].replace("flagged", "missed"))
    _, results = check_json(policy_file(tmp_path, TETHER_POLICY), "--profile", tmp_path / "engine.yaml")
    assert results["own_traffic_allowed"]["status"] == "holds"
    region = results["tethering_blocked"]["region"]
    assert [b["text"] for b in region] == ["proto == udp and flow.tethered and not dpi.tethered"]


def test_explain_and_diff_under_a_tethering_profile(tmp_path):
    policy = policy_file(tmp_path, TETHER_POLICY)
    (tmp_path / "engine.yaml").write_text(TETHERING)
    code, out, _ = run_cli("explain", policy, "--profile", tmp_path / "engine.yaml",
                           "--flow", "proto=tcp flow.tethered=false")
    assert out.startswith("outcome: allow (rule default)")      # the engine cannot flag TCP
    code, out, _ = run_cli("explain", policy, "--profile", tmp_path / "engine.yaml",
                           "--flow", "proto=udp flow.tethered=false")
    assert "the outcome depends on: dpi.tethered" in out
    code, out, _ = run_cli("diff", policy, policy, "--profile-old", "exact", "--profile-new", tmp_path / "engine.yaml")
    assert code == 1
    assert "dpi.tethered.old=true dpi.tethered.new=false" in out
    assert "dpi.tethered.old=false dpi.tethered.new=true" in out
    code, out, _ = run_cli("diff", policy, policy, "--profile-old", tmp_path / "engine.yaml",
                           "--profile-new", tmp_path / "engine.yaml")
    assert code == 0 and out.startswith("no semantic change")


def test_a_rule_on_tethering_under_a_profile_that_cannot_see_it(tmp_path):
    (tmp_path / "engine.yaml").write_text("version: 1\nname: blind\nunobservable: [flow.tethered]\n")
    code, _, err = run_cli("check", policy_file(tmp_path, TETHER_POLICY), "--profile", tmp_path / "engine.yaml")
    assert code == 2 and "error[E410]: rule `no_tethering` matches `flow.tethered`" in err


@pytest.mark.parametrize("tethering, code, where, words", [
    ("tethering:\n  missd: []\n", "E403", "engine.yaml:5:3", "unknown key `missd` in `tethering`"),
    ("tethering:\n  missed: []\n", "E405", "engine.yaml:5:11", "`tethering.missed` is an empty list"),
    ("tethering:\n  flagged:\n    - when: {proto: udp}\n", "E402", "engine.yaml:6:7",
     "an entry of `tethering.flagged` has no `evidence`"),
    ("tethering:\n  flagged:\n    - {evidence: e, when: {app: x}}\n", "E404", "engine.yaml:6:28",
     "`when` cannot test `app`"),
    ("tethering:\n  missed:\n    - {evidence: e}\n    - {evidence: f}\n", "E408", "engine.yaml:7:7",
     "`tethering.missed`: an entry with the same `when` is listed twice"),
])
def test_tethering_errors_have_their_place(tmp_path, tethering, code, where, words):
    catalogue = api.load(policy_file(tmp_path, "default allow\n")).table.schema.catalogue
    with pytest.raises(DiagnosticError) as info:
        parse_profile("version: 1\nname: x\n\n" + tethering, "engine.yaml", catalogue)
    d, = info.value.diagnostics
    assert (d.code, d.location_text) == (code, where) and words in d.message, d.render()


# ----- the nftables target, its contract, the kernel check ------------------------------------

def nft_compiled(tmp_path: Path, text: str = POLICY):
    path = policy_file(tmp_path, text)
    return TARGETS["nftables"].compile(api.load(path).table, Options(str(path)))


def test_the_script_and_the_contract(tmp_path):
    compiled = nft_compiled(tmp_path)
    text = compiled.text
    assert 'set days_1 { typeof meta day; elements = { "Saturday", "Sunday" } }' in text
    assert "ct mark and 0x1000 == 0x1000" in text and "ct mark and 0x2000 == 0x2000" in text
    assert 'meta day != "Sunday"' in text
    assert "ct original ip saddr @zone_abroad_v4" in text and "ct original ip6 daddr @apn_corporate_v6" in text
    assert "ct original ip saddr != @rat_eutran_v4" in text       # geran or utran: none of the other three
    contract = compiled.contract.to_json()
    fields = {f["field"]: (f["mask"], f["shift"]) for f in contract["connection_mark"]["fields"]}
    assert fields["network.congested"] == ("0x1000", 12) and fields["flow.tethered"] == ("0x2000", 13)
    sets = {s["ipv4"]: (s["field"], s["partition"]) for s in contract["subscriber_sets"]}
    assert sets["zone_home_v4"] == ("subscriber.zone", True) and sets["apn_ims_v4"] == ("subscriber.apn", True)
    assert [name for name in sets if name.startswith("rat_")] == [f"rat_{r}_v4" for r in RATS]


def test_rat_sets_only_when_a_rule_tests_it(tmp_path):
    compiled = nft_compiled(tmp_path, "enum zone { home }\ndefault allow\nrule r when time.day == mon then block\n")
    names = [s.name for s in compiled.contract.subscriber_sets]
    assert names == ["zone_home"]        # a declared zone has its sets, like a plan; no rule tests rat


def test_the_kernels_copy_is_the_table(tmp_path):
    compiled = nft_compiled(tmp_path)
    check = kernel_equivalence(compiled.table, kernel_copy(compiled), Limits())
    assert check.status == "proved", check.text()


@pytest.mark.parametrize("before, after, shown", [
    ('elements = { "Saturday", "Sunday" }', 'elements = { "Friday", "Sunday" }', "day=sat"),
    ('meta day != "Sunday"', 'meta day != "Saturday"', "day=s"),
    ("ct mark and 0x1000 == 0x1000", "ct mark and 0x1000 == 0x0", "app=bittorrent"),
    ("ct mark and 0x2000 == 0x2000", "ct mark and 0x1000 == 0x1000", "tethered"),
    ("ct original ip saddr @zone_abroad_v4", "ct original ip saddr @zone_home_v4", "zone="),
    ("ct original ip saddr != @rat_eutran_v4", "ct original ip saddr != @rat_nr_v4", "by rule `abroad_2g`"),
    ("ct original ip saddr @apn_corporate_v4", "ct original ip saddr @apn_ims_v4", "apn="),
])
def test_a_kernel_that_differs_is_caught_with_a_flow(tmp_path, before, after, shown):
    compiled = nft_compiled(tmp_path)
    assert before in compiled.text
    wrong = dataclasses.replace(compiled, text=compiled.text.replace(before, after, 1))
    with pytest.raises(KernelMismatch) as err:
        kernel_equivalence(compiled.table, kernel_copy(wrong), Limits())
    assert "for example" in str(err.value) and shown in str(err.value), str(err.value)


def kernel_listing(compiled, script: str) -> dict:
    done = run_in_namespace(["sh", "-c", "nft -f - && nft -j list table inet dpipolicy"], input=script.encode())
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_the_reader_takes_days_as_nft_writes_them(tmp_path):
    """A range of nft's days runs from Sunday (0): `"Sunday"-"Monday"` is sun and mon, which are
    the two ends of `time.day`; an unknown day is an error at its JSON path."""
    compiled = nft_compiled(tmp_path, "default allow\nrule r when time.day == wed then block\n")
    contract, schema = compiled.contract, compiled.table.schema
    script = compiled.text.replace('meta day "Wednesday"', 'meta day "Sunday"-"Monday"')
    assert script != compiled.text
    table = read_kernel_table(kernel_listing(compiled, script), contract, schema)
    assert table.rules[0].box() == {"time.day": IntervalSet.of([(0, 0), (6, 6)])}
    listing = kernel_listing(compiled, compiled.text)
    rule = next(o["rule"] for o in listing["nftables"] if "rule" in o and o["rule"]["chain"] == "match_rules")
    rule["expr"][0]["match"]["right"] = "Caturday"
    with pytest.raises(DiagnosticError) as info:
        read_kernel_table(listing, contract, schema)
    d, = info.value.diagnostics
    assert d.code == "E511" and d.location_text.endswith("expr[0].match.right")
    assert "`\"Caturday\"` is not a day of the week" in d.message


# ----- probe: real traffic with the marks, sets and days of each flow --------------------------

def test_probe_sends_every_field(tmp_path):
    path = policy_file(tmp_path)
    code, out, err = run_cli("probe", path, "--flow", "proto=tcp dst.port=443 app=youtube time.day=sun",
                             "--flow", "proto=udp dst.port=53 app=dns subscriber.apn=corporate time.day=sun",
                             "--flow", "proto=tcp dst.port=80 app=http subscriber.zone=abroad subscriber.rat=utran",
                             "--format", "json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["summary"]["agreed"] == report["summary"]["sent"] == 9
    by_why = {f["why"]: f for f in report["flows"]}
    assert "day=sat" in by_why["witness of rule weekend_video #0"]["flow"]
    assert " congested " in by_why["witness of rule congested_p2p #1"]["flow"] + " "
    assert " tethered " in by_why["witness of rule no_tethering #2"]["flow"]
    assert by_why["witness of rule no_tethering #2"]["observed"]["observed"] == "reset"
    assert "zone=abroad" in by_why["witness of rule abroad_2g #3"]["flow"]
    given = [f for f in report["flows"] if f["why"].startswith("--flow")]
    assert [(f["predicted"]["rule"], f["observed"]["rule"]) for f in given] == [
        ("#0", "#0"), ("default", "default"), ("#3", "#3")]


def test_probe_job_marks_and_sets(tmp_path):
    compiled = nft_compiled(tmp_path)
    schema = compiled.table.schema
    flow = kernelprobe.given_flow(schema, "app=bittorrent network.congested flow.tethered subscriber.zone=abroad "
                                          "subscriber.apn=ims subscriber.rat=nr time.day=tue")
    probes, _ = kernelprobe.probe_flows(compiled, [("f", flow)])
    job = kernelprobe.job(compiled, probes, 0.5)["flows"][0]
    app = schema.member_index("app")["bittorrent"] + 1
    assert job["mark"] == app | 0x1000 | 0x2000
    assert job["day"] == "Tuesday"
    assert {"zone_abroad_v4", "apn_ims_v4", "rat_nr_v4", "plan_payg_v4"} <= set(job["sets"])


def test_the_days_of_the_language_and_of_nft():
    from dpipolicy.compiler.backends.contract import DAY_NAMES
    assert [name[:3].lower() for name in DAY_NAMES] == list(DAYS)
    assert trafficworker.NFT_DAYS == DAY_NAMES[-1:] + DAY_NAMES[:-1]
