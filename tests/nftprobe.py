"""The kernel's verdict on real packets against the import's prediction, for a real rule set.

For one hook of a rule set: the rule table its import flattens to there, a witness flow of each
of its rules (kernelprobe.witness_flows, among the flows this sender can send), and for each
the table's prediction: the verdict, and the nft rule (chain and handle) or chain policy that
gives it. nftworker.py sends a packet of each flow through the kernel holding the rule set,
and the kernel's trace names the rule that decided it at that hook.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from dpipolicy.compiler.backends.contract import unseen_flows
from dpipolicy.compiler.importers.chains import Ruleset
from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl import icmp
from dpipolicy.dsl.interfaces import name_value
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import CT_STATE, CT_STATES, ICMP_TYPE, IFACE_IN, IFACE_OUT, IPV6_BASE
from dpipolicy.dsl.values import ip_text, parse_ip
from dpipolicy.verifier.kernelprobe import _UNSENDABLE, witness_flows
from dpipolicy.compiler.netns import run_in_namespace
from dpipolicy.verifier.properties import TableModel
from dpipolicy.verifier.solve import Limits
from dpipolicy.verifier.witness import flow_text, shown_name

WORKER = Path(__file__).with_name("nftworker.py")
SENT_PROTOCOLS = IntervalSet.of([(1, 1), (6, 6), (17, 17), (58, 58)])
_PATH = re.compile(r"nftables\[(\d+)\](\.rule)?$")
VERDICTS = {"allow": "accept", "block": "drop", "reset": "reject"}


@dataclass(frozen=True)
class Probe:
    flow: str                       # as an operator writes it
    why: str
    predicted: tuple                # (verdict, chain or None, handle or "policy")
    observed: tuple
    delivered: bool | None
    sent: str

    @property
    def agrees(self) -> bool:
        verdict, chain, _ = self.predicted
        if self.delivered is not None and self.delivered != (verdict == "accept"):
            return False
        if chain is None:           # the prediction is that of a chain the packet never meets
            return verdict == self.observed[0]
        return self.predicted == self.observed


def reasons(table: RuleTable, hook: str) -> list:
    """What this sender cannot send: the flows no packet carries, addresses a veth cannot carry,
    port 0, protocols other than TCP, UDP, ICMP and ICMPv6; ICMP other than echo requests; `lo`
    as an interface; at input, an output interface. The connection states it sends: new (a
    connection's first packet) at every hook; at input also established (a packet of a TCP
    connection or UDP exchange set up before the rule set was loaded) and invalid (a TCP SYN
    with FIN, which conntrack refuses); related and untracked packets none."""
    schema = table.schema
    addresses = IntervalSet.of(parse_ip(text) for text in _UNSENDABLE)
    ported = IntervalSet.of([(6, 6), (17, 17)])
    out = [(box, None) for box in unseen_flows(schema)]
    out += [({"src.ip": addresses}, "an address no veth carries"), ({"dst.ip": addresses}, "an address no veth carries"),
            ({"proto": ported, "src.port": IntervalSet.point(0)}, "port 0"),
            ({"proto": ported, "dst.port": IntervalSet.point(0)}, "port 0"),
            ({"proto": SENT_PROTOCOLS.complement(0, 255)}, "a protocol the sender has no socket for")]
    if schema.field(CT_STATE):
        sent = ("new", "established", "invalid") if hook == "input" else ("new",)
        out.append(({CT_STATE: _states(*sent).complement(0, len(CT_STATES) - 1)},
                    f"the sender sends packets whose state is {' or '.join(sent)} at {hook}"))
        if hook == "input":
            out += [({CT_STATE: _states("established"), "proto": ported.complement(0, 255)},
                     "an established packet is sent over TCP or UDP"),
                    ({CT_STATE: _states("invalid"), "proto": IntervalSet.point(6).complement(0, 255)},
                     "an invalid packet is sent as a TCP SYN with FIN")]
    if schema.field(ICMP_TYPE):
        out += [({"proto": IntervalSet.point(p), ICMP_TYPE: IntervalSet.point(t).complement(0, 255)},
                 "the sender sends ICMP echo requests only") for p, t in icmp.ECHO_REQUEST.items()]
    for name in (IFACE_IN, IFACE_OUT):
        field = schema.field(name)
        if field is not None and "lo" in field.members:
            out.append(({name: IntervalSet.point(name_value(field, "lo"))}, "`lo` is the namespace's loopback"))
    if hook == "input" and schema.field(IFACE_OUT):
        out.append(({IFACE_OUT: IntervalSet.span(1, schema.field(IFACE_OUT).hi)},
                    "a packet for the host itself has no output interface"))
    return out


def _states(*names: str) -> IntervalSet:
    return IntervalSet.of((CT_STATES.index(n), CT_STATES.index(n)) for n in names)


def sendable(table: RuleTable, hook: str) -> dict:
    out = {}
    if table.schema.field(CT_STATE):
        out[CT_STATE] = IntervalSet.point(CT_STATES.index("new"))
    if hook == "input" and table.schema.field(IFACE_OUT):
        out[IFACE_OUT] = IntervalSet.point(0)
    return out


def _no_reason(model, blockers, flow) -> str | None:
    from dpipolicy.compiler.boxes import point_in
    return next((reason or "no packet carries it" for box, reason in blockers if point_in(box, flow)), None)


def prediction(ruleset: Ruleset, table: RuleTable, listing: dict, hook: str, flow: dict) -> tuple:
    """(verdict, chain, handle or "policy") of the nft rule the table says decides the flow;
    chain None when that is a chain of another family, which the packet never meets."""
    model = TableModel(table)
    i = model.decide(flow)
    bases = ruleset.base_chains(hook)
    if i >= len(table.rules):
        return VERDICTS[table.default.kind], bases[-1].name, "policy"
    rule = table.rules[i]
    verdict = VERDICTS[rule.action.kind]
    name = rule.origin.name
    if name.endswith(" policy"):
        return verdict, name[:-len(" policy")], "policy"
    found = _PATH.search(rule.origin.location())
    assert found is not None, rule.origin.location()
    if found[2] is None:            # the first rule of a chain of one family: the other's packets pass it
        return verdict, None, None
    body = listing["nftables"][int(found[1])]["rule"]
    return verdict, f"{body['family']} {body['table']} {body['chain']}", body["handle"]


def decision(ruleset: Ruleset, hook: str, events: list[dict]) -> tuple:
    """The kernel's verdict at the hook from the trace: the first drop, else the last accept,
    each by a rule (chain, handle) or a chain's policy; an accept by no chain when no chain of
    the hook saw the packet (a table of the other family)."""
    hooks = {c.name: c.hook for c in ruleset.chains if c.hook is not None}
    current, last = None, ("accept", None, None)
    for event in events:
        current = hooks.get(event["chain"], current)
        if current != hook:
            continue
        if event["kind"] == "policy":
            last = (event["verdict"], event["chain"], "policy")
        elif event["kind"] == "rule" and event["verdict"] in ("accept", "drop"):
            verdict = "reject" if event["verdict"] == "drop" and re.search(r"\breject\b", event["text"]) else \
                event["verdict"]
            last = (verdict, event["chain"], event["handle"])
        else:
            continue
        if last[0] != "accept":
            break
    return last


def probe(path: Path, ruleset: Ruleset, table: RuleTable, hook: str, listing: dict,
          timeout: float = 0.5) -> tuple[list[Probe], list[tuple[str, str]]]:
    """Send a witness of every rule of `table` (the rule set at `hook`) and compare."""
    blockers = reasons(table, hook)
    flows, unsent = witness_flows(SimpleNamespace(table=table), Limits(), blockers, sendable(table, hook), _no_reason)
    schema = table.schema
    jobs, kept = [], []
    for n, (why, flow) in enumerate(flows):
        job = {"id": f"f{n}", "family": 4 if flow["src.ip"] < IPV6_BASE else 6, "proto": flow["proto"],
               "src": ip_text(flow["src.ip"]), "dst": ip_text(flow["dst.ip"]), "sport": flow["src.port"],
               "dport": flow["dst.port"], "state": CT_STATES[flow[CT_STATE]] if CT_STATE in flow else "new",
               **_interfaces(schema, flow)}
        if job["src"] == job["dst"] or (hook == "forward" and job["iif"] == job["oif"]):
            unsent.append((why, "the sender needs two addresses and two interfaces"))
            continue
        jobs.append(job)
        kept.append((why, flow))
    text = path.read_text()
    done = run_in_namespace([sys.executable, str(WORKER)], input=json.dumps(
        {"ruleset": text, "hook": hook, "flows": jobs, "timeout": timeout}).encode(),
        timeout=60 + 5 * len(jobs))
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert _rules(result["listing"]) == _rules(listing), "the kernel numbered the rules otherwise this time"
    out = []
    for (why, flow), observed in zip(kept, result["flows"]):
        out.append(Probe(flow_text(schema, flow), why, prediction(ruleset, table, listing, hook, flow),
                         decision(ruleset, hook, observed["events"]), observed["delivered"], observed["sent"]))
    return out, unsent


def _interfaces(schema, flow: dict) -> dict:
    """The interfaces' names: the flow's, else any; two that differ when the flow's allow it."""
    names = {}
    for key, field, fallback in (("iif", IFACE_IN, "in0"), ("oif", IFACE_OUT, "out0")):
        if field not in flow:
            names[key] = fallback
            continue
        name = shown_name(schema, flow, field)
        encoding = encoding_of(schema.field(field))
        if name == names.get("iif") and (flow[field] == 0 or encoding.text(flow[field]).endswith("*")):
            # a name under no pattern, or under this pattern, other than the input's
            name = next((n for n in encoding.candidates(flow[field]) if n not in ("lo", name)
                         and encoding.encode(n) == flow[field]), name)
        names[key] = name
    return names


def _rules(listing: dict) -> list:
    return [(o["rule"]["chain"], o["rule"]["handle"]) for o in listing["nftables"] if "rule" in o]
