"""`dpipolicy probe`: real traffic through the real kernel, compared with what the table predicts.

The flows sent are a witness of every match rule (a flow that rule decides, found by interval
arithmetic or z3 among the flows a socket can send), and every counterexample and witness of
the spec. For each, the table predicts an outcome and a deciding rule; the kernel, loaded with
the compiled script in a fresh network namespace, answers real connections and datagrams
(trafficworker.py), and its rule counters name the rule that decided.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dpipolicy.compiler.backends import Compiled
from dpipolicy.compiler.backends.contract import DAY_NAMES, TCP, unseen_flows
from dpipolicy.compiler.boxes import contains, intersect, point_in, subtract_all
from dpipolicy.dsl import icmp
from dpipolicy.dsl.interfaces import name_value
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import CT_STATE, CT_STATES, ICMP_TYPE, IFACE_IN, IFACE_OUT, IPV6_BASE, Schema
from dpipolicy.dsl.typed import Origin
from dpipolicy.dsl.values import ip_text, parse_ip

from .kernel import behind, load_scripts
from .properties import TableModel, uncovered_point
from .results import Decision, Result
from .solve import Answer, Limits, Scope
from .witness import flow_text, realistic_point

# Addresses a socket on `lo` cannot stand for: this network, loopback, multicast and reserved
# (RFC 1122, RFC 5771, RFC 1112), the unspecified and loopback IPv6 addresses, link-local and
# multicast IPv6 (RFC 4291).
_UNSENDABLE = ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3", "::/127", "fe80::/10", "ff00::/8")
_PORTED = IntervalSet.of((p, p) for p in (6, 17))
BURST_MIN, BURST_MAX = 65_536, 4_000_000      # bytes sent through a throttled flow to meet its policer


@dataclass(frozen=True)
class Expectation:
    """What the kernel should do with a flow: `accepted`, `reset`, `rejected` or `dropped`; the
    deciding rule (`#INDEX` of the table, or `default`); whether it logs; whether it polices."""
    observed: str
    rule: str
    logged: bool
    policed: bool


@dataclass(frozen=True)
class ProbeFlow:
    id: str
    why: str                         # `witness of rule NAME #INDEX`, `counterexample of invariant NAME`
    decision: Decision               # what the table does with the flow
    expectation: Expectation


@dataclass(frozen=True)
class Outcome:
    flow: ProbeFlow
    observed: str
    rule: str                        # the deciding kernel rule's `#INDEX` or `default`, or `none`
    logged: bool
    policer_drops: int
    detail: str
    disagreements: tuple[str, ...]


@dataclass
class ProbeReport:
    outcomes: list[Outcome]
    unsent: list[tuple[str, str]]    # (why, reason) for flows no socket can carry

    @property
    def agreed(self) -> bool:
        return all(not o.disagreements for o in self.outcomes)


def _unsendable(schema: Schema) -> list[tuple[dict[str, IntervalSet], str | None]]:
    """Boxes of the flows the probe cannot send, each with why (None: no socket can): those no
    packet carries, unsendable addresses, port 0 on TCP and UDP (a socket cannot bind it),
    protocols it has no socket for; and where the policy tests them, interfaces other than the
    host's own, states other than a connection's, ICMP other than an echo request."""
    addresses = IntervalSet.of(parse_ip(text) for text in _UNSENDABLE)
    out = [(box, None) for box in unseen_flows(schema) + (
        {"src.ip": addresses}, {"dst.ip": addresses}, {"proto": _PORTED, "src.port": IntervalSet.point(0)},
        {"proto": _PORTED, "dst.port": IntervalSet.point(0)},
        {"proto": IntervalSet.span(0, 255).difference(IntervalSet.of([(1, 1), (6, 6), (17, 17), (58, 58)]))})]
    if schema.field(IFACE_IN):
        out.append(({IFACE_IN: IntervalSet.span(1, schema.field(IFACE_IN).hi)},
                    "the probe's packets start on the host itself, with no input interface (nft reads its name as "
                    "empty, which no name or pattern of the policy matches): it cannot send one that comes in "
                    "through an interface the policy names"))
    if schema.field(IFACE_OUT):
        lo = name_value(schema.field(IFACE_OUT), "lo")
        out.append(({IFACE_OUT: IntervalSet.point(lo).complement(0, schema.field(IFACE_OUT).hi)},
                    "the probe's packets leave through `lo`: it cannot send one that goes out through another "
                    "interface"))
    if schema.field(CT_STATE):
        states = IntervalSet.span(CT_STATES.index("related"), len(CT_STATES) - 1)
        out += [({CT_STATE: states}, "the probe opens connections, whose packets are new, then established: it "
                                     "cannot send a packet of another state"),
                ({CT_STATE: IntervalSet.point(CT_STATES.index("established")),
                  "proto": IntervalSet.point(TCP).complement(0, 255)},
                 "the probe sends one datagram or echo request of a flow that is not TCP, whose state is new")]
    if schema.field(ICMP_TYPE):
        out += [({"proto": IntervalSet.point(p), ICMP_TYPE: IntervalSet.point(t).complement(0, 255)},
                 "the probe sends ICMP echo requests only (type 8, ICMPv6 128)") for p, t in icmp.ECHO_REQUEST.items()]
    return out


def unsendable_reason(model: TableModel, blockers, flow: dict[str, int]) -> str | None:
    """Why the probe cannot send a flow, or None. A TCP connection's first packet is new and the
    others established: with `ct.state` the flow is sent only when the table decides both alike."""
    schema = model.table.schema
    for box, reason in blockers:
        if point_in(box, flow):
            return reason or f"no socket can send it: {flow_text(schema, flow)}"
    if schema.field(CT_STATE) and flow["proto"] == TCP:
        rules = [model.decide({**flow, CT_STATE: CT_STATES.index(state)}) for state in ("new", "established")]
        if rules[0] != rules[1]:
            words = [f"#{model.table.rules[i].index}" if i < len(model.table.rules) else "the default" for i in rules]
            return (f"a connection's first packet is new and the others established, which the table decides by "
                    f"{words[0]} and {words[1]}: the probe sends whole connections")
    return None


# The interfaces of a probe's packets as its report shows them: none in (nft reads the name as
# empty), `lo` out.
SENT_INTERFACES = {IFACE_IN: '""', IFACE_OUT: "lo"}


def _sendable(schema: Schema) -> dict[str, IntervalSet]:
    """The interfaces a probe's flow has: none in (read as a name under no pattern), `lo` out."""
    out = {}
    if schema.field(IFACE_IN):
        out[IFACE_IN] = IntervalSet.point(0)
    if schema.field(IFACE_OUT):
        out[IFACE_OUT] = IntervalSet.point(name_value(schema.field(IFACE_OUT), "lo"))
    return out


