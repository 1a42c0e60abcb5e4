"""Golden outputs of `dpipolicy diff`: the exact text, JSON and Markdown a reviewer sees for the
2011 incident, and the text of a proved "no semantic change".

The CLI runs in-process from the repository root, so the paths in the output are the ones a
user sees there. Refresh with `DPIPOLICY_UPDATE_GOLDEN=1 pytest tests/test_diff_golden.py`
(the convention of tests/golden/diagnostics) and review the change to tests/golden/diff/
before committing it. JSON is compared parsed, so only its content matters.
"""
from __future__ import annotations

import json
import os

import pytest

from helpers import ROOT, run_cli

GOLDEN = ROOT / "tests" / "golden" / "diff"
UK = "examples/uk-mobile"
INCIDENT = ("diff", f"{UK}/policy-2011-08.dpi", f"{UK}/policy-2011-09.dpi", "--spec", f"{UK}/spec.dpi")

# golden file, command line, exit code
CASES = [
    ("uk-mobile.txt", INCIDENT + ("--format", "text"), 1),
    ("uk-mobile.json", INCIDENT + ("--format", "json"), 1),
    ("uk-mobile.md", INCIDENT + ("--format", "markdown"), 1),
    ("uk-mobile-equivalent.txt",
     ("diff", f"{UK}/policy-2011-08.dpi", "tests/inputs/uk-mobile-2011-08-rewritten.dpi", "--format", "text"), 0),
]


def _diff_output(monkeypatch, argv: tuple[str, ...], exit_code: int) -> str:
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(*argv)
    assert err == "", err
    assert code == exit_code, out
    return out


def _golden(name: str, actual: str) -> str:
    """The golden text of `name`; written from `actual` first when refreshing."""
    path = GOLDEN / name
    if os.environ.get("DPIPOLICY_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no {path.relative_to(ROOT)}: run with DPIPOLICY_UPDATE_GOLDEN=1"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name, argv, exit_code", CASES, ids=[c[0] for c in CASES])
def test_golden_diff(name, argv, exit_code, monkeypatch):
    out = _diff_output(monkeypatch, argv, exit_code)
    expected = _golden(name, out)
    if name.endswith(".json"):
        assert json.loads(out) == json.loads(expected)
    else:
        assert out == expected


def test_golden_files_are_the_cases():
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(c[0] for c in CASES)


# The goldens are reviewed once; these pin what they must keep saying whatever the wording.

def test_incident_text_shows_the_incident(monkeypatch):
    out = _diff_output(monkeypatch, INCIDENT, 1)
    assert "invariant auth_smtp_third_party_never_blocked: holds -> violated" in out
    assert "test gmail_submission: passed -> failed" in out
    assert "test third_party_port25_blocked: passed -> failed" in out
    summary = [line for line in out.splitlines() if line.startswith("  ") and line.endswith(")")
               and "->" in line and not line.startswith("    ")]
    assert any("submission" in line and "smtps" in line and "allow -> reset" in line for line in summary), summary
    assert any("dst.port == 25" in line and "block -> reset" in line for line in summary), summary


def test_incident_json_regions(monkeypatch):
    data = json.loads(_diff_output(monkeypatch, INCIDENT + ("--format", "json"), 1))
    assert data["equivalent"] is False
    assert {(s["name"], s["before"], s["after"]) for s in data["status_changes"]} == {
        ("auth_smtp_third_party_never_blocked", "holds", "violated"),
        ("gmail_submission", "passed", "failed"),
        ("third_party_port25_blocked", "passed", "failed")}
    pairs = {(r["old"]["action"], r["new"]["action"], r["old"]["rule"], r["new"]["rule"])
             for g in data["groups"] for r in g["regions"]}
    assert pairs == {("block", "reset", "unauth_smtp_relay", "antispam_smtp_family"),
                     ("allow", "reset", "default", "antispam_smtp_family")}
    assert data["summary"]["regions"] == sum(len(g["regions"]) for g in data["groups"])


def test_equivalent_is_a_proof(monkeypatch):
    out = _diff_output(monkeypatch, CASES[-1][1], 0)
    assert out.startswith("no semantic change (proved; ")
