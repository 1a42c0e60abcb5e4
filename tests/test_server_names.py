"""`tls.sni` (language.md section 11): the encoding of server names as the most specific declared
pattern, proved against plain name matching; checked names; witnesses; tables, specs, diff, lint,
fmt, profiles; and the nftables target in a real kernel."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpipolicy import api
from dpipolicy.compiler.backends import TARGETS, Options
from dpipolicy.dsl import domains
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.verifier.kernel import KernelMismatch, kernel_copy, kernel_equivalence
from dpipolicy.verifier.solve import Limits

from helpers import name_matches as matches, run_cli, write_policy


# ----- the encoding against real name matching ------------------------------------------------

LABELS = st.sampled_from(["a", "b", "cdn", "x-1", "spotify", "com", "co"])
NAMES = st.lists(LABELS, min_size=2, max_size=5).map(".".join)
PATTERNS = st.one_of(NAMES, st.lists(LABELS, min_size=1, max_size=4).map(lambda ls: "*." + ".".join(ls)))


def _variant(draw, name: str) -> str:
    """The same name as a client may send it: other case, a trailing dot."""
    if draw(st.booleans()):
        name = name.upper()
    return name + "." if draw(st.booleans()) else name


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=12), st.lists(NAMES, min_size=1, max_size=8), st.data())
def test_a_name_matches_a_pattern_iff_its_value_is_in_the_pattern_meaning(patterns, names, data):
    encoding = domains.Domains(domains.ordered(domains.pattern(p) for p in patterns))
    for name in names + [p[2:] for p in patterns if p.startswith("*.")] + ["a." + p[2:] for p in patterns
                                                                          if p.startswith("*.")]:
        sent = _variant(data.draw, name)
        # a client may send a single label, which a policy cannot declare: the classifier's rule
        # is the same for it
        canonical = domains.name(sent) if "." in name else sent.lower().rstrip(".")
        value = encoding.encode(canonical)
        for pattern in encoding.patterns:
            lo, hi = encoding.meaning(pattern)
            assert matches(sent, pattern) == (lo <= value <= hi), (sent, pattern, encoding.patterns)
        # the value is a declared pattern the name matches, or `other` when it matches none
        if value == domains.OTHER:
            assert not any(matches(sent, p) for p in encoding.patterns)
        else:
            assert matches(sent, encoding.text(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10))
def test_every_value_has_a_real_looking_name_of_its_own(patterns):
    encoding = domains.Domains(domains.ordered(domains.pattern(p) for p in patterns))
    for value in range(domains.OTHER, domains.FIRST_PATTERN + len(encoding.patterns)):
        example = encoding.example(value)
        assert "*" not in example and encoding.encode(domains.name(example)) == value
    assert encoding.example(domains.NONE) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10), st.lists(PATTERNS, max_size=6), st.lists(NAMES, max_size=8))
def test_a_table_moved_onto_more_patterns_keeps_each_names_meaning(own, more, names):
    """retarget: the joint value of any name maps back to the table's own value of that name."""
    from dpipolicy.compiler.retarget import pattern_values
    from dpipolicy.dsl.schema import SNI, optional_field
    mine = domains.ordered(domains.pattern(p) for p in own)
    joint = domains.ordered(mine + tuple(domains.pattern(p) for p in more))
    back = pattern_values(optional_field(SNI, mine), optional_field(SNI, joint))
    a, b = domains.Domains(mine), domains.Domains(joint)
    for name in names + [p.replace("*", "q") for p in joint]:
        assert b.encode(name) in back[a.encode(name)]
    assert sorted(v for vs in back for v in vs) == list(range(len(domains.SPECIAL) + len(joint)))


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=10), st.data())
def test_pieces_say_a_set_of_values_exactly(patterns, data):
    """Reports say a set of values as literals less the patterns below them (report.py)."""
    encoding = domains.Domains(domains.ordered(domains.pattern(p) for p in patterns))
    values = [domains.NONE] + list(range(domains.FIRST_PATTERN, domains.FIRST_PATTERN + len(encoding.patterns)))
    chosen = set(data.draw(st.lists(st.sampled_from(values), min_size=1, unique=True)))

    def meaning(v):
        lo, hi = encoding.meaning(encoding.text(v)) if v >= domains.FIRST_PATTERN else (v, v)
        return set(range(lo, hi + 1))
    said = set()
    for head, excluded in encoding.pieces(IntervalSet.of((v, v) for v in chosen)):
        piece = meaning(head) - set().union(*(meaning(v) for v in excluded))
        assert not piece & said
        said |= piece
    assert said == chosen


