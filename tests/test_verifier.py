"""The verifier: translation validation, counterexamples, regions, solver bounds."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings, strategies as st

from dpipolicy import api
from dpipolicy.compiler.boxes import point_in
from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field
from dpipolicy.verifier.properties import TableModel, check_spec
from dpipolicy.verifier.solve import Answer, Limits, Scope
from dpipolicy.verifier.validate import (MistranslationError, Validation, _tests_box, relying_on,
                                          shared_obligations, validate)

from helpers import EXAMPLES, write_policy

LIMITS = Limits(timeout_s=30)


def load_text(tmp_path, text):
    return api.load(write_policy(tmp_path, text))


def test_translation_validation_catches_a_wrong_table(tmp_path):
    loaded = load_text(tmp_path, """
        default allow
        rule smtp_relay when proto == tcp and dst.port == 25 then block
        rule vpn when app in {openvpn, wireguard} then reset
    """)
    assert validate(loaded.policy, loaded.table, LIMITS).status == "proved"
    first = loaded.table.rules[0]
    widened = dataclasses.replace(first, matches=(("proto", IntervalSet.point(6)),
                                                  ("dst.port", IntervalSet.of([(25, 25), (587, 587)]))))
    broken = dataclasses.replace(loaded.table, rules=(widened,) + loaded.table.rules[1:])
    with pytest.raises(MistranslationError) as err:
        validate(loaded.policy, broken, LIMITS)
    assert "smtp_relay" in str(err.value) and ":587 " in str(err.value)


def test_translation_validation_needs_no_query_for_a_rule_of_field_tests(tmp_path):
    """A rule testing fields once each, compiled to one box with the same value sets, is equal
    without a query; a table whose match rule differs from it is still caught, by z3."""
    loaded = api.load(write_policy(tmp_path, """
        default allow
        rule smtp_relay when proto == tcp and dst.port == 25 then block
    """))
    proved = validate(loaded.policy, loaded.table, LIMITS)
    assert (proved.status, proved.rules, proved.queries) == ("proved", 1, 0)
    [rule] = loaded.table.rules
    wider = dataclasses.replace(rule, matches=tuple((name, IntervalSet.span(25, 26) if name == "dst.port" else values)
                                                    for name, values in rule.matches))
    with pytest.raises(MistranslationError, match="smtp_relay"):
        validate(loaded.policy, dataclasses.replace(loaded.table, rules=(wider,)), LIMITS)


def test_translation_validation_proves_a_shared_rule_once(tmp_path):
    """Versions loaded through one api.Memo share each unchanged rule's condition and match
    boxes: its obligation is the old version's, left out of the new one's proof, which then
    holds only if the old one's does; a wrong table for a changed rule is still caught."""
    old_path = write_policy(tmp_path, """
        default allow
        rule smtp_relay when proto == tcp and (dst.port != 25 or tls) then block
        rule vpn when app not in {openvpn, wireguard} or dst.port == 1194 then reset
    """, "old.dpi")
    new_path = write_policy(tmp_path, """
        default allow
        rule smtp_relay when proto == tcp and (dst.port != 25 or tls) then block
        rule vpn when app not in {openvpn, wireguard, ipsec} or dst.port == 1194 then reset
    """, "new.dpi")
    memo = api.Memo()
    old, new = api.load(old_path, memo=memo), api.load(new_path, memo=memo)
    shared = shared_obligations((old.policy, old.table), (new.policy, new.table))
    assert len(shared) == 1 and new.policy.rules[0].cond is old.policy.rules[0].cond
    assert validate(old.policy, old.table, LIMITS).queries == 1
    again = validate(new.policy, new.table, LIMITS, shared)
    assert (again.status, again.rules, again.queries) == ("proved", 2, 1)
    alone = api.load(new_path)              # nothing shared with a version loaded on its own
    assert shared_obligations((old.policy, old.table), (alone.policy, alone.table)) == frozenset()
    unknown = Validation("unknown", 2, 1, "timeout")
    assert relying_on(again, shared, unknown).status == "unknown"
    assert "1 rule shared with the old version" in relying_on(again, shared, unknown).reason
    assert relying_on(again, frozenset(), unknown) == again
    vpn = next(i for i, rule in enumerate(new.table.rules) if rule.origin.name == "vpn")
    old_vpn = next(rule for rule in old.table.rules if rule.origin.name == "vpn")
    narrowed = dataclasses.replace(new.table.rules[vpn], matches=old_vpn.matches)
    rules = new.table.rules[:vpn] + (narrowed,) + new.table.rules[vpn + 1:]
    with pytest.raises(MistranslationError, match="vpn"):
        validate(new.policy, dataclasses.replace(new.table, rules=rules), LIMITS, shared)


