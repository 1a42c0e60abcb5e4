"""The command line, run in-process: exit codes, text and JSON output, compile, explain."""
from __future__ import annotations

import json

import pytest

from dpipolicy.verifier import properties

from helpers import EXAMPLES, TimedOutScope, run_cli, write_policy

OLD = EXAMPLES / "policy-2011-08.dpi"
NEW = EXAMPLES / "policy-2011-09.dpi"
SPEC = EXAMPLES / "spec.dpi"


def test_policy_before_upgrade_passes():
    code, out, err = run_cli("check", OLD, "--spec", SPEC)
    assert code == 0, out + err
    assert "4 invariants (4 hold, 0 violated), 4 tests (4 passed, 0 failed), 0 unknown" in out
    assert "compiled table proved equal to the policy" in out


def test_faulty_upgrade_is_caught_and_blamed():
    code, out, _ = run_cli("check", NEW, "--spec", SPEC)
    assert code == 1
    line = next(l for l in out.splitlines() if "auth_smtp_third_party_never_blocked" in l)
    assert "violated" in line
    assert "reset (rule antispam_smtp_family, " in out
    assert "policy-2011-09.dpi:11:1" in out


def test_json_output_schema():
    code, out, _ = run_cli("check", NEW, "--spec", SPEC, "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["summary"] == {"invariants": 4, "holds": 3, "violated": 1, "unknown": 0,
                               "tests": 4, "passed": 2, "failed": 2}
    violated = next(r for r in data["results"] if r["status"] == "violated")
    assert violated["kind"] == "invariant"
    assert violated["location"].endswith("spec.dpi:7:1")
    ce = violated["counterexample"]
    assert ce["action"] == "reset" and ce["rule"] == "antispam_smtp_family"
    flow = ce["flow"]
    assert flow["dst.port"] in (465, 587)
    assert flow["app"] in ("submission", "smtps")
    assert flow["smtp.auth"] is True
    assert flow["proto"] == "tcp"
    assert isinstance(flow["subscriber.addons"], list)
    assert flow["dst.ip"] == "74.125.206.108"
    assert violated["region"] and violated["region_complete"] is True
    statuses = {r["name"]: r["status"] for r in data["results"] if r["kind"] == "test"}
    assert statuses == {"gmail_submission": "failed", "third_party_port25_blocked": "failed",
                        "operator_relay_allowed": "passed", "heavy_p2p_shaped": "passed"}


def test_exists_reports_witness():
    _, out, _ = run_cli("check", OLD, "--spec", SPEC, "--format", "json")
    exists = next(r for r in json.loads(out)["results"] if r["name"] == "payg_openvpn_possible")
    assert exists["status"] == "holds"
    assert exists["witness"]["flow"]["app"] == "openvpn"
    assert exists["witness"]["action"] == "allow"


def test_compiled_table_checks_the_same(tmp_path):
    table = tmp_path / "rules.json"
    code, _, err = run_cli("compile", NEW, "-o", table)
    assert code == 0 and "proved equal" in err
    data = json.loads(table.read_text())
    assert data["format"] == "dpipolicy-rule-table" and data["version"] == 2
    code, out, _ = run_cli("check", table, "--spec", SPEC, "--format", "json")
    assert code == 1
    from_table = json.loads(out)
    _, out, _ = run_cli("check", NEW, "--spec", SPEC, "--format", "json")
    from_policy = json.loads(out)
    assert from_table["summary"] == from_policy["summary"]
    assert [r["status"] for r in from_table["results"]] == [r["status"] for r in from_policy["results"]]


def test_explain_names_deciding_rule_and_failed_conditions():
    code, out, _ = run_cli("explain", OLD, "--flow", "proto=tcp dst.ip=74.125.206.108 dst.port=465 app=smtps tls=true")
    assert code == 0
    assert out.startswith("outcome: allow (rule default)")
    assert "unauth_smtp_relay" in out and "dst.port == 25 (flow has dst.port=465)" in out
    code, out, _ = run_cli("explain", NEW, "--flow", "proto=tcp dst.ip=74.125.206.108 dst.port=465 app=smtps tls")
    assert out.startswith("outcome: reset (rule antispam_smtp_family")


def test_explain_lists_outcomes_of_unpinned_fields():
    code, out, _ = run_cli("explain", OLD, "--flow", "app=openvpn", "--format", "json")
    data = json.loads(out)
    assert data["determined"] is False
    assert {o["action"] for o in data["outcomes"]} == {"block", "allow"}
    assert "subscriber.plan" in data["deciding_fields"]
    assert "time.hour" not in data["deciding_fields"]


@pytest.mark.parametrize("flow, words", [
    ("dst.port=70000", "out of range"),
    ("app=youtub", "not a member"),
    ("colour=red", "unknown field `colour`"),
    ("dst.ip=10.0.0.0/8", "not a single value"),
])
def test_explain_bad_flow_is_exit_2(flow, words):
    code, out, err = run_cli("explain", OLD, "--flow", flow)
    assert code == 2
    assert words in err and "--flow:1:" in err
    assert "Traceback" not in err


def test_solver_unknown_makes_exit_3(tmp_path, monkeypatch):
    policy = write_policy(tmp_path, """
        default allow
        rule a when dst.port in 1..100 and tls then block
        rule b when dst.port in 50..200 and not tls then block
        rule c when dst.port in 1..200 then reset
        invariant covered when dst.port in 60..90 require action != reset
    """)
    code, out, _ = run_cli("check", policy)
    assert code == 0, out
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    code, out, _ = run_cli("check", policy)
    assert code == 3
    assert "unknown" in out and "timeout" in out


def test_no_colour_when_not_a_terminal_and_no_color_respected(monkeypatch):
    _, out, _ = run_cli("check", NEW, "--spec", SPEC)
    assert "\x1b[" not in out


def test_usage_errors_exit_2():
    assert run_cli("check")[0] == 2
    assert run_cli("frobnicate")[0] == 2
    assert run_cli()[0] == 2
    code, _, err = run_cli("check", OLD, "--timeout", "0")
    assert code == 2 and "--timeout must be positive" in err


def test_version():
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("dpipolicy ")


def test_compile_refuses_a_table(tmp_path):
    table = tmp_path / "rules.json"
    run_cli("compile", OLD, "-o", table)
    code, _, err = run_cli("compile", table)
    assert code == 2 and "takes a .dpi policy" in err


def test_bad_table_is_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "dpipolicy-rule-table", "version": 1, "default": {"kind": "allow"},'
                   ' "rules": [{"rule": "x", "action": {"kind": "block"}, "match": {"dst.port": ["99999"]}}]}')
    code, _, err = run_cli("check", bad)
    assert code == 2 and "rules[0].match.dst.port[0]" in err and "out of range" in err
    bad.write_text("{not json")
    code, _, err = run_cli("check", bad)
    assert code == 2 and "invalid JSON" in err and "bad.json:1:2" in err


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`dpipolicy diff ... | head`: the closed pipe is not reported as a dpipolicy bug."""
    import io

    from dpipolicy.cli import EXIT_BROKEN_PIPE, main

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    code = main(["check", str(NEW), "--spec", str(SPEC)], ClosedPipe(), err)
    assert code == EXIT_BROKEN_PIPE == 141
    assert "internal error" not in err.getvalue()