_UNSENT = Origin("(unsendable)", None, "probe")


def witness_flows(compiled: Compiled, limits: Limits, reasons: list | None = None,
                  sendable: dict[str, IntervalSet] | None = None, reason_of=unsendable_reason,
                  ) -> tuple[list[tuple[str, dict[str, int]]], list[tuple[str, str]]]:
    """A sendable flow decided by each match rule, and the rules that decide none. What the
    sender cannot send (`reasons`, boxes with why; `reason_of` a flow's), and the values its
    flows have where it has a choice (`sendable`), are the probe's own unless given."""
    table = compiled.table
    reasons = _unsendable(table.schema) if reasons is None else reasons
    blockers = [box for box, _ in reasons]
    model = TableModel(behind(table, blockers, _UNSENT))
    plain = TableModel(table)
    sendable = _sendable(table.schema) if sendable is None else sendable
    scope = Scope()
    found, unsent = [], []
    names = [f"witness of rule {r.origin.name} #{r.index}" for r in table.rules] + ["witness of the default"]
    for i, why in enumerate(names, len(blockers)):
        box = model.boxes[i]
        earlier = model.index.overlapping(box, i) if box else list(range(i))
        pieces, _ = subtract_all(box, [model.boxes[j] for j in earlier], model.fields, cap=8, budget=2000)
        narrowed = [b for piece in [box] + pieces for b in (intersect(piece, sendable), piece) if b is not None]
        candidates = [p for p in (realistic_point(table.schema, b) for b in narrowed)
                      if model.decide(p) == i and reason_of(plain, reasons, p) is None]
        # a connection or a datagram reads more like the traffic the rule is about than ICMP
        point = next((p for p in candidates if p["proto"] in (6, 17)), candidates[0] if candidates else None)
        if point is None:
            answer = uncovered_point(model, box, earlier, limits, scope)
            if answer.answer is Answer.UNSAT:
                because = next((f": {r}" for b, r in reasons if r and contains(b, box)), "")
                unsent.append((why, "it decides no flow a socket can send" + because))
                continue
            if answer.answer is not Answer.SAT:
                unsent.append((why, f"the solver gave no answer ({answer.reason})"))
                continue
            point = answer.model
        found.append((why, point))
    return found, unsent


