"""Loading a policy's next version through a `ParseMemo` (as `dpipolicy diff` does) gives what
loading it alone gives: the same items in the same order, each item's own span and name in the
new version's own file at the same offsets, the same text under every inner span, the same
syntax errors. Only the items whose text changed are parsed; anything unusual is parsed whole.
A load that finds errors after reusing items is done again whole, so its errors point into the
new version (api.load)."""
from __future__ import annotations

import shutil
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from dpipolicy import api
from dpipolicy.compiler import lower as lower_module
from dpipolicy.dsl import ast, checker, reuse
from dpipolicy.dsl.loader import load_items
from dpipolicy.dsl.parser import ITEM_START, ErrorItem, parse_clean, parse_recovering
from dpipolicy.dsl.reuse import ParseMemo
from dpipolicy.dsl.source import Span, file_from_text

from helpers import EXAMPLES, generated, generator, run_cli


def place(span: Span, files) -> tuple:
    """A span as its file's place in `files` (by identity), its offsets and its location."""
    [index] = [i for i, file in enumerate(files) if file is span.file]
    return ("span", index, span.start, span.end, span.location())


def inner(value):
    """`value` as nested tuples, each span as the text under it."""
    if isinstance(value, Span):
        return ("text", value.text)
    if isinstance(value, (tuple, list)):
        return tuple(inner(v) for v in value)
    if is_dataclass(value):
        return (type(value).__name__,) + tuple(inner(getattr(value, f.name)) for f in fields(value))
    return value


def shape(placed, files) -> list[tuple]:
    """Placed items as nested tuples: each item's own span and its name's span placed exactly,
    everything inside by its text. Equal shapes are the same items at the same offsets of their
    load's own file."""
    out = []
    for p in placed:
        item = p.item
        parts = [p.role, type(item).__name__, place(item.span, files)]
        for f in fields(item):
            value = getattr(item, f.name)
            if f.name == "name" and isinstance(value, ast.Ident):
                parts.append((value.text, place(value.span, files)))
            elif f.name != "span":
                parts.append(inner(value))
        out.append(tuple(parts))
    return out


@pytest.fixture
def parses(monkeypatch):
    """What the memo parses: the chunks parsed alone and the files parsed whole, by name."""
    seen = {"chunks": [], "whole": []}

    def chunk(file, text, offset):
        seen["chunks"].append(text)
        return parse_clean(file, text, offset)

    def whole(file, parsed_whole=reuse._parsed_whole):
        seen["whole"].append(file.path.name)
        return parsed_whole(file)

    monkeypatch.setattr(reuse, "parse_clean", chunk)
    monkeypatch.setattr(reuse, "_parsed_whole", whole)
    return seen


def assert_same_as_alone(old: tuple[Path, ...], new: tuple[Path, ...], parses) -> None:
    """Load `old` then `new` (each a policy and its specs) through one memo: `new` must come out as
    it does loaded alone. Afterwards `parses` holds what the second load parsed."""
    alone, alone_files = load_items(new[0], new[1:])
    memo = ParseMemo()
    load_items(old[0], old[1:], memo)
    parses["chunks"].clear(), parses["whole"].clear()
    reused, files = load_items(new[0], new[1:], memo)
    assert [f.path for f in files] == [f.path for f in alone_files]
    assert shape(reused, files) == shape(alone, alone_files)


def versions(tmp_path: Path, file: str, before: str, after: str) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """Two copies of the uk-mobile example, the second with `before` replaced by `after` in `file`:
    the policy and spec of each."""
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(EXAMPLES, old)
    shutil.copytree(EXAMPLES, new)
    text = (old / file).read_text(encoding="utf-8")
    assert before in text
    (new / file).write_text(text.replace(before, after, 1), encoding="utf-8")
    return (old / "policy-2011-09.dpi", old / "spec.dpi"), (new / "policy-2011-09.dpi", new / "spec.dpi")


NEW_RULE = "rule dns_allowed\n    when app == dns\n    then allow\n\n"
SHARED_LINE = "default allow rule dns when app == dns then allow"

# name: file edited, text replaced, replacement, how many chunks the new load parses alone
EDITS = {
    "identical": ("policy-2011-09.dpi", "default allow", "default allow", 0),
    "changed rule": ("policy-2011-09.dpi", "subscriber.usage > 3GB", "subscriber.usage > 5GB", 1),
    "inserted rule": ("policy-2011-09.dpi", "rule fair_use", NEW_RULE + "rule fair_use", 1),
    "changed header": ("policy-2011-09.dpi", 'version "2011-09"', 'version "2011-10"', 1),
    "changed first comment": ("policy-2011-09.dpi", "# The same policy", "# Still the same policy", 1),
    "comment between rules": ("policy-2011-09.dpi", "rule fair_use", "# shaping\n\nrule fair_use", 1),
    "comment after an item": ("policy-2011-09.dpi", "default allow", "default allow    # as in August", 1),
    "two items on a line": ("policy-2011-09.dpi", "default allow", SHARED_LINE, 1),
    "changed set": ("definitions.dpi", "smtps }", "smtps, imaps }", 1),
    "changed spec": ("spec.dpi", "dst.port == 993", "dst.port in {993, 995}", 1),
}


