"""`dpipolicy fmt`: the canonical layout keeps meaning and comments, is idempotent, and the
command's check, diff and rewrite modes and exit codes (docs/fmt.md)."""
from __future__ import annotations

import ast as pyast
import dataclasses
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dpipolicy.dsl import format as fmt
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.format import WIDTH, format_source
from dpipolicy.dsl.parser import parse_source
from dpipolicy.dsl.source import file_from_text

from helpers import ROOT, examples, run_cli, write_policy


# ----- what must not change ------------------------------------------------------------------

def shape(node):
    """An AST without its source positions, for comparing two parses of the same meaning."""
    if isinstance(node, tuple):
        return tuple(shape(n) for n in node)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(shape(getattr(node, f.name)) for f in dataclasses.fields(node)
                                              if f.name not in ("span", "argument_span"))
    return node


def ast_of(text: str):
    return shape(parse_source(file_from_text(text)))


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def comments_of(text: str) -> list[tuple[str, bool]]:
    """Each comment's text and whether code precedes it on its line (found apart from the formatter)."""
    found = []
    for m in _STRING_OR_COMMENT.finditer(text):
        if m.group().startswith("#"):
            line_start = text.rfind("\n", 0, m.start()) + 1
            found.append((m.group().rstrip(), text[line_start:m.start()].strip() != ""))
    return found


def assert_faithful(text: str) -> str:
    once = format_source(text)
    assert format_source(once) == once, "not idempotent"
    assert ast_of(once) == ast_of(text)
    assert comments_of(once) == comments_of(text)
    assert once == "" or once.endswith("\n") and not once.endswith("\n\n")
    assert not any(line != line.rstrip() for line in once.splitlines())
    return once


# ----- every source text the project ships or tests with ------------------------------------

_ITEM = re.compile(r"^\s*(policy|enum|set|default|rule|invariant|test|import)\b", re.M)


def _parses(text: str) -> bool:
    try:
        parse_source(file_from_text(text))
    except DiagnosticError:
        return False
    return True


def _inline_sources() -> list[tuple[str, str]]:
    """Policy texts written as string literals in the tests, and fenced blocks in the docs,
    that parse (many are deliberately broken and are skipped)."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) and _ITEM.search(node.value):
                found.append((f"{path.name}:{node.lineno}", node.value))
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
            found.append((f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}", m.group(1)))
    return [(name, text) for name, text in found if _parses(text)]


SOURCE_FILES = sorted((ROOT / "examples").rglob("*.dpi")) + sorted((ROOT / "tests" / "inputs").rglob("*.dpi"))
INLINE = _inline_sources()


@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_files_keep_meaning_and_comments(path):
    assert_faithful(path.read_text(encoding="utf-8"))


def test_inline_sources_keep_meaning_and_comments():
    assert len(INLINE) > 100          # the search finds the tests' policies, not nothing
    for name, text in INLINE:
        try:
            assert_faithful(text)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.dpi")), ids=lambda p: p.name)
def test_examples_are_already_formatted(path):
    text = path.read_text(encoding="utf-8")
    assert format_source(text) == text


def test_rewritten_test_input_is_reformatted_as_documented():
    """The test input's own layout (spaces inside condition braces, 100-column lines) is not canonical."""
    text = (ROOT / "tests" / "inputs" / "uk-mobile-2011-08-rewritten.dpi").read_text(encoding="utf-8")
    out = format_source(text)
    assert "    when not (app not in {openvpn, ipsec, wireguard, pptp, l2tp}\n" \
           "              or subscriber.plan != payg or vpn in subscriber.addons)\n" in out
    assert "    when subscriber.plan == monthly\n" \
           "         and not (subscriber.usage <= 3GB\n" \
           "                  or app not in category.p2p and app not in category.video)\n" in out


# ----- the layout rules ----------------------------------------------------------------------

