"""Names and strings from the inputs cannot break a report's format (docs/output.md, "Names and
strings in reports"). Hostile text goes in through every door the CLI has, the policy's quoted
strings (its version, a description, a `because`, a redirect target), a rule table's rule names,
a terms file, a waiver file and the folder the files are in, and each format is read back with
a real parser: json, xml.etree and minidom, html.parser, GitHub's own Markdown parser (cmark-gfm,
through cmarkgfm), and the GitHub Actions runner's parsing of workflow commands, written out
below as the runner does it. A report of the hostile inputs must have the same structure as the
report of the same inputs with plain words, and say the hostile words exactly where the format
can hold them."""
from __future__ import annotations

import io
import json
import os
import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from dpipolicy.cilog import InertStream
from dpipolicy.ciformats import render
from dpipolicy.findings import Case
from dpipolicy.verifier.escaping import md_code, md_fence, md_text, zero_width

from helpers import run_cli

# Everything that means something to one of the formats, and a CR and a tab (a .dpi string holds
# no line feed; the YAML and JSON inputs add one).
HOSTILE = ("x\r::error::cr\t##[error]y %0A %25 %3A `t`` ``` ]]> </script><script>alert(1)</script> "
           '<b onclick="1"> | c | *em* _u_ [l](http://e.x) # h @team $m$ ~s~ &amp; :x: \\')
HOSTILE_LF = HOSTILE + "\n# heading\n- item\n| a | b |\n```\n::warning::lf"
FOLDER = "d`*_[x]|<i>#%0A\n::error::dir\r ]]>"
PLAIN, PLAIN_LF, PLAIN_FOLDER = "plain words", "plain words\nmore words", "plainfolder"


def _dpi(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_inputs(root: Path, words: str, lf: str, folder: str) -> Path:
    """The policy, spec, terms and waivers, saying WORDS (LF where a line feed can go) in a folder
    named FOLDER, and a rule table whose rule is named LF."""
    where = root / folder
    where.mkdir()
    (where / "policy.dpi").write_text(
        f"policy evil version {_dpi(words)}\ndefault allow\n"
        f"rule _evil_ when proto == tcp and dst.port == 25 then redirect {_dpi(words)} because {_dpi(words)}\n",
        encoding="utf-8", newline="")
    (where / "spec.dpi").write_text(
        f"invariant _no_redirect_ {_dpi(words)} when dst.port == 25 require action != redirect\n"
        "test t_ given proto == tcp and dst.port == 25 expect block\n", encoding="utf-8", newline="")
    clause = "c`|*" + words[:20]
    (where / "terms.yaml").write_text(
        f"version: 1\ntitle: {json.dumps(lf)}\nlimits: {json.dumps(lf)}\nspecs: [spec.dpi]\nclauses:\n"
        f"  - id: {json.dumps(clause)}\n    text: {json.dumps(lf + chr(10) + lf)}\n    source: {json.dumps(lf)}\n"
        "    invariants: [_no_redirect_]\n    tests: [t_]\n", encoding="utf-8", newline="")
    (where / "waivers.yaml").write_text(
        f"version: 1\nwaivers:\n  - clause: {json.dumps(clause)}\n    rule: _evil_\n    region: \"dst.port == 25\"\n"
        f"    owner: {json.dumps(lf)}\n    reason: {json.dumps(lf)}\n    expires: 2011-12-31\n",
        encoding="utf-8", newline="")
    table = {"format": "dpipolicy-rule-table", "version": 2, "policy": {"name": "evil", "version": lf},
             "enums": {"plan": None, "addon": []}, "default": {"kind": "allow", "log": False},
             "rules": [{"rule": lf, "because": lf, "source": f"{folder}/table.json: rules[0]",
                        "action": {"kind": "redirect", "target": lf, "log": False},
                        "match": {"proto": ["tcp"], "dst.port": ["25"]}}]}
    (where / "table.json").write_text(json.dumps(table), encoding="utf-8")
    (root / "old.dpi").write_text('policy evil version "1"\ndefault allow\n', encoding="utf-8")
    return where


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("injection")
    return {"hostile": make_inputs(root, HOSTILE, HOSTILE_LF, FOLDER),
            "plain": make_inputs(root, PLAIN, PLAIN_LF, PLAIN_FOLDER)}


def _run(where: Path, *argv: str, exit_code: int) -> tuple[str, str]:
    before = os.getcwd()
    os.chdir(where.parent)               # paths relative to the folder, as CI runs them
    try:
        code, out, err = run_cli(*argv)
    finally:
        os.chdir(before)
    assert code == exit_code, (code, err)
    return out, err


def _files(where: Path) -> dict[str, str]:
    return {name: f"{where.name}/{name}" for name in ("policy.dpi", "spec.dpi", "terms.yaml", "waivers.yaml",
                                                       "table.json")}


def check(where: Path, fmt: str, policy: str = "policy.dpi") -> tuple[str, str]:
    f = _files(where)
    return _run(where, "check", f[policy], "--spec", f["spec.dpi"], "--format", fmt, exit_code=1)


def audit(where: Path, fmt: str) -> str:
    f = _files(where)
    return _run(where, "audit", f["policy.dpi"], "--terms", f["terms.yaml"], "--waivers", f["waivers.yaml"],
                "--today", "2011-10-01", "--format", fmt, exit_code=0)[0]


def diff(where: Path, fmt: str) -> str:
    f = _files(where)
    return _run(where, "diff", "old.dpi", f["table.json"], "--format", fmt, exit_code=1)[0]


# ----- the GitHub Actions runner, as it reads a job's output ------------------------------------
REGISTERED = {"set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher", "remove-matcher",
              "debug", "warning", "error", "notice", "group", "endgroup", "echo", "stop-commands"}
_DATA = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))