@pytest.mark.parametrize("name", EDITS)
def test_an_edited_version_loads_as_it_does_alone(name, tmp_path, parses):
    file, before, after, parsed = EDITS[name]
    assert_same_as_alone(*versions(tmp_path, file, before, after), parses)
    assert parses["whole"] == [] and len(parses["chunks"]) == parsed, parses


def test_deleting_a_rule_parses_nothing(tmp_path, parses):
    text = (EXAMPLES / "policy-2011-09.dpi").read_text(encoding="utf-8")
    start = text.index("rule payg_vpn_needs_addon")
    rule = text[start:text.index("rule fair_use")]
    assert_same_as_alone(*versions(tmp_path, "policy-2011-09.dpi", rule, ""), parses)
    assert parses == {"chunks": [], "whole": []}


def test_a_syntax_error_in_the_new_version_is_found_by_parsing_it_whole(tmp_path, parses):
    old, new = versions(tmp_path, "policy-2011-09.dpi", "throttle 128kbps", "throttle 128 kbps")
    assert_same_as_alone(old, new, parses)
    assert parses["whole"] == ["policy-2011-09.dpi"]
    items, _ = load_items(new[0], new[1:], ParseMemo())
    assert any(isinstance(p.item, ErrorItem) for p in items)


def test_a_line_inside_an_item_that_starts_like_an_item(tmp_path, parses):
    # The last `default` is a name in the invariant's condition, not an item: cut there, neither
    # piece parses alone to what the whole file gives, so the memo must not hand them out. In the
    # new version the invariant ends before it, and `default` alone is a syntax error.
    head = "policy p\ndefault allow\ninvariant a\n    when app == dns\n"
    old, new = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old.write_text(head + "    require rule ==\n        default\n", encoding="utf-8")
    new.write_text(head + "    require rule == x\n        default\n", encoding="utf-8")
    assert_same_as_alone((old,), (new,), parses)
    assert parses["whole"] == ["new.dpi"]
    assert_same_as_alone((new,), (old,), parses)


def test_a_generated_policy_with_one_rule_in_twenty_changed(tmp_path, parses):
    policy, spec = generated(tmp_path, 300, seed=3)
    new = tmp_path / "policy-new.dpi"
    new.write_text(generator().mutate(policy.read_text(encoding="utf-8"), 0.05, 4), encoding="utf-8")
    assert_same_as_alone((policy, spec), (new, spec), parses)
    assert parses["whole"] == [] and 0 < len(parses["chunks"]) <= 15
    assert all(chunk.startswith("rule ") for chunk in parses["chunks"])


def test_a_memo_of_other_text_parses_the_file_whole(tmp_path, parses):
    policy, spec = generated(tmp_path, 50, seed=5)
    assert_same_as_alone((EXAMPLES / "policy-2011-09.dpi", spec), (policy, spec), parses)
    assert parses["whole"] == ["policy.dpi"]        # the spec was loaded with the other policy too


def test_a_file_the_memo_parses_whole_is_read_from_the_parse_cache(tmp_path, monkeypatch):
    """The first version of a diff is parsed whole, as `check` parses it: an unchanged file that
    an earlier run parsed is read back from the cache, not parsed again."""
    monkeypatch.setenv("DPIPOLICY_CACHE", str(tmp_path / "cache"))
    policy, spec = generated(tmp_path, 50, seed=6)
    alone = load_items(policy, (spec,))
    monkeypatch.setattr(reuse, "parse_recovering", lambda file: pytest.fail(f"{file.path.name} parsed again"))
    again = load_items(policy, (spec,), ParseMemo())
    assert shape(*again) == shape(*alone)


@pytest.mark.parametrize("after", ["throttle 256kbps", "throttle 128 kbps"], ids=["changed", "syntax error"])
def test_diff_says_the_same_as_with_both_versions_parsed_whole(after, tmp_path, monkeypatch):
    (old, spec), (new, _) = versions(tmp_path, "policy-2011-09.dpi", "throttle 128kbps", after)
    argv = ("diff", old, new, "--spec", spec)
    reusing = run_cli(*argv)
    monkeypatch.setattr(ParseMemo, "parse", lambda self, file: parse_recovering(file))
    assert reusing == run_cli(*argv)