def spec_flows(results: list[Result]) -> list[tuple[str, dict[str, int]]]:
    out = []
    for r in results:
        for decision, word in ((r.counterexample, "first flow" if r.pair else "counterexample"),
                               (r.pair, "second flow"), (r.witness, "witness")):
            if decision is not None:
                out.append((f"{word} of {r.kind} {r.name}", decision.flow))
    return out


def given_flow(schema, text: str) -> dict[str, int]:
    """A flow written as for `explain --flow`; the fields it leaves out take realistic values, and
    interfaces a probe's flow has."""
    from .explain import parse_flow
    pinned = {name: IntervalSet.point(v) for name, v in parse_flow(schema, text).items()}
    return realistic_point(schema, {**_sendable(schema), **pinned})


def expectation(decision: Decision, index: int | None) -> Expectation:
    action = decision.action
    observed = {"allow": "accepted", "redirect": "accepted", "throttle": "accepted", "block": "dropped",
                "reset": "reset" if decision.flow["proto"] == TCP else "rejected"}[action.kind]
    return Expectation(observed, "default" if index is None else f"#{index}", action.log, action.kind == "throttle")


def probe_flows(compiled: Compiled, flows: list[tuple[str, dict[str, int]]]) -> tuple[list[ProbeFlow], list[tuple[str, str]]]:
    """The flows to send, each with its prediction; flows no socket can carry are set aside."""
    table = compiled.table
    model = TableModel(table)
    blockers = _unsendable(table.schema)
    out, unsent = [], []
    for n, (why, flow) in enumerate(flows):
        reason = unsendable_reason(model, blockers, flow)
        if reason is not None:
            unsent.append((why, reason))
            continue
        i = model.decide(flow)
        index = table.rules[i].index if i < len(table.rules) else None
        decision = model.decision(flow)
        out.append(ProbeFlow(f"f{n}", why, decision, expectation(decision, index)))
    return out, unsent


