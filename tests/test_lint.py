"""`dpipolicy lint`: every finding kind on small policies, codes and locations, suppression
comments, exit codes, the uk-mobile examples, and a brute-force check that what is reported
shadowed or redundant really is (and that what is not reported is not)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dpipolicy.dsl import typed
from dpipolicy.dsl.lintcodes import CODES
from dpipolicy.verifier import lint as lint_module
from dpipolicy.verifier.lint import lint_files
from dpipolicy.verifier.solve import Limits

import brute
from helpers import EXAMPLES, TimedOutScope, examples, run_cli, write_policy

LIMITS = Limits(timeout_s=30)
PROPERTY_EXAMPLES = examples(60)


def lint_json(*argv) -> tuple[int, dict]:
    code, out, err = run_cli("lint", *argv, "--format", "json")
    assert code in (0, 1, 3), err
    return code, json.loads(out)


def codes(data: dict) -> list[str]:
    return [f["code"] for f in data["findings"]]


def only(data: dict, code: str) -> dict:
    found = [f for f in data["findings"] if f["code"] == code]
    assert len(found) == 1, data["findings"]
    return found[0]


# ----- rules ---------------------------------------------------------------------------------

def test_shadowed_rule_names_the_rule_that_covers_it(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule mail when proto == tcp and dst.port in {25, 465, 587} then block\n"
                                  "rule smtp when proto == tcp and dst.port == 25 then reset\n")
    code, data = lint_json(path)
    assert code == 1 and codes(data) == ["L101"]
    f = only(data, "L101")
    assert (f["level"], f["line"], f["column"]) == ("error", 3, 1)
    assert f["file"].endswith("policy.dpi")
    assert "rule `smtp` is shadowed: rule `mail` decides every flow it matches" == f["message"]
    assert f["related"][0]["line"] == 2 and "rule `mail` covers it" in f["related"][0]["message"]
    assert "move it above rule `mail`" in f["help"]       # the actions differ: moving it is an option


def test_shadowed_by_several_rules_together(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule low when dst.port in 0..1000 then block\n"
                                  "rule high when dst.port in 900..2000 then block\n"
                                  "rule unrelated when app == ssh then block\n"
                                  "rule mid when dst.port in 500..1500 then block\n")
    _, data = lint_json(path)
    f = only(data, "L101")
    assert f["message"] == "rule `mid` is shadowed: rule `low` and rule `high` decide every flow it matches"
    assert f["help"].startswith("remove it: the rules above already give every flow it matches the same action")


def test_redundant_rule_says_who_takes_over(tmp_path):
    path = write_policy(tmp_path, "default block\n"
                                  "rule web when dst.port in {80, 443} then allow\n"
                                  "rule ssh when dst.port == 22 then block\n"
                                  "rule web_too when dst.port == 8080 then allow\n"
                                  "rule all_web when dst.port in {80, 443, 8080} then allow\n")
    _, data = lint_json(path)
    # `all_web` would take over from `web` or `web_too`, but it is shadowed (by the two together):
    # redundancy is judged without the shadowed rules, so only `ssh` can go
    assert [(f["code"], f["line"]) for f in data["findings"]] == [("L102", 3), ("L101", 5)]
    ssh, all_web = data["findings"]
    assert ssh["level"] == "warning"
    assert "the default decides this flow, with the same outcome (block)" in ssh["notes"][0]
    assert ssh["witness"]["flow"]["dst.port"] == 22
    assert "# dpipolicy: ignore L102" in ssh["help"]
    assert "rule `web` and rule `web_too` decide every flow it matches" in all_web["message"]


def test_redundant_rule_takes_over_from_the_one_above(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule ssh when dst.port == 22 then block\n"
                                  "rule remote when dst.port in {22, 3389} then block\n")
    _, data = lint_json(path)
    f = only(data, "L102")
    assert f["line"] == 2 and "rule `remote` decides this flow" in f["notes"][0]
    assert f["related"][0]["line"] == 3


def test_outcome_includes_rate_target_and_logging(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule logged when dst.port == 22 then allow, log\n"
                                  "rule slow when dst.port == 23 then throttle 1Mbps\n"
                                  "rule slower when dst.port == 23 or dst.port == 24 then throttle 2Mbps\n"
                                  "rule portal when dst.port == 80 then redirect \"http://a.example/\"\n"
                                  "rule portal2 when dst.port in {80, 81} then redirect \"http://b.example/\"\n")
    _, data = lint_json(path)
    assert "L102" not in codes(data)


def test_overlap_note_with_witness(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule relay when proto == tcp and dst.port == 25 then block\n"
                                  "rule p2p when app == bittorrent then throttle 128kbps\n")
    code, data = lint_json(path)
    assert code == 0                      # a note fails nothing
    f = only(data, "L103")
    assert f["level"] == "note" and f["line"] == 3
    assert "overlaps the earlier rule `relay` (block)" in f["message"]
    flow = f["witness"]["flow"]
    assert (flow["app"], flow["proto"], flow["dst.port"]) == ("bittorrent", "tcp", 25)
    assert "gets block from rule `relay`" in f["notes"][0]


def test_rule_that_matches_nothing(tmp_path):
    path = write_policy(tmp_path, "default allow\nrule never when dst.port == 1 and dst.port == 2 then block\n")
    _, data = lint_json(path)
    f = only(data, "L104")
    assert (f["level"], f["line"]) == ("error", 2)


# ----- names ---------------------------------------------------------------------------------

def test_unused_set_enum_and_import(tmp_path):
    write_policy(tmp_path, "set nothing_used = { 1, 2 }\n", "lib.dpi")
    write_policy(tmp_path, "set web = { 80, 443 }\nset other = { 22 }\n", "shared.dpi")
    path = write_policy(tmp_path, 'import "lib.dpi"\nimport "shared.dpi"\n'
                                  "enum plan { payg, monthly }\n"
                                  "set inner = { 25 }\n"
                                  "set outer = { inner, 587 }\n"
                                  "default allow\n"
                                  "rule web when dst.port in web then block\n")
    _, data = lint_json(path)
    assert codes(data) == ["L203", "L202", "L201", "L201"]
    imp, enum, inner, outer = data["findings"]
    assert (imp["line"], imp["column"]) == (1, 1) and "lib.dpi` declares is used" in imp["message"]
    assert enum["message"].startswith("enum `plan` is never used") and enum["line"] == 3
    assert inner["message"] == "set `inner` is never used"
    assert "only set `outer` names it, and it is unused too" in inner["notes"][0]
    assert outer["line"] == 5
    # `other` in shared.dpi is unused too, but shared.dpi is a library another policy may use
    assert not any("other" in f["message"] for f in data["findings"])


def test_imports_through_other_files(tmp_path):
    write_policy(tmp_path, "set ports = { 22 }\n", "base.dpi")
    write_policy(tmp_path, 'import "base.dpi"\nset spare = { 1 }\n', "middle.dpi")    # a library
    write_policy(tmp_path, 'import "base.dpi"\n', "other.dpi")
    path = write_policy(tmp_path, 'import "middle.dpi"\nimport "other.dpi"\ndefault allow\n'
                                  "rule r when dst.port in ports then block\n")
    _, data = lint_json(path)
    # middle.dpi is used through base.dpi; other.dpi brings nothing new (base.dpi is loaded
    # once) but what it imports is used, so neither import is unused, and `spare` sits in a library
    assert codes(data) == []
    path.write_text('import "middle.dpi"\ndefault allow\n')
    _, data = lint_json(path)
    assert [(f["code"], f["line"]) for f in data["findings"]] == [("L203", 1)]      # not base.dpi's import too


def test_names_used_only_by_the_spec(tmp_path):
    path = write_policy(tmp_path, "set mail = { 25 }\ndefault allow\nrule r when dst.port == 22 then block\n")
    spec = write_policy(tmp_path, "test t given dst.port in mail expect allow\n", "spec.dpi")
    _, alone = lint_json(path)
    assert codes(alone) == ["L201"] and "give that file with `--spec`" in alone["findings"][0]["help"]
    _, both = lint_json(path, "--spec", spec)
    assert codes(both) == []


# ----- invariants and tests ------------------------------------------------------------------

def test_vacuous_invariant_and_test_point_at_the_contradiction(tmp_path):
    path = write_policy(tmp_path, "default allow\nrule r when dst.port == 25 then block\n")
    spec = write_policy(tmp_path, "invariant mail when proto == tcp and dst.port == 25 and dst.port == 587\n"
                                  "    require action == block\n"
                                  "invariant fine when dst.port == 25 require action == block\n"
                                  "test nothing given app == smtp and app == http expect block\n"
                                  "invariant portal when action == redirect require logged\n", "spec.dpi")
    code, data = lint_json(path, "--spec", spec)
    assert code == 1
    assert codes(data) == ["L301", "L302", "L301"]
    mail, nothing, portal = data["findings"]
    assert (mail["line"], mail["column"]) == (1, 57)     # at `dst.port == 587`
    assert "`dst.port == 587` contradicts what comes before it" in mail["notes"][0]
    assert nothing["line"] == 4 and nothing["level"] == "error"
    assert "speaks of the outcome" in portal["help"]     # satisfiable, but no rule redirects


def test_a_part_in_parentheses_is_quoted_whole(tmp_path):
    """The span of `not ( ... )` takes in the closing parenthesis, so the note quotes it whole."""
    path = write_policy(tmp_path, "default allow\nrule r when dst.port == 25 then block\n")
    spec = write_policy(tmp_path, "invariant odd when dst.port == 25 and not (dst.port == 25 or proto == tcp)\n"
                                  "    require action == block\n", "spec.dpi")
    [odd] = lint_json(path, "--spec", spec)[1]["findings"]
    assert (odd["line"], odd["column"]) == (1, 39)
    assert "`not (dst.port == 25 or proto == tcp)` contradicts what comes before it" in odd["notes"][0]


def test_spec_files_are_needed_for_vacuity(tmp_path):
    path = write_policy(tmp_path, "default allow\n")
    spec = write_policy(tmp_path, "test nothing given dst.port == 1 and dst.port == 2 expect block\n", "spec.dpi")
    assert codes(lint_json(path)[1]) == []
    assert codes(lint_json(path, "--spec", spec)[1]) == ["L302"]


# ----- set members ---------------------------------------------------------------------------

def test_duplicate_and_overlapping_members(tmp_path):
    path = write_policy(tmp_path, "set ports = { 25, 465, 25 }\n"
                                  "set nets = { 10.0.0.0/8, 10.1.0.0/16 }\n"
                                  "set ranges = { 1000..2000, 1500..3000 }\n"
                                  "default allow\n"
                                  "rule a when dst.port in ports then block\n"
                                  "rule b when dst.ip in nets and dst.port in ranges then block\n"
                                  "rule c when proto in {tcp, 6} and app in {openvpn, category.vpn} then block\n")
    _, data = lint_json(path)
    members = [f for f in data["findings"] if f["code"] in ("L401", "L402")]
    got = [(f["code"], f["line"], f["column"]) for f in members]
    assert got == [("L401", 1, 24), ("L402", 2, 26), ("L402", 3, 28), ("L401", 7, 28), ("L402", 7, 52)]
    assert members[0]["related"][0]["column"] == 15       # the first `25`
    assert members[1]["help"] == "remove `10.1.0.0/16`: `10.0.0.0/8` already holds it"
    assert members[2]["help"] == "write the two as `1000..3000`"
    assert "(`6` is `tcp`)" in members[3]["message"]
    assert members[4]["help"] == "remove `openvpn`: `category.vpn` already holds it"


# ----- suppression comments ------------------------------------------------------------------

SUPPRESSED = """\
default allow
rule mail when dst.port in {25, 587} then block
# Kept while the relays move.
# dpipolicy: ignore L101
rule smtp when dst.port == 25 then block
rule smtp_again when dst.port == 25 then block   # dpipolicy: ignore[L101] kept for the audit
set spare = { 1, 1 }   # dpipolicy: ignore L201, L401
"""


def test_suppression_comments_silence_their_item(tmp_path):
    path = write_policy(tmp_path, SUPPRESSED)
    code, data = lint_json(path)
    assert codes(data) == [] and data["summary"]["silenced"] == 4 and code == 0


def test_suppression_applies_to_one_item_only(tmp_path):
    text = SUPPRESSED.replace("# dpipolicy: ignore L101\n", "# dpipolicy: ignore L101\n\n")
    _, data = lint_json(write_policy(tmp_path, text))
    # a blank line detaches the comment: the rule is reported and the comment silences nothing
    assert codes(data) == ["L003", "L101"]
    assert data["findings"][0]["line"] == 4 and data["findings"][0]["level"] == "note"


def test_suppression_survives_fmt(tmp_path):
    """`dpipolicy fmt` moves a comment from the end of a rule's first line to the end of its
    last line: it still applies to the rule."""
    path = write_policy(tmp_path, "default allow\n"
                                  "rule a when dst.port == 25 then block\n"
                                  "rule b when dst.port == 25 then block because \"dup\"   # dpipolicy: ignore L101\n")
    assert codes(lint_json(path)[1]) == []
    assert run_cli("fmt", path)[0] == 0
    text = path.read_text()
    assert text.splitlines()[-1].endswith("# dpipolicy: ignore L101") and "rule b\n" in text
    _, data = lint_json(path)
    assert codes(data) == [] and data["summary"]["silenced"] == 1


def test_bad_suppression_comments_are_findings(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "rule r when dst.port == 22 then block   # dpipolicy: ignore L999, l101\n"
                                  "# dpipolicy: ignroe L101\n"
                                  "rule s when dst.port == 23 then block because \"# dpipolicy: ignore L777\"\n"
                                  "# dpipolicy: ignore\n"
                                  "rule t when dst.port == 24 then allow\n")
    _, data = lint_json(path)
    found = [(f["code"], f["line"], f["column"]) for f in data["findings"]]
    assert found == [("L001", 2, 61), ("L001", 2, 67), ("L002", 3, 1), ("L002", 5, 1), ("L102", 6, 1)]
    assert data["findings"][1]["help"] == "did you mean `L101`?"


def test_suppression_in_an_imported_file(tmp_path):
    write_policy(tmp_path, "rule first when dst.port == 22 then block\n"
                           "rule second when dst.port == 22 then block   # dpipolicy: ignore L101\n", "rules.dpi")
    path = write_policy(tmp_path, 'default allow\nimport "rules.dpi"\n')
    assert codes(lint_json(path)[1]) == []


# ----- exit codes and formats ----------------------------------------------------------------

def test_strict_turns_warnings_into_failures(tmp_path):
    path = write_policy(tmp_path, "set spare = { 1 }\ndefault allow\n")
    code, out, _ = run_cli("lint", path)
    assert code == 0 and "lint: 0 errors, 1 warning, 0 notes, 0 undecided" in out
    code, out, _ = run_cli("lint", path, "--strict")
    assert code == 1 and "failed (--strict: warnings fail)" in out
    notes_only = write_policy(tmp_path, "default allow\nrule a when dst.port == 25 then block\n"
                                        "rule b when app == smtp then throttle 1Mbps\n", "notes.dpi")
    assert run_cli("lint", notes_only, "--strict")[0] == 0


def test_text_output_is_rendered_like_diagnostics(tmp_path):
    path = write_policy(tmp_path, "default allow\nrule a when dst.port == 25 then block\n"
                                  "rule b when dst.port == 25 then block\n")
    code, out, err = run_cli("lint", path)
    assert code == 1 and err == ""
    assert "error[L101]: rule `b` is shadowed: rule `a` decides every flow it matches\n --> " in out
    assert "3 | rule b when dst.port == 25 then block\n  | ^^^" in out
    assert "  = help: remove it: the rules above already give every flow it matches the same action" in out
    assert out.rstrip().endswith("lint: 1 error, 0 warnings, 0 notes, 0 undecided; 2 rules checked; failed")


def test_bad_input_exits_2(tmp_path):
    path = write_policy(tmp_path, "default allow\nrule a when dst.port == then block\n")
    code, _, err = run_cli("lint", path)
    assert code == 2 and "error[E001]" in err
    table = write_policy(tmp_path, "{}", "rules.json")
    code, _, err = run_cli("lint", table)
    assert code == 2 and "error[E321]: `lint` takes a .dpi policy, not a rule table" in err
    code, out, _ = run_cli("lint", path, "--format", "json")
    assert code == 2 and json.loads(out)["status"] == "bad input"


@pytest.mark.parametrize("fmt", ["sarif", "junit", "github"])
def test_ci_formats(tmp_path, fmt):
    path = write_policy(tmp_path, "default allow\nrule a when dst.port == 25 then block\n"
                                  "rule b when dst.port == 25 then block\nset spare = { 1 }\n")
    code, out, _ = run_cli("lint", path, "--format", fmt)
    assert code == 1
    if fmt == "sarif":
        results = json.loads(out)["runs"][0]["results"]
        assert [(r["ruleId"], r["level"]) for r in results] == [("L101", "error"), ("L201", "warning")]
        assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
        assert results[0]["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 2
    elif fmt == "junit":
        assert out.count("<testcase ") == len(CODES) and out.count("<failure ") == 1   # L201 fails only --strict
        assert run_cli("lint", path, "--format", fmt, "--strict")[1].count("<failure ") == 2
    else:
        assert out.splitlines()[0].startswith("::error file=")
        assert "title=L101%3A shadowed rule" in out and "::warning " in out


def test_undecided_is_reported_as_unknown(tmp_path, monkeypatch):
    """With the interval arithmetic switched off, the union cover goes to z3: proved when z3
    answers, undecided (exit 3, never "no finding") when it does not."""
    path = write_policy(tmp_path, "default allow\nrule low when dst.port in 0..100 then block\n"
                                  "rule high when dst.port in 50..200 then block\n"
                                  "rule mid when dst.port in 10..150 then block\n")
    monkeypatch.setattr(lint_module, "SHRINK_CUTS", 0)
    monkeypatch.setattr(lint_module, "SUBTRACT_MAX_BOXES", -1)
    result = lint_files(path, (), (), LIMITS)
    assert [f.code for f in result.findings] == ["L101"] and result.queries == 1
    monkeypatch.setattr(lint_module, "Scope", TimedOutScope)
    code, out, _ = run_cli("lint", path)
    assert code == 3
    assert "unknown[L101]: could not decide whether rule `mid` is shadowed" in out
    assert "the solver gave no answer (timeout)" in out
    code, data = lint_json(path)
    assert data["status"] == "unknown" and data["undecided"][0]["line"] == 4


# ----- the uk-mobile examples ----------------------------------------------------------------

@pytest.mark.parametrize("policy", ["policy-2011-08.dpi", "policy-2011-09.dpi"])
@pytest.mark.parametrize("spec", ["spec.dpi", "firmware-spec.dpi"])
def test_uk_mobile_examples(policy, spec):
    """Only overlap notes, each true: the witness matches both rules and the earlier one decides it."""
    result = lint_files(EXAMPLES / policy, (EXAMPLES / spec,), (), LIMITS)
    expected = {"policy-2011-08.dpi": [("fair_use", "unauth_smtp_relay")],
                "policy-2011-09.dpi": [("payg_vpn_needs_addon", "antispam_smtp_family"),
                                       ("fair_use", "antispam_smtp_family")]}[policy]
    assert [f.code for f in result.findings] == ["L103"] * len(expected) and not result.undecided
    from dpipolicy import api
    policy_ = api.load(EXAMPLES / policy).policy
    rules = {r.origin.name: r for r in policy_.rules}
    for finding, (later, earlier) in zip(result.findings, expected):
        assert f"rule `{later}`" in finding.message and f"earlier rule `{earlier}`" in finding.message
        assert typed.evaluate(rules[later].cond, finding.witness)
        assert typed.evaluate(rules[earlier].cond, finding.witness)
        assert typed.decide(policy_, finding.witness)[0] == earlier
    assert run_cli("lint", EXAMPLES / policy, "--spec", EXAMPLES / spec, "--strict")[0] == 0


# ----- brute force ---------------------------------------------------------------------------

PORTS = ("dst.port == 22", "dst.port == 25", "dst.port in {25, 80}", "dst.port in 20..30", "dst.port <= 100",
         "dst.port != 80")
OTHERS = ("proto == tcp", "proto == udp", "app == smtp", "app in {http, https}", "tls", "not tls")
ACTIONS = ("allow", "block", "allow, log", "throttle 1Mbps")


@st.composite
def policies(draw) -> str:
    atom = st.sampled_from(PORTS + OTHERS)
    term = st.lists(atom, min_size=1, max_size=3).map(" and ".join)
    cond = st.lists(term, min_size=1, max_size=2).map(lambda ts: " or ".join(f"({t})" for t in ts))
    rules = draw(st.lists(st.tuples(cond, st.sampled_from(ACTIONS)), min_size=1, max_size=7))
    lines = [f"default {draw(st.sampled_from(ACTIONS))}"]
    lines += [f"rule r{k} when {c} then {a}" for k, (c, a) in enumerate(rules)]
    return "\n".join(lines) + "\n"


def brute_answers(policy: typed.Policy) -> dict[str, tuple[bool, bool]]:
    """Per rule, by enumeration: (shadowed, redundant). As lint defines it, redundancy is judged
    on the policy without its shadowed rules (they decide nothing)."""
    sem = brute.typed_semantics(policy)
    fields = {f.name: f for f in policy.schema.flow_fields}
    reps = {name: brute.representatives(fields[name].hi, sets, True) for name, sets in sem.intervals.items()}
    env = brute.Env.grid(policy.schema, reps)
    decided = sem.decide(env)

    def outcomes(sem_: brute.Semantics, at: np.ndarray) -> np.ndarray:
        table = np.array([[o[k] for k in ("action", "rate", "logged", "target")] for o in sem_.outcomes])
        return table[at]

    def without(drop: set[int]) -> brute.Semantics:
        keep = [k for k in range(len(sem.rules)) if k not in drop]
        return brute.Semantics("without", [sem.rules[k] for k in keep], [sem.names[k] for k in keep] + ["default"],
                               [sem.outcomes[k] for k in keep] + [sem.outcomes[-1]], {})

    before = outcomes(sem, decided)
    shadowed = {r for r in range(len(sem.rules)) if not (decided == r).any()}
    answers = {}
    for r, name in enumerate(sem.names[:-1]):
        rest = without(shadowed | {r})
        after = outcomes(rest, rest.decide(env))
        answers[name] = (r in shadowed, bool((before == after).all()))
    return answers


def check_against_brute_force(tmp_path: Path, text: str) -> None:
    path = write_policy(tmp_path, text)
    result = lint_files(path, (), (), LIMITS)
    assert not result.undecided
    from dpipolicy import api
    policy = api.load(path).policy
    rules = {r.origin.name: r for r in policy.rules}
    reported: dict[str, set[str]] = {}
    for f in result.findings:
        name = f.message.split("`")[1]
        reported.setdefault(name, set()).add(f.code)
        if f.code == "L102":              # the example flow is one the rule decides
            assert typed.decide(policy, f.witness)[0] == name
        if f.code == "L103":              # matched by the rule and by the earlier one named
            earlier = f.message.split("`")[3]
            assert typed.evaluate(rules[name].cond, f.witness) and typed.evaluate(rules[earlier].cond, f.witness)
    for name, (shadowed, redundant) in brute_answers(policy).items():
        got = reported.get(name, set())
        assert bool(got & {"L101", "L104"}) == shadowed, (name, text, got)
        assert ("L102" in got) == (redundant and not shadowed), (name, text, got)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=policies())
def test_shadowed_and_redundant_agree_with_brute_force(tmp_path, text):
    check_against_brute_force(tmp_path, text)


@settings(max_examples=max(1, PROPERTY_EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=policies())
def test_the_solver_path_agrees_with_brute_force(tmp_path, monkeypatch, text):
    """The same, with box cutting, subtraction and the walk away from held points off: what one
    point and its holder do not settle goes to z3."""
    for name in ("SHRINK_CUTS", "FIRST_STEPS", "ESCAPE_STEPS"):
        monkeypatch.setattr(lint_module, name, 0)
    monkeypatch.setattr(lint_module, "SUBTRACT_MAX_BOXES", -1)
    check_against_brute_force(tmp_path, text)


def test_the_example_in_docs_is_true(tmp_path, monkeypatch):
    """docs/lint.md shows a policy and what lint prints for it: both are checked here."""
    from helpers import ROOT
    blocks = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8").split("```")[1::2]
    transcript = next(b for b in blocks if b.startswith("\n$ dpipolicy lint policy.dpi\n"))
    policy = next(b for b in blocks if b.startswith("\npolicy demo\n"))
    write_policy(tmp_path, policy.lstrip("\n"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("lint", "policy.dpi")
    assert code == 1 and err == ""
    assert out == transcript.split("\n", 2)[2]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_invariant_too_large_to_check_is_an_error(tmp_path, jobs):
    """An invariant whose condition expands past MAX_BOXES is refused with E202 at its place
    (exit 2), as a rule's is with E201; it used to end in an internal error."""
    groups = " and ".join(f"(dst.port >= {k} or src.port >= {k})" for k in range(1, 14))
    policy = write_policy(tmp_path, "default allow\nrule r when dst.port == 25 then block\n"
                          f"invariant big when {groups} require action == allow\n")
    for command in (["check", policy, "--jobs", jobs], ["lint", policy]):
        code, _, err = run_cli(*command)
        assert code == 2 and "error[E202]: invariant `big` expands into more than 4096 boxes" in err
        assert "policy.dpi:3:1" in err and "internal error" not in err


