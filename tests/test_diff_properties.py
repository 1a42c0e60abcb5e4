"""`dpipolicy diff` checked by brute force: random pairs of policies, fixed equivalent rewrites, exit codes.

The property test draws a pair of small policies (the second drawn on its own, or made from the
first by a few edits: an action, a literal, a deleted, inserted or moved rule, the default),
runs the real pipeline on both (`api.load`) and `diff_tables`, then enumerates a grid of
representative flows (`brute.representatives`: every cell cut by the value sets of both policies
and of every reported change box, for every field any of them mentions). On each grid flow the
outcome of each side comes from the checked policy (`dsl.typed`: the vectorised `brute` semantics,
sampled against `typed.decide`). It checks that

(a) a flow's outcome (action, rate, target, log) differs iff the flow is in the region of some
    change: in `change.box`, decided by `change.old.rule` on the old side and by
    `change.new.rule` on the new side (this reading is exact also for a change that names the
    earlier rules it excludes), or for a fan-out by one of the rules `among` on its side;
(b) the regions of different changes do not overlap;
(c) every change's witness is decided by the named rules with the named actions on both sides;
(d) `diff.equivalent` is True iff no grid flow changes;
(e) no part of the diff is unknown.

Both policies of a pair declare the same `enum plan` / `enum addon`, so the enum values of the two
schemas (and of the diff's joint schema) coincide.

helpers.examples sets the number of random pairs (300 in CI; docs/reliability.md).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from dpipolicy import api
from dpipolicy.dsl import typed
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.verifier import diff as diff_module
from dpipolicy.verifier.diff import diff_tables
from dpipolicy.verifier.validate import shared_obligations
from dpipolicy.verifier.solve import Limits

import brute
from helpers import EXAMPLES as UK_MOBILE, examples, run_cli
from test_properties import (RULE_FIELDS, And, Atom, Case, Not, Or, action, atoms_of, condition, fields_of,
                             flow_atom)

EXAMPLES = examples(300)
LIMITS = Limits(timeout_s=30)


# ----- the brute-force check of one diff -----------------------------------------------------

class DiffDisagreement(AssertionError):
    pass


@dataclasses.dataclass
class Checked:
    diff: object
    changed_flows: int       # grid flows whose outcome differs
    grid_size: int


def _load_pair(old_text: str, new_text: str):
    """Both versions loaded as `dpipolicy diff` loads them, through one api.Memo; the new one
    must check and compile to what it does alone (the brute force reads the checked policy)."""
    with tempfile.TemporaryDirectory() as tmp:
        old_path, new_path = Path(tmp) / "old.dpi", Path(tmp) / "new.dpi"
        old_path.write_text(old_text, encoding="utf-8")
        new_path.write_text(new_text, encoding="utf-8")
        memo = api.Memo()
        old, new = api.load(old_path, memo=memo), api.load(new_path, memo=memo)
        alone = api.load(new_path)
        assert ([(r.origin.name, r.cond, r.action) for r in new.policy.rules], new.policy.named_sets,
                [(m.matches, m.action, m.origin.name) for m in new.table.rules]) == \
               ([(r.origin.name, r.cond, r.action) for r in alone.policy.rules], alone.policy.named_sets,
                [(m.matches, m.action, m.origin.name) for m in alone.table.rules])
        # a rule whose proof the new version leaves to the old one's has an obligation the old one has
        theirs, mine = set(_obligations(old)), _obligations(new)
        assert all(mine[place] in theirs for place in shared_obligations((old.policy, old.table), (new.policy, new.table)))
        return old, new


def _obligations(loaded) -> list:
    """Per source rule: its condition and its match boxes, the two sides of its proof."""
    matches: dict[str, list] = {}
    for m in loaded.table.rules:
        matches.setdefault(m.origin.name, []).append(m.matches)
    return [(r.cond, tuple(matches.get(r.origin.name, ()))) for r in loaded.policy.rules]


def _grid(schema, sets: dict[str, list]) -> brute.Env:
    """Representatives of every field some value set mentions (as `brute.build_grid`)."""
    flow_fields = {f.name: f for f in schema.flow_fields}
    mentioned = [n for n in sets if n in flow_fields]
    for both in (True, False):
        reps = {n: brute.representatives(flow_fields[n].hi, sets[n], both) for n in mentioned}
        if math.prod(len(v) for v in reps.values()) <= brute.GRID_BOTH_ENDS_LIMIT:
            break
    return brute.Env.grid(schema, reps)


def check_diff(old, new, shown: str, sample: int = 20) -> Checked:
    """Run `diff_tables` on two loaded policies and check (a)-(e) on the grid. Raises DiffDisagreement."""
    def fail(message: str) -> None:
        raise DiffDisagreement(f"{message}\n{shown}")

    old_schema, new_schema = old.policy.schema, new.policy.schema
    diff = diff_tables(old.table, new.table, LIMITS)
    # the generated pairs keep enum declarations (and server names) identical, so values mean the same on both sides
    for a, b, j in zip(old_schema.flow_fields, new_schema.flow_fields, diff.schema.flow_fields):
        if not (a.name == b.name == j.name and a.members == b.members == j.members and a.hi == b.hi == j.hi):
            fail(f"the two sides' schemas differ on {a.name}/{b.name}/{j.name}: the test needs equal enums")
    if len(old_schema.flow_fields) != len(new_schema.flow_fields):
        fail("the two sides have different flow fields")
    flow_names = [f.name for f in old_schema.flow_fields]

    # (e) nothing unknown
    if diff.unknown:
        fail(f"diff left parts unknown: {diff.unknown}")

    sem_old, sem_new = brute.typed_semantics(old.policy), brute.typed_semantics(new.policy)
    sets: dict[str, list] = {}
    for sem in (sem_old, sem_new):
        for name, lists in sem.intervals.items():
            sets.setdefault(name, []).extend(lists)
    for change in diff.changes:
        for name, values in change.box.items():
            sets.setdefault(name, []).append(list(values.intervals))
    env = _grid(old_schema, sets)
    d_old, d_new = sem_old.decide(env), sem_new.decide(env)
    acts_old = [r.action for r in old.policy.rules] + [old.policy.default]
    acts_new = [r.action for r in new.policy.rules] + [new.policy.default]

    def flow_at(k: int) -> dict[str, int]:
        return env.flow(k, flow_names)

    def show(k: int) -> str:
        return (f"flow {flow_at(k)}: old {sem_old.names[d_old[k]]} {acts_old[d_old[k]].text()}, "
                f"new {sem_new.names[d_new[k]]} {acts_new[d_new[k]].text()}")

    # the vectorised semantics agrees with typed.decide on a sample of grid flows
    step = max(1, env.size // sample)
    for k in range(0, env.size, step):
        flow = flow_at(k)
        for policy, sem, dec in ((old.policy, sem_old, d_old), (new.policy, sem_new, d_new)):
            name, act = typed.decide(policy, flow)
            if name != sem.names[dec[k]]:
                fail(f"typed.decide gives {name} on {flow}, the grid {sem.names[dec[k]]}")

    differs = np.array([[a != b for b in acts_new] for a in acts_old], dtype=bool)
    changed = differs[d_old, d_new]

    covered = np.zeros(env.size, bool)
    for n, c in enumerate(diff.changes):
        what = (f"change #{n} box {dict(c.box)} old {c.old.rule} {c.old.action.text()} -> new {c.new.rule} "
                f"{c.new.action.text()}" + (f" excluding {list(c.excluding)}" if c.excluding else ""))
        # (c) the witness really shows the change, decided by the named rules
        w = c.witness
        if set(w) != set(flow_names):
            fail(f"{what}: witness has fields {sorted(w)}, expected {flow_names}")
        got_old, got_new = typed.decide(old.policy, w), typed.decide(new.policy, w)
        if got_old != (c.old.rule, c.old.action) or got_new != (c.new.rule, c.new.action):
            fail(f"{what}: witness {w} is decided old {got_old[0]} {got_old[1].text()}, "
                 f"new {got_new[0]} {got_new[1].text()}")
        if not all(w[f] in v for f, v in c.box.items()):
            fail(f"{what}: witness {w} is not in the box")
        if c.old.action == c.new.action:
            fail(f"{what}: a change with the same action on both sides")
        region = brute.box_mask(env, c.box)
        region &= np.isin(np.asarray(sem_old.names, dtype=object)[d_old], c.old.rules)
        region &= np.isin(np.asarray(sem_new.names, dtype=object)[d_new], c.new.rules)
        # (a) only flows that change
        if (region & ~changed).any():
            k = int(np.flatnonzero(region & ~changed)[0])
            fail(f"{what}: holds the unchanged {show(k)}")
        # (b) no two regions overlap
        if (region & covered).any():
            k = int(np.flatnonzero(region & covered)[0])
            fail(f"{what}: overlaps an earlier change at {show(k)}")
        covered |= region
    # (a) every flow that changes is in some region
    if (changed & ~covered).any():
        k = int(np.flatnonzero(changed & ~covered)[0])
        fail(f"no change reported for the changed {show(k)}")
    # (d) equivalent iff nothing changes
    if diff.equivalent != (not changed.any()):
        fail(f"diff.equivalent is {diff.equivalent}, but {int(changed.sum())} grid flows change")
    return Checked(diff, int(changed.sum()), env.size)


def check_pair(old_text: str, new_text: str) -> Checked:
    old, new = _load_pair(old_text, new_text)
    return check_diff(old, new, f"--- old.dpi ---\n{old_text}--- new.dpi ---\n{new_text}")


# ----- random pairs --------------------------------------------------------------------------

def replace_atom(c, index: int, new: Atom):
    """The condition with its `index`-th atom (in `atoms_of` order) replaced."""
    counter = [0]

    def go(c):
        match c:
            case Atom():
                k = counter[0]
                counter[0] += 1
                return new if k == index else c
            case Not(operand):
                return Not(go(operand))
            case And(operands, paren):
                return And(tuple(go(o) for o in operands), paren)
            case Or(operands, paren):
                return Or(tuple(go(o) for o in operands), paren)
        return c
    return go(c)


def atom_strategy_field(atom: Atom) -> str:
    return "addons" if atom.field.startswith("subscriber.addons:") else atom.field


@st.composite
def rule_list(draw, rule_fields: list[str], prefix: str, parts: bool, min_size: int = 1):
    atoms = [flow_atom(f) for f in rule_fields]
    n = draw(st.integers(min_size, 6))
    return [(f"{prefix}{k + 1}", draw(condition(atoms, 3)), draw(action(parts)),
             draw(st.sampled_from([None, None, "fair use"]))) for k in range(n)]


EDITS = ["action", "literal", "literal", "delete", "insert", "swap", "default"]


@st.composite
def edited(draw, rules: list, default, default_at: int, rule_fields: list[str], parts: bool):
    """The policy after 1-3 edits; returns (rules, default, default_at, edit log)."""
    rules, log = list(rules), []
    atoms = [flow_atom(f) for f in rule_fields]
    inserted = 0
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(EDITS))
        if edit in ("action", "literal", "delete", "swap") and not rules:
            edit = "insert"
        if edit == "swap" and len(rules) < 2:
            edit = "action"
        if edit == "literal":
            k = draw(st.integers(0, len(rules) - 1))
            name, cond, act, because = rules[k]
            found = list(atoms_of(cond))
            if not found:
                edit = "action"
            else:
                i = draw(st.integers(0, len(found) - 1))
                new_atom = draw(flow_atom(atom_strategy_field(found[i])))
                rules[k] = (name, replace_atom(cond, i, new_atom), act, because)
                log.append(f"literal of {name}: `{found[i].text}` -> `{new_atom.text}`")
        if edit == "action":
            k = draw(st.integers(0, len(rules) - 1))
            name, cond, act, because = rules[k]
            rules[k] = (name, cond, draw(action(parts)), because)
            log.append(f"action of {name}")
        elif edit == "delete":
            k = draw(st.integers(0, len(rules) - 1))
            log.append(f"delete {rules.pop(k)[0]}")
        elif edit == "insert":
            inserted += 1
            k = draw(st.integers(0, len(rules)))
            rules.insert(k, (f"n{inserted}", draw(condition(atoms, 3)), draw(action(parts)), None))
            log.append(f"insert n{inserted} at {k}")
        elif edit == "swap":
            k = draw(st.integers(0, len(rules) - 2))
            rules[k], rules[k + 1] = rules[k + 1], rules[k]
            log.append(f"swap {rules[k + 1][0]} and {rules[k][0]}")
        elif edit == "default":
            default = draw(action(parts, "default"))
            log.append("default")
    return rules, default, min(default_at, len(rules)), log


@st.composite
def policy_pairs(draw) -> tuple[Case, Case, str]:
    rule_fields = draw(st.lists(st.sampled_from(RULE_FIELDS), min_size=1, max_size=4, unique=True))
    parts = draw(st.booleans())      # both versions declare `enum charge` and `enum priority`
    old_rules = draw(rule_list(rule_fields, "r", parts))
    old_default, old_at = draw(action(parts, "default")), draw(st.integers(0, len(old_rules)))
    if draw(st.integers(0, 3)) == 0:
        # independent: over the same fields, or over a few of them and one more
        new_fields = rule_fields
        if draw(st.booleans()):
            new_fields = draw(st.lists(st.sampled_from(rule_fields), min_size=1, max_size=3, unique=True))
            new_fields = list(dict.fromkeys(new_fields + [draw(st.sampled_from(RULE_FIELDS))]))
        new_rules = draw(rule_list(new_fields, draw(st.sampled_from(["r", "s"])), parts, min_size=0))
        new_default, new_at = draw(action(parts, "default")), draw(st.integers(0, len(new_rules)))
        how = "independent"
    else:
        new_rules, new_default, new_at, log = draw(edited(old_rules, old_default, old_at, rule_fields, parts))
        how = "edits: " + "; ".join(log)
    used = set()
    for rule in old_rules + new_rules:
        used |= fields_of(rule[1])
    plans = "subscriber.plan" in used or draw(st.booleans())
    addons = any(f.startswith("subscriber.addons:") for f in used) or draw(st.booleans())
    names = "tls.sni" in used           # the same patterns on both sides, as the same enums
    zones, apns = ("subscriber.zone" in used or draw(st.booleans()), "subscriber.apn" in used or draw(st.booleans()))
    old = Case(old_rules, old_default, old_at, [], [], plans, addons, False, parts=parts, server_names=names,
               zones=zones, apns=apns)
    new = Case(new_rules, new_default, new_at, [], [], plans, addons, False, parts=parts, server_names=names,
               zones=zones, apns=apns)
    return old, new, how


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(policy_pairs())
def test_random_pairs_diff_agrees_with_brute_force(pair):
    old, new, how = pair
    old_text, new_text = old.texts()[0], new.texts()[0]
    old_loaded, new_loaded = _load_pair(old_text, new_text)
    check_diff(old_loaded, new_loaded, f"({how})\n--- old.dpi ---\n{old_text}--- new.dpi ---\n{new_text}")


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],     # no shrinking: the fixed repro below is minimal
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(policy_pairs())
def test_random_pairs_shown_as_box_minus_rules_agree_with_brute_force(pair):
    """The same property with every region that splits shown as "box minus flows decided earlier by
    rules" (`Change.excluding`), a form small random policies otherwise never reach (it needs more
    than EXACT_BOXES_CAP pieces or earlier boxes)."""
    _check_drawn_with(pair, EXACT_BOXES_CAP=1)


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(policy_pairs())
def test_random_pairs_fanned_out_agree_with_brute_force(pair):
    """The same property with the changes of a rule and two or more rules of one outcome on the
    other side as one fan-out (`Decider.among`), a form small random policies otherwise never
    reach (it needs more than FANOUT_CAP such rules), probed in stages from its first rule on
    (it needs more than FANOUT_SAMPLE)."""
    _check_drawn_with(pair, FANOUT_CAP=1, FANOUT_SAMPLE=1)


def _check_drawn_with(pair, **constants: int) -> None:
    """check_diff on a drawn pair with the diff's constants set as given."""
    old, new, how = pair
    old_text, new_text = old.texts()[0], new.texts()[0]
    old_loaded, new_loaded = _load_pair(old_text, new_text)
    with contextlib.ExitStack() as stack:
        for name, value in constants.items():
            stack.enter_context(mock.patch.object(diff_module, name, value))
        check_diff(old_loaded, new_loaded, f"({constants}; {how})\n--- old.dpi ---\n{old_text}"
                                           f"--- new.dpi ---\n{new_text}")


