"""Regression tests for what the fuzz harness found (docs/reliability.md, "Findings"): each the
smallest input that broke the promise, and the located error it gets now."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import AUDIT_INVARIANTS, AUDIT_POLICY, run_cli, write_policy

TERMS = """version: 1
title: Example terms
specs: [spec.dpi]
clauses:
  - {id: mail, text: We never block mail submission., source: Terms 1, invariants: [submission_open]}
"""
WAIVERS = """version: 1
waivers:
  - {clause: mail, rule: relay_only, owner: Mail team, reason: a trial, expires: 2011-12-31}
"""
PROFILE = "version: 1\nname: engine\nengine: an engine\n"
CATALOGUE = "applications:\n  - {name: corpvpn, category: vpn}\n"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, AUDIT_POLICY)
    write_policy(tmp_path, AUDIT_INVARIANTS, "spec.dpi")
    write_policy(tmp_path, TERMS, "terms.yaml")


# One command per kind of YAML file a command reads, with that file named `FILE`.
YAML_FILES = {
    "profile": (PROFILE, ("check", "policy.dpi", "--profile", "FILE")),
    "catalogue": (CATALOGUE, ("check", "policy.dpi", "--catalogue", "FILE")),
    "terms": (TERMS, ("audit", "policy.dpi", "--terms", "FILE")),
    "waivers": (WAIVERS, ("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "FILE", "--today", "2011-10-01")),
}
CODES = {"profile": "E400", "catalogue": "E050", "terms": "E600", "waivers": "E630"}


def run_with(kind: str, text: str) -> tuple[int, str, str]:
    Path("file.yaml").write_text(text, encoding="utf-8")
    argv = [a.replace("FILE", "file.yaml") for a in YAML_FILES[kind][1]]
    return run_cli(*argv)


@pytest.mark.parametrize("kind", YAML_FILES)
def test_the_files_are_valid_as_written(kind):
    code, _, err = run_with(kind, YAML_FILES[kind][0])
    assert code in (0, 1) and "error[" not in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_a_character_yaml_does_not_allow_is_located_at_it(kind):
    """Input 113 of seed 1 (a control byte in a terms file): the message held PyYAML's own
    `in "<unicode string>", position N` on a second line, and no line or column."""
    text = YAML_FILES[kind][0].replace("\n", "\n\x06", 1)
    code, _, err = run_with(kind, text)
    assert code == 2 and "Traceback" not in err
    assert f"error[{CODES[kind]}]: invalid YAML: special characters are not allowed: U+0006\n --> file.yaml:2:1\n" in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_yaml_nested_a_thousand_deep_is_an_error_not_an_internal_error(kind):
    """Input 1598 of seed 2 (a flow mapping repeated inside itself in a profile): PyYAML's
    composer recursed until Python's limit, an internal error (exit 4)."""
    text = YAML_FILES[kind][0] + "extra: " + "[" * 1000 + "]" * 1000 + "\n"
    code, _, err = run_with(kind, text)
    assert code == 2 and "internal error" not in err
    assert f"error[{CODES[kind]}]: lists and mappings nested more than 100 deep\n" in err
    assert " --> file.yaml:" in err