MESSY = """\


# header   
policy   p    version "1"   # on the header
import "a.dpi"
import    "b.dpi"
enum plan{payg,monthly,business,}
enum addon  {  vpn }
set ports={25,465,587}   # mail
set long_name = { 1 .. 5 , 8 }
# about big
set big = { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 198.18.0.0/15, 2001:db8::/32 }
set commented = { a,  # first
   b,

   # group two
   c, d
   # last one
}
default   allow
rule r1 when a==b   and (c in {x,y,} or d)then throttle 128kbps,log because "x"
    # commented out: because "y"



rule r2
    when a  # why a
      and b
    # before then
    then block
invariant i1 "desc" when x require action not in {block,reset}
invariant i2 exists not(a or b)
test t given a==1 and b in 1..5 expect allow
# the end
"""

CANONICAL = """\
# header
policy p version "1"  # on the header
import "a.dpi"
import "b.dpi"
enum plan  { payg, monthly, business }
enum addon { vpn }
set ports     = { 25, 465, 587 }  # mail
set long_name = { 1..5, 8 }

# about big
set big = {
    10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 198.18.0.0/15,
    2001:db8::/32,
}

set commented = {
    a,  # first
    b,

    # group two
    c, d,
    # last one
}

default allow

rule r1
    when a == b and (c in {x, y} or d)
    then throttle 128kbps, log
    because "x"
    # commented out: because "y"

rule r2
    when a  # why a
         and b
    # before then
    then block

invariant i1
    "desc"
    when x
    require action not in {block, reset}

invariant i2
    exists not (a or b)

test t
    given a == 1 and b in 1..5
    expect allow
# the end
"""


def test_messy_layout_becomes_canonical():
    assert format_source(MESSY) == CANONICAL
    assert_faithful(MESSY)


def test_long_conditions_break_before_and_or_filling_each_line():
    names = " and ".join(f"field_number_{i} == {i}" for i in range(8))
    out = format_source(f"rule r when {names} then block\n")
    lines = out.splitlines()
    assert lines[1] == "    when field_number_0 == 0 and field_number_1 == 1 and field_number_2 == 2"
    assert lines[2] == "         and field_number_3 == 3 and field_number_4 == 4 and field_number_5 == 5"
    assert all(len(line) <= WIDTH for line in lines)
    given = format_source(f"test t given {names} expect allow\n").splitlines()
    assert given[2].startswith("          and ")            # under the first character after `given `


def test_an_and_group_inside_or_is_not_split_when_it_fits_a_line():
    left = " and ".join(f"a_long_field_{i} == {i}" for i in range(3))
    right = " and ".join(f"another_field_{i} == {i}" for i in range(3))
    out = format_source(f"rule r when {left} or {right} then block\n")
    assert out.splitlines()[1:3] == [f"    when {left}", f"         or {right}"]


def test_parentheses_and_braces_continue_after_the_opening_bracket():
    members = ", ".join(f"application_{i}" for i in range(8))
    out = format_source(f"rule r when x and not (app in {{{members}}} or y) then block\n")
    assert out == ("rule r\n"
                   "    when x\n"
                   "         and not (app in {application_0, application_1, application_2, application_3,\n"
                   "                          application_4, application_5, application_6, application_7}\n"
                   "                  or y)\n"
                   "    then block\n")


def test_alignment_groups_end_at_blank_lines_comments_and_long_sets():
    text = ("set a = { 1 }\nset bbb = { 2 }\n\nset cc = { 3 }\n# note\nset d = { 4 }\n"
            "set eeeeee = { 5 }\nset " + "f" * 10 + " = { " + ", ".join(str(i) for i in range(40)) + " }\n")
    out = format_source(text)
    assert out.startswith("set a   = { 1 }\nset bbb = { 2 }\n\nset cc = { 3 }\n# note\n"
                          "set d      = { 4 }\nset eeeeee = { 5 }\n\nset ffffffffff = {\n    0, 1, 2,")


def test_one_line_items_keep_the_blank_lines_written_and_lose_the_extra_ones():
    out = format_source("import \"a.dpi\"\nimport \"b.dpi\"\n\n\n\ndefault allow\n\n\n")
    assert out == "import \"a.dpi\"\nimport \"b.dpi\"\n\ndefault allow\n"


