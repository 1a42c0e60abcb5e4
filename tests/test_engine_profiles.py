"""Verification under engine profiles (language.md, section 8): rules see the engine's label,
invariants and tests the real application; the uk-mobile firmware showcase."""
from __future__ import annotations

import json

import pytest

from dpipolicy import api
from dpipolicy.compiler.boxes import point_in
from dpipolicy.dsl.profiles import load_profile
from dpipolicy.dsl.schema import LABEL
from dpipolicy.verifier.labels import labelled_schema, possible_labels, relation, under_profile
from dpipolicy.verifier.properties import TableModel
from dpipolicy.verifier.witness import realistic_point

from helpers import EXAMPLES, run_cli, write_policy

POLICY = EXAMPLES / "policy-2011-08.dpi"
FIRMWARE_SPEC = EXAMPLES / "firmware-spec.dpi"


def statuses(profile: str) -> tuple[int, dict[str, dict]]:
    code, out, _ = run_cli("check", POLICY, "--spec", FIRMWARE_SPEC, "--profile", profile, "--format", "json")
    return code, {r["name"]: r for r in json.loads(out)["results"]}


def test_exact_profile_keeps_the_policy_meaning():
    code, results = statuses("exact")
    assert code == 0
    assert {r["status"] for r in results.values()} == {"holds", "passed"}


def test_ndpi_42_lets_openvpn_on_993_through_as_imaps():
    code, results = statuses("ndpi-4.2")
    assert code == 1
    failing = results["openvpn_on_993_without_addon"]
    assert failing["status"] == "failed"
    flow = failing["counterexample"]["flow"]
    assert (flow["app"], flow[LABEL], flow["dst.port"]) == ("openvpn", "imaps", 993)
    assert failing["counterexample"]["action"] == "allow"
    assert results["payg_vpn_needs_addon"]["status"] == "violated"
    assert results["imaps_works_for_imaps"]["status"] == "holds"


def test_ndpi_50_detects_openvpn_on_993():
    _, results = statuses("ndpi-5.0")
    assert results["openvpn_on_993_without_addon"]["status"] == "passed"
    # the invariant still breaks elsewhere (OpenVPN over TCP 443 labelled TLS), with a real label
    flow = results["payg_vpn_needs_addon"]["counterexample"]["flow"]
    assert flow["app"] == "openvpn" and flow[LABEL] != "openvpn"


def test_every_violating_flow_is_one_the_profile_allows():
    loaded = api.load(POLICY, (FIRMWARE_SPEC,))
    profile = load_profile("ndpi-4.2", loaded.table.schema.catalogue)
    table, _ = under_profile(loaded.table, loaded.spec, profile)
    model = TableModel(table)
    allowed = relation(profile, table.schema)
    result = next(r for r in api.check_results(api.as_deployed(loaded, profile), api.Limits()) if r.name == "payg_vpn_needs_addon")
    assert result.region
    for box, _ in result.region:
        point = realistic_point(table.schema, box)
        assert any(point_in(b, point) for b in allowed), box
        assert model.decision(point).action.kind == "allow"


def test_possible_labels_follow_the_entries():
    loaded = api.load(POLICY, ())
    schema = labelled_schema(loaded.table.schema)
    profile = load_profile("ndpi-4.2", schema.catalogue)
    app = schema.member_index("app")
    names = schema.field(LABEL).members
    on_993 = possible_labels(profile, schema, {"app": app["openvpn"], "proto": 6, "dst.port": 993})
    assert "imaps" in {names[label] for label, _ in on_993}
    # nDPI 4.2 labelled one real IMAPS flow TLS.ntop (ndpi_imaps.pcap)
    imaps = possible_labels(profile, schema, {"app": app["imaps"], "proto": 6, "dst.port": 993})
    assert {names[label] for label, _ in imaps} == {"imaps", "tls"}
    assert {names[label] for label, _ in possible_labels(profile, schema, {"app": app["dns"]})} == {"dns"}


def test_explain_lists_each_label():
    code, out, _ = run_cli("explain", POLICY, "--profile", "ndpi-4.2",
                           "--flow", "proto=tcp dst.port=993 app=openvpn subscriber.plan=payg")
    assert code == 0
    assert "labelled imaps (port):\noutcome: allow (rule default)" in out


def test_diff_of_two_firmware_versions_shows_openvpn_on_993():
    code, out, _ = run_cli("diff", POLICY, POLICY, "--profile-old", "ndpi-4.2", "--profile-new", "ndpi-5.0",
                           "--format", "json")
    assert code == 1
    data = json.loads(out)
    regions = [r for g in data["groups"] for r in g["regions"]]
    vpn = [r for r in regions if r["old"]["action"] == "allow" and r["new"]["rule"] == "payg_vpn_needs_addon"]
    assert vpn, regions
    # the box holds OpenVPN on 993 labelled imaps before and openvpn after
    loaded = api.load(POLICY, ())
    c = loaded.table.schema.catalogue
    from dpipolicy.verifier.labels import under_two_profiles
    old, new = under_two_profiles(loaded.table, loaded.table, load_profile("ndpi-4.2", c), load_profile("ndpi-5.0", c))
    schema = old.schema
    flow = {f.name: 0 for f in schema.flow_fields}
    app = schema.member_index("app")
    flow.update({"proto": 6, "dst.port": 993, "app": app["openvpn"], "dpi.app.old": app["imaps"],
                 "dpi.app.new": app["openvpn"], "subscriber.plan": schema.member_index("subscriber.plan")["payg"]})
    before, after = TableModel(old).decision(flow), TableModel(new).decision(flow)
    assert (before.action.kind, after.action.kind, after.rule) == ("allow", "block", "payg_vpn_needs_addon")


def test_same_profile_on_both_sides_is_no_change():
    code, out, _ = run_cli("diff", POLICY, POLICY, "--profile-old", "ndpi-4.2", "--profile-new", "ndpi-4.2")
    assert code == 0 and "no semantic change" in out


def test_rule_on_a_field_the_profile_cannot_observe(tmp_path):
    profile = tmp_path / "blind.yaml"
    profile.write_text("version: 1\nname: blind-to-tls\nunobservable: [tls]\n", encoding="utf-8")
    policy = write_policy(tmp_path, "default allow\nrule no_plain when not tls and dst.port == 80 then block\n")
    code, _, err = run_cli("check", policy, "--profile", profile)
    assert code == 2
    assert "error[E410]: rule `no_plain` matches `tls`, which engine profile `blind-to-tls` cannot observe" in err
    assert "Traceback" not in err


def test_rules_cannot_name_the_label(tmp_path):
    policy = write_policy(tmp_path, "default allow\nrule r when dpi.app == smtp then block\n")
    code, _, err = run_cli("check", policy)
    assert code == 2 and "error[E162]" in err


@pytest.mark.parametrize("written", ["dpi.app == smtp", "dpi.app in {smtp}", "app == smtp"])
def test_without_profile_the_label_is_the_application(tmp_path, written):
    """The label means the application: an invariant on it holds or is violated as one on
    `app` is (it was once read as false, so every invariant on the label held vacuously)."""
    policy = write_policy(tmp_path, f"""default allow
rule r when app == smtp then block
invariant smtp_blocked when {written} require action == block
invariant smtp_allowed when {written} and dst.port == 25 require action == allow
""")
    code, out, _ = run_cli("check", policy)
    assert code == 1, out
    assert "invariant holds    smtp_blocked" in out and "invariant violated smtp_allowed" in out
