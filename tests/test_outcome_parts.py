"""Outcomes with parts (language.md section 9): charge, priority, a throttle's scope and a rule's
purpose, from the contract's example through check, the rule table, diff, explain, lint, fmt
and the nftables target; and every error of them at its place."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dpipolicy.compiler.lower import lower
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.frontend import load_policy
from dpipolicy.dsl.typed import Action, decide

from helpers import ROOT, first_block, run_cli, write_policy
from test_diagnostics import LANGUAGE_MD, flow_of, table_decide

PARTS = """enum charge   { standard, zero_rated }
enum priority { high, normal, low }
"""


def section_9_example() -> str:
    return first_block(LANGUAGE_MD, "## 9. Outcomes")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = tmp_path_factory.mktemp("parts") / "example.dpi"
    path.write_text(section_9_example(), encoding="utf-8")
    return load_policy(path)


@pytest.mark.parametrize("values, rule, action", [
    (dict(app="spotify"), "music_free", Action("allow", charge="zero_rated", priority="normal")),
    (dict(app="youtube", subscriber_usage=60 * 10**9), "heavy_users", Action("allow", charge="standard", priority="low")),
    (dict(app="youtube"), "default", Action("allow", charge="standard", priority="normal")),
])
def test_the_contract_example_means_what_it_says(example, values, rule, action):
    """A part a rule does not write is the default's."""
    flow = flow_of(example, **values)
    assert decide(example, flow) == (rule, action)
    assert table_decide(lower(example), flow) == (rule, action)


