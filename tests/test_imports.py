"""Imports: relative to the importing file, inside the policy root, each file once, items placed
where the import stands; escapes, missing files and cycles are errors at the import."""
from __future__ import annotations

from pathlib import Path

import pytest

from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.frontend import load_policy

from helpers import run_cli


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def errors(policy: Path, specs: tuple[Path, ...] = ()) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as info:
        load_policy(policy, specs)
    return list(info.value.diagnostics)


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    assert len(diagnostics) == 1, "\n\n".join(d.render() for d in diagnostics)
    return diagnostics[0]


def where(d: Diagnostic) -> str:
    return f"{d.span.file.path.name}:{d.span.line}:{d.span.column}"


def test_import_escaping_the_policy_root(tmp_path):
    write(tmp_path, {"x.dpi": "set outside = { 25 }\n",
                     "policy/main.dpi": '# main\ndefault allow\n  import "../x.dpi"\n'})
    d = only(errors(tmp_path / "policy" / "main.dpi"))
    assert d.code == "E012" and where(d) == "main.dpi:3:3"
    assert "`../x.dpi`" in d.message and "leaves the policy root" in d.message
    assert d.span.text == 'import "../x.dpi"'
    assert "policy/main.dpi`" in d.notes[0] and "stay inside" in d.notes[0]


def test_nested_import_escaping_the_root_is_reported_in_the_nested_file(tmp_path):
    write(tmp_path, {"secret.dpi": "set s = { 1 }\n",
                     "root/main.dpi": 'import "lib/defs.dpi"\ndefault allow\n',
                     "root/lib/defs.dpi": 'set ok = { 25 }\nimport "../../secret.dpi"\n'})
    d = only(errors(tmp_path / "root" / "main.dpi"))
    assert d.code == "E012" and where(d) == "defs.dpi:2:1"


def test_absolute_import_outside_the_root(tmp_path):
    write(tmp_path, {"root/main.dpi": f'import "{tmp_path / "x.dpi"}"\ndefault allow\n', "x.dpi": ""})
    assert only(errors(tmp_path / "root" / "main.dpi")).code == "E012"


def test_missing_import(tmp_path):
    write(tmp_path, {"main.dpi": 'default allow\nimport "defs/missing.dpi"\n'})
    d = only(errors(tmp_path / "main.dpi"))
    assert d.code == "E014" and where(d) == "main.dpi:2:1"
    assert "`defs/missing.dpi` does not exist" in d.message
    assert "missing.dpi" in d.notes[0] and "relative to the importing file" in d.help


def test_import_cycle(tmp_path):
    write(tmp_path, {"a.dpi": 'default allow\nimport "b.dpi"\nrule ra when tls then block\n',
                     "b.dpi": 'set ports = { 25 }\n\nimport "a.dpi"\n'})
    d = only(errors(tmp_path / "a.dpi"))
    assert d.code == "E013" and "cycle" in d.message
    assert where(d) == "b.dpi:3:1"                       # the import that closes the cycle
    assert len(d.notes) == 1
    chain = [Path(p.strip()).name for p in d.notes[0].split("->")]
    assert chain == ["a.dpi", "b.dpi", "a.dpi"]


def test_self_import_is_a_cycle(tmp_path):
    write(tmp_path, {"a.dpi": 'default allow\nimport "./a.dpi"\n'})
    d = only(errors(tmp_path / "a.dpi"))
    assert d.code == "E013" and where(d) == "a.dpi:2:1"


def test_importing_the_same_file_twice_is_harmless(tmp_path):
    write(tmp_path, {
        "defs.dpi": "enum plan { payg, monthly }\nset mail = { 25, 465, 587 }\n",
        "more.dpi": 'import "defs.dpi"\nrule more when dst.port in mail and subscriber.plan == payg then block\n',
        "main.dpi": 'import "defs.dpi"\nimport "defs.dpi"\nimport "./defs.dpi"\nimport "more.dpi"\n'
                    'default allow\n',
    })
    policy = load_policy(tmp_path / "main.dpi")
    assert [r.origin.name for r in policy.rules] == ["more"]
    assert policy.schema.field("subscriber.plan").members == ("payg", "monthly")


