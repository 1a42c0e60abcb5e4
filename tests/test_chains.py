"""Flattening a packet filter's chains into one first-match table (compiler/importers/chains.py),
checked against a direct interpreter of the chains, flow by flow, on random rule sets."""
from __future__ import annotations

import random

import pytest

from dpipolicy.compiler.importers.chains import CONTINUE, Chain, ChainRule, Ruleset, Verdict, flatten, schema_for
from dpipolicy.compiler.boxes import point_in
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import build_schema

PROTOS = (6, 17, 1)
PORTS = (22, 80, 443, 8080)
CATALOGUE = load_catalogue(())


def schema():
    return build_schema(CATALOGUE, {}, (), ())


def box(proto=None, ports=None, negate_ports=False):
    b = {}
    if proto is not None:
        b["proto"] = IntervalSet.point(proto)
    if ports is not None:
        values = IntervalSet.of((p, p) for p in sorted(ports))
        b["dst.port"] = values.complement(0, 65535) if negate_ports else values
    return b


def decide(table, flow):
    """First match, as the verifier reads a table: (action, logged, rule name)."""
    for rule in table.rules:
        if point_in(rule.box(), flow):
            return rule.action.kind, rule.action.log, rule.origin.name
    return table.default.kind, table.default.log, "default"


def interpret(ruleset, hook, flow):
    """The kernel's walk, one flow at a time: (action, logged, deciding rule name)."""
    logged = False
    fate = None
    # an accepting base chain without rules changes no verdict: the one before it names the rule
    bases = [b for b in ruleset.base_chains(hook) if b.rules or b.policy != "accept"] or ruleset.base_chains(hook)[-1:]
    for base in bases:
        fate, logged = _walk(ruleset, base, flow, logged)
        if fate is None:                          # fell off the end or returned: the policy
            last_unlogged = base is bases[-1] and not logged     # the table's default
            fate = ("allow" if base.policy == "accept" else "block",
                    "default" if last_unlogged else f"{base.name} policy")
        if fate[0] != "allow":
            return fate[0], logged, fate[1]
    return fate[0], logged, fate[1]


def _walk(ruleset, chain, flow, logged):
    for rule in chain.rules:
        if not any(point_in(b, flow) for b in rule.condition):
            continue
        logged = logged or rule.log
        kind = rule.verdict.kind
        if kind == "continue":
            continue
        if kind == "accept":
            return ("allow", rule.name), logged
        if kind == "drop":
            return ("block", rule.name), logged
        if kind == "reject":
            return ("reset", rule.name), logged
        if kind == "return":
            return None, logged
        fate, logged = _walk(ruleset, ruleset.chain(rule.verdict.chain), flow, logged)
        if fate is not None or kind == "goto":
            return fate, logged
    return None, logged


def random_ruleset(rng: random.Random) -> Ruleset:
    users = [f"u{k}" for k in range(rng.randint(0, 3))]

    def rules(chain: str, allowed_targets: list[str]):
        out = []
        for k in range(rng.randint(0, 5)):
            parts = tuple(box(rng.choice((None,) + PROTOS),
                              rng.choice((None, rng.sample(PORTS, rng.randint(1, 2)))),
                              rng.random() < 0.3)
                          for _ in range(rng.choice((1, 1, 2))))
            kinds = ["accept", "drop", "reject", "continue"] + (["jump", "goto"] * 2 if allowed_targets else [])
            kinds += ["return"] if chain.startswith("u") else []
            kind = rng.choice(kinds)
            target = rng.choice(allowed_targets) if kind in ("jump", "goto") else None
            verdict = CONTINUE if kind == "continue" else Verdict(kind, target, tcp_reset=False)
            if kind == "reject":
                parts = tuple({**p, "proto": IntervalSet.point(17)} for p in parts)   # ICMP reject of UDP: exact
            out.append(ChainRule(parts, verdict, f"{chain}#{k}", f"{chain}:{k}", log=rng.random() < 0.3))
        return tuple(out)

    chains = []
    for k, name in enumerate(users):             # a user chain jumps only to later ones: no loops
        chains.append(Chain(name, rules(name, users[k + 1:])))
    for k in range(rng.choice((1, 1, 2))):
        chains.append(Chain(f"base{k}", rules(f"base{k}", users), hook="input", priority=k * 10,
                            policy=rng.choice(("accept", "drop"))))
    return Ruleset(tuple(chains), "random")


FLOWS = [{"proto": p, "dst.port": port} for p in PROTOS + (47,) for port in PORTS + (5, 65535)]


@pytest.mark.parametrize("seed", range(300))
def test_the_table_decides_every_flow_as_the_chains_do(seed):
    ruleset = random_ruleset(random.Random(seed))
    table, _ = flatten(ruleset, "input", schema_for(ruleset, CATALOGUE))
    for flow in FLOWS:
        full = {f.name: 0 for f in table.schema.flow_fields} | flow
        assert decide(table, full) == interpret(ruleset, "input", full), (seed, flow)


def test_an_icmp_reject_of_tcp_is_an_approximation():
    rule = ChainRule((box(6),), Verdict("reject"), "r", "f:3")
    ruleset = Ruleset((Chain("filter INPUT", (rule,), hook="input"),), "f")
    with pytest.raises(DiagnosticError) as err:
        flatten(ruleset, "input", schema())
    (d,) = err.value.diagnostics
    assert d.code == "E711" and d.location_text == "f:3" and "--approximate" in d.help
    table, approximations = flatten(ruleset, "input", schema(), approximate=True)
    assert [a.rule for a in approximations] == ["r"] and table.rules[0].action.kind == "reset"


