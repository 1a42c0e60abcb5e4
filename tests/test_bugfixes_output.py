"""What the command line prints: JSON diagnostics for programs, error counts, summaries in the
right number, unknown results named by rule, and files that cannot be read."""
from __future__ import annotations

import json

import pytest

from dpipolicy.verifier import properties, validate

from helpers import TimedOutScope, run_cli, write_policy

BAD = "default allow\nrule r when dst.port == 70000 then block\n"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # locations read `policy.dpi:2:25`


# ----- --format json on bad input -----------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["check", "policy.dpi"],
    ["compile", "policy.dpi"],
    ["explain", "policy.dpi", "--flow", "dst.port=25"],
])
def test_bad_input_with_format_json_gives_diagnostics_on_stdout(tmp_path, command):
    write_policy(tmp_path, BAD)
    code, out, err = run_cli(*command, "--format", "json")
    text_code, text_out, text_err = run_cli(*command)
    assert code == text_code == 2
    assert err == text_err and text_out == ""            # the human text is on stderr either way
    assert json.loads(out) == {
        "status": "bad input", "errors": 1, "summary": "1 error; nothing was checked",
        "diagnostics": [{"code": "E111", "severity": "error", "message": "port 70000 is out of range",
                         "location": "policy.dpi:2:25", "file": "policy.dpi", "line": 2, "column": 25, "path": None,
                         "label": "ports are 0..65535", "notes": [],
                         "help": "`dst.port` takes values from 0 to 65535"}]}