def _unescape(text: str, mappings) -> str:
    for escaped, char in mappings:
        text = text.replace(escaped, char)
    return text


def runner_lines(output: str) -> list[str]:
    """The lines the runner reads: it ends a line at CR, LF or CR LF."""
    return [line for line in re.split(r"\r\n|\r|\n", output) if line]


def runner_command(line: str) -> tuple[str, dict, str] | None:
    """What the runner runs for LINE: `::name props::data` after leading blanks, else the older
    `##[name props]data` anywhere in the line; None when neither names a registered command."""
    message = line.lstrip()
    if message.startswith("::") and (end := message.find("::", 2)) >= 0:
        name, _, props = message[2:end].partition(" ")
        if name in REGISTERED:
            properties = {}
            for prop in filter(None, props.strip().split(",")):
                key, sep, value = prop.partition("=")
                if sep and key and value:
                    properties[key] = _unescape(value, _PROPERTY)
            return name, properties, _unescape(message[end + 2:], _DATA)
    start = line.find("##[")
    if start >= 0 and (close := line.find("]", start)) >= 0:
        name = line[start + 3:close].split(" ")[0]
        if name in REGISTERED:
            return name, {}, line[close + 1:]
    return None


def assert_no_command(output: str) -> None:
    ran = [line for line in runner_lines(output) if runner_command(line) is not None]
    assert not ran, ran


# ----- JSON and SARIF -----------------------------------------------------------------------------
def test_check_json_keeps_every_string_exactly(inputs):
    out, err = check(inputs["hostile"], "json")
    data = json.loads(out)
    result = next(r for r in data["results"] if r["kind"] == "invariant")
    assert result["description"] == HOSTILE
    assert result["counterexample"]["action_text"] == f'redirect "{HOSTILE}"'
    assert result["location"] == f"{FOLDER}/spec.dpi:1:1"
    assert_no_command(out)
    assert_no_command(err)


def test_audit_json_keeps_terms_and_waivers_exactly(inputs):
    out = audit(inputs["hostile"], "json")
    assert_no_command(out)
    data = json.loads(out)
    lf = HOSTILE_LF
    assert (data["title"], data["limits"]) == (lf, lf)
    clause = data["clauses"][0]
    assert (clause["text"], clause["source"]) == (lf + "\n" + lf, lf)
    waiver = clause["waivers"][0]["by"][0]
    assert (waiver["owner"], waiver["reason"]) == (lf, lf)
    assert data["clauses"][0]["results"][0]["counterexample"]["because"] == HOSTILE


def test_sarif_keeps_the_message_exactly(inputs):
    out, _ = check(inputs["hostile"], "sarif")
    log = json.loads(out)
    texts = [r["message"]["text"] for r in log["runs"][0]["results"]]
    assert any(f'"{HOSTILE}"' in text for text in texts)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert {unquote(u) for u in uris} == {f"{FOLDER}/spec.dpi"}
    assert_no_command(out)


