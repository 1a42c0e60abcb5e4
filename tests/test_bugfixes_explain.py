"""`explain` speaks per source rule: a rule compiled into several match rules fails (or decides)
once, listing every alternative the flow fails, each flow value once, each outcome once."""
from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_policy

POLICY = """enum addon { vpn, tethering }
default allow
rule mail when (dst.port == 25 and proto == tcp) or app in {smtp, submission} or dst.port == 587 then block
rule vpn when app in {openvpn, wireguard} and (tethering in subscriber.addons or vpn not in subscriber.addons or tls)
    then reset
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # locations read `policy.dpi:3:1`


def explain(tmp_path, flow: str, text: str = POLICY) -> tuple[str, dict]:
    policy = write_policy(tmp_path, text).name
    code, out, err = run_cli("explain", policy, "--flow", flow)
    assert code == 0, err
    code, data, err = run_cli("explain", policy, "--flow", flow, "--format", "json")
    assert code == 0, err
    return out, json.loads(data)


def test_every_failed_alternative_of_an_earlier_rule(tmp_path):
    out, data = explain(tmp_path, "dst.port=465 proto=udp app=http")
    mail = data["steps"][0]
    assert (mail["rule"], mail["status"]) == ("mail", "no match")
    assert mail["failed"] == ["proto == tcp and dst.port == 25", "app in {smtp, submission}", "dst.port == 587"]
    assert mail["flow_has"] == ["proto=udp", "dst.port=465", "app=http"]        # each field once
    assert ("mail (policy.dpi:3:1): no match: (proto == tcp and dst.port == 25) or app in {smtp, submission} "
            "or dst.port == 587 (flow has proto=udp dst.port=465 app=http)") in out


def test_the_same_failed_condition_is_shown_once(tmp_path):
    """Each of the three match rules of `vpn` fails on `app`: one alternative, not three."""
    _, data = explain(tmp_path, "dst.port=465 proto=udp app=http")
    assert data["steps"][1]["failed"] == ["app in {openvpn, wireguard}"]
    assert data["steps"][1]["flow_has"] == ["app=http"]


def test_addons_are_shown_as_the_flow_writes_them(tmp_path):
    out, data = explain(tmp_path, "dst.port=465 proto=udp app=openvpn subscriber.addons=vpn tls=false")
    vpn = data["steps"][1]
    assert vpn["failed"] == ["tethering in subscriber.addons", "vpn not in subscriber.addons", "tls"]
    assert vpn["flow_has"] == ["tls=false", "subscriber.addons=vpn"]
    assert out.startswith("outcome: allow (rule default)\n")


def test_one_outcome_per_deciding_rule(tmp_path):
    out, data = explain(tmp_path, "dst.port=465 proto=udp app=openvpn")
    rules = [o["rule"] for o in data["outcomes"]]
    assert rules == ["vpn", "default"]
    assert data["outcomes"][0]["when"] == [
        "tethering in subscriber.addons",
        "vpn not in subscriber.addons and tethering not in subscriber.addons",
        "tls and vpn in subscriber.addons and tethering not in subscriber.addons"]
    assert out.count("reset (rule vpn, policy.dpi:4:1) when:") == 1
    assert data["deciding_fields"] == ["tls", "subscriber.addons"]


def test_rule_that_matches_only_flows_decided_earlier(tmp_path):
    text = """default allow
rule a when dst.port == 25 and tls then block
rule b when dst.port == 25 and tls and proto == tcp then reset
rule c when (dst.port == 25 and tls) or app == smtp then reset
"""
    out, data = explain(tmp_path, "dst.port=25 app=http", text)
    statuses = [(s["rule"], s["status"], s["failed"]) for s in data["steps"]]
    assert statuses == [("a", "decides some", []), ("b", "shadowed", []), ("c", "no match", ["app == smtp"])]
    assert "b (policy.dpi:3:1): no match: it holds only for flows earlier rules decide" in out
    assert ("c (policy.dpi:4:1): no match: app == smtp (flow has app=http); the rest of it holds only for flows "
            "earlier rules decide") in out
