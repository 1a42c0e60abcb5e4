"""Lowering to match rules: normal form, negation, expansion bound, table file round trip."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from dpipolicy.compiler.boxes import merge, point_in, subtract
from dpipolicy.compiler.lower import lower
from dpipolicy.compiler.normalize import MAX_BOXES
from dpipolicy.compiler.tablefile import read_table, table_to_json, write_table
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.frontend import load_policy
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field

from helpers import EXAMPLES, write_policy


def compile_text(tmp_path, text):
    return lower(load_policy(write_policy(tmp_path, text)))


def test_rule_order_and_provenance_are_kept(tmp_path):
    table = compile_text(tmp_path, """
        default allow
        rule first when dst.port == 25 or dst.port == 465 then block
        rule second when not (proto == tcp) then reset, log
    """)
    assert [r.origin.name for r in table.rules] == ["first", "second"]
    assert table.rules[0].box() == {"dst.port": IntervalSet.of([(25, 25), (465, 465)])}
    assert table.rules[1].box()["proto"] == IntervalSet.of([(0, 5), (7, 255)])
    assert table.rules[1].action.log and table.rules[1].origin.location().endswith("policy.dpi:4:9")


def test_negated_set_becomes_complement(tmp_path):
    table = compile_text(tmp_path, """
        set mine = { 10.0.0.0/8, 2001:db8::/32 }
        default allow
        rule r when dst.ip not in mine then block
    """)
    (name, values), = table.rules[0].matches
    assert name == "dst.ip"
    assert 10 << 24 not in values and (11 << 24) in values


def test_or_of_ands_expands_in_order(tmp_path):
    table = compile_text(tmp_path, """
        default allow
        rule r when (proto == tcp and dst.port == 25) or (proto == udp and dst.port == 53) then block
    """)
    assert len(table.rules) == 2
    assert all(r.origin.name == "r" for r in table.rules)


def test_unsatisfiable_rule_compiles_to_nothing(tmp_path):
    table = compile_text(tmp_path, """
        default allow
        rule never when dst.port == 25 and dst.port == 26 then block
        rule always when true then log_only_placeholder
    """.replace("log_only_placeholder", "allow, log"))
    assert [r.origin.name for r in table.rules] == ["always"]
    assert table.rules[0].matches == ()


def test_expansion_bound_is_an_error_not_a_hang(tmp_path):
    clauses = " and ".join(f"(dst.port > {i} or src.port > {i})" for i in range(1, 14))
    with pytest.raises(DiagnosticError) as err:
        compile_text(tmp_path, f"default allow\nrule huge when {clauses} then block\n")
    d = err.value.diagnostics[0]
    assert d.code == "E201" and str(MAX_BOXES) in d.message and d.span.line == 2


def test_table_file_round_trip(tmp_path):
    policy = load_policy(EXAMPLES / "policy-2011-09.dpi")
    table = lower(policy)
    path = tmp_path / "rules.json"
    write_table(table, path)
    json.loads(path.read_text())
    again = read_table(path, load_catalogue())
    assert [(r.matches, r.action, r.origin.name) for r in again.rules] == \
           [(r.matches, r.action, r.origin.name) for r in table.rules]
    assert again.default == table.default
    assert table_to_json(again)["rules"] == table_to_json(table)["rules"]


SMALL = {"a": Field("a", "port", 7), "b": Field("b", "port", 7)}
value_sets = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=3).map(
    lambda pairs: IntervalSet.of((min(p), max(p)) for p in pairs))
boxes = st.fixed_dictionaries({}, optional={"a": value_sets, "b": value_sets})
points = [{"a": a, "b": b} for a in range(8) for b in range(8)]


@settings(max_examples=300, deadline=None)
@given(boxes, boxes)
def test_subtract_is_exact(a, b):
    pieces = subtract(a, b, SMALL)
    for p in points:
        expected = point_in(a, p) and not point_in(b, p)
        assert sum(point_in(piece, p) for piece in pieces) == int(expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(boxes, max_size=6))
def test_merge_keeps_the_union(bs):
    merged = merge(bs, SMALL)
    assert len(merged) <= len(bs)
    for p in points:
        assert any(point_in(b, p) for b in bs) == any(point_in(b, p) for b in merged)


_ADDRESSES = st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 2**32 + 2**128 - 1))


@settings(max_examples=300, deadline=None)
@given(_ADDRESSES, _ADDRESSES)
def test_address_ranges_are_written_as_the_fewest_prefixes(a, b):
    """Address intervals (both families on one axis, IPv6 from 2**32) are written as the
    prefixes the standard library's summarize_address_range gives."""
    import ipaddress
    from dpipolicy.dsl.values import IPV6_BASE, ip_interval_texts
    lo, hi = min(a, b), max(a, b)
    expected = []
    for first, last, family in ((lo, min(hi, IPV6_BASE - 1), ipaddress.IPv4Address),
                                (max(lo, IPV6_BASE), hi, ipaddress.IPv6Address)):
        base = 0 if family is ipaddress.IPv4Address else IPV6_BASE
        if first <= last:
            expected += [str(n) if n.num_addresses > 1 else str(n.network_address)
                         for n in ipaddress.summarize_address_range(family(first - base), family(last - base))]
    assert ip_interval_texts(lo, hi) == expected