def test_comments_inside_a_condition_keep_their_kind():
    text = "rule r\n    when ( # opening\n a # after a\n # alone\n or b\n # before paren\n ) then block\n"
    out = assert_faithful(text)
    assert out == ("rule r\n"
                   "    when (  # opening\n"
                   "          a  # after a\n"
                   "          # alone\n"
                   "          or b\n"
                   "          # before paren\n"
                   "          )\n"
                   "    then block\n")


def test_comment_only_empty_and_crlf_files():
    assert format_source("") == ""
    assert format_source("\n\n  \n") == ""
    assert format_source("  # just a note  \n\n\n# another\n") == "# just a note\n\n# another\n"
    assert format_source("default allow\r\n\r\n\r\nrule r when a then block  # x\r\n") == \
        "default allow\n\nrule r\n    when a\n    then block  # x\n"


def test_empty_sets_and_the_optional_comma():
    assert format_source("set s = {}\nenum e { a, }\nrule r when x in {a,} then block\n") == \
        "set s = {}\nenum e { a }\n\nrule r\n    when x in {a}\n    then block\n"


def test_syntax_errors_are_the_parsers_diagnostics():
    with pytest.raises(DiagnosticError) as caught:
        format_source("rule r when then block\nset s = { 1 2 }\n", "bad.dpi")
    locations = [d.location() for d in caught.value.diagnostics]
    assert locations == ["bad.dpi:1:13", "bad.dpi:2:13"]
    assert all(d.code == "E001" for d in caught.value.diagnostics)


def test_a_layout_that_would_lose_a_comment_is_refused(monkeypatch):
    """The formatter re-reads its result: a bug that drops a comment fails instead of writing."""
    monkeypatch.setattr(fmt._Layout, "_notes", lambda self, upto: setattr(self, "next_comment", upto))
    with pytest.raises(RuntimeError, match="would change its tokens or comments"):
        format_source("default allow  # keep me\n", "p.dpi")


# ----- random text -----------------------------------------------------------------------------

FIELDS = ["a", "app", "dst.port", "subscriber.plan", "x_1", "category.video",
          "a_rather_long_field_name_so_that_lines_must_wrap"]
VALUES = ["25", "10.0.0.0/8", "2001:db8::/32", "3GB", "128kbps", '"a \\" quote # not a comment"', "true", "false"]
operand = st.sampled_from(FIELDS + VALUES).map(lambda t: [t])
element = st.one_of(operand, st.tuples(st.sampled_from(["1", "8"]), st.sampled_from(["9", "65535"]))
                    .map(lambda r: [r[0], "..", r[1]]))


def _braces(members: list[list[str]], comma: bool) -> list[str]:
    out = ["{"]
    for k, m in enumerate(members):
        out += ([","] if k else []) + m
    return out + ([","] if comma and members else []) + ["}"]


container = st.one_of(operand, element,
                      st.builds(_braces, st.lists(element, max_size=12), st.booleans()))
atom = st.one_of(
    operand,
    st.builds(lambda a, op, b: a + [op] + b, operand, st.sampled_from(["==", "!=", "<", ">="]), operand),
    st.builds(lambda a, neg, c: a + neg + ["in"] + c, operand, st.sampled_from([[], ["not"]]), container))


def _join(parts: list[list[str]], words: list[str]) -> list[str]:
    out = parts[0]
    for word, part in zip(words, parts[1:]):
        out = out + [word] + part
    return out


condition = st.recursive(atom, lambda inner: st.one_of(
    inner.map(lambda c: ["not"] + c),
    inner.map(lambda c: ["("] + c + [")"]),
    st.lists(inner, min_size=2, max_size=5).flatmap(
        lambda parts: st.lists(st.sampled_from(["and", "or"]), min_size=len(parts) - 1,
                               max_size=len(parts) - 1).map(lambda words: _join(parts, words)))),
    max_leaves=16)
