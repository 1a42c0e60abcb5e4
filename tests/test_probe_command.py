"""`dpipolicy probe`: real connections and datagrams through the compiled rule set in a fresh
network namespace, each flow's observed outcome and deciding rule compared with the table's."""
from __future__ import annotations

import dataclasses
import json

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.verifier import kernelprobe
from dpipolicy.verifier.solve import Limits

from helpers import EXAMPLES, run_cli, write_policy

SUBMISSION = "tcp 10.0.0.7:50000 -> 74.125.206.108:587 app=submission tls smtp.auth"


def test_september_resets_submission_to_gmail_in_the_kernel():
    code, out, err = run_cli("probe", EXAMPLES / "policy-2011-09.dpi", "--spec", EXAMPLES / "spec.dpi")
    assert code == 0, out + err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if SUBMISSION in line)
    assert "predicted reset by rule #1 (reset); observed reset by rule #1" in lines[at + 1]
    assert lines[-1] == "9 of 9 flows as predicted"


def test_august_accepts_it():
    code, out, err = run_cli("probe", EXAMPLES / "policy-2011-08.dpi", "--spec", EXAMPLES / "spec.dpi",
                             "--flow", "proto=tcp dst.ip=74.125.206.108 dst.port=587 app=submission tls smtp.auth",
                             "--format", "json")
    assert code == 0, out + err
    report = json.loads(out)
    submission = [f for f in report["flows"] if f["flow"].startswith(SUBMISSION)]
    assert submission and all(f["observed"]["observed"] == "accepted" for f in submission)
    assert report["summary"]["agreed"] == report["summary"]["sent"] > 0


def test_every_action(tmp_path):
    policy = write_policy(tmp_path, """policy p
enum plan { payg, business }
enum addon { vpn }
default allow, log
rule tcp_reset when proto == tcp and dst.port == 25 then reset
rule udp_reset when proto == udp and dst.port == 25 then reset
rule blocked when proto == udp and dst.port == 1194 and subscriber.plan == payg then block
rule logged_block when proto == tcp and dst.port == 23 then block, log
rule throttled when proto == tcp and dst.port == 6881 then throttle 128kbps
rule portal when proto == tcp and dst.port == 80 and vpn not in subscriber.addons then redirect "http://portal.example/topup"
rule allowed when proto == tcp and dst.port == 443 and dst.ip in 2001:db8::/32 then allow
rule evening when time.hour in 18..21 and proto == udp then block
""")
    code, out, err = run_cli("probe", policy, "--format", "json")
    assert code == 0, out + err
    report = json.loads(out)
    observed = {f["why"].split()[3]: f["observed"]["observed"] for f in report["flows"] if "rule" in f["why"]}
    assert observed == {"tcp_reset": "reset", "udp_reset": "rejected", "blocked": "dropped",
                        "logged_block": "dropped", "throttled": "accepted", "portal": "accepted",
                        "allowed": "accepted", "evening": "dropped"}
    throttled = next(f for f in report["flows"] if "throttled" in f["why"])
    assert throttled["observed"]["policer_drops"] > 0
    logged = next(f for f in report["flows"] if "logged_block" in f["why"])
    assert logged["observed"]["logged"] is True
    assert all(f["agrees"] for f in report["flows"])


def test_rules_that_jump_to_a_chain_of_protocol_tests(tmp_path):
    """Rules on a port without a protocol jump to a shared chain of the five protocols' tests
    (nftables.ProtocolChains): a flow that jumps and comes back is decided by a later rule, and
    a rule whose chain logs is seen to log."""
    policy = write_policy(tmp_path, """policy p
enum plan { payg, business }
default allow
rule smtp_app when dst.port == 25 and app == smtp then block
rule smtp_tls when dst.port == 25 and tls then block
rule telnet when dst.port == 23 and subscriber.plan == payg then block, log
""")
    compiled = TARGETS["nftables"].compile(api.load(policy).table, Options(str(policy)))
    assert compiled.text.count("counter jump protocols_") == 6 and "chain protocols_2 {" in compiled.text
    code, out, err = run_cli("probe", policy, "--format", "json", "--flow", "proto=tcp dst.port=80 app=smtp",
                             "--flow", "proto=udp dst.port=23 subscriber.plan=payg")
    assert code == 0, out + err
    flows = json.loads(out)["flows"]
    web = next(f for f in flows if ":80 app=smtp" in f["flow"])       # jumps for port 25, comes back
    assert web["agrees"] and web["observed"]["rule"] == "default", web
    telnet = next(f for f in flows if f["flow"].startswith("udp") and ":23 " in f["flow"])
    assert telnet["observed"]["observed"] == "dropped" and telnet["observed"]["logged"] is True, telnet
    assert all(f["agrees"] for f in flows)


def test_a_wrong_script_is_a_disagreement():
    path = EXAMPLES / "policy-2011-09.dpi"
    compiled = TARGETS["nftables"].compile(api.load(path).table, Options(str(path)))
    wrong = dataclasses.replace(compiled, text=compiled.text.replace("reject with tcp reset", "accept"))
    flows, _ = kernelprobe.witness_flows(compiled, Limits())
    report = kernelprobe.run(wrong, flows)
    assert not report.agreed
    bad = [o for o in report.outcomes if o.disagreements]
    assert any("expected reset, the kernel accepted" in d for o in bad for d in o.disagreements)


def test_probe_takes_a_policy(tmp_path):
    code, _, err = run_cli("probe", tmp_path / "rules.json")
    assert code == 2 and "E321" in err