OFFICES = "".join(f"rule office_{i:02} when src.ip in 10.0.{i}.0/24 then allow, log\n" for i in range(1, 18))


def test_rule_taking_the_flows_of_many_rules_is_one_fan_out():
    """A block put in front of 17 office rules of one outcome (more than FANOUT_CAP): their flows
    with it are one change naming all 17, and the default's flows are another."""
    checked = check_pair("default allow\n" + OFFICES, "default allow\nrule ssh_block when dst.port == 22 then block\n"
                         + OFFICES)
    fanned = [c for c in checked.diff.changes if c.old.among]
    assert len(checked.diff.changes) == 2 and len(fanned) == 1
    (change,) = fanned
    assert change.old.among == tuple(f"office_{i:02}" for i in range(1, 18)) and change.old.rule in change.old.among
    assert change.new.rule == "ssh_block" and not change.new.among and not change.exact


def test_a_fan_outs_report_is_the_same_bytes_whatever_the_hash_seed(tmp_path):
    """A fan-out's region is the hull of many rules' boxes; its fields once came out in the order
    of a set of their names, which moves with Python's string hashing from run to run."""
    old_path, new_path = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old_path.write_text("default allow\n" + OFFICES, encoding="utf-8")
    new_path.write_text("default allow\nrule ssh_block when proto == tcp and dst.port == 22 and direction == uplink"
                        " then block\n" + OFFICES, encoding="utf-8")
    reports = set()
    for seed in range(6):
        proc = subprocess.run([sys.executable, "-m", "dpipolicy", "diff", str(old_path), str(new_path), "--format",
                               "json"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": str(seed), "DPIPOLICY_CACHE": "off"})
        assert proc.returncode == 1, proc.stderr
        reports.add(proc.stdout)
    assert len(reports) == 1


MANY_BOXES_OLD = """
default allow, log
"""
MANY_BOXES_NEW = """
default allow, log
rule b when (src.port == 1 or dst.port == 1) and (time.hour == 1 or proto == 1) and (tls or subscriber.roaming)
    and (direction == uplink or app == smtp) and (src.ip == 10.0.0.7 or dst.ip == 10.1.2.3)
    then allow
"""


def test_rule_of_many_overlapping_boxes_regions_do_not_overlap():
    """Rule b compiles into 32 overlapping boxes, so from its 18th box on more than EXACT_BOXES_CAP
    earlier boxes (all of b) meet the region: the change is shown as "box minus flows decided
    earlier by b" while b itself decides the region on the new side. Read by rule names, such a
    region also holds flows that an earlier change (an earlier box of b) already reports, e.g.
    src.port=1 dst.port=1 dst.ip=10.1.2.3 direction=uplink tls hour=1 (reported
    by the exact change #1 and again by changes #17 and #19, both "except flows decided earlier by b")."""
    checked = check_pair(MANY_BOXES_OLD, MANY_BOXES_NEW)
    assert not checked.diff.equivalent


# ----- equivalent rewrites -------------------------------------------------------------------

def assert_equivalent(tmp_path: Path, old_text: str, new_text: str) -> None:
    """Brute force finds no change, diff_tables says equivalent, the CLI exits 0 saying so."""
    checked = check_pair(old_text, new_text)
    assert checked.changed_flows == 0 and checked.diff.equivalent, checked.diff.changes
    old_path, new_path = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old_path.write_text(old_text, encoding="utf-8")
    new_path.write_text(new_text, encoding="utf-8")
    code, out, err = run_cli("diff", old_path, new_path)
    assert code == 0, out + err
    assert "no semantic change" in out


def test_equivalent_disjoint_rules_swapped(tmp_path):
    assert_equivalent(tmp_path, """
        default allow
        rule smtp when proto == tcp and dst.port == 25 then block
        rule quic when proto == udp and dst.port in {443, 80} then throttle 1Mbps, log
        rule p2p when app == bittorrent and proto != tcp and proto != udp then reset
    """, """
        default allow
        rule p2p when app == bittorrent and proto != tcp and proto != udp then reset
        rule quic when proto == udp and dst.port in {443, 80} then throttle 1Mbps, log
        rule smtp when proto == tcp and dst.port == 25 then block
    """)


def test_equivalent_named_set_split_and_merged(tmp_path):
    old = """
        set mail_ports = { 25, 465, 587 }
        set operator_mail = { 149.254.200.0/24, 149.254.201.0/24, 2a01:4c8:100::/48 }
        default allow
        rule relay when dst.port in mail_ports and dst.ip not in operator_mail then block
        rule others when dst.port not in mail_ports and time.hour > 20 then throttle 64kbps
    """
    split = """
        set smtp_port = { 25 }
        set submission_ports = { 465, 587 }
        set relays_v4 = { 149.254.200.0/24, 149.254.201.0/24 }
        set relays_v6 = { 2a01:4c8:100::/48 }
        default allow
        rule relay when (dst.port in smtp_port or dst.port in submission_ports)
            and not (dst.ip in relays_v4 or dst.ip in relays_v6) then block
        rule others when dst.port not in smtp_port and dst.port not in submission_ports and time.hour > 20
            then throttle 64kbps
    """
    merged = """
        set smtp_port = { 25 }
        set submission_ports = { 465, 587 }
        set mail = { smtp_port, submission_ports }
        set relays_v4 = { 149.254.200.0/24, 149.254.201.0/24 }
        set relays = { relays_v4, 2a01:4c8:100::/48 }
        default allow
        rule relay when dst.port in mail and dst.ip not in relays then block
        rule others when dst.port not in mail and time.hour >= 21 then throttle 64kbps
    """
    assert_equivalent(tmp_path, old, split)
    assert_equivalent(tmp_path, old, merged)
    assert_equivalent(tmp_path, split, merged)


def test_equivalent_or_split_into_consecutive_rules(tmp_path):
    assert_equivalent(tmp_path, """
        default allow, log
        rule early when app == imaps and dst.port == 993 then allow
        rule mail when proto == tcp and dst.port == 25 or app in {smtp, submission} then reset, log
        rule late when dst.port in 0..1023 then block
    """, """
        default allow, log
        rule early when app == imaps and dst.port == 993 then allow
        rule mail_port when proto == tcp and dst.port == 25 then reset, log
        rule mail_app when app in {smtp, submission} then reset, log
        rule late when dst.port in 0..1023 then block
    """)


def test_equivalent_not_in_singleton_and_not_equal(tmp_path):
    assert_equivalent(tmp_path, """
        default block
        rule not25 when dst.port not in {25} and proto == tcp then allow
    """, """
        default block
        rule not25 when dst.port != 25 and proto == tcp then allow
    """)


def test_equivalent_redundant_rule_removed(tmp_path):
    broad = """
        default allow
        rule wide when dst.port in 20..30 and proto in {tcp, udp} then block, log
        rule narrow when dst.port == 25 and proto == tcp and not tls then block, log
        rule dead when dst.port == 22 and proto == udp then reset
        rule other when tls then throttle 128kbps
    """
    trimmed = """
        default allow
        rule wide when dst.port in 20..30 and proto in {tcp, udp} then block, log
        rule other when tls then throttle 128kbps
    """
    assert_equivalent(tmp_path, broad, trimmed)


def _rewritten_uk_mobile() -> str:
    """policy-2011-08 in another form: sets inlined, rules reordered where order does not matter,
    negations pushed around (`not (a and b)` as `not a or not b`), comparisons restated."""
    catalogue = load_catalogue()
    heavy = sorted(set(catalogue.category("p2p")) | set(catalogue.category("video")))
    return f"""
# uk_mobile_data 2011-08, written differently
policy uk_mobile_data version "2011-08-rewritten"
enum plan  {{ payg, monthly, business }}
enum addon {{ vpn, tethering }}

rule payg_vpn_needs_addon
    when not (app not in {{ openvpn, ipsec, wireguard, pptp, l2tp }} or subscriber.plan != payg
              or vpn in subscriber.addons)
    then block

rule relay_v4
    when not (proto != tcp or dst.port != 25)
         and not (dst.ip in 149.254.200.0/24 or dst.ip in 149.254.201.0/24 or dst.ip in 2a01:4c8:100::/48)
    then block

rule fair_use
    when app in {{ {", ".join(heavy)} }}
         and 3000MB < subscriber.usage and subscriber.plan in {{ payg, monthly }}
    then throttle 0.128Mbps, log

default allow
"""


def test_equivalent_uk_mobile_rewritten(tmp_path):
    old_path = UK_MOBILE / "policy-2011-08.dpi"
    new_path = tmp_path / "policy-rewritten.dpi"
    new_path.write_text(_rewritten_uk_mobile(), encoding="utf-8")
    old, new = api.load(old_path), api.load(new_path)
    checked = check_diff(old, new, f"--- {old_path} vs ---\n{new_path.read_text()}")
    assert checked.changed_flows == 0 and checked.diff.equivalent, checked.diff.changes
    code, out, err = run_cli("diff", old_path, new_path)
    assert code == 0, out + err
    assert "no semantic change" in out
    code, out, err = run_cli("diff", new_path, old_path, "--format", "json")
    assert code == 0, out + err


def test_uk_mobile_2011_08_to_09_agrees_with_brute_force():
    old, new = api.load(UK_MOBILE / "policy-2011-08.dpi"), api.load(UK_MOBILE / "policy-2011-09.dpi")
    checked = check_diff(old, new, "uk-mobile 2011-08 -> 2011-09")
    assert checked.changed_flows > 0 and not checked.diff.equivalent
    assert {(c.old.rule, c.new.rule) for c in checked.diff.changes} <= {
        ("default", "antispam_smtp_family"), ("unauth_smtp_relay", "antispam_smtp_family"),
        ("payg_vpn_needs_addon", "antispam_smtp_family"), ("fair_use", "antispam_smtp_family"),
        ("unauth_smtp_relay", "default"), ("unauth_smtp_relay", "payg_vpn_needs_addon"),
        ("unauth_smtp_relay", "fair_use")}


def test_not_equivalent_one_region(tmp_path):
    old = """
        default allow
        rule smtp when dst.port == 25 and proto == tcp then block
    """
    new = """
        default allow
        rule smtp when dst.port in 25..26 and proto == tcp then block
    """
    checked = check_pair(old, new)
    diff = checked.diff
    assert not diff.equivalent and checked.changed_flows > 0
    assert len(diff.changes) == 1
    (change,) = diff.changes
    assert (change.old.rule, change.new.rule) == ("default", "smtp")
    assert change.old.action.kind == "allow" and change.new.action.kind == "block"
    assert list(change.box["dst.port"].intervals) == [(26, 26)]
    assert list(change.box["proto"].intervals) == [(6, 6)]
    assert change.witness["dst.port"] == 26 and change.witness["proto"] == 6
    old_path, new_path = tmp_path / "old.dpi", tmp_path / "new.dpi"
    old_path.write_text(old, encoding="utf-8")
    new_path.write_text(new, encoding="utf-8")
    code, out, _ = run_cli("diff", old_path, new_path)
    assert code == 1 and "no semantic change" not in out


def test_log_only_change_is_a_change():
    checked = check_pair("default allow\nrule a when dst.port == 25 then block\n",
                         "default allow\nrule a when dst.port == 25 then block, log\n")
    assert not checked.diff.equivalent and len(checked.diff.changes) == 1


# ----- exit codes ----------------------------------------------------------------------------

OLD_POLICY = """
default allow
rule relay when proto == tcp and dst.port == 25 then block
"""
CHANGED_POLICY = """
default allow
rule relay when proto == tcp and dst.port == 25 then block
rule p2p when app == bittorrent and dst.port != 25 then throttle 128kbps
"""
REGRESSED_POLICY = """
default allow
rule relay when proto == tcp and dst.port in {25, 587} then reset
"""
HOLDING_SPEC = """
invariant port25_blocked when proto == tcp and dst.port == 25 require action == block
invariant imaps_open when app == imaps and dst.port == 993 require action == allow
test web given proto == tcp and dst.port == 80 and app == http expect allow
"""
REGRESSING_SPEC = HOLDING_SPEC + """
invariant submission_open when dst.port == 587 require action not in {block, reset}
"""


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in [("old.dpi", OLD_POLICY), ("changed.dpi", CHANGED_POLICY), ("regressed.dpi", REGRESSED_POLICY),
                       ("holds.dpi", HOLDING_SPEC), ("regress_spec.dpi", REGRESSING_SPEC),
                       ("broken.dpi", "default allow\nrule r when dst.port == 70000 then block\n"),
                       ("syntax.dpi", "default allow\nrule r when dst.port == then block\n")]:
        paths[name] = tmp_path / name
        paths[name].write_text(text, encoding="utf-8")
    return paths


def test_exit_change_fails_on_change(files):
    for extra in ((), ("--fail-on", "change")):
        code, out, err = run_cli("diff", files["old.dpi"], files["changed.dpi"], *extra)
        assert code == 1, out + err
        code, out, err = run_cli("diff", files["old.dpi"], files["changed.dpi"], "--spec", files["holds.dpi"], *extra)
        assert code == 1, out + err


def test_exit_change_without_regression_passes_on_regression(files):
    for fmt in ("text", "json", "markdown"):
        code, out, err = run_cli("diff", files["old.dpi"], files["changed.dpi"], "--spec", files["holds.dpi"],
                                 "--fail-on", "regression", "--format", fmt)
        assert code == 0, out + err
    code, out, err = run_cli("diff", files["old.dpi"], files["changed.dpi"], "--fail-on", "regression")
    assert code == 0, out + err


def test_exit_regression_fails_under_both(files):
    for mode in ("change", "regression"):
        code, out, err = run_cli("diff", files["old.dpi"], files["regressed.dpi"], "--spec", files["regress_spec.dpi"],
                                 "--fail-on", mode)
        assert code == 1, (mode, out + err)
        assert "submission_open" in out


def test_exit_no_change_is_zero_under_both(files):
    for mode in ("change", "regression"):
        code, out, err = run_cli("diff", files["old.dpi"], files["old.dpi"], "--spec", files["holds.dpi"],
                                 "--fail-on", mode)
        assert code == 0, out + err
        assert "no semantic change" in out


def test_exit_bad_input(files, tmp_path):
    for argv in [(files["old.dpi"], files["broken.dpi"]), (files["syntax.dpi"], files["old.dpi"]),
                 (files["old.dpi"], tmp_path / "missing.dpi"),
                 (files["old.dpi"], files["changed.dpi"], "--spec", files["syntax.dpi"]),
                 (files["old.dpi"], files["changed.dpi"], "--fail-on", "anything"),
                 (files["old.dpi"], files["changed.dpi"], "--timeout", "0"),
                 (files["old.dpi"],)]:
        code, out, err = run_cli("diff", *argv)
        assert code == 2, (argv, out, err)


def test_exit_codes_of_the_installed_command(files):
    """The same codes through the console script's process exit status."""
    base = [sys.executable, "-m", "dpipolicy", "diff"]
    runs = [((files["old.dpi"], files["changed.dpi"]), 1),
            ((files["old.dpi"], files["changed.dpi"], "--spec", files["holds.dpi"], "--fail-on", "regression"), 0),
            ((files["old.dpi"], files["regressed.dpi"], "--spec", files["regress_spec.dpi"], "--fail-on",
              "regression"), 1),
            ((files["old.dpi"], files["broken.dpi"]), 2)]
    for argv, expected in runs:
        proc = subprocess.run(base + [str(a) for a in argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == expected, (argv, proc.stdout, proc.stderr)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=20), st.data())
def test_rule_alignment_pairs_equal_signatures_in_order(a, data):
    """The diff's alignment (patience anchors, difflib between them) pairs only equal signatures,
    in increasing order on both sides; when no two rules are alike, it leaves unpaired no rule
    an edit did not touch (with repeats, difflib may pair fewer than the most possible)."""
    edits = data.draw(st.lists(st.tuples(st.integers(0, 40), st.integers(31, 33)), max_size=3))
    b = list(a)
    for at, value in edits:     # values 31..33 never occur in `a`
        b.insert(min(at, len(b)), value)
    a_to_b, b_to_a = diff_module._partners(a, b)
    pairs = [(i, int(j)) for i, j in enumerate(a_to_b) if j >= 0]
    assert all(a[i] == b[j] and b_to_a[j] == i for i, j in pairs)
    assert all(i1 < i2 and j1 < j2 for (i1, j1), (i2, j2) in zip(pairs, pairs[1:]))
    if len(set(a)) == len(a):
        assert len(pairs) == len(a)     # only inserted rules are unpaired


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["allow", "block"]), st.sets(st.sampled_from("abcdef"), min_size=1),
                          st.sets(st.sampled_from("uvwxyz"), min_size=1)), max_size=12))