def test_an_overlap_is_noted_only_with_a_flow_that_shows_it(tmp_path):
    """`c` meets `b` (another action), but every flow of both is decided first by `a`, with
    `c`'s own action: moving `c` above `b` would change nothing, so there is no L103 for it.
    `b` itself does get one: its flows in `a` get allow instead of block."""
    policy = write_policy(tmp_path, """policy ov
default allow
rule a when proto == tcp and dst.port == 25 then allow
rule b when dst.port == 25 then block
rule c when proto == tcp and dst.port in 25..26 then allow
""")
    _, out, err = run_cli("lint", policy)
    shown = out + err
    assert "note[L103]: rule `b` (block) overlaps the earlier rule `a` (allow)" in shown
    assert "note[L103]: rule `c`" not in shown


def test_a_shadowing_cover_names_only_the_rules_it_needs(tmp_path):
    """`low` and `high` already cover `mid`; `extra` lies inside them too, so it is not named."""
    policy = write_policy(tmp_path, """policy c
default allow
rule low when dst.port in 0..1000 then block
rule extra when dst.port in 1001..1100 then block
rule high when dst.port in 900..2000 then block
rule mid when dst.port in 500..1500 then block
""")
    _, out, err = run_cli("lint", policy)
    assert "error[L101]: rule `mid` is shadowed: rule `low` and rule `high` decide every flow it matches" in out + err


def test_the_part_of_a_vacuous_condition_to_blame(tmp_path):
    """The note names the part after which no flow is left: a part that can never hold on its
    own is said so, and inside a group, the part of the group that contradicts the rest of it."""
    policy = write_policy(tmp_path, "policy p\ndefault allow\nrule r when dst.port == 25 then block\n")
    spec = tmp_path / "spec.dpi"
    spec.write_text("invariant grouped when tls and (dst.port == 25 and dst.port == 587) require action == block\n"
                    "invariant empty when dst.port in {} and tls require action == block\n", encoding="utf-8")
    _, out, err = run_cli("lint", policy, "--spec", str(spec))
    shown = out + err
    assert "note: `dst.port == 587` contradicts what comes before it in `when`" in shown
    assert "note: `dst.port in {}` can never hold" in shown