# ----- JUnit XML ----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["check", "diff"])
def test_junit_text_and_attributes_round_trip(inputs, command):
    """The failure's text holds the description with its CR; a case named after a change holds
    the redirect target with its CR, tab and line feeds, in an attribute."""
    out = check(inputs["hostile"], "junit")[0] if command == "check" else diff(inputs["hostile"], "junit")
    root = ET.fromstring(out)
    minidom_root = xml.dom.minidom.parseString(out).documentElement
    assert minidom_root.tagName == "testsuites"
    if command == "check":
        failure = root.find("testsuite/testcase/failure")
        assert f'"{HOSTILE}"' in failure.text
        dom_failure = minidom_root.getElementsByTagName("failure")[0]
        assert f'"{HOSTILE}"' in dom_failure.firstChild.data
    else:
        names = [case.get("name") for case in root.iter("testcase")]
        assert any(HOSTILE_LF in n for n in names), names
    assert_no_command(out)


def test_junit_control_characters_are_shown_not_dropped():
    out = render("junit", "check", [], [Case("tests", "a\x01b", "failed", "line\x1b[31m\r\nnext")])
    case = ET.fromstring(out).find("testsuite/testcase")
    assert case.get("name") == "a\\x01b"
    assert case.find("failure").text == "line\\x1b[31m\r\nnext"


# ----- GitHub workflow commands -------------------------------------------------------------------
@pytest.mark.parametrize("command", ["check", "diff"])
def test_github_one_command_a_line_with_the_message_exact(inputs, command):
    where = inputs["hostile"]
    out = check(where, "github")[0] if command == "check" else diff(where, "github")
    sarif = json.loads(check(where, "sarif")[0] if command == "check" else diff(where, "sarif"))
    results = sarif["runs"][0]["results"]
    lines = out.split("\n")[:-1]
    assert len(lines) == len(results) and "\r" not in out
    for line, result in zip(lines, results):
        name, properties, message = runner_command(line)
        assert name == result["level"].replace("note", "notice")
        assert message == result["message"]["text"]
        assert properties["title"].startswith(result["ruleId"] + ": ")
        if "locations" in result:
            assert properties["file"] == f"{FOLDER}/{'spec.dpi' if command == 'check' else 'table.json'}"
    assert any(HOSTILE in runner_command(line)[2] for line in lines)


def test_github_bad_input_standard_error_runs_nothing(inputs):
    """A file that is not there, in the hostile folder: the annotation names it, and the text on
    standard error (which the runner reads too) runs no command."""
    where = inputs["hostile"]
    out, err = _run(where, "check", f"{where.name}/missing.dpi", "--format", "github", exit_code=2)
    (line,) = out.splitlines()
    name, _, message = runner_command(line)
    assert name == "error" and f"{FOLDER}/missing.dpi" in message
    assert_no_command(err)
    assert "\n:\u200b:error::dir\r ]]>/missing.dpi" in err     # the path's own line break, then `::` spelt inert


# ----- text: what a CI log shows ----------------------------------------------------------------
@pytest.mark.parametrize("argv", [("check",), ("audit",), ("diff",), ("lint",), ("explain",)])
def test_text_output_runs_no_command(inputs, argv):
    """The text reports print the hostile words (with a zero-width space after the first `:` of a
    line's leading `::` and the first `#` of `##[`), and the runner finds no command in them."""
    where = inputs["hostile"]
    f = _files(where)
    runs = {"check": (("check", f["policy.dpi"], "--spec", f["spec.dpi"]), 1),
            "audit": (("audit", f["policy.dpi"], "--terms", f["terms.yaml"]), 1),
            "diff": (("diff", "old.dpi", f["table.json"]), 1),
            "lint": (("lint", f["policy.dpi"]), 0),
            "explain": (("explain", f["policy.dpi"], "--flow", "proto=tcp dst.port=25"), 0)}
    args, code = runs[argv[0]]
    out, err = _run(where, *args, exit_code=code)
    assert_no_command(out)
    assert_no_command(err)
    if argv[0] in ("check", "audit", "diff", "explain"):
        assert HOSTILE.replace("##[", "#\u200b#[") in out.replace(":\u200b:", "::")


def test_plain_output_is_unchanged(inputs):
    """Without anything that looks like a command, the text is not touched."""
    out, _ = check(inputs["plain"], "text")
    assert "\u200b" not in out