def test_a_jump_to_a_missing_chain_or_a_loop_is_an_error():
    loop = Ruleset((Chain("a", (ChainRule(({},), Verdict("jump", "b"), "a#0", "f:1"),)),
                    Chain("b", (ChainRule(({},), Verdict("jump", "a"), "b#0", "f:2"),)),
                    Chain("base", (ChainRule(({},), Verdict("jump", "a"), "base#0", "f:3"),), hook="input")), "f")
    with pytest.raises(DiagnosticError) as err:
        flatten(loop, "input", schema())
    assert err.value.diagnostics[0].code == "E713" and "base -> a -> b -> a" in err.value.diagnostics[0].message
    missing = Ruleset((Chain("base", (ChainRule(({},), Verdict("goto", "nowhere"), "base#0", "f:3"),), hook="input"),),
                      "f")
    with pytest.raises(DiagnosticError) as err:
        flatten(missing, "input", schema())
    assert err.value.diagnostics[0].code == "E712"


def test_a_hook_without_a_base_chain_names_the_hooks_there_are():
    ruleset = Ruleset((Chain("filter INPUT", (), hook="input"),), "rules.v4")
    with pytest.raises(DiagnosticError) as err:
        flatten(ruleset, "forward", schema())
    assert err.value.diagnostics[0].code == "E710" and "input" in err.value.diagnostics[0].help


def test_what_the_rule_set_never_sees_is_decided_first():
    other = ChainRule((box(47),), Verdict("accept"), "GRE: not seen", "f")
    ruleset = Ruleset((Chain("filter INPUT", (ChainRule(({},), Verdict("drop"), "all", "f:2"),), hook="input"),),
                      "f", unseen=(other,))
    table, _ = flatten(ruleset, "input", schema_for(ruleset, CATALOGUE))
    full = {f.name: 0 for f in table.schema.flow_fields}
    assert decide(table, full | {"proto": 47}) == ("allow", False, "GRE: not seen")
    assert decide(table, full | {"proto": 6}) == ("block", False, "all")


def test_an_approximation_carries_the_flows_that_reach_its_rule():
    from dpipolicy.compiler.table import Approximation
    guess = Approximation("r", "f:3:9", "`-m policy` matches by IPsec processing", "matching every such packet")
    rules = (ChainRule((box(17),), Verdict("accept"), "udp", "f:2"),
             ChainRule((box(None, (22, 80)),), Verdict("drop"), "r", "f:3", approximations=(guess,)))
    ruleset = Ruleset((Chain("filter INPUT", rules, hook="input"),), "f")
    with pytest.raises(DiagnosticError) as err:
        flatten(ruleset, "input", schema())
    assert [d.code for d in err.value.diagnostics] == ["E711"] and err.value.diagnostics[0].location_text == "f:3:9"
    table, (found,) = flatten(ruleset, "input", schema(), approximate=True)
    assert table.approximations == (found,) and found.key() == guess.key()
    fields = {f.name: f for f in table.schema.flow_fields}
    flows = [{"proto": p, "dst.port": port} for p in (6, 17) for port in (22, 80, 443)]
    inside = [f for f in flows if any(point_in(b, {n: 0 for n in fields} | f) for b in found.region)]
    assert inside == [{"proto": 6, "dst.port": 22}, {"proto": 6, "dst.port": 80}]


def test_an_approximation_no_flow_reaches_is_dropped():
    from dpipolicy.compiler.table import Approximation
    guess = Approximation("r", "f:3:9", "something", "something else")
    rules = (ChainRule(({},), Verdict("accept"), "all", "f:2"),
             ChainRule(({},), Verdict("drop"), "r", "f:3", approximations=(guess,)))
    table, found = flatten(Ruleset((Chain("filter INPUT", rules, hook="input"),), "f"), "input", schema())
    assert found == () and table.approximations == ()


def test_a_rewrite_before_a_later_chain_of_the_hook_is_an_approximation():
    nat = Chain("nat OUTPUT", (ChainRule((box(6, (80,)),), Verdict("accept", rewrites="destination"), "dnat", "f:2"),),
                hook="output", priority=-100)
    filt = Chain("filter OUTPUT", (ChainRule((box(6),), Verdict("drop"), "tcp", "f:5"),), hook="output")
    table, (found,) = flatten(Ruleset((nat, filt), "f"), "output", schema(), approximate=True)
    assert found.rule == "dnat" and "destination" in found.what
    alone = Ruleset((nat,), "f")           # the last chain of the hook: nothing later sees the rewrite
    assert flatten(alone, "output", schema())[1] == ()


def test_a_policy_the_file_does_not_give_is_an_approximation_only_if_flows_fall_off():
    from dpipolicy.compiler.table import Approximation
    assumed = Approximation("filter INPUT policy", "f", "the file does not give the policy", "ACCEPT")
    ends = Chain("filter INPUT", (ChainRule(({},), Verdict("drop"), "all", "f:2"),), hook="input",
                 policy_approximation=assumed)
    assert flatten(Ruleset((ends,), "f"), "input", schema())[1] == ()
    open_end = Chain("filter INPUT", (ChainRule((box(6),), Verdict("drop"), "tcp", "f:2"),), hook="input",
                     policy_approximation=assumed)
    with pytest.raises(DiagnosticError):
        flatten(Ruleset((open_end,), "f"), "input", schema())
    (found,) = flatten(Ruleset((open_end,), "f"), "input", schema(), approximate=True)[1]
    assert all(b.get("proto") != IntervalSet.point(6) for b in found.region)
