"""`dpipolicy audit --profile-old A --profile-new B [--policy-old FILE]`: each clause judged before
and after an upgrade of the engine (and of the rules), the clauses the upgrade breaks and fixes,
in every format (docs/audit.md, "An engine upgrade")."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from helpers import ROOT, run_cli

POLICY = ROOT / "examples/uk-mobile/policy-2011-08.dpi"
TERMS = ROOT / "examples/uk-mobile/terms.yaml"
FAIR_USE = "Fair use: after 3GB in a month, streaming and peer-to-peer on pay-as-you-go are slowed to 128kbps."


def _schema() -> dict:
    page = (ROOT / "docs/audit.md").read_text(encoding="utf-8")
    return json.loads(page.split("<!-- the JSON schema -->\n```json\n", 1)[1].split("```", 1)[0])


def upgrade(old: str, new: str, *extra):
    return run_cli("audit", POLICY, "--terms", TERMS, "--profile-old", old, "--profile-new", new, *extra)


def test_the_upgrade_of_the_august_policy_fixes_fair_use_and_breaks_nothing():
    code, out, _ = upgrade("ndpi-4.2", "ndpi-5.0")
    assert code == 0
    assert "engine upgrade ndpi-4.2 -> ndpi-5.0: breaks 0 clauses; fixes 1 clause: fair-use" in out
    assert "  clause fair-use: violated under ndpi-4.2, holds under ndpi-5.0  (fixed by the upgrade)" in out
    assert "the upgrade breaks" not in out


def test_going_back_to_the_old_engine_breaks_fair_use_in_the_operators_words_with_the_flow():
    code, out, _ = upgrade("ndpi-5.0", "ndpi-4.2")
    assert code == 1                     # the new engine violates a clause: as check's exit code
    assert "breaks 1 clause: fair-use; fixes 0 clauses (the evidence below is under ndpi-4.2)" in out
    assert f'  the upgrade breaks clause fair-use: "{FAIR_USE}"' in out
    evidence = out.split("clause fair-use: violated\n", 1)[1]
    assert "app=bittorrent labelled unknown" in evidence and "gets:  allow (rule default)" in evidence


def test_every_format_shows_the_upgrade_and_json_validates(tmp_path):
    _, md, _ = upgrade("ndpi-5.0", "ndpi-4.2", "--format", "markdown")
    assert "| `fair-use` | holds | violated (broken by the upgrade) |" in md and f"> {FAIR_USE}" in md
    upgrade("ndpi-5.0", "ndpi-4.2", "-o", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Engine upgrade ndpi-5.0 &rarr; ndpi-4.2" in html and "broken by the upgrade" in html
    _, out, _ = upgrade("ndpi-5.0", "ndpi-4.2", "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    assert data["upgrade"]["broken"] == ["fair-use"] and data["upgrade"]["fixed"] == []
    assert {"id": "fair-use", "before": "holds", "after": "violated"} in data["upgrade"]["clauses"]
    (fair,) = [c for c in data["clauses"] if c["id"] == "fair-use"]
    assert fair["verdict"] == "violated" and fair["results"][0]["counterexample"]["rule"] == "default"


def test_one_profile_alone_is_compared_with_the_exact_engine():
    code, out, _ = run_cli("audit", POLICY, "--terms", TERMS, "--profile-new", "ndpi-4.2")
    assert code == 1 and "engine upgrade exact -> ndpi-4.2: breaks 1 clause: fair-use" in out


def test_profile_with_an_upgrade_is_e639():
    code, _, err = upgrade("ndpi-4.2", "ndpi-5.0", "--profile", "ndpi-5.0")
    assert code == 2 and "error[E639]: --profile cannot be given with --profile-old/--profile-new or --policy-old" in err
    assert "Traceback" not in err


SEPTEMBER = ROOT / "examples/uk-mobile/policy-2011-09.dpi"


def incident(*extra):
    """The 2011 upgrade: new firmware (nDPI 4.2 -> 5.0 here) bringing its own anti-spam rules."""
    return run_cli("audit", SEPTEMBER, "--terms", TERMS, "--policy-old", POLICY,
                   "--profile-old", "ndpi-4.2", "--profile-new", "ndpi-5.0", *extra)


def test_the_2011_incident_names_the_broken_clauses_in_the_operators_words():
    code, out, _ = incident()
    assert code == 1
    assert ("upgrade policy-2011-08.dpi under ndpi-4.2 -> policy-2011-09.dpi under ndpi-5.0: breaks 3 clauses: "
            "email-submission, port-25-relays, vpn-addon; fixes 1 clause: fair-use") in out
    assert ('  the upgrade breaks clause email-submission: "We never block or interrupt email you send through a '
            'mail provider of your choice when you sign in to it (authenticated submission on ports 465 and 587)."') in out
    mail = out.split("clause email-submission: violated\n", 1)[1].split("\nclause ", 1)[0]
    assert ":587 app=submission" in mail and "gets:  reset (rule antispam_smtp_family" in mail
    vpn = out.split("clause vpn-addon: violated\n", 1)[1].split("\nclause ", 1)[0]
    assert "app=openvpn labelled smtps" in vpn and "addons={vpn}" in vpn and "reset (rule antispam_smtp_family" in vpn


def test_a_policy_upgrade_alone_is_judged_under_the_exact_engine():
    code, out, _ = run_cli("audit", SEPTEMBER, "--terms", TERMS, "--policy-old", POLICY)
    assert code == 1
    assert ("upgrade policy-2011-08.dpi under exact -> policy-2011-09.dpi under exact: breaks 2 clauses: "
            "email-submission, port-25-relays; fixes 0 clauses") in out
    assert "  clause vpn-addon: holds under policy-2011-08.dpi under exact, holds under policy-2011-09.dpi" in out


def test_the_incident_in_json_names_both_policies_and_validates():
    _, out, _ = incident("--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    up = data["upgrade"]
    assert (up["old_policy"], up["new_policy"]) == (str(POLICY), str(SEPTEMBER))
    assert (up["old_profile"], up["new_profile"]) == ("ndpi-4.2", "ndpi-5.0")
    assert up["broken"] == ["email-submission", "port-25-relays", "vpn-addon"] and up["fixed"] == ["fair-use"]
    _, md, _ = incident("--format", "markdown")
    assert "| clause | under `policy-2011-08.dpi under ndpi-4.2` | under `policy-2011-09.dpi under ndpi-5.0` |" in md


def test_an_old_policy_with_an_error_is_reported_at_its_place(tmp_path):
    broken = tmp_path / "old.dpi"
    broken.write_text('policy p version "1"\ndefault allow\nrule r when dst.port == 70000 then block\n', encoding="utf-8")
    code, _, err = run_cli("audit", SEPTEMBER, "--terms", TERMS, "--policy-old", broken)
    assert code == 2 and f"{broken}:3:" in err and "Traceback" not in err
