"""Error paths of the front end: every kind of error has its code, its own location and words that
tell the user what to write; all errors of a file are reported; the CLI shows them without a
traceback; golden files pin the exact rendering; the language contract's example checks."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dpipolicy.compiler.lower import lower
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.frontend import load_policy
from dpipolicy.dsl.schema import PROTOCOLS
from dpipolicy.dsl.typed import Action, decide
from dpipolicy.dsl.values import parse_ip

from helpers import first_block, run_cli, write_policy

GOLDEN = Path(__file__).resolve().parent / "golden" / "diagnostics"
LANGUAGE_MD = Path(__file__).resolve().parents[2] / "shared" / "design" / "language.md"

PRELUDE = """enum plan { payg, monthly }
enum addon { vpn, tethering }
set ops = { 10.0.0.0/8 }
default allow
"""
CASE_LINE = PRELUDE.count("\n") + 1      # the line a case written after the prelude starts on


def diagnose(tmp_path: Path, text: str, specs: dict[str, str] | None = None) -> list[Diagnostic]:
    """The diagnostics of a policy text (and spec texts), which must not check cleanly."""
    policy = write_policy(tmp_path, text)
    spec_paths = tuple(write_policy(tmp_path, body, name) for name, body in (specs or {}).items())
    with pytest.raises(DiagnosticError) as info:
        load_policy(policy, spec_paths)
    return list(info.value.diagnostics)


def where(d: Diagnostic) -> str:
    """`file:line:col` with the file's base name (tmp_path is not under the working folder)."""
    return f"{d.span.file.path.name}:{d.span.line}:{d.span.column}"


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    assert len(diagnostics) == 1, "\n\n".join(d.render() for d in diagnostics)
    return diagnostics[0]