def test_changes_sharing_rules_are_grouped_as_their_pairs_say(drawn):
    """The grouping that reads changes as one (filed under one side's rules) is the one their
    pairs of rules define: two changes with the same outcome naming a common (old, new) pair
    are in one group, joined through others too, and groups keep the order of first members."""
    def decider(action: str, rules: set[str]):
        ordered = tuple(sorted(rules))
        return diff_module.Decider(typed.Action(action), ordered[0], None, ordered if len(ordered) > 1 else ())
    changes = [diff_module.Change({}, decider(action, old), decider("reset", new), {}) for action, old, new in drawn]
    group = list(range(len(changes)))           # the pairs' definition, joined to a fixpoint

    def pairs(i):
        return {(changes[i].old.action, o, n) for o in changes[i].old.rules for n in changes[i].new.rules}
    joined = True
    while joined:
        joined = False
        for i in range(len(changes)):
            for j in range(i):
                if group[i] != group[j] and pairs(i) & pairs(j):
                    low, high = sorted((group[i], group[j]))
                    group = [low if g == high else g for g in group]
                    joined = True
    expected = [[changes[i] for i in range(len(changes)) if group[i] == g] for g in dict.fromkeys(group)]
    assert [[id(c) for c in members] for members in diff_module._sharing_rules(changes)] == \
        [[id(c) for c in members] for members in expected]
