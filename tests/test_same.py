"""Equal-treatment invariants (`require same PARTS across FIELDS`, language.md section 10).

The property test draws small policies as test_properties.py does and adds equal-treatment
invariants; brute.verify_same recomputes each verdict, the pair and the pair boxes by
enumeration. Fixed examples pin the contract's cases, the checker's errors and the outputs.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dpipolicy import api
from dpipolicy.dsl import typed
from dpipolicy.dsl.profiles import load_profile
from dpipolicy.dsl.schema import LABEL
from dpipolicy.verifier import equal
from dpipolicy.verifier.properties import TableModel, check_property
from dpipolicy.verifier.results import UNKNOWN
from dpipolicy.verifier.solve import Limits

from helpers import ROOT, TimedOutScope, examples, run_cli, write_policy

import brute
from test_properties import (ENUMS, LIMITS, NAMED_SETS, RULE_FIELDS, SPEC_FIELDS, action, check_text, condition, fields_of,
                             flow_atom, outcome_atoms, render, run)

PARTS = ["action", "rate", "logged", "scope", "purpose", "outcome"]
WITH_ENUMS = ["charge", "priority"]              # parts of policies that declare `enum charge`, `enum priority`
WRITTEN = {"addons": "subscriber.addons"}        # the drawn field's name as a policy writes it


@st.composite
def same_cases(draw) -> str:
    """A policy text with one to three equal-treatment invariants (and a plain one, sometimes)."""
    rule_fields = draw(st.lists(st.sampled_from(RULE_FIELDS), min_size=1, max_size=3, unique=True))
    rule_atoms = [flow_atom(f) for f in rule_fields]
    spec_fields = list(dict.fromkeys(rule_fields + draw(st.lists(st.sampled_from(SPEC_FIELDS), max_size=1))))
    spec_atoms = [flow_atom(f) for f in spec_fields]
    declared = draw(st.booleans())       # the policy declares `enum charge` and `enum priority`
    rules = [(f"r{k + 1}", draw(condition(rule_atoms, 2)), draw(action(declared)))
             for k in range(draw(st.integers(1, 5)))]
    default = draw(action(declared, "default"))
    lines = []
    used = set()
    for name, cond, act in rules:
        used |= fields_of(cond)
        lines.append(f"rule {name}\n    when {render(cond)}\n    then {act.text()}")
    lines.append(f"default {default.text()}")
    outcome = outcome_atoms([r[0] for r in rules], declared)
    for k in range(draw(st.integers(1, 3))):
        parts = draw(st.lists(st.sampled_from(PARTS + (WITH_ENUMS if declared else [])), min_size=1, max_size=2,
                              unique=True))
        if "outcome" in parts:
            parts = ["outcome"]
        across = draw(st.lists(st.sampled_from(spec_fields), min_size=1, max_size=2, unique=True))
        when = draw(st.one_of(st.none(), condition(spec_atoms, 1), condition(outcome + spec_atoms, 1)))
        if when is not None:
            used |= fields_of(when)
        used |= set(across)
        clause = f"\n    when {render(when)}" if when is not None else ""
        lines.append(f"invariant s{k + 1}{clause}\n    require same {', '.join(parts)} across "
                     + ", ".join(WRITTEN.get(f, f) for f in across))
    head = ["enum charge { standard, zero_rated }\nenum priority { high, normal, low }"] if declared else []
    if "subscriber.plan" in used or draw(st.booleans()):
        head.append("enum plan { payg, monthly, business }\nset paid_plans = { monthly, business }")
    if any(f.startswith("subscriber.addons") or f == "addons" for f in used):
        head.append("enum addon { vpn, tethering }")
    for field, enum in (("subscriber.zone", "zone"), ("subscriber.apn", "apn")):
        if field in used:
            head.append(f"enum {enum} {{ {', '.join(ENUMS[field][0])} }}")
    head += [f"set {name} = {{ {text} }}" for name, text, _ in NAMED_SETS]
    return "\n".join(head + lines) + "\n"


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(same_cases(), st.booleans())
def test_equal_treatment_agrees_with_brute_force(text: str, by_solver: bool):
    """With `by_solver`, no work is allowed for exact boxes, so every candidate pair that
    realistic flows do not settle goes to z3 (its region is then marked incomplete)."""
    with mock.patch.object(equal, "SUBTRACTIONS", 0 if by_solver else equal.SUBTRACTIONS):
        check_text(text)


@st.composite
def meeting_cases(draw) -> str:
    """A policy of same_cases with a test `meeting` whose `given` (on flow fields and the deciding
    rule, as a waiver's) picks the pairs to look for."""
    text = draw(same_cases())
    rules = re.findall(r"^rule (r\d+)$", text, re.M)
    atoms = [flow_atom(f) for f in ("proto", "dst.port", "app", "tls")] + outcome_atoms(rules)[3:4]
    return text + f"test meeting given {render(draw(condition(atoms, 2)))} expect allow\n"


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(meeting_cases(), st.booleans(), st.booleans())
def test_pairs_a_waiver_accepts_and_leaves_agree_with_brute_force(text: str, by_solver: bool, leaves: bool):
    """The two questions audit waivers ask of an equal-treatment invariant (verifier/waivers.py),
    through check_property as they ask them. With `meeting` (the pairs a waiver accepts):
    violated iff some violating pair has a flow that meets the condition. With `within` its
    negation (the pairs it leaves, `leaves`): violated iff some violating pair has neither flow
    in it. Either way the pair and pair boxes are such pairs only, and every one of them when
    the list is complete."""
    loaded, _ = run(text)
    table, spec = api.as_deployed(loaded, None)
    model = TableModel(table)
    chosen = spec.tests[0].given
    asked = {"within": typed.Not(chosen)} if leaves else {"meeting": chosen}
    with mock.patch.object(equal, "SUBTRACTIONS", 0 if by_solver else equal.SUBTRACTIONS):
        results = [check_property(model, spec, k, LIMITS, **asked) for k, inv in enumerate(spec.invariants)
                   if inv.same is not None]
    ref = brute.typed_semantics(loaded.policy)
    env = brute.build_grid(table.schema, [ref], SimpleNamespace(results=results))
    decided = ref.decide(env)
    outcome_env = env.with_outcome(ref.outcomes, decided)
    mask = brute.typed_mask(chosen)

    def check_decision(name, decision, what):
        entry = int(ref.decide(brute.Env.single(decision.flow))[0])
        if ref.names[entry] != decision.rule:
            raise brute.Disagreement(f"{name}: {what} {decision.flow} decided by {ref.names[entry]}, reported "
                                     f"{decision.rule}\n{text}")

    for result in results:
        item = ref.items[result.name]
        when = item.when(outcome_env)
        if leaves:
            brute.verify_same(env, ref, decided, when & ~mask(outcome_env), item.same, result, check_decision, text)
        else:
            brute.verify_same(env, ref, decided, when, item.same, result, check_decision, text, mask)


# ----- fixed examples ----------------------------------------------------------------------------

VIDEO = """\
default allow
rule youtube_shaped when app == youtube and subscriber.usage > 10GB then throttle 1Mbps
rule video_shaped when app in category.video and subscriber.usage > 10GB then throttle 1Mbps
invariant video_provider_neutral "Every video service gets the same treatment"
    when app in category.video
    require same action, rate across app
"""


def run_check(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    code, out, err = run_cli("check", write_policy(tmp_path, text), *args)
    return code, out + err


def test_contract_example_holds_when_every_video_service_is_shaped_alike(tmp_path):
    code, out = run_check(tmp_path, VIDEO)
    assert code == 0, out
    assert "invariant holds    video_provider_neutral" in out


def test_contract_example_violated_by_a_provider_rule(tmp_path):
    text = VIDEO.replace("then throttle 1Mbps\ninvariant", "then throttle 2Mbps\ninvariant")
    check_text(text)
    code, out = run_check(tmp_path, text)
    assert code == 1
    assert "two flows that differ only in app are treated differently:" in out
    assert "gets:   throttle 1Mbps (rule youtube_shaped" in out
    assert "gets:   throttle 2Mbps (rule video_shaped" in out
    assert ("subscriber.usage > 10GB: first app == youtube [decided by youtube_shaped], second app in "
            "{netflix, twitch, tiktok, rtsp, prime_video} [decided by video_shaped]") in out


CONTRACT_PARTS = """\
enum charge   { standard, zero_rated }
enum priority { high, normal, low }
default allow, charge standard, priority normal
rule video_shaped when app in category.video and subscriber.usage > 10GB then throttle 1Mbps, priority low
invariant video_provider_neutral "Every video service gets the same treatment"
    when app in category.video
    require same action, rate, priority across app

invariant cap_app_agnostic "Whether data counts never depends on the application"
    require same charge across app
"""


def test_the_contract_examples_verbatim_with_charge_and_priority(tmp_path):
    """Section 10's two invariants as the contract writes them, over section 9's parts: both
    hold, then a partner deal (zero-rated, prioritised YouTube) breaks both."""
    assert check_text(CONTRACT_PARTS) == {"video_provider_neutral": "holds", "cap_app_agnostic": "holds"}
    deal = CONTRACT_PARTS.replace(
        "rule video_shaped", "rule partner when app == youtube then allow, charge zero_rated, priority high\n"
                             "rule video_shaped")
    assert check_text(deal) == {"video_provider_neutral": "violated", "cap_app_agnostic": "violated"}
    code, out = run_check(tmp_path, deal, "--format", "json")
    results = {r["name"]: r for r in json.loads(out)["results"]}
    cap = results["cap_app_agnostic"]
    sides = {cap["counterexample"]["rule"]: cap["counterexample"], cap["pair"]["rule"]: cap["pair"]}
    assert sides["partner"]["charge"] == "zero_rated" and sides["partner"]["flow"]["app"] == "youtube"
    assert {r for r in sides} - {"partner"} <= {"default", "video_shaped"}
    assert all(side["charge"] == "standard" for rule, side in sides.items() if rule != "partner")


def test_second_contract_example_with_the_parts_there_are(tmp_path):
    """`outcome` and `logged` say of the other parts what `same charge` says of the charge."""
    text = ("default allow\nrule zero when app == whatsapp then allow, log\n"
            'invariant cap_app_agnostic "Whether data counts never depends on the application"\n'
            "    require same logged across app\n"
            "invariant all_parts require same outcome across app\n")
    check_text(text)
    code, out = run_check(tmp_path, text, "--format", "json")
    data = json.loads(out)
    results = {r["name"]: r for r in data["results"]}
    assert results["cap_app_agnostic"]["status"] == "violated"
    assert results["all_parts"]["status"] == "violated"
    first = results["cap_app_agnostic"]
    assert first["across"] == ["app"]
    assert first["counterexample"]["rule"] == "zero" and first["counterexample"]["flow"]["app"] == "whatsapp"
    assert first["pair"]["rule"] == "default" and first["pair"]["flow"]["app"] != "whatsapp"
    assert first["region_complete"] is True
    assert first["pair_region"] == [{
        "shared": {"match": {}, "text": "every flow"},
        "first": {"rule": "zero", "match": {"app": ["whatsapp"]}, "text": "app == whatsapp"},
        "second": {"rule": "default", "match": {"app": {"not": ["whatsapp"]}}, "text": "app != whatsapp"}}]


def test_parts_not_named_are_not_compared(tmp_path):
    text = ("default allow\nrule zero when app == whatsapp then allow, log\n"
            "invariant same_gate require same action, rate across app\n")
    assert check_text(text) == {"same_gate": "holds"}


def test_when_restricts_both_flows(tmp_path):
    text = ("default allow\nrule mail when app == smtp and dst.port == 25 then block\n"
            "invariant web_alike when app in {http, https} require same action across app\n"
            "invariant mail_differs when app in {smtp, http} require same action across app\n")
    assert check_text(text) == {"web_alike": "holds", "mail_differs": "violated"}


def test_add_ons_vary_together(tmp_path):
    text = ("enum addon { vpn, tethering }\ndefault allow\n"
            "rule tether when tethering in subscriber.addons and vpn not in subscriber.addons then throttle 1Mbps\n"
            "invariant addons_neutral require same action across subscriber.addons\n"
            "invariant vpn_only require same action across app\n")
    assert check_text(text) == {"addons_neutral": "violated", "vpn_only": "holds"}
    code, out = run_check(tmp_path, text)
    assert "two flows that differ only in subscriber.addons are treated differently:" in out


def test_shared_fields_keep_flows_apart(tmp_path):
    """Flows that differ in a field outside FIELDS are not compared."""
    text = ("default allow\nrule night when time.hour in 0..5 then throttle 1Mbps\n"
            "invariant app_neutral require same outcome across app\n"
            "invariant hour_neutral require same outcome across time.hour\n")
    assert check_text(text) == {"app_neutral": "holds", "hour_neutral": "violated"}


def test_when_with_outcome_variables(tmp_path):
    """`when` read per flow with its own outcome, as for every invariant."""
    text = ("default allow\nrule b when app == smtp then block\nrule t when app == http then throttle 1Mbps\n"
            "invariant not_blocked when action != block require same action across app\n")
    assert check_text(text) == {"not_blocked": "violated"}


def test_capped_region_is_said(tmp_path):
    rules = "".join(f"rule p{p} when dst.port == {p} and app == http then throttle {p}kbps\n" for p in range(1, 80))
    text = "default allow\n" + rules + "invariant neutral require same rate across app\n"
    code, out = run_check(tmp_path, text, "--format", "json")
    result = json.loads(out)["results"][0]
    assert result["status"] == "violated"
    assert len(result["pair_region"]) == 64 and result["region_complete"] is False


@pytest.mark.parametrize("clause, code, words", [
    ("same acton across app", "E180", "unknown outcome part `acton`"),
    ("same rule across app", "E181", "`same rule` compares nothing a subscriber gets"),
    ("same action across action", "E182", "`action` is an outcome, not a field of a flow"),
    ("same outcome, rate across app", "E183", "outcome part `rate` is named twice"),
    ("same action across app, app", "E183", "field `app` is named twice"),
    ("same action across dpi.app", "E184", "`across dpi.app` alone is not supported"),
    ("same action across dpi.tethered", "E184", "`across dpi.tethered` alone is not supported"),
    ("same action across dst.prt", "E101", "unknown field `dst.prt`"),
    ("same action across subscriber.addons", "E104", "`subscriber.addons` needs `enum addon` to be declared"),
])
def test_checker_errors(tmp_path, clause, code, words):
    exit_code, out = run_check(tmp_path, f"default allow\ninvariant bad require {clause}\n")
    assert exit_code == 2
    assert f"error[{code}]: {words}" in out
    assert "Traceback" not in out


def test_same_is_only_a_keyword_after_require(tmp_path):
    exit_code, out = run_check(tmp_path, "default allow\nrule same when app == http then block\n"
                                         "invariant across require same action across app\n")
    assert exit_code == 1, out


def test_every_ci_format_reports_the_pair(tmp_path):
    text = VIDEO.replace("then throttle 1Mbps\ninvariant", "then throttle 2Mbps\ninvariant")
    for fmt, needle in (("sarif", "second:"), ("junit", "second:"), ("github", "second:")):
        code, out = run_check(tmp_path, text, "--format", fmt)
        assert code == 1 and needle in out and "video_shaped" in out, (fmt, out)


PROFILE = """\
version: 1
name: guessing
labels:
  netflix:
    - label: netflix
      how: detected
      evidence: "assumed: a test profile"
    - label: unknown
      how: undetected
      evidence: "assumed: a test profile"
"""


def test_profile_gives_each_flow_its_own_label(tmp_path):
    """Under a profile that may label netflix `unknown`, two flows that differ only in the
    application (even two netflix flows, labelled differently) may be treated differently by
    a rule on the label; with the label shared (`across tls`) they may not."""
    profile = tmp_path / "engine.yaml"
    profile.write_text(PROFILE)
    text = ("default allow\nrule unknown_shaped when app == unknown then throttle 1Mbps\n"
            "invariant video_neutral when app in {youtube, netflix} require same action across app\n"
            "invariant netflix_alike when app == netflix require same action across app\n"
            "invariant tls_alike when app == netflix require same action across tls\n")
    code, out = run_check(tmp_path, text)
    assert code == 0, out
    code, out = run_check(tmp_path, text, "--profile", str(profile), "--format", "json")
    results = {r["name"]: r for r in json.loads(out)["results"]}
    assert {n: r["status"] for n, r in results.items()} == {
        "video_neutral": "violated", "netflix_alike": "violated", "tls_alike": "holds"}
    pair = results["netflix_alike"]
    assert pair["across"] == ["app", "dpi.app"]
    labels = {pair["counterexample"]["flow"]["dpi.app"], pair["pair"]["flow"]["dpi.app"]}
    assert labels == {"netflix", "unknown"}
    assert pair["counterexample"]["flow"]["app"] == pair["pair"]["flow"]["app"] == "netflix"


def test_no_answer_is_unknown_never_holds(tmp_path, monkeypatch):
    """A pair only z3 can settle, and z3 gives no answer: the result is unknown, exit 3."""
    monkeypatch.setattr(equal, "Scope", TimedOutScope)
    monkeypatch.setattr(equal, "SUBTRACTIONS", 0)
    text = ("default allow\nrule r1 when proto == tcp then block\n"
            "invariant proto_blind require same action across proto\n")
    code, out = run_check(tmp_path, text, "--format", "json")
    result = json.loads(out)["results"][0]
    assert code == 3 and result["status"] == UNKNOWN
    assert result["reason"].startswith("timeout on the pairs of flows rule r1")


def test_jobs_give_the_serial_results(tmp_path):
    text = VIDEO.replace("then throttle 1Mbps\ninvariant", "then throttle 2Mbps\ninvariant") + (
        "invariant all_alike require same outcome across app\n"
        "invariant port_blind require same action across dst.port\n"
        "invariant usage_blind when app == youtube require same rate across subscriber.usage\n")
    serial = run_check(tmp_path, text, "--format", "json", "--jobs", "1")
    parallel = run_check(tmp_path, text, "--format", "json", "--jobs", "3")
    assert serial == parallel and serial[0] == 1


def test_spec_checked_against_a_rule_table(tmp_path):
    policy = write_policy(tmp_path, "default allow\nrule yt when app == youtube then throttle 1Mbps\n")
    table = tmp_path / "rules.json"
    assert run_cli("compile", policy, "-o", table)[0] == 0
    spec = write_policy(tmp_path, "invariant neutral when app in category.video require same rate across app\n",
                        "spec.dpi")
    code, out, err = run_cli("check", table, "--spec", spec)
    assert code == 1 and "second: " in out, out + err


def test_diff_status_change_shows_both_flows(tmp_path):
    old = write_policy(tmp_path, "default allow\nrule yt when app == youtube then allow\n", "old.dpi")
    new = write_policy(tmp_path, "default allow\nrule yt when app == youtube then throttle 1Mbps\n", "new.dpi")
    spec = write_policy(tmp_path, "invariant neutral when app in category.video require same rate across app\n",
                        "spec.dpi")
    code, out, err = run_cli("diff", old, new, "--spec", spec)
    assert "invariant neutral: holds -> violated" in out, out + err
    assert "      and: tcp" in out
    code, out, err = run_cli("diff", old, new, "--spec", spec, "--format", "json")
    status = json.loads(out)["status_changes"][0]
    assert status["counterexample"]["rule"] == "yt" and status["pair"]["rule"] == "default"


def test_fmt_lays_out_the_clause(tmp_path):
    path = write_policy(tmp_path, "default allow\ninvariant n when app in category.video require same  action ,rate"
                                  "   across app ,subscriber.usage\n")
    assert run_cli("fmt", path)[0] == 0
    assert path.read_text() == ("default allow\n\ninvariant n\n    when app in category.video\n"
                                "    require same action, rate across app, subscriber.usage\n")


def test_lint_reads_the_clause(tmp_path):
    path = write_policy(tmp_path, "default allow\n"
                                  "invariant never when app == http and app == smtp require same action across app\n")
    code, out, err = run_cli("lint", path)
    assert "error[L301]: invariant `never` is vacuous" in out, out + err


def test_missing_parts_is_a_syntax_error_that_says_so(tmp_path):
    code, out = run_check(tmp_path, "default allow\ninvariant x require same across app\n")
    assert code == 2
    assert "error[E001]: syntax error: missing an outcome part after `same`" in out
    assert "`across` is a keyword, not an outcome part" in out


def test_the_example_of_language_md_section_10(tmp_path, monkeypatch):
    """docs/language.md shows a policy and the report `check` gives for it: both are true."""
    page = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = page[page.index("## 10. Equal treatment"):]
    policy, transcript = re.findall(r"```\n(.*?)```", section, re.S)[:2]
    command, *expected = transcript.splitlines()
    assert command == "$ dpipolicy check policy.dpi"
    monkeypatch.chdir(tmp_path)
    Path("policy.dpi").write_text(policy, encoding="utf-8")
    code, out, err = run_cli("check", "policy.dpi")
    assert (code, out + err) == (1, "\n".join(expected) + "\n")


# ----- under an engine profile, by enumeration --------------------------------------------------

PROFILE_APPS = ("netflix", "youtube", "openvpn", "imaps", "unknown", "http")
GUESSING = """\
version: 1
name: guessing
labels:
  netflix:
    - label: netflix
      how: detected
      evidence: "assumed: a test profile"
    - label: unknown
      how: undetected
      when: {proto: udp}
      evidence: "assumed: a test profile"
  openvpn:
    - label: openvpn
      how: detected
      evidence: "assumed: a test profile"
    - label: imaps
      how: port
      when: {proto: tcp, dst.port: [993]}
      evidence: "assumed: a test profile"
"""


@st.composite
def profile_cases(draw) -> str:
    """Rules on the label (`app`), `proto` and `dst.port`; invariants over the real application."""
    apps = st.sampled_from(PROFILE_APPS)
    atom = st.one_of(apps.map(lambda a: f"app == {a}"), apps.map(lambda a: f"app != {a}"),
                     st.sampled_from(["proto == tcp", "proto == udp", "dst.port == 993", "dst.port != 443", "tls"]))
    conds = st.lists(atom, min_size=1, max_size=2).map(" and ".join)
    lines = [f"rule r{k}\n    when {draw(conds)}\n    then {draw(action()).text()}"
             for k in range(draw(st.integers(1, 4)))]
    lines.append(f"default {draw(action(role='default')).text()}")
    for k in range(draw(st.integers(1, 3))):
        when = draw(st.one_of(st.none(), conds, st.sampled_from(["app in {netflix, youtube}", "dpi.app == unknown"])))
        across = draw(st.lists(st.sampled_from(["app", "proto", "tls", "dst.port"]), min_size=1, max_size=2,
                               unique=True))
        parts = draw(st.sampled_from(["action", "outcome", "action, rate", "logged"]))
        lines.append(f"invariant s{k}" + (f"\n    when {when}" if when else "")
                     + f"\n    require same {parts} across {', '.join(across)}")
    return "\n".join(lines) + "\n"


def _on_label(cond):
    """A rule's condition as the engine runs it: its `app` is the label."""
    match cond:
        case typed.Atom("app", values):
            return typed.Atom(LABEL, values)
        case typed.Not(operand):
            return typed.Not(_on_label(operand))
        case typed.All(operands):
            return typed.All(tuple(_on_label(c) for c in operands))
        case typed.Any_(operands):
            return typed.Any_(tuple(_on_label(c) for c in operands))
    return cond


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(profile_cases())
def test_under_a_profile_each_flow_gets_its_own_label(text: str):
    """The source rules on the label, the spec with the profile's relation in `when`, and the
    pairs enumerated over real application and label: the verifier's verdicts, pairs and pair
    boxes agree."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.dpi"
        path.write_text(text, encoding="utf-8")
        (Path(tmp) / "engine.yaml").write_text(GUESSING, encoding="utf-8")
        loaded = api.load(path)
        profile = load_profile(Path(tmp) / "engine.yaml", loaded.table.schema.catalogue)
    table, spec = api.as_deployed(loaded, profile)
    report = api.check(loaded, Limits(timeout_s=30), deployed=(table, spec))
    schema, policy = table.schema, loaded.policy
    conds = [_on_label(r.cond) for r in policy.rules]
    names = [r.origin.name for r in policy.rules] + ["default"]
    actions = [r.action for r in policy.rules] + [policy.default]
    items = {inv.name: brute.Item("same", inv.name, when=brute.typed_mask(inv.when), same=inv.same)
             for inv in spec.invariants}
    intervals: dict[str, list] = {}
    for cond in conds + [inv.when for inv in spec.invariants]:
        for a in brute.typed_atoms(cond):
            intervals.setdefault(a.field, []).append(list(a.values.intervals))
    ref = brute.Semantics("on the label", [brute.typed_mask(c) for c in conds], names,
                          [typed.outcome_values(schema, a, n) for a, n in zip(actions, names)], items, intervals)
    env = brute.build_grid(schema, [ref], report)
    decided = ref.decide(env)
    outcome_env = env.with_outcome(ref.outcomes, decided)
    model = TableModel(table)

    def check_decision(name, decision, what):
        entry = int(ref.decide(brute.Env.single(decision.flow))[0])
        if ref.names[entry] != decision.rule:
            raise brute.Disagreement(f"{name}: {what} {decision.flow} decided by {ref.names[entry]}, reported "
                                     f"{decision.rule}\n{text}")

    for inv, result in zip(spec.invariants, report.results):
        varied = typed.Same(inv.same.parts, equal.varied_fields(model, inv.same.across))
        assert LABEL in varied.across or "app" not in varied.across
        brute.verify_same(env, ref, decided, items[inv.name].when(outcome_env), varied, result, check_decision, text)
