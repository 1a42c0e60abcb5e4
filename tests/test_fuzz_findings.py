"""Regression tests for what the fuzz harness found (docs/reliability.md, "Findings"): each the
smallest input that broke the promise, and the located error it gets now."""
from __future__ import annotations

import json
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
@pytest.mark.parametrize("line_break", ["\r", "\r\n", "\x85", "\u2028", "\u2029"])
def test_a_character_yaml_does_not_allow_is_on_the_line_yaml_counts(kind, line_break):
    """Inputs 68746 and 435184 of seed 1 (terms files: a lone CR, a U+2028, then ESC or NUL
    lines later) and 709095 (the catalogue, a U+2028 before a NUL): the line was counted at
    `\\n` only, where YAML, and PyYAML's marks of every other error, end a line at each of
    these too (CRLF once), so the error named a line before the character, or past the file."""
    text = f"# one{line_break}two \x06\n" + YAML_FILES[kind][0]
    code, _, err = run_with(kind, text)
    assert code == 2
    assert f"error[{CODES[kind]}]: invalid YAML: special characters are not allowed: U+0006\n --> file.yaml:2:5\n" in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_yaml_nested_a_thousand_deep_is_an_error_not_an_internal_error(kind):
    """Input 1598 of seed 2 (a flow mapping repeated inside itself in a profile): PyYAML's
    composer recursed until Python's limit, an internal error (exit 4)."""
    text = YAML_FILES[kind][0] + "extra: " + "[" * 1000 + "]" * 1000 + "\n"
    code, _, err = run_with(kind, text)
    assert code == 2 and "internal error" not in err
    assert f"error[{CODES[kind]}]: lists and mappings nested more than 100 deep\n" in err
    assert " --> file.yaml:" in err


# A value quoted in a message, and the error's place in the kind of file it is in.
QUOTING_A_LINE_BREAK = {
    "terms invariant": ("terms", TERMS.replace("[submission_open]", '["submission\\nopen"]'),
                        "E606", "clause `mail`: no invariant `submission\\nopen` in the listed specs", "5:85"),
    "terms spec": ("terms", TERMS.replace("[spec.dpi]", '["sp\\nec.dpi"]'), "E607",
                   "spec file `sp\\nec.dpi` does not exist", "3:9"),
    "terms version": ("terms", TERMS.replace("version: 1", 'version: "1\\r\\nx"'), "E601",
                      "terms file version `1\\r\\nx` is not supported", "1:10"),
    "catalogue port": ("catalogue", CATALOGUE.replace("vpn}", 'vpn, ports: ["tcp/2\\n5"]}'), "E050",
                       "application `corpvpn`: bad port `tcp/2\\n5`", "2:5"),
}


@pytest.mark.parametrize("case", QUOTING_A_LINE_BREAK)
def test_a_message_quoting_a_line_break_stays_on_its_header_line(case):
    """Inputs 39508, 724267 and some thirty more of seed 1 (a mutation joining lines inside a
    terms file's invariant name, spec file, version, or a catalogue's port): the message quoted
    the value with its line break, so the `-->` line no longer followed the header (no location
    by the report's own form). The break is shown escaped."""
    kind, text, code, message, where = QUOTING_A_LINE_BREAK[case]
    status, _, err = run_with(kind, text)
    assert status == 2
    assert f"error[{code}]: {message}\n --> file.yaml:{where}\n" in err


def test_an_import_naming_a_nul_byte_is_an_error_at_the_import():
    """Inputs 13868, 452884 and 605162 of seed 1 (a NUL byte put into an import's file name):
    the operating system's ValueError left the import resolver, an internal error (exit 4)."""
    Path("policy.dpi").write_bytes(b'import "defs\x00.dpi"\ndefault allow\n')
    code, _, err = run_cli("check", "policy.dpi")
    assert code == 2 and "internal error" not in err
    assert "error[E014]: cannot follow the import of `defs\x00.dpi`\n --> policy.dpi:1:1\n" in err
    assert "a file name cannot hold a NUL byte" in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_an_empty_value_with_a_type_tag_is_an_error_at_it(kind):
    """Inputs 38626, 479113 and 537762 of seed 1 (a token made `!!float` or `!!int` with no
    value after it): PyYAML's constructors fail on the empty scalar with IndexError, an internal
    error (exit 4) in profiles, terms and waivers, and an error with no line in a catalogue.
    The value is the one error: no second one for the version it did not give."""
    text = YAML_FILES[kind][0]
    text = text.replace("category: vpn", 'category: !!float ""') if kind == "catalogue" else \
        text.replace("version: 1", "version: !!float")
    code, _, err = run_with(kind, text)
    assert code == 2 and "internal error" not in err and err.count("error[") == 1
    where = "2:31" if kind == "catalogue" else "1:10"
    assert f" --> file.yaml:{where}\n" in err and "cannot read this value" in err


