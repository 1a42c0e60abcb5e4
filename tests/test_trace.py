"""Traceability and coverage in `dpipolicy audit` (verifier/trace.py), `--strict`, and the shipped
open-internet terms (`--terms eu-open-internet`, docs/audit.md)."""
from __future__ import annotations

import json

import pytest

from dpipolicy.compiler.boxes import intersect
from dpipolicy.verifier import trace as trace_module

from helpers import ROOT, run_cli, write_policy

POLICY = """policy t version "1"
enum charge { standard, zero_rated }
default allow, charge standard
rule relay_only when proto == tcp and dst.port == 25 then block
rule slow_p2p when app == bittorrent then throttle 1Mbps
rule music_free when app == spotify then allow, charge zero_rated
rule log_dns when app == dns then allow, log
"""
SPEC = """invariant relay_is_blocked "Port 25 is blocked"
    when proto == tcp and dst.port == 25 require action == block
test music_counts_nothing given app == spotify and dst.port == 443 expect allow, charge zero_rated
invariant some_flow_allowed exists action == allow
"""
TERMS = """version: 1
title: Example terms
specs: [spec.dpi]
clauses:
  - id: relays
    text: Port 25 is for our relays.
    source: Terms, section 1
    invariants: [relay_is_blocked]
  - id: music
    text: Music is free.
    source: Terms, section 2
    tests: [music_counts_nothing]
  - id: something
    text: Something works.
    source: Terms, section 3
    invariants: [some_flow_allowed]
"""


@pytest.fixture
def terms(tmp_path):
    write_policy(tmp_path, SPEC, "spec.dpi")
    write_policy(tmp_path, TERMS, "terms.yaml")
    return write_policy(tmp_path, POLICY), tmp_path / "terms.yaml"


def _traceability(policy, terms_file, *more):
    code, out, err = run_cli("audit", policy, "--terms", terms_file, "--format", "json", *more)
    return code, json.loads(out)["traceability"]


def test_each_interfering_rule_lists_the_clauses_whose_conditions_meet_its_flows(terms):
    code, t = _traceability(*terms)
    assert code == 0
    rules = {r["rule"]: r for r in t["rules"]}
    assert rules["relay_only"]["clauses"] == ["relays"] and rules["relay_only"]["interferes"]
    # a charge other than the default's is interference; logging alone is not
    # (spotify on tcp port 25 is a flow of both music_free and the port-25 invariant)
    assert rules["music_free"]["interferes"] and rules["music_free"]["clauses"] == ["relays", "music"]
    assert not rules["log_dns"]["interferes"]
    # the port-25 invariant also meets the p2p rule's flows (bittorrent on port 25), so it traces there
    assert rules["slow_p2p"]["clauses"] == ["relays"]
    # an `exists` invariant constrains no flow
    assert all("something" not in r["clauses"] for r in t["rules"])
    assert t["findings"] == []


def test_an_interfering_rule_no_clause_constrains_is_a_finding_and_strict_exits_1(terms, tmp_path):
    policy, terms_file = terms
    policy.write_text(POLICY.replace("rule relay_only", "rule block_udp when proto == udp and dst.port == 6881 "
                                                        "then block\nrule relay_only"), encoding="utf-8")
    code, t = _traceability(policy, terms_file)
    assert code == 0 and t["findings"] == ["block_udp"]
    assert "block_udp" in t["unconstrained_rules"]
    code, _ = _traceability(policy, terms_file, "--strict")
    assert code == 1
    code, out, _ = run_cli("audit", policy, "--terms", terms_file)
    assert "block_udp (block, charge standard)" in out and "no clause (finding)" in out
    assert "music_free (allow, charge zero_rated)" in out and ": relays (holds), music (holds)" in out


def test_strict_without_findings_keeps_the_exit_code_of_check(terms):
    code, _ = _traceability(*terms, "--strict")
    assert code == 0


def test_the_unconstrained_flows_are_exactly_those_no_condition_meets(terms):
    _, t = _traceability(*terms)
    assert t["unconstrained_flows_complete"] is True
    assert t["unconstrained_rules"] == []     # every rule matches some flow on tcp port 25
    # every box listed is disjoint from every condition region, and together they leave out nothing:
    # checked on the Trace itself
    from dpipolicy import api
    from dpipolicy.dsl.terms import read_terms
    policy, terms_file = terms
    read = read_terms(terms_file)
    loaded = api.load(policy, read.specs)
    result = trace_module.trace(read, loaded.table, loaded.spec)
    fields = {f.name: f for f in loaded.table.schema.flow_fields}
    from dpipolicy.compiler.normalize import to_boxes
    regions = [b for c in (loaded.spec.invariants[0].when, loaded.spec.tests[0].given) for b in to_boxes(c, fields)]
    assert all(intersect(u, r) is None for u in result.uncovered for r in regions)
    from dpipolicy.compiler.boxes import subtract_all
    rest, complete = subtract_all({}, regions + list(result.uncovered), fields, 64)
    assert complete and rest == []


def test_the_list_of_unconstrained_flows_says_when_it_is_capped(terms, monkeypatch):
    monkeypatch.setattr(trace_module, "REGION_BOX_CAP", 1)
    policy, terms_file = terms
    _, t = _traceability(policy, terms_file)
    assert t["unconstrained_flows_complete"] is False and len(t["unconstrained_flows"]) == 1
    code, out, _ = run_cli("audit", policy, "--terms", terms_file)
    assert "the list is capped" in out