def job(compiled: Compiled, flows: list[ProbeFlow], timeout: float) -> dict:
    """The traffic worker's job: the script, and per flow its sockets, marks and sets."""
    contract = compiled.contract
    jobs = []
    for f in flows:
        p = f.decision.flow
        family = 4 if p["src.ip"] < IPV6_BASE else 6
        src, dst = ip_text(p["src.ip"]), ip_text(p["dst.ip"])
        mark = contract.connection_mark(p)
        sets = [s.family_name(family) for s in contract.subscriber_sets if p[s.field] in s.values]
        burst = None
        if f.decision.action.kind == "throttle":
            burst = min(max((f.decision.action.rate or 0) // 2, BURST_MIN), BURST_MAX)    # 4 s at the rate
        jobs.append({"id": f.id, "family": family, "proto": p["proto"], "src": src, "sport": p["src.port"],
                     "dst": dst, "dport": p["dst.port"], "mark": mark,
                     "subscriber": src if p["direction"] == 0 else dst, "sets": sets,
                     "hour": p["time.hour"], "day": DAY_NAMES[p["time.day"]], "burst": burst})
    return {"scripts": load_scripts(compiled), "table": contract.table, "chain": contract.chain, "timeout": timeout,
            "flows": jobs}


def compare(flows: list[ProbeFlow], result: dict, chain: str) -> list[Outcome]:
    by_id = {r["id"]: r for r in result["flows"]}
    out = []
    for f in flows:
        r = by_id[f.id]
        deciding = next((x for x in r["rules"] if x["chain"] == chain), None)
        rule = _rule_of(deciding["comment"]) if deciding else "none"
        logged = bool(deciding and deciding.get("log"))
        e = f.expectation
        wrong = []
        if r["observed"] != e.observed:
            wrong.append(f"expected {e.observed}, the kernel {r['observed']}")
        if rule != e.rule:
            wrong.append(f"expected rule {e.rule} to decide, the kernel's counters name {rule}")
        if logged != e.logged:
            wrong.append("expected a log statement" if e.logged else "a rule that logs decided")
        if e.policed and not r.get("policer_drops"):
            wrong.append("expected the policer to drop part of a burst over the rate; it dropped nothing")
        out.append(Outcome(f, r["observed"], rule, logged, r.get("policer_drops", 0), r.get("detail", ""),
                           tuple(wrong)))
    return out


def _rule_of(comment: str) -> str:
    """`dpipolicy rule NAME #INDEX` -> `#INDEX`; `dpipolicy rule default` -> `default`."""
    last = comment.rsplit(" ", 1)[-1]
    return last if last.startswith("#") or last == "default" else comment


def run(compiled: Compiled, flows: list[tuple[str, dict[str, int]]], timeout: float = 0.5) -> ProbeReport:
    from .trafficworker import probe_flows as send
    probes, unsent = probe_flows(compiled, flows)
    results = []
    for batch in _batches(probes):
        results += send(job(compiled, batch, timeout))["flows"]
    return ProbeReport(compare(probes, {"flows": results}, compiled.contract.chain), unsent)


def _batches(flows: list[ProbeFlow]) -> list[list[ProbeFlow]]:
    """Flows in groups of distinct connection tuples: each group gets a fresh namespace, so no
    flow meets the conntrack entry (and mark) another flow of the same tuple left."""
    batches: list[tuple[set, list[ProbeFlow]]] = []
    for f in flows:
        p = f.decision.flow
        key = (p["proto"], p["src.ip"], p["src.port"], p["dst.ip"], p["dst.port"])
        home = next((b for b in batches if key not in b[0]), None)
        if home is None:
            home = (set(), [])
            batches.append(home)
        home[0].add(key)
        home[1].append(f)
    return [b[1] for b in batches]


# ----- reports ----------------------------------------------------------------------------
def report_text(schema, report: ProbeReport) -> str:
    lines = []
    for o in report.outcomes:
        e = o.flow.expectation
        mark = "ok  " if not o.disagreements else "DIFF"
        lines.append(f"{mark} {flow_text(schema, o.flow.decision.flow, SENT_INTERFACES)}")
        lines.append(f"     {o.flow.why}: predicted {_words(e.observed, e.rule, e.logged)} "
                     f"({o.flow.decision.action.text()}); observed {_words(o.observed, o.rule, o.logged)}"
                     + (f", policer dropped {o.policer_drops} packets" if o.policer_drops else ""))
        lines += [f"     - {d}" for d in o.disagreements]
    for why, reason in report.unsent:
        lines.append(f"not sent: {why}: {reason}")
    agreed = sum(not o.disagreements for o in report.outcomes)
    lines.append(f"{agreed} of {len(report.outcomes)} flows as predicted"
                 + (f", {len(report.unsent)} not sent" if report.unsent else ""))
    return "\n".join(lines)


def _words(observed: str, rule: str, logged: bool) -> str:
    return f"{observed} by {'the default' if rule == 'default' else 'rule ' + rule}" + (", logged" if logged else "")


def report_json(schema, report: ProbeReport) -> dict:
    return {
        "flows": [{"flow": flow_text(schema, o.flow.decision.flow, SENT_INTERFACES), "why": o.flow.why,
                   "action": o.flow.decision.action.text(),
                   "predicted": dataclasses.asdict(o.flow.expectation),
                   "observed": {"observed": o.observed, "rule": o.rule, "logged": o.logged,
                                "policer_drops": o.policer_drops, "detail": o.detail},
                   "agrees": not o.disagreements, "disagreements": list(o.disagreements)}
                  for o in report.outcomes],
        "not_sent": [{"why": why, "reason": reason} for why, reason in report.unsent],
        "summary": {"sent": len(report.outcomes), "agreed": sum(not o.disagreements for o in report.outcomes),
                    "not_sent": len(report.unsent)},
    }

