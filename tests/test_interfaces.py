"""`iface.in` and `iface.out` (language.md, "Firewall fields"): the encoding of interface names as
the most specific declared name or prefix pattern, proved against plain name matching; names as
written; and the functions importers call."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpipolicy.compiler.retarget import pattern_values
from dpipolicy.dsl import interfaces
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.interfaces import Interfaces
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import IFACE_IN, IFACE_OUT, build_schema, optional_field
from dpipolicy.dsl.values import ValueError_


def matches(name: str, pattern: str) -> bool:
    """Plain interface-name matching, as the kernel's `iifname` does: a name is itself, `p*` is
    every name that starts with p (p included)."""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


NAMES = st.text(alphabet="eth0-1.", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))
PATTERNS = st.one_of(NAMES, NAMES.map(lambda n: n[:4] + "*"))


def encoding_of(patterns) -> Interfaces:
    return Interfaces(Interfaces.ordered(interfaces.pattern(p) for p in patterns))


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=12), st.lists(NAMES, min_size=1, max_size=8))
def test_a_name_matches_a_pattern_iff_its_value_is_in_the_pattern_meaning(patterns, names):
    encoding = encoding_of(patterns)
    for name in names + [p.rstrip("*") or "e" for p in encoding.patterns] + [p.rstrip("*") + "9" for p in patterns]:
        value = encoding.encode(name)
        for pattern in encoding.patterns:
            lo, hi = encoding.meaning(pattern)
            assert matches(name, pattern) == (lo <= value <= hi), (name, pattern, encoding.patterns)
        # the value is the most specific declared name or pattern the name matches, or `other`
        if value == interfaces.OTHER:
            assert not any(matches(name, p) for p in encoding.patterns)
        else:
            holding = [p for p in encoding.patterns if matches(name, p)]
            assert encoding.text(value) == min(holding, key=lambda p: (p.endswith("*"), -len(p)))


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10))
def test_every_value_has_a_real_looking_name_of_its_own(patterns):
    encoding = encoding_of(patterns)
    for value in range(interfaces.OTHER, encoding.first + len(encoding.patterns)):
        example = encoding.example(value)
        assert "*" not in example and 1 <= len(example) <= 15 and encoding.encode(interfaces.name(example)) == value
    assert encoding.vacant() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10), st.data())
def test_pieces_say_a_set_of_values_exactly(patterns, data):
    """A set of values (`other` too) as literals less the more specific ones it lacks: what the
    nftables target writes as `iifname` tests (lowering.py)."""
    encoding = encoding_of(patterns)
    values = list(range(encoding.first + len(encoding.patterns)))
    chosen = set(data.draw(st.lists(st.sampled_from(values), min_size=1, unique=True)))
    names = [encoding.example(v) for v in values]

    def meaning(v):      # the values of the names a literal matches (`other`: every name)
        return set(values) if v == interfaces.OTHER else {encoding.encode(n) for n in names
                                                          if matches(n, encoding.text(v))}
    said = set()
    for head, excluded in encoding.pieces(IntervalSet.of((v, v) for v in chosen)):
        piece = meaning(head) - set().union(*(meaning(v) for v in excluded))
        assert not piece & said
        said |= piece
    assert said == chosen


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10), st.lists(PATTERNS, max_size=6), st.lists(NAMES, max_size=8))
def test_a_table_moved_onto_more_names_keeps_each_names_meaning(own, more, names):
    """retarget: the joint value of any name maps back to the table's own value of that name."""
    mine = Interfaces.ordered(own)
    joint = Interfaces.ordered(mine + tuple(more))
    back = pattern_values(optional_field(IFACE_IN, mine), optional_field(IFACE_IN, joint))
    a, b = Interfaces(mine), Interfaces(joint)
    for name in names + [p.rstrip("*") + "x" for p in joint]:
        assert b.encode(name) in back[a.encode(name)]
    assert sorted(v for vs in back for v in vs) == list(range(1 + len(joint)))