WAIVER_IN_BLOCK = "version: 1\nwaivers:\n  - clause: mail\n    owner: Mail team\n    reason: a trial\n" \
                  "    expires: 2011-12-31\n    region: REGION\n"


@pytest.mark.parametrize("region", ['"dst.p\rort == 587"', "dst.port ==\n      587", "|\n      dst.port == 587"])
def test_a_waiver_region_written_on_several_lines_is_an_error_at_it(region):
    """Input 756362 of seed 1 (a lone CR put into a waiver's region `"dst.port == 587"`): YAML
    folded the break into a space, so the value was on one line but its text was not; the
    condition `dst.p ort == 587` was parsed as if it stood on the line of `region:`, and its
    errors named columns past that line's end. A region's text must be on one line."""
    code, _, err = run_with("waivers", WAIVER_IN_BLOCK.replace("REGION", region))
    assert code == 2
    assert err.startswith("error[E634]: `region` must be a condition on one line, below the top of the file\n"
                          " --> file.yaml:7:13\n")


@pytest.mark.parametrize("region, column", [("dst.prt == 587", 13), ('"  dst.prt == 587"', 16), ("' dst.prt == 587'", 15)])
def test_an_error_in_a_waiver_region_is_at_its_column_after_leading_spaces(region, column):
    code, _, err = run_with("waivers", WAIVER_IN_BLOCK.replace("REGION", region))
    assert code == 2
    assert f"error[E101]: unknown field `dst.prt`\n --> file.yaml:7:{column}\n" in err


def test_a_spec_name_too_long_for_the_file_system_is_an_error_at_the_name():
    """Input 2080 of seed 2 (a token of a terms file's `specs` repeated a hundred times): the
    file system's ENAMETOOLONG left pathlib's is_file, an internal error (exit 4)."""
    Path("terms.yaml").write_text(TERMS.replace("[spec.dpi]", "[" + "spec" * 100 + ".dpi]"), encoding="utf-8")
    code, _, err = run_cli("audit", "policy.dpi", "--terms", "terms.yaml")
    assert code == 2 and "internal error" not in err
    assert "error[E607]: cannot read spec file `specspec" in err and ": file name too long\n --> terms.yaml:3:9" in err


def test_a_diff_of_tables_where_a_rule_matches_no_flow():
    """Inputs 8901 and 19584 of seed 3 (a table's `"subscriber.zone": ["uk"]` made `[]`): the
    diff followed the empty box, found no rule of the other table holding it, and stopped with
    an internal error. The rule decides no flow: emptying its match removes its flows."""
    write_policy(Path("."), "default allow\nrule r when dst.port == 25 then block\nrule s when dst.port == 80 then reset\n",
                 "p.dpi")
    assert run_cli("compile", "p.dpi", "-o", "old.json")[0] == 0
    table = json.loads(Path("old.json").read_text(encoding="utf-8"))
    table["rules"][0]["match"]["dst.port"] = []
    Path("new.json").write_text(json.dumps(table), encoding="utf-8")
    for old, new, change in (("old.json", "new.json", "block -> allow"), ("new.json", "old.json", "allow -> block")):
        code, out, err = run_cli("diff", old, new, "--format", "json")
        assert code == 1 and err == ""
        (group,) = json.loads(out)["groups"]
        assert group["change"] == change and [r["text"] for r in group["regions"]] == ["dst.port == 25"]
    assert run_cli("diff", "new.json", "new.json")[0] == 0


def test_check_of_a_table_where_a_rule_matches_no_flow():
    """Input 14796 of seed 3 (`"app": ["spotify"]` made `[]`): an equal-treatment invariant
    looked for a realistic flow of the empty box, an internal error. Such a rule is left out
    when the table is read; its name still names a rule."""
    write_policy(Path("."), "default allow\nrule r when app == spotify then throttle 1Mbps\n", "p.dpi")
    assert run_cli("compile", "p.dpi", "-o", "t.json")[0] == 0
    table = json.loads(Path("t.json").read_text(encoding="utf-8"))
    table["rules"][0]["match"]["app"] = []
    Path("t.json").write_text(json.dumps(table), encoding="utf-8")
    write_policy(Path("."), "invariant neutral require same rate across app\ninvariant r_decides exists rule == r\n",
                 "s.dpi")
    code, out, err = run_cli("check", "t.json", "--spec", "s.dpi")
    assert code == 1 and err == ""
    assert "invariant holds    neutral" in out and "invariant violated r_decides" in out
