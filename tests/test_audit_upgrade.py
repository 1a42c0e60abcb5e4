"""`dpipolicy audit --profile-old A --profile-new B`: each clause judged under both engines, the
clauses the upgrade breaks and fixes, in every format (docs/audit.md, "An engine upgrade")."""
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
    assert code == 2 and "error[E639]: --profile cannot be given with --profile-old/--profile-new" in err
    assert "Traceback" not in err