def test_a_rule_of_field_tests_is_proved_by_its_value_sets_and_a_wrong_box_is_caught(tmp_path):
    """`proto == tcp and dst.port in {465, 587} and dst.ip not in operator_mail and not tls`
    compiles to one box, proved equal by its value sets with no query. Each way the box could
    be wrong (a negated set's complement off by one address, a set narrowed, a test dropped,
    a field the rule does not test) fails that proof and is caught by z3."""
    loaded = load_text(tmp_path, """
        set operator_mail = { 149.254.200.0/24, 2a01:4c8:100::/48 }
        default allow
        rule third_party when proto == tcp and dst.port in {465, 587} and dst.ip not in operator_mail
            and not tls then reset
    """)
    proved = validate(loaded.policy, loaded.table, LIMITS)
    assert (proved.status, proved.queries) == ("proved", 0)
    [rule] = loaded.table.rules
    box = rule.box()
    relay = IntervalSet.point(box["dst.ip"].intervals[1][0] - 1)      # the last address of 149.254.200.0/24
    for wrong in ({**box, "dst.ip": box["dst.ip"].union(relay)},
                  {**box, "dst.port": IntervalSet.point(465)},
                  {name: values for name, values in box.items() if name != "tls"},
                  {**box, "app": IntervalSet.point(0)}):
        broken = dataclasses.replace(loaded.table, rules=(dataclasses.replace(rule, matches=tuple(wrong.items())),))
        with pytest.raises(MistranslationError, match="third_party"):
            validate(loaded.policy, broken, LIMITS)


_SMALL = {"a": Field("a", "port", 7), "b": Field("b", "port", 3), "c": Field("c", "bool", 1)}
_values = {name: st.lists(st.tuples(st.integers(0, f.hi), st.integers(0, f.hi)).map(sorted), max_size=3)
           .map(IntervalSet.of) for name, f in _SMALL.items()}


@st.composite
def _field_test(draw, name):
    kind = draw(st.sampled_from(["in", "not in", "any"]))
    atom = typed.Atom(name, draw(_values[name]))
    if kind == "any":
        return typed.Any_((atom, typed.Atom(name, draw(_values[name]))))
    return typed.Not(atom) if kind == "not in" else atom


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_proof_by_value_sets_means_the_same_flows(data):
    """Whenever `_tests_box` takes a condition and a box for equal, they hold the same flows of a
    small domain: for a random box, the box the tests mean when they test distinct fields (which
    it must take), and that box with one value of one field added or taken away."""
    names = data.draw(st.lists(st.sampled_from(sorted(_SMALL)), min_size=1, max_size=4))
    cond = typed.All(tuple(data.draw(_field_test(name)) for name in names))
    flows = [dict(zip(_SMALL, values)) for values in itertools.product(*(range(f.hi + 1) for f in _SMALL.values()))]
    boxes = [data.draw(st.fixed_dictionaries({}, optional={name: _values[name].filter(lambda v: not v.is_empty())
                                                           for name in _SMALL}))]
    if len(set(names)) == len(names):
        meant = {}
        for name, test in zip(names, cond.operands):
            values = IntervalSet.of((v, v) for v in range(_SMALL[name].hi + 1) if typed.evaluate(test, {name: v}))
            if values != _SMALL[name].domain:
                meant[name] = values
        if all(not v.is_empty() for v in meant.values()):
            assert _tests_box(cond, meant, _SMALL)
            name = data.draw(st.sampled_from(sorted(_SMALL)))
            value = data.draw(st.integers(0, _SMALL[name].hi))
            values = meant.get(name, _SMALL[name].domain)
            flipped = IntervalSet.of((v, v) for v in range(_SMALL[name].hi + 1) if (v in values) != (v == value))
            boxes += [meant, {**meant, name: flipped}]
    for box in boxes:
        if _tests_box(cond, box, _SMALL):
            assert all(typed.evaluate(cond, flow) == point_in(box, flow) for flow in flows)