def test_json_diagnostics_of_inputs_without_source_text(tmp_path):
    (tmp_path / "rules.json").write_text('{"format": "dpipolicy-rule-table", "version": 1, "rules": []}')
    code, out, _ = run_cli("check", "rules.json", "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert code == 2
    assert (d["code"], d["message"], d["file"], d["line"]) == ("E301", "missing `default`", "rules.json", None)
    (tmp_path / "rules.json").write_text(
        '{"format": "dpipolicy-rule-table", "version": 1, "default": {"kind": "allow"},'
        ' "rules": [{"rule": "r", "action": {"kind": "block"}, "match": []}]}')
    code, out, _ = run_cli("check", "rules.json", "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert code == 2 and (d["file"], d["line"], d["path"]) == ("rules.json", None, "rules[0].match")
    write_policy(tmp_path, "default allow\n")
    code, out, _ = run_cli("explain", "policy.dpi", "--flow", "dst.port=1 colour=red", "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert code == 2 and (d["code"], d["file"], d["line"], d["column"]) == ("E310", "--flow", 1, 12)
    code, out, _ = run_cli("check", "nowhere.dpi", "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert code == 2 and (d["code"], d["file"], d["line"]) == ("E010", "nowhere.dpi", None)


# ----- counting errors ----------------------------------------------------------------------
def test_stopping_after_50_syntax_errors_is_a_note_not_an_error(tmp_path):
    write_policy(tmp_path, "".join(f"rule r{i} when dst.port = 25 then block\n" for i in range(60)))
    code, out, err = run_cli("check", "policy.dpi", "--format", "json")
    data = json.loads(out)
    assert code == 2 and err.count("\nerror[") + err.startswith("error[") == 50 == data["errors"]
    assert "note[E003]: stopped reading `policy.dpi` after 50 syntax errors" in err
    assert err.endswith("\n50 errors, and more may follow in a file not read to the end; nothing was checked\n")
    assert [d["severity"] for d in data["diagnostics"]] == ["error"] * 50 + ["note"]


def test_error_count_with_several_kinds_of_error(tmp_path):
    write_policy(tmp_path, "default allow\nrule a when tls then\nrule b when dst.port = 3 then block\n"
                           "rule c when app == youtub then block\nrule d when dst.port == 70000 then block\n")
    code, _, err = run_cli("check", "policy.dpi")
    assert code == 2 and err.count("error[") == 4
    assert err.endswith("\n4 errors; nothing was checked\n")


# ----- summaries ----------------------------------------------------------------------------
def test_summary_is_singular_for_one(tmp_path):
    # two tests of one field are not proved by value sets, so z3 proves the rule: one query
    write_policy(tmp_path, "default allow\nrule r when dst.port != 25 and dst.port != 80 then block\n"
                           "invariant i require action == allow\ntest t given dst.port == 26 expect block\n")
    code, out, _ = run_cli("check", "policy.dpi")
    assert code == 1
    assert out.endswith("translation validation: compiled table proved equal to the policy (1 rule, 1 z3 query)\n"
                        "summary: 1 invariant (0 hold, 1 violated), 1 test (1 passed, 0 failed), 0 unknown\n")
    code, _, err = run_cli("compile", "policy.dpi", "-o", "rules.json")
    assert code == 0 and err.startswith("wrote 1 match rule to rules.json; ")


def test_summary_agrees_with_one_holding_invariant(tmp_path):
    write_policy(tmp_path, "default allow\ninvariant i require action == allow\n")
    _, out, _ = run_cli("check", "policy.dpi")
    assert "summary: 1 invariant (1 holds, 0 violated), 0 tests (0 passed, 0 failed), 0 unknown" in out


# ----- unknown results -----------------------------------------------------------------------
def test_unknown_reason_names_the_rule_and_its_location(tmp_path, monkeypatch):
    write_policy(tmp_path, """default allow
rule a when dst.port in 1..100 and tls then block
rule b when dst.port in 50..200 and not tls then block
rule c when dst.port in 1..200 then reset
invariant covered when dst.port in 60..90 require action != reset
""")
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    code, out, _ = run_cli("check", "policy.dpi", "--format", "json")
    assert code == 3
    (result,) = json.loads(out)["results"]
    assert result["reason"] == "timeout on the flows rule c (policy.dpi:4:1) decides"
    _, out, _ = run_cli("check", "policy.dpi")
    assert "the solver gave no answer: timeout on the flows rule c (policy.dpi:4:1) decides; raise --timeout" in out
    assert "#" not in out


def test_unknown_translation_validation_reads_once(tmp_path, monkeypatch):
    write_policy(tmp_path, "default allow\nrule r when dst.port != 25 and dst.port != 80 then block\n")  # a query
    monkeypatch.setattr(validate, "Scope", TimedOutScope)
    code, out, _ = run_cli("check", "policy.dpi")
    assert code == 3
    assert ("translation validation: compiled table not proved equal to the policy: the solver gave no answer "
            "(timeout)\n") in out
    code, _, err = run_cli("compile", "policy.dpi", "-o", "rules.json")
    assert code == 3
    assert err == ("wrote 1 match rule to rules.json; compiled table not proved equal to the policy: "
                   "the solver gave no answer (timeout)\n")


# ----- files that cannot be read ------------------------------------------------------------
@pytest.mark.parametrize("argv, message, help", [
    (["check", "nowhere.dpi"], "cannot read the policy file `nowhere.dpi`: there is no such file",
     "check the path; it is relative to the current folder"),
    (["check", "policy.dpi", "--spec", "nowhere.dpi"], "cannot read the spec file `nowhere.dpi`: there is no such file",
     "check the path; it is relative to the current folder"),
    (["check", "nowhere.json"], "cannot read the rule table `nowhere.json`: there is no such file",
     "check the path; it is relative to the current folder"),
    (["check", "folder"], "cannot read the policy file `folder`: it is a folder, not a file",
     "check the path; it is relative to the current folder"),
    (["check", "policy.dpi", "--catalogue", "apps.yaml"],
     "cannot read the catalogue `apps.yaml`: there is no such file", "check the path given to `--catalogue`"),
])
def test_unreadable_files(tmp_path, argv, message, help):
    write_policy(tmp_path, "default allow\n")
    (tmp_path / "folder").mkdir()
    code, out, err = run_cli(*argv, "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert code == 2 and (d["message"], d["help"]) == (message, help)
    assert d["code"] == ("E051" if "--catalogue" in argv else "E010")
    assert f"[{d['code']}]: {message}\n" in err and "Traceback" not in err


def test_catalogue_that_is_not_utf8(tmp_path):
    write_policy(tmp_path, "default allow\n")
    (tmp_path / "apps.yaml").write_bytes(b"applications:\n  - {name: caf\xe9, category: web}\n")
    code, _, err = run_cli("check", "policy.dpi", "--catalogue", "apps.yaml")
    assert code == 2 and "error[E050]: the catalogue is not UTF-8: byte 0xe9\n --> apps.yaml:2:15\n" in err


def test_compile_refuses_a_table_before_reading_it(tmp_path):
    (tmp_path / "rules.json").write_text("not even json")
    code, _, err = run_cli("compile", "rules.json")
    assert code == 2 and "error[E321]" in err and "E300" not in err


# ----- units --------------------------------------------------------------------------------
def test_volume_units_say_bytes_in_tables(tmp_path):
    (tmp_path / "rules.json").write_text(json.dumps({
        "format": "dpipolicy-rule-table", "version": 1, "default": {"kind": "allow"},
        "rules": [{"rule": "r", "action": {"kind": "block"}, "match": {"subscriber.usage": ["1.5B", "20"]}}]}))
    code, out, _ = run_cli("check", "rules.json", "--format", "json")
    found = [(d["message"], d["help"]) for d in json.loads(out)["diagnostics"]]
    assert code == 2 and found == [
        ("`1.5B` is not a whole number of bytes", "a volume counts whole bytes: write `1B` or `2B`"),
        ("`20` is not a volume", "units: B (bytes), KB, MB, GB, TB, PB (powers of 1000)")]