def test_errors_inside_reused_items_point_into_the_new_version(tmp_path, monkeypatch):
    # Renaming the set leaves the policy's text as it was, so its rules are reused, and those
    # naming the set are now in error: at their places in the new version, not the old one.
    (old, spec), (new, _) = versions(tmp_path, "definitions.dpi", "set operator_mail", "set operator_servers")
    argv = ("diff", old, new, "--spec", spec)
    reusing = run_cli(*argv)
    assert reusing[0] == 2 and "unknown set `operator_mail`" in reusing[1] + reusing[2]
    assert str(Path("new") / "policy-2011-09.dpi") in reusing[2] and str(Path("old") / "policy") not in reusing[2]
    monkeypatch.setattr(ParseMemo, "parse", lambda self, file: parse_recovering(file))
    assert reusing == run_cli(*argv)


def checked(loaded) -> tuple:
    """A loaded policy and its table as plain values, each span as its location."""
    policy, table = loaded.policy, loaded.table
    return ([(r.origin.name, r.origin.location(), r.cond, r.action, r.because) for r in policy.rules],
            policy.named_sets, policy.default, policy.default_span.location(), policy.schema,
            [(i.name, i.when, i.require, i.exists, i.span.location()) for i in policy.invariants],
            [(t.name, t.given, t.expect, t.span.location()) for t in policy.tests],
            [(m.index, m.matches, m.action, m.origin.name, m.origin.location(), m.because) for m in table.rules],
            table.named_sets, table.default)


@pytest.fixture
def rebuilt(monkeypatch):
    """How many rule bodies the checker checks and how many conditions are lowered, per load."""
    counts = {"bodies": 0, "lowered": 0}
    body, to_boxes = checker._Checker._rule_body, lower_module.to_boxes

    def count_body(self, rule, known):
        counts["bodies"] += id(rule.when) not in known
        return body(self, rule, known)

    def count_lowered(*args):
        counts["lowered"] += 1
        return to_boxes(*args)

    monkeypatch.setattr(checker._Checker, "_rule_body", count_body)
    monkeypatch.setattr(lower_module, "to_boxes", count_lowered)
    return counts


def assert_checked_as_alone(old: tuple[Path, ...], new: tuple[Path, ...], rebuilt) -> None:
    """Load `old` then `new` through one api.Memo: `new` must check and lower to what it does
    loaded alone. Afterwards `rebuilt` counts what the second load checked and lowered."""
    alone = api.load(new[0], new[1:])
    memo = api.Memo()
    api.load(old[0], old[1:], memo=memo)
    rebuilt.update(bodies=0, lowered=0)
    assert checked(api.load(new[0], new[1:], memo=memo)) == checked(alone)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_generated_version_checks_and_lowers_only_its_changed_rules(seed, tmp_path, rebuilt):
    policy, spec = generated(tmp_path, 300, seed=seed)
    text = policy.read_text(encoding="utf-8")
    new = tmp_path / "policy-new.dpi"
    new.write_text(generator().mutate(text, 0.05, seed + 1), encoding="utf-8")
    assert_checked_as_alone((policy, spec), (new, spec), rebuilt)
    changed = len(set(chunks(new.read_text(encoding="utf-8"))) - set(chunks(text)))
    assert 0 < rebuilt["bodies"] <= changed and rebuilt["lowered"] == rebuilt["bodies"], (rebuilt, changed)


@pytest.mark.parametrize("name", EDITS)
def test_an_edited_example_checks_as_it_does_alone(name, tmp_path, rebuilt):
    file, before, after, _ = EDITS[name]
    assert_checked_as_alone(*versions(tmp_path, file, before, after), rebuilt)
    old, new = (chunks((tmp_path / side / "policy-2011-09.dpi").read_text(encoding="utf-8")) for side in ("old", "new"))
    if name == "changed set":       # what a rule may name: every rule is checked again
        assert rebuilt["bodies"] == sum(map(rules_in, new)), rebuilt
    else:                           # the rules of the chunks whose text (comments after items included) is new
        assert rebuilt["bodies"] == sum(rules_in(text) for text in new if text not in old), rebuilt


def chunks(text: str) -> list[str]:
    """A file's text cut where a line starts with an item keyword, as the memo cuts it."""
    starts = [0] + [m.start(1) for m in ITEM_START.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def rules_in(text: str) -> int:
    """How many rules a chunk's text declares."""
    module = parse_clean(file_from_text(text), text, 0)
    return sum(isinstance(item, ast.RuleDecl) for item in module.items)
