"""Reading a rule table: every wrong type at every level of the JSON is an E300-E302 error that
points at the place (a JSON path), never a crash and never a silently ignored value."""
from __future__ import annotations

import copy
import json

import pytest

from helpers import EXAMPLES, run_cli

# Keys that may be null (absent): everything else must have the type the writer gives it.
NULLABLE = {"policy", "name", "version", "enums", "plan", "addon", "source", "because"}
WRONG = [None, 7, 1.5, True, "x", [], {}]


def json_type(value) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list", dict: "object",
            type(None): "null"}[type(value)]


def paths(value, path=()):
    """Every place in a JSON document, as a tuple of keys and indices."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from paths(inner, path + (key,))


def path_text(path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("table") / "rules.json"
    code, _, err = run_cli("compile", EXAMPLES / "policy-2011-09.dpi", "-o", path)
    assert code == 0, err
    return json.loads(path.read_text())


def check_table(tmp_path, data) -> tuple[int, str, dict]:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(data))
    code, out, err = run_cli("check", path, "--format", "json")
    return code, err, (json.loads(out) if out else {})


def mutations(table: dict):
    for path in paths(table):
        if not path:
            continue
        original = table
        for key in path:
            original = original[key]
        for wrong in WRONG:
            if json_type(wrong) == json_type(original):
                continue
            if wrong is None and path[-1] in NULLABLE or wrong == [] and path == ("enums", "addon"):
                continue
            if path[-2:-1] == ("match",) and isinstance(wrong, list):
                continue            # a value set is a list or {"not": [...]}
            yield path, wrong


def test_every_wrong_type_everywhere_is_located_error(tmp_path, compiled):
    failures = []
    count = 0
    for path, wrong in mutations(compiled):
        count += 1
        data = with_value(compiled, path, wrong)
        code, err, report = check_table(tmp_path, data)
        file = str(tmp_path / "rules.json")
        where = file if path[0] in ("format", "version") else f"{file}: {path_text(path)}"
        locations = [d["location"] for d in report.get("diagnostics", [])]
        codes = {d["code"] for d in report.get("diagnostics", [])}
        if code != 2 or "internal error" in err or not codes <= {"E300", "E301", "E302"} or where not in locations:
            failures.append(f"{path_text(path)} = {wrong!r}: exit {code}, {locations}\n{err[:300]}")
    assert count > 300
    assert not failures, "\n".join(failures[:10])



def with_value(compiled: dict, path: tuple, value) -> dict:
    """A copy of the compiled table with `value` put at `path`."""
    data = copy.deepcopy(compiled)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data

@pytest.mark.parametrize("path, value, message", [
    (("rules", 0, "match"), ["dst.port"], "`match` must be an object from field names to value sets, not a list"),
    (("policy",), "uk_mobile_data", "`policy` must be an object with `name` and `version`, not a string"),
    (("rules", 0, "match", "dst.port"), "25", 'a value set is a list of values, or {"not": [...]}, not a string'),
    (("rules", 0, "match", "dst.port", 0), 25, "a value must be a string, not a number"),
    (("rules", 3, "action", "rate_bps"), "128kbps", "a throttle needs `rate_bps`"),
    (("rules", 0, "action", "log"), "yes", "`log` must be true or false, not a string"),
    (("enums", "plan"), [], "`enums.plan` must be null or a non-empty list of names, not an empty list"),
    (("rules", 1, "rule"), "default", "a rule cannot be named `default`"),
    (("rules", 1, "index"), 7, "`index` is 7, but this is rule 1 of the list"),
])
def test_reported_shapes(tmp_path, compiled, path, value, message):
    data = with_value(compiled, path, value)
    code, err, report = check_table(tmp_path, data)
    assert code == 2 and "Traceback" not in err
    (d,) = [d for d in report["diagnostics"] if d["path"] == path_text(path)]
    assert d["code"] == "E301" and d["message"].startswith(message), d


def test_misspelt_or_repeated_keys_are_errors_not_ignored(tmp_path):
    """A misspelt `match` would otherwise give a rule that matches every flow."""
    (tmp_path / "rules.json").write_text(
        '{"format": "dpipolicy-rule-table", "version": 1, "default": {"kind": "allow"}, "colour": 1,'
        ' "rules": [{"rule": "a", "action": {"kind": "block"}, "mach": {"dst.port": ["25"]}},'
        '           {"rule": "b", "action": {"kind": "block"}, "match": {"dst.port": ["25"], "dst.port": ["26"]}}]}')
    code, out, err = run_cli("check", tmp_path / "rules.json", "--format", "json")
    found = [(d["path"], d["message"], d["help"]) for d in json.loads(out)["diagnostics"]]
    assert code == 2
    assert found == [
        ("colour", "unknown key `colour`",
         "keys here: format, version, policy, enums, fields, interfaces, domains, default, rules, approximations"),
        ("rules[0].mach", "unknown key `mach`", "did you mean `match`?"),
        ("rules[0]", "missing `match`", "keys here: index, rule, source, because, action, match"),
        ("rules[1].match.dst.port", "`dst.port` is given twice", "keep one of them"),
    ]


def test_bad_enum_is_reported_once_not_again_as_unknown_fields(tmp_path, compiled):
    data = copy.deepcopy(compiled)
    data["enums"]["plan"] = ["payg", "payg"]
    code, err, report = check_table(tmp_path, data)
    assert code == 2
    assert [(d["path"], d["message"]) for d in report["diagnostics"]] == [("enums.plan[1]", "`payg` is listed twice")]


def test_version_must_be_the_number_one(tmp_path):
    for version, words in ((True, "version true is not supported"), ("1", 'version "1" is not supported'),
                           (None, "has no `version`")):
        data = {"format": "dpipolicy-rule-table", "default": {"kind": "allow"}, "rules": []}
        if version is not None:
            data["version"] = version
        code, err, report = check_table(tmp_path, data)
        assert code == 2 and report["diagnostics"][0]["code"] == "E302"
        assert report["diagnostics"][0]["message"] == f"rule table {words}"


def test_table_that_is_not_utf8_is_e300_with_line_and_column(tmp_path):
    path = tmp_path / "rules.json"
    second_line = b' "policy": {"name": "caf\xe9"}}'
    path.write_bytes(b'{"format": "dpipolicy-rule-table",\n' + second_line)
    code, out, err = run_cli("check", path)
    assert code == 2 and "error[E300]: invalid JSON: byte 0xe9 is not UTF-8" in err
    assert f"{path}:2:{second_line.index(0xe9) + 1}\n" in err and "Traceback" not in err


def test_written_tables_still_read(tmp_path):
    """A table without add-ons is written with `"addon": []`; the reader takes that as none."""
    policy = tmp_path / "p.dpi"
    policy.write_text("default allow\nrule r when dst.port == 25 then block\n")
    spec = tmp_path / "spec.dpi"
    spec.write_text("test t given dst.port == 25 expect block\n")
    code, _, err = run_cli("compile", policy, "-o", tmp_path / "rules.json")
    assert code == 0, err
    assert json.loads((tmp_path / "rules.json").read_text())["enums"] == {"plan": None, "addon": []}
    code, out, err = run_cli("check", tmp_path / "rules.json", "--spec", spec)
    assert code == 0, err
    assert "1 test (1 passed, 0 failed)" in out


def test_rules_in_the_spec_of_a_table_are_an_error_not_ignored(tmp_path):
    policy = tmp_path / "p.dpi"
    policy.write_text("default allow\nrule r when dst.port == 25 then block\n")
    assert run_cli("compile", policy, "-o", tmp_path / "rules.json")[0] == 0
    spec = tmp_path / "spec.dpi"
    spec.write_text("rule extra when tls then block\ntest t given dst.port == 25 expect block\n")
    code, _, err = run_cli("check", tmp_path / "rules.json", "--spec", spec)
    assert code == 2 and "error[E141]: rules belong in the policy file, not in a spec file" in err