name = st.sampled_from(["r", "fair_use", "an_item_name_that_is_quite_long"]).map(lambda t: [t])
text = st.sampled_from(['"why"', '"a longer reason, with # and \\\\ in it"']).map(lambda t: [t])
action = st.builds(lambda word, arg, log: [word] + arg + log, st.sampled_from(["allow", "block", "throttle"]),
                   st.sampled_from([[], ["128kbps"], ['"http://x"']]), st.sampled_from([[], [",", "log"]]))


def _opt(strategy):
    return st.one_of(st.just([]), strategy)


item = st.one_of(
    st.builds(lambda n, v: ["policy"] + n + v, name, _opt(text.map(lambda t: ["version"] + t))),
    st.builds(lambda n, ms, comma: ["enum"] + n + _braces(ms, comma), name, st.lists(name, max_size=6), st.booleans()),
    st.builds(lambda n, ms, comma: ["set"] + n + ["="] + _braces(ms, comma), name, st.lists(element, max_size=30),
              st.booleans()),
    action.map(lambda a: ["default"] + a),
    st.builds(lambda n, c, a, b: ["rule"] + n + ["when"] + c + ["then"] + a + b, name, condition, action,
              _opt(text.map(lambda t: ["because"] + t))),
    st.builds(lambda n, d, w, c: ["invariant"] + n + d + w + ["require"] + c, name, _opt(text),
              _opt(condition.map(lambda c: ["when"] + c)), condition),
    st.builds(lambda n, d, c: ["invariant"] + n + d + ["exists"] + c, name, _opt(text), condition),
    st.builds(lambda n, c, a: ["test"] + n + ["given"] + c + ["expect"] + a, name, condition, action),
    text.map(lambda t: ["import"] + t))
SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", "\n", "\n\n", "\n\n\n", "\n        ", " # T\n", "\n# O\n",
              "\n    # O\n", "\n\n  # O\n\n", "\n# O\n# O\n"]


@st.composite
def source(draw) -> str:
    tokens = [t for it in draw(st.lists(item, max_size=6)) for t in it]
    out = [draw(st.sampled_from(["", "\n", "# O\n"]))]
    for k, token in enumerate(tokens):
        out.append(token)
        out.append(draw(st.sampled_from(SEPARATORS)) if k + 1 < len(tokens) else draw(st.sampled_from(["", "\n"])))
    numbered = iter(range(10 ** 6))
    return re.sub(r"# [TO]$", lambda m: f"{m.group()}{next(numbered)}", "".join(out), flags=re.M)


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(source())
def test_random_text_keeps_meaning_and_comments(text):
    assert_faithful(text)


def _respaced(text: str, choices: list[str], pick) -> str:
    """The same tokens with new white space between them, except next to comments and where a
    blank line was (which the layout keeps)."""
    parts = re.findall(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\s+|[^\s"#]+', text)
    out = []
    for k, part in enumerate(parts):
        near_comment = any(p.startswith("#") for p in parts[max(0, k - 1):k + 2])
        if part and part.isspace() and not near_comment and part.count("\n") < 2:
            part = pick(choices)
        out.append(part)
    return "".join(out)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(SOURCE_FILES), st.randoms(use_true_random=False))
def test_any_spacing_of_a_file_formats_alike(path, rnd):
    text = path.read_text(encoding="utf-8")
    assert format_source(_respaced(text, [" ", "  ", "\t", "\n", "\n      "], rnd.choice)) == format_source(text)


# ----- the command -----------------------------------------------------------------------------

UGLY = "default   allow\nrule r when a==b then block   # why\n"
PRETTY = "default allow\n\nrule r\n    when a == b\n    then block  # why\n"


def test_check_exits_1_and_lists_what_would_change_writing_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, UGLY, "ugly.dpi")
    write_policy(tmp_path, PRETTY, "pretty.dpi")
    code, out, err = run_cli("fmt", "--check", "ugly.dpi", "pretty.dpi")
    assert (code, out, err) == (1, "would reformat ugly.dpi\n", "1 file would be reformatted, 1 already formatted\n")
    assert (tmp_path / "ugly.dpi").read_text() == UGLY
    assert run_cli("fmt", "--check", "pretty.dpi") == (0, "", "0 files would be reformatted, 1 already formatted\n")