# ----- names as written ---------------------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("Spotify.COM", "spotify.com"), ("spotify.com.", "spotify.com"), ("*.scdn.co", "*.scdn.co"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"), ("*.com", "*.com"), ("a-b.c0", "a-b.c0")])
def test_good_names_are_made_canonical(text, canonical):
    assert domains.pattern(text) == canonical


@pytest.mark.parametrize("text, message", [
    ("spotify", "single label"), ("a..com", "not a domain name"), ("-a.com", "not a domain name"),
    ("a_b.com", "not a domain name"), ("a." * 127 + "com", "characters long"), ("x" * 64 + ".com", "not a domain"),
    ("a.*.com", "`*` inside"), ("*a.com", "`*` inside"), ("*", "`*` alone"), ("1.2.3.4", "IP address"),
    ("bücher.de", "not an ASCII")])
def test_bad_names_say_what_is_wrong(text, message):
    with pytest.raises(domains.ValueError_) as err:
        domains.pattern(text)
    assert message in err.value.message


def check(tmp_path, text: str, *more: str):
    return run_cli("check", write_policy(tmp_path, text), *more)


def test_a_bad_name_is_an_error_at_its_literal(tmp_path):
    code, out, err = check(tmp_path, 'default allow\nrule r when tls.sni == "bücher.de" then block\n')
    assert code == 2 and "error[E195]: `bücher.de` is not an ASCII domain name" in err
    assert "policy.dpi:2:24" in err and '"xn--bcher-kva.de"' in err


def test_a_bad_name_in_an_unused_set_is_an_error_too(tmp_path):
    code, _, err = check(tmp_path, 'set s = { "a.com", "a.*.com" }\ndefault allow\n')
    assert code == 2 and "E195" in err and "policy.dpi:1:20" in err


@pytest.mark.parametrize("condition, code_", [
    ('tls.sni < "a.com"', "E124"), ('tls.sni in "a.com".."b.com"', "E124"), ("tls.sni == spotify", "E106"),
    ("tls.sni == 443", "E106")])
def test_server_names_are_not_ordered_and_are_written_in_quotes(tmp_path, condition, code_):
    code, _, err = check(tmp_path, f"default allow\nrule r when {condition} then block\n")
    assert code == 2 and f"error[{code_}]" in err, err


def test_a_profile_may_make_the_server_name_unobservable(tmp_path):
    (tmp_path / "blind.yaml").write_text("version: 1\nname: no-sni\nunobservable: [tls.sni]\n")
    code, _, err = check(tmp_path, 'default allow\nrule r when tls.sni == "a.com" then block\n',
                         "--profile", tmp_path / "blind.yaml")
    assert code == 2 and "E410" in err and "`tls.sni`" in err


# ----- meaning, witnesses, explain -------------------------------------------------------------

MUSIC = '''set partner_music = { "spotify.com", "*.spotify.com", "scdn.co" }
default allow
rule open_blocked when tls.sni == "open.spotify.com" then block
rule music_free when tls.sni in partner_music then allow, log
rule no_name when tls.sni == none and dst.port == 443 then reset
'''


def test_witnesses_show_real_looking_names(tmp_path):
    spec = write_policy(tmp_path, '''invariant music_logged require tls.sni not in partner_music or logged
invariant open_is_music "open.spotify.com is partner music" require tls.sni != "*.spotify.com" or logged
test other_sites given tls.sni not in partner_music and tls.sni != none expect allow, log
test no_sni given tls.sni == none and dst.port == 443 expect allow
''', "spec.dpi")
    code, out, _ = check(tmp_path, MUSIC, "--spec", spec)
    assert code == 1
    lines = out.splitlines()
    assert "counterexample: tcp 10.0.0.7:50000 -> 74.125.206.108:443 app=https tls tls.sni=open.spotify.com" \
        in out
    failing = [line for line in lines if "failing flow" in line]
    assert "tls.sni=example.net" in failing[0] and "tls.sni=" not in failing[1]
    assert "- tls.sni == \"open.spotify.com\"  [decided by open_blocked]" in out