def test_translation_validation_catches_reordering(tmp_path):
    loaded = load_text(tmp_path, """
        default allow
        rule a when dst.port == 25 then block
        rule b when dst.port in 20..30 then allow
    """)
    swapped = dataclasses.replace(loaded.table, rules=tuple(reversed(loaded.table.rules)))
    with pytest.raises(MistranslationError):
        validate(loaded.policy, swapped, LIMITS)


def test_counterexample_is_realistic(tmp_path):
    loaded = load_text(tmp_path, """
        default allow
        rule no_vpn when app in category.vpn then block
        invariant vpn_ok when app == wireguard require action == allow
    """)
    (result,) = check_spec(TableModel(loaded.table), loaded.spec, LIMITS)
    flow = result.counterexample.flow
    schema = loaded.table.schema
    assert result.status == "violated"
    assert flow["proto"] == 17 and flow["dst.port"] == 51820       # WireGuard's registered port
    assert schema.field("app").members[flow["app"]] == "wireguard"
    assert flow["subscriber.usage"] == 0
    assert result.counterexample.rule == "no_vpn"


def test_shadowed_bad_rule_is_proved_covered_by_z3(tmp_path):
    # `late` resets 465, but two earlier rules together cover every flow it could decide.
    loaded = load_text(tmp_path, """
        default allow
        rule tls_mail when dst.port == 465 and tls then allow
        rule plain_mail when dst.port == 465 and not tls then allow
        rule late when dst.port == 465 then reset
        invariant never_reset require action != reset
    """)
    (result,) = check_spec(TableModel(loaded.table), loaded.spec, LIMITS)
    assert result.status == "holds"
    assert result.queries >= 1      # the union of two rules needed the solver


def test_region_lists_every_violating_box(tmp_path):
    loaded = load_text(tmp_path, """
        default allow
        rule ok when dst.port == 587 and tls then allow
        rule bad when dst.port in {465, 587} then reset
        invariant mail_not_reset require action != reset
    """)
    (result,) = check_spec(TableModel(loaded.table), loaded.spec, LIMITS)
    assert result.status == "violated" and result.region_complete
    fields = {f.name: f for f in loaded.table.schema.flow_fields}
    # violating flows: port 465 (any tls), or 587 without tls
    covered = set()
    for box, rule in result.region:
        assert rule == "bad"
        ports = box.get("dst.port", fields["dst.port"].domain)
        tls = box.get("tls", fields["tls"].domain)
        covered |= {(p, t) for p in (465, 587, 25) for t in (0, 1) if p in ports and t in tls}
    assert covered == {(465, 0), (465, 1), (587, 0)}


def test_solver_timeout_is_unknown():
    # factoring a 64-bit semiprime by bit-vector multiplication: far beyond a 1 ms budget
    from dpipolicy.dsl.schema import Field
    x, y = Field("x", "port", (1 << 64) - 1), Field("y", "port", (1 << 64) - 1)
    text = ("(declare-const |x| (_ BitVec 64)) (declare-const |y| (_ BitVec 64))"
            "(assert (= (bvmul |x| |y|) (_ bv16717947983011113617 64)))"
            "(assert (bvugt |x| (_ bv1 64))) (assert (bvugt |y| (_ bv1 64)))"
            "(assert (bvult |x| (_ bv4294967296 64))) (assert (bvult |y| (_ bv4294967296 64)))")
    outcome = Scope().solve(text, (x, y), Limits(timeout_s=0.001))
    assert outcome.answer is Answer.UNKNOWN
    assert outcome.reason


def test_table_input_has_no_translation_validation(tmp_path):
    from dpipolicy.compiler.tablefile import write_table
    loaded = api.load(EXAMPLES / "policy-2011-08.dpi")
    path = tmp_path / "rules.json"
    write_table(loaded.table, path)
    table_loaded = api.load(path, (EXAMPLES / "spec.dpi",))
    assert table_loaded.policy is None
    report = api.check(table_loaded, LIMITS)
    assert report.validation is None
    assert report.exit_code() == 0