# ----- one error each, written after a prelude that declares everything it needs -------------
# (case, rule text, code, column, words in the message, words in the help, text under the caret)
CASES = [
    ("port compared with a protocol", "rule r when dst.port == tcp then block",
     "E106", 25, ["`tcp` is not a port"], ["proto == tcp"], "tcp"),
    ("application is not ordered", "rule r when app < youtube then block",
     "E124", 13, ["`<` needs an ordered field", "`app`"], ["`==`", "`in`"], "app < youtube"),
    ("protocol compared with an address", "rule r when proto == 10.0.0.1 then block",
     "E106", 22, ["`10.0.0.1` is not a protocol"], ["protocol name", "0..255"], "10.0.0.1"),
    ("unknown field", "rule r when colour == red then block",
     "E101", 13, ["unknown field `colour`"], ["`dst.port`"], "colour"),
    ("misspelt field", "rule r when dst.prot == 25 then block",
     "E101", 13, ["unknown field `dst.prot`"], ["did you mean `dst.port`?"], "dst.prot"),
    ("unknown field in a membership", "rule r when colour in {1, 2} then block",
     "E101", 13, ["unknown field `colour`"], [], "colour"),
    ("unknown application", "rule r when app == youtub then block",
     "E103", 20, ["unknown application `youtub`"], ["did you mean `youtube`?"], "youtub"),
    ("unknown set", "rule r when dst.ip in opps then block",
     "E101", 23, ["unknown set `opps`"], ["did you mean `ops`?"], "opps"),
    ("unknown category", "rule r when app in category.vpnn then block",
     "E101", 20, ["unknown category `vpnn`"], ["did you mean `vpn`?"], "category.vpnn"),
    ("add-on used as a plan", "rule r when subscriber.plan == vpn then block",
     "E103", 32, ["unknown `plan` member `vpn`"], ["belongs to enum `addon`", "`vpn in subscriber.addons`"], "vpn"),
    ("plan used as an add-on", "rule r when payg in subscriber.addons then block",
     "E103", 13, ["`payg` is not an add-on"], ["belongs to enum `plan`", "`subscriber.plan == payg`"], "payg"),
    ("application used as a port", "rule r when dst.port == smtp then block",
     "E106", 25, ["`smtp` is not a port"], ["`app == smtp`"], "smtp"),
    ("empty range", "rule r when dst.port in 100..10 then block",
     "E128", 25, ["empty range `100..10`"], ["`10..100`"], "100..10"),
    ("port out of range", "rule r when dst.port == 70000 then block",
     "E111", 25, ["port 70000 is out of range"], ["0 to 65535"], "70000"),
    ("port out of range in a set", "rule r when dst.port in {25, 70000} then block",
     "E111", 30, ["port 70000 is out of range"], [], "70000"),
    ("hour out of range", "rule r when time.hour == 24 then block",
     "E111", 26, ["hour 24 is out of range"], ["0 to 23"], "24"),
    ("IPv4 prefix too long", "rule r when dst.ip in 10.0.0.0/33 then block",
     "E110", 23, ["prefix length /33 is out of range"], ["/0 to /32"], "10.0.0.0/33"),
    ("IPv6 prefix too long", "rule r when dst.ip in 2001:db8::/129 then block",
     "E110", 23, ["prefix length /129 is out of range"], ["/0 to /128"], "2001:db8::/129"),
    ("host bits set", "rule r when dst.ip in 10.0.0.1/8 then block",
     "E110", 23, ["`10.0.0.1/8` has host bits set"], ["did you mean `10.0.0.0/8`?"], "10.0.0.1/8"),
    ("IPv6 host bits set", "rule r when dst.ip in 2001:db8::1/32 then block",
     "E110", 23, ["host bits set"], ["`2001:db8::/32`"], "2001:db8::1/32"),
    ("prefix compared with ==", "rule r when dst.ip == 10.0.0.0/8 then block",
     "E125", 23, ["is a prefix, not one address"], ["`dst.ip in 10.0.0.0/8`"], "10.0.0.0/8"),
    ("volume without a unit", "rule r when subscriber.usage > 20 then block",
     "E106", 32, ["`20` is not a volume"], ["`20GB`"], "20"),
    ("field that is not a condition", "rule r when dst.port then block",
     "E121", 13, ["`dst.port` is not a condition"], ["`dst.port == ...`"], "dst.port"),
    ("unobservable field in a rule", "rule r when smtp.auth then block",
     "E160", 13, ["rules cannot match on `smtp.auth`", "cannot observe"], ["invariants and tests may use it"],
     "smtp.auth"),
    ("outcome variable in a rule", "rule r when action == block then block",
     "E161", 13, ["rules cannot match on `action`"], ["invariants and tests"], "action"),
    ("deciding rule in a rule", "rule r when rule == r then block",
     "E161", 13, ["rules cannot match on `rule`"], [], "rule"),
    ("throttle without a rate", "rule r when tls then throttle",
     "E150", 22, ["`throttle` needs a rate"], ["`throttle 128kbps`"], "throttle"),
    ("block with a rate", "rule r when tls then block 10kbps",
     "E152", 28, ["`block` takes no argument"], ["`throttle RATE`"], "10kbps"),
    ("redirect without a target", "rule r when tls then redirect",
     "E150", 22, ["`redirect` needs a target"], ['redirect "'], "redirect"),
    ("rate out of range in an invariant", "invariant i require rate < 2000Gbps",
     "E111", 28, ["rate 2000Gbps is out of range"], ["1000Gbps"], "2000Gbps"),
    ("unknown rule in an invariant", "invariant i require rule != rr",
     "E103", 29, ["unknown rule `rr`"], [], "rr"),
    ("unknown outcome name", "invariant i require actoin == allow",
     "E101", 21, ["unknown field `actoin`"], ["did you mean `action`?"], "actoin"),
]


@pytest.mark.parametrize("case, text, code, column, words, help_words, under_caret", CASES,
                         ids=[c[0] for c in CASES])