# ----- Markdown -----------------------------------------------------------------------------------
class Skeleton(HTMLParser):
    """The elements of an HTML document, in order, with their attribute names; and the text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def github_html(markdown: str) -> str:
    """Markdown as GitHub renders it (cmark-gfm with its extensions), raw HTML let through as
    GitHub's sanitiser would see it."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


@pytest.mark.parametrize("command", ["audit", "diff"])
def test_markdown_has_the_structure_of_the_plain_report(inputs, command):
    """Rendered as GitHub renders it, the hostile report has exactly the elements of the plain
    one: no heading, row, list item, link, emphasis, script or attribute of the words' own."""
    render = audit if command == "audit" else diff
    markdown = render(inputs["hostile"], "markdown")
    assert_no_command(markdown)
    hostile, plain = Skeleton(github_html(markdown)), Skeleton(github_html(render(inputs["plain"], "markdown")))
    assert hostile.tags == plain.tags
    assert HOSTILE.replace("\r", " ") in "".join(hostile.text)


def test_markdown_audit_says_the_words(inputs):
    markdown = audit(inputs["hostile"], "markdown")
    page = Skeleton(github_html(markdown))
    flat = "".join(page.text)
    one_line = HOSTILE_LF.replace("\r", " ").replace("\n", " ")
    assert f"Audit: {one_line}" in flat                          # the title, in the heading
    assert f"Limits of this check: {one_line}" in flat.replace(":\u200b:", "::")
    assert f"Source: {one_line}" in flat


def test_md_helpers_survive_github_markdown():
    """Each helper alone, at the start of a line and in a table cell: GitHub's parser gives back
    the value as one text (or code) and nothing else."""
    for value in (HOSTILE_LF, "1. item", "    code", "- x", "+ x", "= x", "> q", "#h", "_a_b_", "a_b", "`", "``x`",
                  " `a` ", "~~~", "<div>", "&copy;", "http://x.example/_y_", "!", "|"):
        page = Skeleton(github_html(md_text(value)))
        assert page.tags == [("p", ())], (value, page.tags)
        assert "".join(page.text).strip() == re.sub(r"\r\n|\r|\n", " ", value).strip()
        cell = Skeleton(github_html(f"| a |\n|---|\n| {md_text(value)} |\n| {md_code(value, cell=True)} |\n"))
        assert [t for t, _ in cell.tags] == ["table", "thead", "tr", "th", "tbody", "tr", "td", "tr", "td", "code"]
        code = Skeleton(github_html(md_code(value)))
        assert code.tags == [("p", ()), ("code", ())]
        assert "".join(code.text).rstrip("\n") == re.sub(r"\r\n|\r|\n", " ", value)
        fenced = Skeleton(github_html("\n".join(md_fence([value, "after"])) + "\nnext\n"))
        assert fenced.tags == [("pre", ()), ("code", ()), ("p", ())]
        assert "".join(fenced.text).startswith(value.replace("\r\n", "\n").replace("\r", "\n") + "\nafter\n")


# ----- HTML ---------------------------------------------------------------------------------------
def test_html_audit_has_the_structure_of_the_plain_report(inputs):
    """The same elements and attributes as the plain report, no script; the words read back
    exactly, the references that keep `::` and `##[` inert included."""
    html = audit(inputs["hostile"], "html")
    assert_no_command(html)
    hostile, plain = Skeleton(html), Skeleton(audit(inputs["plain"], "html"))
    assert hostile.tags == plain.tags
    assert not any(tag == "script" for tag, _ in hostile.tags)
    shown = "".join(hostile.text)
    assert f"Audit: {HOSTILE_LF}" in shown
    assert f"\u201c{HOSTILE}\u201d" in shown                  # the description, quoted


def test_inert_stream_knows_where_lines_start():
    """Across writes: `::` right after a line break (CR or LF) is spelt inert, `::` in the middle
    of a line is left as it is, and `##[` is spelt inert anywhere."""
    out = io.StringIO()
    stream = InertStream(out, zero_width)
    for part in ("::a", " x ", "::b\r", "  ::c ##[d]", "\n", "::e"):
        stream.write(part)
    assert out.getvalue() == ":\u200b:a x ::b\r  :\u200b:c #\u200b#[d]\n:\u200b:e"
    assert_no_command(out.getvalue())
