"""`dpipolicy replay` on real captures (the fixtures), in-process. Needs nfstream (the `replay`
extra, installed by .ci/run): these tests do not skip without it."""
from __future__ import annotations

import builtins
import json
import sys

from helpers import EXAMPLES, FIXTURES, run_cli, write_policy

NEW = EXAMPLES / "policy-2011-09.dpi"
OLD = EXAMPLES / "policy-2011-08.dpi"
PCAPS = FIXTURES / "pcaps"
OPENVPN_993 = PCAPS / "openvpn_tcp_on_993.pcap"
SUBMISSION = PCAPS / "suricata-verify_smtp-submission-auth.pcap"
STARTTLS = PCAPS / "zeek_smtp-starttls.pcap"


def replay_json(*argv) -> dict:
    code, out, err = run_cli("replay", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_openvpn_on_993_depends_on_the_plan():
    data = replay_json(NEW, OPENVPN_993)
    assert data["profile"] == "exact" and data["ndpi_names"] == "ndpi-5.0"
    [flow] = data["flows"]
    assert (flow["proto"], flow["src"], flow["dst"]) == ("tcp", "10.181.235.122:39772", "10.251.71.30:993")
    assert (flow["ndpi_label"], flow["app"]) == ("OpenVPN", "openvpn")
    assert not flow["determined"]
    assert flow["deciding_fields"] == ["subscriber.plan", "subscriber.addons"]
    assert [(o["action"], o["rule"]) for o in flow["outcomes"]] == [("block", "payg_vpn_needs_addon"),
                                                                    ("allow", "default")]
    assert flow["outcomes"][0]["rule_location"].endswith("policy-2011-09.dpi:17:1")
    assert data["summary"] == {"flows": 1, "actions": {}, "undetermined": 1}


def test_assumptions_pin_what_the_capture_cannot_tell():
    payg = replay_json(NEW, OPENVPN_993, "--assume", "subscriber.plan=payg subscriber.addons=")
    assert [(o["action"], o["rule"]) for o in payg["flows"][0]["outcomes"]] == [("block", "payg_vpn_needs_addon")]
    assert payg["summary"] == {"flows": 1, "actions": {"block": 1}, "undetermined": 0}
    assert payg["assumed"] == "subscriber.plan=payg subscriber.addons="
    addon = replay_json(NEW, OPENVPN_993, "--assume", "subscriber.plan=payg subscriber.addons=vpn")
    assert addon["summary"]["actions"] == {"allow": 1}


def test_text_output():
    code, out, err = run_cli("replay", NEW, OPENVPN_993)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[1] == "  1  tcp 10.181.235.122:39772 -> 10.251.71.30:993  nDPI OpenVPN -> app openvpn"
    assert lines[2] == "     depends on subscriber.plan, subscriber.addons:"
    assert lines[3].startswith("       block (rule payg_vpn_needs_addon, ") and lines[3].endswith(
        " when subscriber.plan == payg and vpn not in subscriber.addons")
    assert lines[-1] == "summary: 1 flow: 1 depends on fields the capture cannot tell"


def test_authenticated_submission_is_reset_after_the_upgrade_only():
    new = replay_json(NEW, SUBMISSION)
    [flow] = new["flows"]
    assert (flow["dst"], flow["ndpi_label"], flow["app"]) == ("217.12.11.66:587", "SMTP", "smtp")
    assert flow["determined"] and flow["outcomes"][0]["rule"] == "antispam_smtp_family"
    assert new["summary"]["actions"] == {"reset": 1}
    old = replay_json(OLD, SUBMISSION)
    assert old["summary"]["actions"] == {"allow": 1}


def test_starttls_mail_is_labelled_smtps_and_tls():
    [flow] = replay_json(NEW, STARTTLS, "--profile", "ndpi-5.0")["flows"]
    assert (flow["ndpi_label"], flow["app"], flow["tls"]) == ("SMTPS.Google", "smtps", True)
    assert flow["outcomes"][0]["action"] == "reset"


def test_a_label_the_profile_cannot_name_leaves_app_open(tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("version: 1\nname: mail-only\nndpi_names: {IMAPS: imaps}\n", encoding="utf-8")
    [flow] = replay_json(NEW, OPENVPN_993, "--profile", names)["flows"]
    assert flow["app"] is None and "app" in flow["unpinned"] and "app" in flow["deciding_fields"]
    code, out, _ = run_cli("replay", NEW, OPENVPN_993, "--profile", names)
    assert "nDPI OpenVPN -> app ? (no catalogue name for it: app left open)" in out


def test_a_rule_table_replays_too(tmp_path):
    table = tmp_path / "rules.json"
    assert run_cli("compile", NEW, "-o", table)[0] == 0
    assert replay_json(table, SUBMISSION)["summary"]["actions"] == {"reset": 1}


# ----- bad input: exit 2 with a coded error --------------------------------------------------
def test_missing_nfstream_is_a_clean_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nfstream", None)       # what `import` sees when it is not installed
    code, out, err = run_cli("replay", NEW, OPENVPN_993)
    assert code == 2 and out == ""
    assert "error[E330]: `replay` needs nfstream" in err
    assert "= help: pip install 'dpipolicy[replay]'" in err and "Traceback" not in err


def test_nfstream_that_fails_to_load_is_a_clean_error(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "nfstream":
            raise OSError("libpcap.so.0.8: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    code, _, err = run_cli("replay", NEW, OPENVPN_993)
    assert code == 2 and "E330" in err and "OSError: libpcap.so.0.8" in err


def test_bad_captures(tmp_path):
    code, _, err = run_cli("replay", NEW, tmp_path / "missing.pcap")
    assert code == 2 and "error[E010]" in err
    text = write_policy(tmp_path, "not a capture\n", "notes.pcap")
    code, _, err = run_cli("replay", NEW, text)
    assert code == 2 and "error[E331]: cannot read" in err and "Traceback" not in err


def test_bad_assumptions():
    code, _, err = run_cli("replay", NEW, OPENVPN_993, "--assume", "colour=red")
    assert code == 2 and "error[E310]: unknown field `colour`" in err and "--> --assume:1:1" in err
    code, _, err = run_cli("replay", NEW, OPENVPN_993, "--assume", "dst.port=25")
    assert code == 2 and "`dst.port` comes from the capture" in err


def test_bad_profile():
    code, _, err = run_cli("replay", NEW, OPENVPN_993, "--profile", "ndpi-42")
    assert code == 2 and "error[E400]" in err and "did you mean `ndpi-4.2`?" in err


def test_a_rule_on_a_field_the_profile_cannot_observe_is_refused(tmp_path):
    blind = tmp_path / "blind.yaml"
    blind.write_text("version: 1\nname: port-blind\nunobservable: [dst.port]\n", encoding="utf-8")
    code, _, err = run_cli("replay", NEW, OPENVPN_993, "--profile", blind)
    assert code == 2 and "rule `antispam_smtp_family` matches `dst.port`" in err