def test_names_under_a_pattern_come_right_after_it():
    assert Interfaces.ordered(["tun0", "eth0", "tun*", "e*", "tun", "eth*", "lo"]) == \
        ("e*", "eth*", "eth0", "lo", "tun*", "tun", "tun0")


@pytest.mark.parametrize("patterns, value, example", [
    (["eth*"], "eth*", "eth0"), (["eth*", "eth0"], "eth*", "eth1"), (["eth0"], "other", "if9"),
    (["i*"], "other", "0"), (["tun"], "tun", "tun")])
def test_witnesses_show_real_looking_names(patterns, value, example):
    encoding = encoding_of(patterns)
    number = interfaces.OTHER if value == "other" else encoding.value_of[value]
    assert encoding.example(number) == example


# ----- names as written ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["eth0", "br-lan", "eth0.100", "wlp3s0", "veth_a1", "Lo", "tun*", "e*",
                                  "abcdefghijklmno", "abcdefghijklmn*"])
def test_good_names_are_their_own_canonical_form(text):
    assert interfaces.pattern(text) == text


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("*", "`*` alone"), ("e*th", "`*` inside"), ("tun+", "iptables"), ("eth 0", "a space"),
    ("eth/0", "`/`"), ("eth:0", "`:`"), ("é0", "`é`"), ("abcdefghijklmnop", "16 characters long"),
    ("abcdefghijklmno*", "only the name"), (".", "not an interface name"), ("other", "stands for the names")])
def test_bad_names_say_what_is_wrong(text, message):
    with pytest.raises(ValueError_) as err:
        interfaces.pattern(text)
    assert message in err.value.message


@pytest.mark.parametrize("text", ["eth*", "eth+"])
def test_a_name_is_no_pattern(text):
    """`+` too: where one name is meant (`--flow`), the help must not suggest a pattern."""
    with pytest.raises(ValueError_, match="a pattern, not one name") as err:
        interfaces.name(text)
    assert err.value.help == "give the name of one interface, for example `eth0`"


# ----- what importers call ------------------------------------------------------------------

def test_importers_build_a_schema_with_interface_names_and_read_literals_as_value_sets():
    base = build_schema(load_catalogue(), {}, ("r",), ())
    schema = interfaces.with_interfaces(base, {IFACE_IN: ["eth0", "ppp*"], IFACE_OUT: ["tun*"]})
    again = interfaces.with_interfaces(schema, {IFACE_IN: ["eth*"]})       # names it has already are kept
    assert schema.field(IFACE_IN).members == ("other", "eth0", "ppp*")
    assert again.field(IFACE_IN).members == ("other", "eth*", "eth0", "ppp*")
    assert again.field(IFACE_OUT).members == ("other", "tun*")
    field = again.field(IFACE_IN)
    assert interfaces.values_of(field, ["eth*"]) == IntervalSet.span(1, 2)
    assert interfaces.values_of(field, ["eth0", "ppp*"]) == IntervalSet.of([(2, 3)])
    assert interfaces.name_value(field, "eth7") == 1 and interfaces.name_value(field, "wlan0") == 0
    with pytest.raises(ValueError_, match="not a name or pattern of `iface.in`"):
        interfaces.values_of(field, ["wlan*"])
    with pytest.raises(ValueError_, match="iptables"):
        interfaces.with_interfaces(base, {IFACE_IN: ["eth+"]})


def test_patterns_that_leave_a_value_no_name_are_refused():
    many = ["ab"] + [f"ab{c}*" for c in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-."]
    base = build_schema(load_catalogue(), {}, ("r",), ())
    with pytest.raises(ValueError_, match="`ab\\*` holds no interface name"):
        interfaces.with_interfaces(base, {IFACE_IN: many + ["ab*"]})
    assert interfaces.with_interfaces(base, {IFACE_IN: many}).field(IFACE_IN) is not None