def test_each_error_kind(tmp_path, case, text, code, column, words, help_words, under_caret):
    d = only(diagnose(tmp_path, PRELUDE + text + "\n"))
    assert d.code == code, d.render()
    assert where(d) == f"policy.dpi:{CASE_LINE}:{column}", d.render()
    for w in words:
        assert w in d.message, d.render()
    for w in help_words:
        assert d.help and w in d.help, d.render()
    assert d.span.text == under_caret, d.render()
    assert not d.message.endswith(".") and not d.message[0].isupper(), d.message


def test_unobservable_field_is_fine_in_invariants_and_tests(tmp_path):
    policy = write_policy(tmp_path, PRELUDE + """
        rule r when app == smtps and dst.port == 465 then allow
        invariant auth_ok when smtp.auth and app == smtps require action == allow
        test t given smtp.auth and app == smtps and dst.port == 465 expect allow
    """)
    checked = load_policy(policy)
    assert [i.name for i in checked.invariants] == ["auth_ok"]
    assert [t.name for t in checked.tests] == ["t"]


def test_unobservable_error_says_why(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nrule r when not smtp.auth then block\n"))
    assert d.code == "E160" and where(d) == "policy.dpi:2:17"
    assert any("encrypted" in n for n in d.notes), d.notes


@pytest.mark.parametrize("kind, first, second", [
    ("rule", "rule dup when tls then block", "rule dup when not tls then allow"),
    ("set", "set dup = { 25 }", "set dup = { 465 }"),
    ("invariant", "invariant dup require action == allow", "invariant dup require action != block"),
    ("test", "test dup given tls expect allow", "test dup given not tls expect allow"),
    ("enum", "enum plan { payg }", "enum plan { monthly }"),
])
def test_duplicate_names_error_at_the_second(tmp_path, kind, first, second):
    d = only(diagnose(tmp_path, f"default allow\n{first}\n\n{second}\n"))
    assert d.code == "E102"
    assert d.message == (f"duplicate {kind} `dup`" if kind != "enum" else "duplicate enum `plan`")
    assert d.span.line == 4, d.render()
    assert d.notes and re.search(r"first defined at .*policy\.dpi:2:\d+", d.notes[0]), d.notes


def test_same_name_in_different_kinds_is_fine(tmp_path):
    load_policy(write_policy(tmp_path, """
        default allow
        set web = { 80, 443 }
        rule web when dst.port in web then allow
        invariant web require action == allow
        test web given dst.port == 80 expect allow
    """))


def test_duplicate_rule_body_is_still_checked(tmp_path):
    ds = diagnose(tmp_path, "default allow\nrule r when tls then block\nrule r when dst.port == 70000 then block\n")
    assert [(d.code, d.span.line) for d in ds] == [("E102", 3), ("E111", 3)]


def test_duplicate_across_policy_and_spec(tmp_path):
    ds = diagnose(tmp_path, "default allow\ninvariant i require action == allow\n",
                  {"spec.dpi": "invariant i require action != block\n"})
    d = only(ds)
    assert d.code == "E102" and where(d) == "spec.dpi:1:11"
    assert "policy.dpi:2:11" in d.notes[0]


def test_missing_default(tmp_path):
    d = only(diagnose(tmp_path, "# no default here\n\nrule r when tls then block\n"))
    assert d.code == "E140" and "no `default`" in d.message
    assert where(d) == "policy.dpi:3:1" and d.span.text == "rule"
    assert "`default allow`" in d.help


def test_missing_default_points_at_the_policy_header(tmp_path):
    d = only(diagnose(tmp_path, "rule r when tls then block\npolicy p version \"1\"\n"))
    assert d.code == "E140" and where(d) == "policy.dpi:2:1"


def test_empty_policy_file(tmp_path):
    d = only(diagnose(tmp_path, ""))
    assert d.code == "E140" and where(d) == "policy.dpi:1:1"


def test_missing_default_is_in_the_policy_file_not_an_import(tmp_path):
    (tmp_path / "defs.dpi").write_text("set mail = { 25 }\n")
    d = only(diagnose(tmp_path, 'import "defs.dpi"\n\nrule r when dst.port in mail then block\n'))
    assert d.code == "E140" and where(d) == "policy.dpi:1:1" and d.span.text == "import"


def test_two_defaults(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nrule r when tls then block\ndefault block\n"))
    assert d.code == "E143" and where(d) == "policy.dpi:3:1"
    assert "exactly one `default`" in d.message and "policy.dpi:1:1" in d.notes[0]


def test_plan_without_enum(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nrule r when subscriber.plan == payg then block\n"))
    assert d.code == "E104" and where(d) == "policy.dpi:2:13"
    assert "`enum plan`" in d.message and "enum plan {" in d.help


def test_addons_without_enum(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nrule r when vpn in subscriber.addons then block\n"))
    assert d.code == "E104" and where(d) == "policy.dpi:2:20"
    assert "`enum addon`" in d.message


def test_undeclarable_enum(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nenum colour { red }\n"))
    assert d.code == "E130" and where(d) == "policy.dpi:2:6" and "`plan`" in d.help


def test_set_mixing_ports_and_addresses(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nset mixed = { 25, 465, 10.0.0.0/8 }\n"))
    assert d.code == "E120" and where(d) == "policy.dpi:2:24"
    assert "mixes numbers and addresses" in d.message and "one type" in d.help


def test_set_mixing_used_in_a_rule_reports_the_member(tmp_path):
    ds = diagnose(tmp_path, "default allow\nset mixed = { 25, 10.0.0.0/8 }\nrule r when dst.port in mixed then block\n")
    assert ds[0].code == "E120" and ds[0].span.line == 2
    assert all(d.span.line == 2 for d in ds), [d.render() for d in ds]


@pytest.mark.parametrize("text, line, col, chain", [
    ("set loop = { 25, loop }\n", 2, 18, "loop -> loop"),
    ("set a = { 25, b }\nset b = { 26, a }\n", 3, 15, "a -> b -> a"),
    ("set a = { 25, b }\nset b = { 26, a }\nrule r when dst.port in b then block\n", 3, 15, "a -> b -> a"),
    ("set a = { 25, b }\nset b = { 26, c }\nset c = { b }\nrule r when dst.port in a then block\n", 4, 11,
     "b -> c -> b"),
])
def test_set_that_contains_itself(tmp_path, text, line, col, chain):
    d = only(diagnose(tmp_path, "default allow\n" + text))
    assert d.code == "E129" and "contains itself" in d.message
    assert where(d) == f"policy.dpi:{line}:{col}"
    assert d.notes == (chain,)


def test_rules_in_a_spec_file(tmp_path):
    d = only(diagnose(tmp_path, "default allow\n", {"spec.dpi": "rule r when tls then block\n"}))
    assert d.code == "E141" and where(d) == "spec.dpi:1:1" and "policy file" in d.message


# ----- every error is reported, in source order -----------------------------------------------
def test_all_errors_reported_in_source_order(tmp_path):
    ds = diagnose(tmp_path, """default allow
rule a when dst.port == 25 block
rule b when app == youtub then block
rule c when tls and then block
rule d when tls then allow
""")
    assert [(d.code, d.span.line) for d in ds] == [("E001", 2), ("E103", 3), ("E001", 4)], \
        "\n\n".join(d.render() for d in ds)
    assert "did you mean `youtube`?" in ds[1].help


def test_errors_across_files_each_in_their_file(tmp_path):
    (tmp_path / "defs.dpi").write_text("set ports = { 25, 70000 }\nset bad = {\n")
    ds = diagnose(tmp_path, 'import "defs.dpi"\ndefault allow\n'
                            'rule r when dst.port in ports then block\nrule s when tls then blok\n')
    got = [(d.span.file.path.name, d.span.line, d.code) for d in ds]
    assert got == [("defs.dpi", 1, "E111"), ("defs.dpi", 2, "E001"), ("policy.dpi", 4, "E001")], got


def test_a_broken_item_does_not_cascade(tmp_path):
    """The names a broken item declares are not reported as unknown where they are used."""
    ds = diagnose(tmp_path, """enum plan { payg monthly }
set ports = { 25 465 }
default
rule r when dst.port in ports and subscriber.plan == payg then block
invariant i require rule != r
""")
    assert [(d.code, d.span.line) for d in ds] == [("E001", 1), ("E001", 2), ("E001", 4)], \
        "\n\n".join(d.render() for d in ds)


def test_too_many_syntax_errors_stop_reading(tmp_path):
    text = "".join(f"rule r{i} when dst.port = 25 then block\n" for i in range(60))
    ds = diagnose(tmp_path, text + "rule last when dst.port in nope then block\n")
    assert [d.code for d in ds] == ["E001"] * 50 + ["E003"]       # nothing about the unread rest
    assert "stopped reading" in ds[-1].message and ds[-1].location() == ds[0].span.file.display_name


def test_broken_rule_is_not_unknown_to_invariants(tmp_path):
    ds = diagnose(tmp_path, "default allow\nrule r when tls then\ninvariant i require rule != r\n")
    assert [(d.code, d.span.line) for d in ds] == [("E001", 3)]
    assert ds[0].notes == ("the `rule` item at 2:1 is not complete",)


def test_unfinished_item_does_not_swallow_the_next_one(tmp_path):
    ds = diagnose(tmp_path, "default allow\nrule r when tls then\nrule s when dst.port == 70000 then block\n")
    assert [(d.code, where(d)) for d in ds] == [("E001", "policy.dpi:3:1"), ("E111", "policy.dpi:3:25")]
    assert "an action" in ds[0].help and ds[0].label == "a new item starts here"


# ----- syntax errors ------------------------------------------------------------------------
def syntax_error(tmp_path, text: str) -> Diagnostic:
    d = only(diagnose(tmp_path, "default allow\n" + text))
    assert d.code == "E001", d.render()
    return d


def test_single_quotes(tmp_path):
    d = syntax_error(tmp_path, "rule r when tls then block because 'spam'\n")
    assert where(d) == "policy.dpi:2:36" and "`'`" in d.message
    assert "double quotes" in d.help


@pytest.mark.parametrize("text, col, message, help_words", [
    ("rule r when tls and then block\n", 21, "missing a condition after `and`", "between `and` and `then`"),
    ("rule r when dst.port == then block\n", 25, "missing a value after `==`", "write a value"),
    ("rule r when dst.port in then block\n", 25, "missing a set or value after `in`", "write a set or value"),
    ("rule when tls then block\n", 6, "missing a name after `rule`", "write a name"),
])
def test_keyword_read_as_a_name(tmp_path, text, col, message, help_words):
    d = syntax_error(tmp_path, text)
    assert where(d) == f"policy.dpi:2:{col}", d.render()
    assert message in d.message and help_words in d.help
    assert "is a keyword" in d.label


@pytest.mark.parametrize("text, col, found, expected_first, hint", [
    ("rule r when dst.port == 25 block\n", 28, "`block`", "`then`", "write `then` before the action"),
    ("rule r when dst.port = 25 then block\n", 22, "`=`", "`then`", "write `==`"),
    ("rule r when dst.port in {25 465} then block\n", 29, "`465`", "`}`", "separate the members with `,`"),
    ("rule r when tls then throttle 128 kbps\n", 31, "`128`", "a rate", "`128kbps`"),
    ("rule r when tls then block log\n", 28, "`log`", "`because`", "`, log`"),
    ("rule r when tls then block because spam\n", 36, "`spam`", "a quoted string", "double quotes"),
    ("rule r when dst.port == 25 == 26 then block\n", 28, "`==`", "`then`", "do not chain"),
    ("set ports = 25\n", 13, "`25`", "`{`", "`{ 25, ... }`"),
    ("invariant i when tls action == allow\n", 22, "`action`", "`require`", None),
    ("rule r when (tls then block\n", 18, "`then`", "`)`", None),
])
def test_unexpected_token(tmp_path, text, col, found, expected_first, hint):
    d = syntax_error(tmp_path, text)
    assert where(d) == f"policy.dpi:2:{col}", d.render()
    assert d.message == f"syntax error: unexpected {found}"
    expected = d.help if hint is None else next(n for n in d.notes if n.startswith("expected"))
    assert expected.startswith(f"expected {expected_first}"), d.render()
    if hint is not None:
        assert hint in d.help, d.render()


def test_expected_list_is_exact_and_useful(tmp_path):
    """Only what can really follow, and what continues the item before a new item."""
    d = syntax_error(tmp_path, "rule r when dst.port == 25 tls then block\n")
    assert d.help == "expected `then`, `and` or `or`"
    d = syntax_error(tmp_path, "rule r when tls then block log\n")
    expected = next(n for n in d.notes if n.startswith("expected"))
    assert "rate" not in expected and "quoted string" not in expected       # `block` takes neither
    assert expected.index("`because`") < expected.index("`,`") < expected.index("a new item")


def test_end_of_file(tmp_path):
    d = syntax_error(tmp_path, "rule r when tls then   # the action is missing\n\n")
    assert d.message == "syntax error: unexpected end of file"
    assert where(d) == "policy.dpi:2:21"                        # right after `then`
    assert d.help.startswith("expected an action (`allow`")


@pytest.mark.parametrize("text, char, words", [
    ("rule r when tls && not tls then block\n", "&", "`and`"),
    ("rule r when tls then block;\n", ";", "no separator"),
    ('rule r when tls then block because "spam\n', '"', "same line"),
])
def test_unexpected_character(tmp_path, text, char, words):
    d = syntax_error(tmp_path, text)
    assert d.message == f"unexpected character `{char}`" and words in d.help


def test_dotted_item_name(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nset mail.ports = { 25 }\n"))
    assert d.code == "E002" and where(d) == "policy.dpi:2:5" and "`mail_ports`" in d.help


# ----- the command line -----------------------------------------------------------------------
def test_cli_bad_input(tmp_path):
    policy = write_policy(tmp_path, PRELUDE + "rule r when dst.port == tcp then block\n")
    code, out, err = run_cli("check", policy)
    assert code == 2 and out == ""
    assert f"policy.dpi:{CASE_LINE}:25" in err
    assert "error[E106]: `tcp` is not a port" in err
    assert re.search(r"^ *\| +\^\^\^ ", err, re.M), err
    assert "1 error; nothing was checked" in err
    assert "Traceback" not in err


def test_cli_reports_every_error(tmp_path):
    policy = write_policy(tmp_path, "rule a when tls then\nrule b when app == youtub then block\n")
    code, _, err = run_cli("check", policy)
    assert code == 2 and err.count("error[") == 3 and "3 errors; nothing was checked" in err
    assert err.index("error[E001]") < err.index("error[E103]")


def test_cli_missing_file(tmp_path):
    code, out, err = run_cli("check", tmp_path / "nowhere.dpi")
    assert code == 2 and out == ""
    assert "error[E010]: cannot read" in err and "nowhere.dpi" in err and "no such file" in err
    assert "Traceback" not in err


def test_cli_missing_spec_file(tmp_path):
    policy = write_policy(tmp_path, "default allow\n")
    code, _, err = run_cli("check", policy, "--spec", tmp_path / "spec.dpi")
    assert code == 2 and "E010" in err and "spec.dpi" in err and "Traceback" not in err


def test_cli_not_utf8(tmp_path):
    policy = tmp_path / "latin1.dpi"
    policy.write_bytes("default allow\nrule caf\u00e9 when tls then block\n".encode("latin-1"))
    code, out, err = run_cli("check", policy)
    assert code == 2 and out == ""
    assert "error[E011]" in err and "is not valid UTF-8" in err
    assert "latin1.dpi:2:9" in err and "0xe9" in err and "save the file as UTF-8" in err
    assert "Traceback" not in err


def test_utf8_with_byte_order_mark_is_read(tmp_path):
    policy = tmp_path / "bom.dpi"
    policy.write_bytes("\ufeffdefault allow\n".encode("utf-8"))
    assert run_cli("check", policy)[0] == 0


def test_cli_directory_instead_of_file(tmp_path):
    code, _, err = run_cli("check", tmp_path)
    assert code == 2 and "E010" in err and "Traceback" not in err


def test_render_aligns_and_expands_tabs(tmp_path):
    d = only(diagnose(tmp_path, "default allow\nrule r when\tdst.port == 70000 then block\n"))
    lines = d.render().splitlines()
    assert lines[1] == " --> " + d.location()
    source, caret = lines[3], lines[4]
    assert "\t" not in source
    assert caret.index("^") == source.index("70000") and caret.count("^") == 5
    assert lines[-1].startswith("  = help:")


# ----- golden files: the exact rendering ------------------------------------------------------
GOLDEN_CASES = sorted(p.name for p in GOLDEN.glob("*.dpi") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_diagnostics(name, monkeypatch):
    """`dpipolicy check NAME.dpi` run in the golden folder prints NAME.expected on stderr.

    Refresh with `DPIPOLICY_UPDATE_GOLDEN=1 pytest tests/test_diagnostics.py` and review the diff.
    Files starting with `_` are imported by the cases, not cases themselves; `_NAME_spec.dpi`,
    when it exists, is given to the case as `--spec`.
    """
    monkeypatch.chdir(GOLDEN)
    spec = f"_{name[:-len('.dpi')]}_spec.dpi"
    code, out, err = run_cli("check", name, *(("--spec", spec) if (GOLDEN / spec).exists() else ()))
    expected = GOLDEN / (name[:-len(".dpi")] + ".expected")
    if os.environ.get("DPIPOLICY_UPDATE_GOLDEN") == "1":
        expected.write_text(err, encoding="utf-8")
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert expected.exists(), f"no {expected.name}: run with DPIPOLICY_UPDATE_GOLDEN=1"
    assert err == expected.read_text(encoding="utf-8")


def test_golden_cases_exist():
    assert len(GOLDEN_CASES) >= 8
    assert {p.stem for p in GOLDEN.glob("*.expected")} == {n[:-len(".dpi")] for n in GOLDEN_CASES}


# ----- the contract's example -----------------------------------------------------------------
def contract_example() -> str:
    return first_block(LANGUAGE_MD, "## 2. Items")


@pytest.fixture(scope="module")
def example_policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "example.dpi"
    path.write_text(contract_example(), encoding="utf-8")
    return load_policy(path)


def flow_of(policy, **values) -> dict[str, int]:
    """A concrete flow: every field 0 except those given (names with `_` for `.`), in the schema's
    encodings; `addons=[...]` sets the add-on fields."""
    schema = policy.schema
    flow = {f.name: 0 for f in schema.flow_fields}
    for key, value in values.items():
        if key == "addons":
            for addon in value:
                flow[schema.addon_field(addon)] = 1
            continue
        name = key.replace("_", ".", 1) if key not in ("subscriber_usage",) else "subscriber.usage"
        f = schema.field(name)
        assert f is not None and name in flow, name
        if f.kind == "ip":
            value = parse_ip(value)[0]
        elif f.kind == "protocol" and isinstance(value, str):
            value = PROTOCOLS[value]
        elif f.kind == "enum":
            value = f.index_of(value)
        flow[name] = int(value)
    return flow


def table_decide(table, flow):
    for rule in table.rules:
        if all(flow[name] in values for name, values in rule.matches):
            return rule.origin.name, rule.action
    return "default", table.default


def test_contract_example_checks(example_policy):
    p = example_policy
    assert (p.name, p.version) == ("uk_mobile_data", "2011-09")
    assert [r.origin.name for r in p.rules] == ["unauth_smtp_relay", "heavy_p2p"]
    assert p.rules[0].because.startswith("ToS 7.2")
    assert p.schema.field("subscriber.plan").members == ("payg", "monthly", "business", "legacy_2009")
    assert p.schema.addons == ("vpn", "tethering", "roaming_eu")
    assert p.default == Action("allow")
    assert [i.name for i in p.invariants] == ["auth_smtp_third_party_never_blocked", "vpn_reachable"]
    assert p.invariants[0].description == "Authenticated SMTP to third-party servers is never blocked"
    assert p.invariants[1].exists is not None and p.invariants[1].require is None
    assert [t.name for t in p.tests] == ["gmail_submission"]


@pytest.mark.parametrize("values, rule, action", [
    (dict(proto="tcp", dst_port=25, dst_ip="74.125.206.108"), "unauth_smtp_relay", Action("block")),
    (dict(proto="tcp", dst_port=25, dst_ip="2001:db8::25"), "unauth_smtp_relay", Action("block")),
    (dict(proto="tcp", dst_port=25, dst_ip="149.254.200.9"), "default", Action("allow")),
    (dict(proto="tcp", dst_port=25, dst_ip="149.254.201.255"), "default", Action("allow")),
    (dict(proto="tcp", dst_port=25, dst_ip="2a01:4c8:100::1"), "default", Action("allow")),
    (dict(proto="udp", dst_port=25, dst_ip="74.125.206.108"), "default", Action("allow")),
    (dict(proto="tcp", dst_port=587, dst_ip="74.125.206.108", app="submission"), "default", Action("allow")),
    (dict(app="bittorrent", subscriber_usage=20 * 10**9 + 1), "heavy_p2p", Action("throttle", 128_000, None, True)),
    (dict(app="bittorrent", subscriber_usage=10**15, addons=["vpn"]), "heavy_p2p",
     Action("throttle", 128_000, None, True)),
    (dict(app="bittorrent", subscriber_usage=20 * 10**9), "default", Action("allow")),
    (dict(app="youtube", subscriber_usage=30 * 10**9), "default", Action("allow")),
    (dict(proto="tcp", dst_port=25, dst_ip="8.8.8.8", app="bittorrent", subscriber_usage=30 * 10**9),
     "unauth_smtp_relay", Action("block")),
])
def test_contract_example_means_what_it_says(example_policy, values, rule, action):
    flow = flow_of(example_policy, **values)
    assert decide(example_policy, flow) == (rule, action)
    assert table_decide(lower(example_policy), flow) == (rule, action)


def test_every_one_token_deletion_gives_located_diagnostics(tmp_path):
    """Delete each token of the contract's example in turn: the front end either accepts the text
    or reports located diagnostics that render; it never fails in another way."""
    from dpipolicy.dsl.catalogue import load_catalogue
    from dpipolicy.dsl.checker import check_items
    from dpipolicy.dsl.loader import load_items

    catalogue = load_catalogue()
    tokens = re.findall(r'"[^"\n]*"|[^\s]+|\s+', contract_example())
    path = tmp_path / "variant.dpi"
    rejected = 0
    for i, token in enumerate(tokens):
        if token.isspace():
            continue
        path.write_text("".join(tokens[:i] + tokens[i + 1:]), encoding="utf-8")
        try:
            items, _ = load_items(path)
            check_items(items, catalogue)
        except DiagnosticError as exc:
            rejected += 1
            for d in exc.diagnostics:
                assert d.span is not None and d.span.file.path == path, d.render()
                assert d.render().startswith(f"error[{d.code}]: ")
    assert rejected > 50


def test_range_across_address_families_is_an_error(tmp_path):
    from dpipolicy.dsl.diagnostics import DiagnosticError
    from dpipolicy.dsl.frontend import load_policy
    path = tmp_path / "p.dpi"
    path.write_text("default allow\nrule r when dst.ip in 10.1.2.3..2001:db8::25 then block\n")
    try:
        load_policy(path)
    except DiagnosticError as exc:
        (d,) = exc.diagnostics
        assert d.code == "E128" and "mixes IPv4 and IPv6" in d.message and d.span.line == 2
    else:
        raise AssertionError("a range across address families was accepted")