def check(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    code, out, err = run_cli("check", write_policy(tmp_path, text), *args)
    return code, out + err


def test_invariants_and_tests_read_the_parts(tmp_path):
    code, out = check(tmp_path, section_9_example() + """
rule p2p when app == bittorrent then throttle 1Mbps per subscriber, priority low purpose congestion
invariant zero_rated_keeps_priority when charge == zero_rated require priority == normal
invariant throttles_say_why when action == throttle require purpose == congestion and scope == subscriber
invariant no_zero_rated_video when app in category.video require charge == standard
test music_is_free given app == spotify expect allow, charge zero_rated
test scope_only given app == bittorrent and subscriber.usage <= 50GB expect throttle 1Mbps per subscriber
test per_flow_is_compared given app == bittorrent and subscriber.usage <= 50GB expect throttle 1Mbps per flow
""")
    assert code == 1
    lines = {line.split()[2]: line.split()[1] for line in out.splitlines() if line.startswith(("invariant", "test"))}
    assert lines == {"zero_rated_keeps_priority": "holds", "throttles_say_why": "holds", "no_zero_rated_video": "holds",
                     "music_is_free": "passed", "scope_only": "passed", "per_flow_is_compared": "failed"}
    assert "gets:  throttle 1Mbps per subscriber, charge standard, priority low purpose congestion (rule p2p" in out


def test_a_zero_rating_that_depends_on_the_application_is_caught(tmp_path):
    code, out = check(tmp_path, PARTS + """default allow, charge standard, priority normal
rule partner_video when app == youtube then allow, charge zero_rated
invariant video_counts_alike "Every video service counts against the cap alike"
    when app in category.video require charge == standard
""", "--format", "json")
    assert code == 1
    [result] = json.loads(out)["results"]
    assert result["status"] == "violated"
    example = result["counterexample"]
    assert (example["action"], example["charge"], example["priority"], example["rule"]) == \
        ("allow", "zero_rated", "normal", "partner_video")
    assert example["action_text"] == "allow, charge zero_rated, priority normal"


LOCATED = [
    ("unknown member", PARTS + "default allow, charge standard, priority normal\n"
                               "rule r when app == spotify then allow, charge zero_rate\n",
     "E170", (2, "zero_rate"), "unknown `charge` member `zero_rate`", "did you mean `zero_rated`?"),
    ("no enum", "default allow\nrule r when app == spotify then allow, charge free\n",
     "E171", (2, "charge"), "`charge` needs `enum charge` to be declared by the policy", "enum charge { standard"),
    ("no enum in a spec", "default allow\ninvariant i require priority == low\n",
     "E171", (1, "priority"), "`priority` needs `enum priority` to be declared by the policy", "gives it on `default`"),
    ("default without the part", PARTS + "default allow, charge standard\n",
     "E172", (1, "allow, charge standard"), "`default` must give the `priority` of the flows no rule decides",
     "`default allow, priority high`"),
    ("scope on an allow", "default allow\nrule r when app == spotify then allow per subscriber\n",
     "E173", (2, "subscriber"), "`allow` has no scope", "`throttle 1Mbps per subscriber`"),
    ("unknown scope", "default allow\nrule r when app == spotify then throttle 1Mbps per subscribr\n",
     "E173", (2, "subscribr"), "unknown scope `subscribr`", "did you mean `subscriber`?"),
    ("unknown purpose", "default allow\nrule r when app == spotify then block purpose legl\n",
     "E174", (2, "legl"), "unknown purpose `legl`", "did you mean `legal`?"),
    ("purpose on the default", "default allow purpose legal\n",
     "E174", (1, "legal"), "the default has no purpose", "remove `purpose ...`"),
    ("a part twice", PARTS + "default allow, charge standard, priority normal, priority low\n",
     "E175", (1, "priority"), "`priority` is given twice", "keep one"),
]


@pytest.mark.parametrize("case, text, code, where, message, help", LOCATED, ids=[c[0] for c in LOCATED])
def test_each_error_is_at_its_place(tmp_path, case, text, code, where, message, help):
    if "\ninvariant" in text:
        policy = write_policy(tmp_path, "default allow\n")
        spec = write_policy(tmp_path, text.split("\n", 1)[1], "spec.dpi")
        paths = (policy, (spec,))
    else:
        paths = (write_policy(tmp_path, text), ())
    with pytest.raises(DiagnosticError) as info:
        load_policy(*paths)
    [d] = info.value.diagnostics
    first_line = PARTS.count("\n") if text.startswith(PARTS) else 0
    line, under_caret = where          # the line (after the enums) and the text the caret is under
    assert (d.code, d.span.line, d.span.text) == (code, line + first_line, under_caret), d.render()
    assert message in d.message and help in (d.help or ""), d.render()
    exit_code, _, err = run_cli("check", *([paths[0]] + [a for s in paths[1] for a in ("--spec", s)]))
    assert exit_code == 2 and f"error[{code}]" in err and "Traceback" not in err


def test_the_rule_table_keeps_every_part_and_reads_version_1(tmp_path):
    policy = write_policy(tmp_path, section_9_example()
                          + "rule p2p when app == bittorrent then throttle 1Mbps per subscriber purpose congestion\n")
    table = tmp_path / "rules.json"
    assert run_cli("compile", policy, "-o", table)[0] == 0
    data = json.loads(table.read_text())
    assert data["version"] == 2 and data["enums"]["charge"] == ["standard", "zero_rated"]
    assert data["default"] == {"kind": "allow", "charge": "standard", "priority": "normal", "log": False}
    assert data["rules"][-1]["action"] == {"kind": "throttle", "rate_bps": 10**6, "scope": "subscriber",
                                           "charge": "standard", "priority": "normal", "purpose": "congestion",
                                           "log": False}
    spec = write_policy(tmp_path, "test free given app == spotify expect allow, charge zero_rated\n"
                                  "test slow given app == bittorrent and subscriber.usage < 1GB expect throttle 1Mbps per subscriber\n",
                          "spec.dpi")
    code, out, _ = run_cli("check", table, "--spec", spec)
    assert code == 0 and "2 passed" in out
    old = {"format": "dpipolicy-rule-table", "version": 1, "default": {"kind": "allow", "log": False},
           "rules": [{"rule": "r", "action": {"kind": "block", "log": False}, "match": {"dst.port": ["25"]}}]}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    code, out, _ = run_cli("check", tmp_path / "v1.json", "--spec",
                           write_policy(tmp_path, "test t given dst.port == 25 expect block\n", "v1spec.dpi"))
    assert code == 0 and "1 passed" in out


@pytest.mark.parametrize("action, where, words", [
    ({"kind": "allow", "log": False}, "rules[0].action.charge", "this action must give its `charge`"),
    ({"kind": "allow", "charge": "free", "priority": "low", "log": False}, "rules[0].action.charge",
     '"free" is not a member of `enums.charge`'),
    ({"kind": "block", "scope": "subscriber", "charge": "standard", "priority": "low", "log": False},
     "rules[0].action.scope", "`scope` belongs to a throttle"),
    ({"kind": "block", "purpose": "fun", "charge": "standard", "priority": "low", "log": False},
     "rules[0].action.purpose", "`purpose` is one of legal, security, congestion, commercial"),
])
def test_bad_parts_in_a_table_are_located(tmp_path, action, where, words):
    data = {"format": "dpipolicy-rule-table", "version": 2,
            "enums": {"plan": None, "addon": [], "charge": ["standard", "zero_rated"], "priority": ["high", "low"]},
            "default": {"kind": "allow", "charge": "standard", "priority": "low", "log": False},
            "rules": [{"rule": "r", "action": action, "match": {}}]}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(data))
    code, _, err = run_cli("check", path)
    assert code == 2 and f"{path}: {where}" in err and words in err, err
    data["version"] = 1
    path.write_text(json.dumps(data))
    code, _, err = run_cli("check", path)
    assert code == 2 and "unknown key `charge`" in err, err