def test_a_when_that_reads_the_outcome_is_taken_with_each_rule_s_own_outcome():
    terms = ROOT / "examples/terms/ee-p2p-peak.terms.yaml"
    code, t = _traceability(ROOT / "examples/terms/ee-p2p-peak.dpi", terms)
    assert code == 0
    (rule,) = t["rules"]
    # p2p_peak_is_congestion (`when app in category.p2p and action == throttle`) meets the throttle;
    # the off-peak invariant's hours do not meet the peak rule
    assert rule["rule"] == "p2p_peak_hours" and "p2p-peak-hours" not in rule["clauses"]
    assert "p2p-peak-rate" in rule["clauses"]


@pytest.mark.parametrize("fmt,marks", [("text", ["traceability: 3 interfering rules", "coverage:"]),
                                       ("markdown", ["### Traceability and coverage", "| `relay_only` |"]),
                                       ("html", ['id="traceability"', "<code>relay_only</code>"])])
def test_every_format_shows_the_traceability(terms, fmt, marks):
    code, out, _ = run_cli("audit", *[terms[0], "--terms", terms[1]], "--format", fmt)
    assert code == 0 and all(m in out for m in marks), out


# ----- the shipped open-internet terms --------------------------------------------------------
PACK = {   # policy: the clauses it violates (all others hold)
    "examples/terms/eu-zero-rating-cap.dpi": set(),
    "examples/terms/eu-zero-rating-cap-faulty.dpi": {"zero-rating-after-cap"},   # music keeps full speed
    "examples/terms/three-tethering.dpi": {"exceptions-only"},             # tethering blocked, purpose commercial
    "examples/terms/ee-p2p-peak.dpi": {"congestion-while-congested",        # by the clock, not by congestion
                                       "zero-rating-after-cap"},
    "examples/terms/tmobile-video-faulty.dpi": {"equal-treatment", "zero-rating-after-cap"},
    "examples/uk-mobile/policy-2011-08.dpi": {"equal-treatment", "exceptions-only", "zero-rating-after-cap"},
    "examples/uk-mobile/policy-2011-09.dpi": {"equal-treatment", "exceptions-only", "zero-rating-after-cap"},
}


@pytest.mark.parametrize("policy", sorted(PACK))
def test_the_open_internet_pack_on_the_examples(policy):
    code, out, _ = run_cli("audit", ROOT / policy, "--terms", "eu-open-internet", "--format", "json")
    data = json.loads(out)
    violated = {c["id"] for c in data["clauses"] if c["verdict"] == "violated"}
    assert violated == PACK[policy]
    assert all(c["verdict"] == "holds" for c in data["clauses"] if c["id"] not in violated)
    assert code == (1 if violated else 0)


def test_the_pack_is_read_from_the_installed_package_and_states_its_limits():
    code, out, _ = run_cli("audit", ROOT / "examples/terms/eu-zero-rating-cap.dpi", "--terms", "eu-open-internet")
    assert code == 0
    assert "Regulation (EU) 2015/2120, Article 3(3)" in out
    head = out.split("\nclause ", 1)[0]
    assert "limits of this check:" in head and "court order" in head and "exceptional or temporary" in head
    for fmt, mark in (("markdown", "**Limits of this check:**"), ("html", '<p id="limits">')):
        assert mark in run_cli("audit", ROOT / "examples/terms/eu-zero-rating-cap.dpi", "--terms",
                               "eu-open-internet", "--format", fmt)[1]
    code, out, _ = run_cli("audit", ROOT / "examples/terms/eu-zero-rating-cap.dpi", "--terms", "eu-open-internet",
                           "--format", "json")
    assert "court order" in json.loads(out)["limits"]


def test_a_file_of_the_shipped_name_wins_over_the_shipped_terms(tmp_path, monkeypatch):
    write_policy(tmp_path, SPEC, "spec.dpi")
    write_policy(tmp_path, TERMS, "eu-open-internet")
    write_policy(tmp_path, POLICY)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("audit", "policy.dpi", "--terms", "eu-open-internet", "--format", "json")
    assert code == 0 and json.loads(out)["title"] == "Example terms"


def test_an_unknown_terms_name_is_e600_naming_the_shipped_terms(tmp_path):
    code, out, err = run_cli("audit", write_policy(tmp_path, POLICY), "--terms", "eu-open-internets")
    assert code == 2 and "E600" in err and "eu-open-internet" in err and "Traceback" not in err


def test_a_condition_too_large_to_flatten_is_said_and_constrains_nothing(terms, monkeypatch):
    def too_large(cond, fields, limit=0):
        raise trace_module.ExpansionTooLarge(5000)
    monkeypatch.setattr(trace_module, "to_boxes", too_large)
    policy, terms_file = terms
    code, t = _traceability(policy, terms_file)
    assert t["too_large"] == ["relay_is_blocked", "music_counts_nothing"]
    assert sorted(t["findings"]) == ["music_free", "relay_only", "slow_p2p"]
    for fmt in ("text", "markdown", "html"):
        assert "too large to flatten" in run_cli("audit", policy, "--terms", terms_file, "--format", fmt)[1]
