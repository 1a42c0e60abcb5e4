"""Names that could mean two things: a rule called `default`, rules called like fields, a set
called like a value inside braces, sets and enums that only a spec file declares, empty enums.
(The exact messages are pinned by the goldens reserved_names, ambiguous_sets, spec_scope and
empty_enum in tests/golden/diagnostics.)"""
from __future__ import annotations

import json

import pytest

from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.frontend import load_policy

from helpers import EXAMPLES, run_cli, write_policy


def codes(tmp_path, text: str, spec: str | None = None) -> list[tuple[str, int]]:
    policy = write_policy(tmp_path, text)
    specs = (write_policy(tmp_path, spec, "spec.dpi"),) if spec is not None else ()
    with pytest.raises(DiagnosticError) as info:
        load_policy(policy, specs)
    return [(d.code, d.span.line) for d in info.value.diagnostics]


def test_rule_named_default_is_rejected(tmp_path):
    assert codes(tmp_path, "default allow\nrule default when tls then block\n") == [("E107", 2)]


def test_two_rules_named_default_are_not_also_duplicates(tmp_path):
    assert codes(tmp_path, "default allow\nrule default when tls then block\nrule default when tls then reset\n") \
        == [("E107", 2), ("E107", 3)]


def test_rules_named_like_fields_can_be_named_in_invariants(tmp_path):
    """`rule == target` and `rule != tls` name the rules: the invariant is checked, not rejected."""
    policy = write_policy(tmp_path, """default allow
rule target when dst.port == 26 then block
rule tls when dst.port == 27 then reset
invariant not_target require rule != target
invariant either when dst.port in 26..27 require rule in {target, tls} and (rule == target or tls == rule)
""")
    code, out, err = run_cli("check", policy, "--format", "json")
    assert code == 1, err
    results = {r["name"]: r for r in json.loads(out)["results"]}
    assert results["not_target"]["status"] == "violated"
    assert results["not_target"]["counterexample"]["rule"] == "target"
    assert results["either"]["status"] == "holds"


@pytest.mark.parametrize("use, error", [
    ("app in {youtube, smtp}", True),        # braces: the set or the application?
    ("app in youtube", False),               # after `in` alone only a set can stand
    ("app == youtube", False),               # `==` takes one value: the application
    ("proto in {tcp}", True),
    ("proto == tcp", False),
])
def test_set_named_like_a_value(tmp_path, use, error):
    text = f"set youtube = {{ netflix }}\nset tcp = {{ udp }}\ndefault allow\nrule r when {use} then block\n"
    if error:
        assert codes(tmp_path, text) == [("E108", 4)]
    else:
        load_policy(write_policy(tmp_path, text))


def test_application_equal_to_a_set_means_the_application(tmp_path):
    policy = load_policy(write_policy(tmp_path, "set youtube = { netflix }\ndefault allow\n"
                                                "rule r when app == youtube then block\n"))
    app = policy.schema.field("app")
    assert policy.rules[0].cond.values.intervals == ((app.index_of("youtube"),) * 2,)


def test_set_used_with_eq_is_e127_even_for_an_enum_field(tmp_path):
    assert codes(tmp_path, "set streaming = { netflix }\ndefault allow\nrule r when app == streaming then block\n") \
        == [("E127", 3)]


SPEC = "enum plan { payg, monthly }\nset smtp_ports = { 25, 465 }\n"


@pytest.mark.parametrize("rule, code", [
    ("dst.port in smtp_ports", "E101"),
    ("dst.port in {smtp_ports, 587}", "E101"),
    ("subscriber.plan == payg", "E104"),
])
def test_rules_do_not_see_spec_definitions(tmp_path, rule, code):
    assert codes(tmp_path, f"default allow\nrule r when {rule} then block\n", SPEC) == [(code, 2)]


def test_spec_only_definitions_fail_check_as_compile_does(tmp_path):
    policy = write_policy(tmp_path, "default allow\nrule r when dst.port in smtp_ports then block\n")
    spec = write_policy(tmp_path, SPEC, "spec.dpi")
    check = run_cli("check", policy, "--spec", spec)
    compiled = run_cli("compile", policy)
    assert check[0] == compiled[0] == 2
    assert "error[E101]: unknown set `smtp_ports`" in check[2] and "spec.dpi:2:5" in check[2]
    assert "error[E101]: unknown set `smtp_ports`" in compiled[2]


def test_specs_still_see_their_own_and_the_policy_definitions(tmp_path):
    (tmp_path / "defs.dpi").write_text("set mail = { 25 }\n")
    policy = write_policy(tmp_path, 'import "defs.dpi"\ndefault allow\nrule r when dst.port in mail then block\n')
    spec = write_policy(tmp_path, SPEC + "invariant i when dst.port in smtp_ports and dst.port in mail "
                                         "and subscriber.plan == payg require action == block\n", "spec.dpi")
    code, out, err = run_cli("check", policy, "--spec", spec)
    assert code == 0, out + err


@pytest.mark.parametrize("enum", ["plan", "addon"])
def test_empty_enum(tmp_path, enum):
    use = "subscriber.plan == payg" if enum == "plan" else "vpn in subscriber.addons"
    assert codes(tmp_path, f"enum {enum} {{ }}\ndefault allow\nrule r when {use} then block\n") == [("E132", 1)]


def test_diff_of_an_older_checkout_with_the_current_spec(tmp_path):
    """`git worktree add base main` then `diff base/policy.dpi policy.dpi --spec spec.dpi`: the
    spec imports the current definitions file, the old policy its own copy; word-for-word equal
    sets and enums count once, so the diff runs (it used to stop with E102)."""
    import shutil

    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(EXAMPLES / "definitions.dpi", base / "definitions.dpi")
    shutil.copy(EXAMPLES / "policy-2011-08.dpi", base / "policy.dpi")
    for name in ("definitions.dpi", "spec.dpi"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copy(EXAMPLES / "policy-2011-09.dpi", tmp_path / "policy.dpi")
    code, out, err = run_cli("diff", base / "policy.dpi", tmp_path / "policy.dpi", "--spec", tmp_path / "spec.dpi")
    assert code == 1, err
    assert "invariant auth_smtp_third_party_never_blocked: holds -> violated" in out

    # definitions that really differ between the versions are still two definitions of one name
    changed = (base / "definitions.dpi").read_text().replace("149.254.200.0/24", "149.254.210.0/24", 1)
    assert changed != (base / "definitions.dpi").read_text()
    (base / "definitions.dpi").write_text(changed)
    code, _, err = run_cli("diff", base / "policy.dpi", tmp_path / "policy.dpi", "--spec", tmp_path / "spec.dpi")
    assert code == 2 and "E102" in err and "duplicate set `operator_mail`" in err