def test_a_name_no_pattern_takes_shows_as_another_site(tmp_path):
    text = 'default allow\nrule r when tls.sni in {"example.net", "*.net"} then block\n' \
           "invariant i require action == block or tls.sni == none\n"
    code, out, _ = check(tmp_path, text, "--format", "json")
    counterexample = json.loads(out)["results"][0]["counterexample"]
    assert counterexample["flow"]["tls.sni"] == "example.org" and counterexample["flow"]["tls"] is True
    assert "app=https tls tls.sni=example.org" in counterexample["flow_text"]


def test_explain_maps_a_name_to_the_most_specific_pattern(tmp_path):
    policy = write_policy(tmp_path, MUSIC)
    code, out, _ = run_cli("explain", policy, "--flow", "tls.sni=Open.Spotify.com.")
    assert code == 0 and out.startswith("outcome: block (rule open_blocked")
    code, out, _ = run_cli("explain", policy, "--flow", "tls.sni=cdn.spotify.com")
    assert out.startswith("outcome: allow, log (rule music_free")
    code, out, _ = run_cli("explain", policy, "--flow", "tls.sni=cdn.scdn.co proto=tcp dst.port=443")
    assert out.startswith("outcome: allow (rule default")
    code, out, _ = run_cli("explain", policy, "--flow", "tls.sni=none proto=tcp dst.port=443")
    assert out.startswith("outcome: reset (rule no_name")
    code, _, err = run_cli("explain", policy, "--flow", "tls.sni=*.spotify.com")
    assert code == 2 and "E310" in err and "a pattern, not one name" in err


# ----- tables, specs, diff, lint, fmt --------------------------------------------------------

def test_a_table_keeps_its_patterns_and_a_spec_may_add_more(tmp_path):
    policy = write_policy(tmp_path, MUSIC)
    code, _, _ = run_cli("compile", policy, "-o", tmp_path / "rules.json")
    data = json.loads((tmp_path / "rules.json").read_text())
    assert data["domains"] == ["scdn.co", "spotify.com", "*.spotify.com", "open.spotify.com"]
    assert data["rules"][0]["match"] == {"tls.sni": ["open.spotify.com"]}
    assert data["rules"][1]["match"] == {"tls.sni": {"not": ["none", "other"]}}
    spec = write_policy(tmp_path, 'test deep given tls.sni == "a.b.spotify.com" expect allow, log\n'
                                  'test exact given tls.sni == "open.spotify.com" expect block\n', "spec.dpi")
    code, out, _ = run_cli("check", tmp_path / "rules.json", "--spec", spec)
    assert code == 0, out
    code, out, _ = run_cli("check", policy, "--spec", spec)
    assert code == 0, out