def test_diff_prints_a_unified_diff_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, UGLY.rstrip("\n"), "ugly.dpi")
    code, out, err = run_cli("fmt", "--diff", "ugly.dpi")
    assert code == 0 and err == "1 file would be reformatted, 0 already formatted\n"
    assert out == ("--- ugly.dpi\t(original)\n+++ ugly.dpi\t(formatted)\n@@ -1,2 +1,5 @@\n"
                   "-default   allow\n-rule r when a==b then block   # why\n\\ No newline at end of file\n"
                   "+default allow\n+\n+rule r\n+    when a == b\n+    then block  # why\n")
    assert (tmp_path / "ugly.dpi").read_text() == UGLY.rstrip("\n")
    assert run_cli("fmt", "--diff", "--check", "ugly.dpi")[0] == 1


def test_rewrites_in_place_only_what_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, UGLY, "ugly.dpi")
    pretty = write_policy(tmp_path, PRETTY, "pretty.dpi")
    os.utime(pretty, ns=(10 ** 9, 10 ** 9))        # a formatted file is not written: its time stays
    code, out, err = run_cli("fmt", "ugly.dpi", "pretty.dpi")
    assert (code, out, err) == (0, "reformatted ugly.dpi\n", "1 file reformatted, 1 already formatted\n")
    assert (tmp_path / "ugly.dpi").read_text() == PRETTY
    assert pretty.stat().st_mtime_ns == 10 ** 9
    assert run_cli("fmt", "ugly.dpi") == (0, "", "0 files reformatted, 1 already formatted\n")


def test_bad_files_exit_2_with_locations_and_the_good_ones_are_still_formatted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, "default allow\nrule r when a = b then block\n", "bad.dpi")
    write_policy(tmp_path, UGLY, "ugly.dpi")
    write_policy(tmp_path, "{}", "rules.json")
    code, out, err = run_cli("fmt", "bad.dpi", "missing.dpi", "rules.json", "ugly.dpi")
    assert code == 2
    assert out == "reformatted ugly.dpi\n"
    assert "error[E001]: syntax error: unexpected `=`\n --> bad.dpi:2:15\n" in err
    assert "error[E010]: cannot read the source file `missing.dpi`: there is no such file" in err
    assert "error[E321]: `fmt` formats .dpi source files, not rule tables" in err
    assert err.endswith("1 file reformatted, 0 already formatted, 3 files not formatted (3 errors)\n")
    assert "Traceback" not in err
    assert (tmp_path / "bad.dpi").read_text() == "default allow\nrule r when a = b then block\n"


def test_a_file_that_cannot_be_written_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, UGLY, "ugly.dpi")

    def refuse(*args, **kwargs):         # as a read-only file does (but also when the tests run as root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    code, out, err = run_cli("fmt", "ugly.dpi")
    assert code == 2 and out == ""
    assert "error[E015]: cannot write `ugly.dpi`: permission denied" in err


def test_an_internal_error_exits_4_and_leaves_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, UGLY, "ugly.dpi")
    monkeypatch.setattr(fmt._Layout, "_notes", lambda self, upto: setattr(self, "next_comment", upto))
    code, out, err = run_cli("fmt", "ugly.dpi")
    assert code == 4 and "internal error" in err and "Traceback" not in err
    assert (tmp_path / "ugly.dpi").read_text() == UGLY


def test_fmt_needs_a_file():
    code, _, err = run_cli("fmt")
    assert code == 2 and "the following arguments are required: FILE" in err


# ----- the page --------------------------------------------------------------------------------

def test_the_example_in_the_docs_is_what_fmt_does():
    page = (ROOT / "docs" / "fmt.md").read_text(encoding="utf-8")
    section = page.split("## An example\n", 1)[1].split("\n## ", 1)[0]
    before, after = re.findall(r"^```\n(.*?)^```", section, re.M | re.S)[:2]
    assert format_source(before) == after