def test_a_change_of_charge_is_a_change(tmp_path):
    old = write_policy(tmp_path, section_9_example(), "old.dpi")
    new = write_policy(tmp_path, section_9_example().replace("then allow, charge zero_rated", "then allow"), "new.dpi")
    code, out, _ = run_cli("diff", old, new, "--format", "json")
    assert code == 1
    [group] = json.loads(out)["groups"]
    [change] = group["regions"]
    assert (change["old"]["charge"], change["new"]["charge"]) == ("zero_rated", "standard")
    assert change["old"]["rule"] == change["new"]["rule"] == "music_free"


def test_explain_shows_the_parts(tmp_path):
    policy = write_policy(tmp_path, section_9_example())
    code, out, _ = run_cli("explain", policy, "--flow", "app=spotify")
    assert code == 0 and "outcome: allow, charge zero_rated, priority normal (rule music_free" in out


def test_lint_counts_the_enums_of_parts_as_used_and_fmt_lays_them_out(tmp_path):
    policy = write_policy(tmp_path, PARTS + "default allow ,charge standard,priority normal\n"
                                            "rule r when app == bittorrent then throttle 1Mbps  per subscriber ,"
                                            "priority low,log   purpose congestion\n")
    code, out, err = run_cli("lint", policy)
    assert "L202" not in out + err
    assert run_cli("fmt", policy)[0] == 0
    text = policy.read_text()
    assert "default allow, charge standard, priority normal\n" in text
    assert "then throttle 1Mbps per subscriber, priority low, log purpose congestion\n" in text


def test_the_nftables_target_names_each_part_it_cannot_carry_out(tmp_path):
    policy = write_policy(tmp_path, section_9_example())
    code, _, err = run_cli("compile", policy, "--target", "nftables", "-o", tmp_path / "p.nft")
    assert code == 2
    assert "error[E520]: the nftables target does not carry out `charge zero_rated`, `priority normal`" in err
    assert f"--> {policy}:4:1" in err
    code, _, err = run_cli("compile", policy, "--target", "nftables", "-o", tmp_path / "p.nft", "--approximate",
                           "--contract", tmp_path / "contract.json", "--validate=required")
    assert code == 0, err
    assert f"approximated: {policy}:4:1: rule `music_free`: `charge zero_rated` is not carried out" in err
    assert "kernel check: the kernel's copy" in err and "proved equal" in err
    listed = json.loads((tmp_path / "contract.json").read_text())["approximations"]
    assert {"rule": "default", "what": "`priority normal` is not carried out"}.items() <= \
        next(a for a in listed if a["rule"] == "default" and "priority" in a["what"]).items()


def test_the_example_of_docs_language_md_checks_as_the_page_says(tmp_path):
    example = first_block(ROOT / "docs" / "language.md", "## 9. Outcomes with parts")
    policy = load_policy(write_policy(tmp_path, example))
    assert decide(policy, flow_of(policy, app="bittorrent")) == \
        ("p2p", Action("throttle", 10**6, charge="standard", priority="low", scope="subscriber", purpose="congestion"))
    assert decide(policy, flow_of(policy, app="spotify"))[1].text() == "allow, charge zero_rated, priority normal"


def test_translation_validation_sees_a_lost_part(example):
    """The table must keep every part: a match rule whose charge differs is a mistranslation."""
    import dataclasses

    from dpipolicy.verifier.solve import Limits
    from dpipolicy.verifier.validate import MistranslationError, validate

    table = lower(example)
    assert validate(example, table, Limits()).status == "proved"
    first = table.rules[0]
    lost = dataclasses.replace(table, rules=(dataclasses.replace(first, action=dataclasses.replace(
        first.action, charge="standard")),) + table.rules[1:])
    with pytest.raises(MistranslationError, match="music_free"):
        validate(example, lost, Limits())
    quieter = dataclasses.replace(table, default=dataclasses.replace(table.default, priority="low"))
    with pytest.raises(MistranslationError, match="default"):
        validate(example, quieter, Limits())