def test_a_table_with_bad_domains_is_an_error_at_its_path(tmp_path):
    policy = write_policy(tmp_path, MUSIC)
    run_cli("compile", policy, "-o", tmp_path / "rules.json")
    data = json.loads((tmp_path / "rules.json").read_text())
    data["domains"] = ["spotify.com", "scdn.co", "a..b"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    code, out, err = run_cli("check", tmp_path / "bad.json")
    assert code == 2 and "domains[2]" in err and "not a domain name" in err


def test_diff_over_different_patterns_finds_only_the_names_that_changed(tmp_path):
    old = write_policy(tmp_path, 'default allow\nrule r when tls.sni == "*.spotify.com" then block\n', "old.dpi")
    new = write_policy(tmp_path, 'default allow\nrule keep when tls.sni == "open.spotify.com" then allow\n'
                                 'rule r when tls.sni == "*.spotify.com" then block\n', "new.dpi")
    code, out, _ = run_cli("diff", old, new, "--format", "json")
    regions = [r for g in json.loads(out)["groups"] for r in g["regions"]]
    assert code == 1
    assert [(r["text"], r["old"]["action"], r["new"]["action"]) for r in regions] == \
        [('tls.sni == "open.spotify.com"', "block", "allow")]


def test_lint_sees_a_name_inside_a_pattern(tmp_path):
    policy = write_policy(tmp_path, 'set s = { "*.spotify.com", "a.spotify.com", "spotify.com" }\n'
                                    'default allow\nrule r when tls.sni in s then block\n')
    code, out, _ = run_cli("lint", policy)
    assert "L402" in out and '`"a.spotify.com"` is inside `"*.spotify.com"`' in out
    assert out.count("L402") == 1          # spotify.com itself is not below *.spotify.com


def test_fmt_keeps_string_members(tmp_path):
    policy = write_policy(tmp_path, 'set partner_music={"spotify.com","*.spotify.com",\n"scdn.co"}\n'
                                    'default allow\nrule r when tls.sni in partner_music then block\n')
    code, out, _ = run_cli("fmt", policy, "--check")
    run_cli("fmt", policy)
    text = policy.read_text()
    assert 'set partner_music = { "spotify.com", "*.spotify.com", "scdn.co" }' in text
    assert run_cli("fmt", policy, "--check")[0] == 0


# ----- the nftables target ------------------------------------------------------------------

def compiled(tmp_path, text: str):
    path = write_policy(tmp_path, text)
    return TARGETS["nftables"].compile(api.load(path).table, Options(str(path)))


def test_the_kernel_copy_of_a_server_name_policy_is_proved_equal(tmp_path):
    c = compiled(tmp_path, MUSIC)
    assert "ct mark and 0xffc000 == 0x14000" in c.text          # open.spotify.com: value 5
    check = kernel_equivalence(c.table, kernel_copy(c), Limits())
    assert check.status == "proved", check.text()
    contract = c.contract.to_json()["connection_mark"]
    assert {"field": "tls.sni", "mask": "0xffc000", "shift": 14} in contract["fields"]
    assert contract["tls.sni"]["5"] == "open.spotify.com" and contract["tls.sni"]["0"] == "no server name sent"


def test_a_kernel_that_tests_another_server_name_is_caught(tmp_path):
    c = compiled(tmp_path, MUSIC)
    import dataclasses
    wrong = dataclasses.replace(c, text=c.text.replace("0xffc000 == 0x14000", "0xffc000 == 0x10000", 1))
    with pytest.raises(KernelMismatch) as err:
        kernel_equivalence(c.table, kernel_copy(wrong), Limits())
    assert "tls.sni=" in str(err.value)


def test_more_patterns_than_the_mark_holds_is_an_error_at_the_rule(tmp_path):
    names = ", ".join(f'"n{k}.example.com"' for k in range(1023))
    code, _, err = run_cli("compile", write_policy(tmp_path, f"set many = {{ {names} }}\ndefault allow\n"
                                                            "rule r when tls.sni in many then block\n"),
                           "--target", "nftables", "-o", tmp_path / "p.nft")
    assert code == 2 and "error[E535]" in err and "policy.dpi:3:1" in err and "at most 1022" in err


def test_probe_marks_each_flow_with_its_server_name(tmp_path):
    policy = write_policy(tmp_path, MUSIC)
    code, out, err = run_cli("probe", policy, "--flow", "proto=tcp dst.port=443 tls.sni=cdn.spotify.com",
                             "--flow", "proto=tcp dst.port=443 tls.sni=open.spotify.com", "--format", "json")
    assert code == 0, out + err
    flows = json.loads(out)["flows"]
    assert all(f["agrees"] for f in flows)
    given = {f["why"]: f["observed"]["rule"] for f in flows if f["why"].startswith("--flow")}
    assert given == {"--flow proto=tcp dst.port=443 tls.sni=cdn.spotify.com": "#1",
                     "--flow proto=tcp dst.port=443 tls.sni=open.spotify.com": "#0"}


def test_a_version_that_declares_more_patterns_checks_its_unchanged_rules_anew(tmp_path):
    """The rule memo of `diff` keys rule bodies by the patterns too: values are renumbered."""
    first = write_policy(tmp_path, 'default allow\nrule r when tls.sni == "*.spotify.com" then block\n', "v1.dpi")
    second = write_policy(tmp_path, 'default allow\nrule keep when tls.sni == "a.spotify.com" then allow\n'
                                    'rule r when tls.sni == "*.spotify.com" then block\n', "v2.dpi")
    memo = api.Memo()
    api.load(first, memo=memo)
    reused, fresh = api.load(second, memo=memo), api.load(second)
    assert [r.matches for r in reused.table.rules] == [r.matches for r in fresh.table.rules]


def test_a_spec_may_name_server_names_a_table_never_tested(tmp_path):
    policy = write_policy(tmp_path, "default allow\nrule r when dst.port == 25 then block\n")
    run_cli("compile", policy, "-o", tmp_path / "rules.json")
    assert "domains" not in json.loads((tmp_path / "rules.json").read_text())
    spec = write_policy(tmp_path, 'test music given tls.sni == "spotify.com" and dst.port == 443 expect allow\n'
                                  "test none_sent given tls.sni == none and dst.port == 25 expect block\n",
                        "spec.dpi")
    code, out, _ = run_cli("check", tmp_path / "rules.json", "--spec", spec)
    assert code == 0 and "2 tests (2 passed" in out, out