def test_imported_rules_are_placed_at_the_import(tmp_path):
    write(tmp_path, {
        "main.dpi": 'default allow\nrule first when dst.port == 1 then block\nimport "mid.dpi"\n'
                    'rule last when dst.port == 4 then block\n',
        "mid.dpi": 'rule mid_a when dst.port == 2 then block\nimport "inner/deep.dpi"\n'
                   'rule mid_b when dst.port == 3 then block\n',
        "inner/deep.dpi": 'rule deep when dst.port == 5 then block\n',
    })
    policy = load_policy(tmp_path / "main.dpi")
    assert [r.origin.name for r in policy.rules] == ["first", "mid_a", "deep", "mid_b", "last"]
    deep = policy.rules[2]
    assert deep.origin.span.file.path.name == "deep.dpi" and deep.origin.span.line == 1


def test_definitions_after_their_use_through_an_import(tmp_path):
    """Names are visible across the whole check, wherever the import stands."""
    write(tmp_path, {"main.dpi": 'default allow\nrule r when dst.port in mail then block\nimport "defs.dpi"\n',
                     "defs.dpi": "set mail = { 25 }\n"})
    assert [r.origin.name for r in load_policy(tmp_path / "main.dpi").rules] == ["r"]


SHARED = {
    "definitions.dpi": "enum plan { payg, monthly }\nenum addon { vpn }\nset operator_mail = { 149.254.200.0/24 }\n",
    "policy.dpi": 'import "definitions.dpi"\ndefault allow\n'
                  "rule relay when proto == tcp and dst.port == 25 and dst.ip not in operator_mail then block\n",
    "spec.dpi": 'import "definitions.dpi"\n'
                "invariant operator_relay_open when dst.ip in operator_mail require action == allow\n"
                "test payg_vpn given dst.port == 443 and subscriber.plan == payg and vpn in subscriber.addons expect allow\n",
}


def test_spec_importing_the_shared_definitions(tmp_path):
    write(tmp_path, SHARED)
    policy = load_policy(tmp_path / "policy.dpi", (tmp_path / "spec.dpi",))
    assert [i.name for i in policy.invariants] == ["operator_relay_open"]
    assert [t.name for t in policy.tests] == ["payg_vpn"]
    assert [r.origin.name for r in policy.rules] == ["relay"]


def test_spec_importing_the_shared_definitions_through_the_cli(tmp_path):
    write(tmp_path, SHARED)
    code, out, err = run_cli("check", tmp_path / "policy.dpi", "--spec", tmp_path / "spec.dpi")
    assert code == 0, out + err
    assert "1 invariant (1 holds, 0 violated), 1 test (1 passed, 0 failed)" in out


def test_spec_alone_may_import_the_definitions(tmp_path):
    """A spec file can bring definitions the policy does not import itself."""
    files = dict(SHARED)
    files["policy.dpi"] = "default allow\nrule relay when proto == tcp and dst.port == 25 then block\n"
    write(tmp_path, files)
    policy = load_policy(tmp_path / "policy.dpi", (tmp_path / "spec.dpi",))
    assert policy.schema.addons == ("vpn",)


def test_syntax_error_in_an_imported_file_names_that_file(tmp_path):
    write(tmp_path, {"main.dpi": 'import "defs.dpi"\ndefault allow\n',
                     "defs.dpi": "set ok = { 25 }\nset bad = { 25 465 }\n"})
    d = only(errors(tmp_path / "main.dpi"))
    assert d.code == "E001" and where(d) == "defs.dpi:2:16"


def test_import_errors_and_syntax_errors_together(tmp_path):
    """A missing import stops checking, but the syntax errors found on the way are still shown."""
    write(tmp_path, {"main.dpi": 'import "nope.dpi"\ndefault allow\nrule r when tls then\n'})
    ds = errors(tmp_path / "main.dpi")
    assert [(d.code, d.span.line) for d in ds] == [("E014", 1), ("E001", 3)]


def test_import_of_a_non_utf8_file(tmp_path):
    write(tmp_path, {"main.dpi": 'default allow\nimport "latin.dpi"\n'})
    (tmp_path / "latin.dpi").write_bytes(b"set caf\xe9 = { 1 }\n")
    d = only(errors(tmp_path / "main.dpi"))
    assert d.code == "E011" and where(d) == "latin.dpi:1:8"
