"""Real packets through a real rule set, each traced by the kernel: the worker of nftprobe.py.

It runs inside a fresh network namespace (the router, R), reads one JSON job on stdin and
writes one JSON result on stdout. It loads the rule set as it is, then for each flow:

- makes a client namespace (C) joined to R by a veth pair whose end in R carries the flow's
  input interface name, and (hook forward) a second pair whose end in R is named as its
  output interface, which R routes the destination to (the packets it forwards end in C); static neighbours, so no ARP or ND packet meets the rules;
- marks the flow's first packet for tracing (`meta nftrace set 1` in a prerouting chain before
  every other), sends it from C with a real socket (a TCP SYN, a UDP datagram, an ICMP echo
  request: trafficworker's packets), and reads the kernel's own account of it from
  `nft monitor trace`: every rule that decided it, chain by chain, with its handle;
- for a flow whose connection state is established, first sets the connection up with the rule
  set taken away (a TCP handshake with a listening socket in R, or a UDP datagram R answers),
  loads the rule set again (nft gives its rules the same handles), and traces the next packet
  of that connection; for an invalid one, sends a TCP segment with SYN and FIN set, which
  conntrack calls invalid;
- for hook input, also notes whether a raw socket in R saw the packet delivered.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

from dpipolicy.verifier.trafficworker import PAYLOAD, _checksum, _run

TRACE_TABLE = "dpipolicy_trace"
CLIENT_END, CLIENT_OUT = "peer0", "peer1"
_EVENT = re.compile(r"^trace id (?P<id>\w+) (?P<family>\w+) (?P<table>\S+) (?P<chain>\S+) (?P<what>.*)$")
_RULE = re.compile(r"^rule (?P<text>.*?)(?: # handle (?P<handle>\d+))? \(verdict (?P<verdict>[^)]*)\)$")

_SENDER = r"""
import json, socket, struct, sys, time
flow, payload = json.loads(sys.argv[1]), sys.argv[2].encode()
family = socket.AF_INET if flow["family"] == 4 else socket.AF_INET6
if flow["packet"]:
    s = socket.socket(family, socket.SOCK_RAW, flow["proto"])
    s.bind((flow["src"], 0))
    s.sendto(bytes.fromhex(flow["packet"]), (flow["dst"], 0))
    print("sent")
elif flow["proto"] == 6:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind((flow["src"], flow["sport"]))
    s.settimeout(flow["timeout"])
    try:
        s.connect((flow["dst"], flow["dport"]))
        print("connected")
    except ConnectionRefusedError:
        print("reset")
    except OSError as error:
        print(type(error).__name__)
elif flow["proto"] == 17:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((flow["src"], flow["sport"]))
    s.sendto(payload, (flow["dst"], flow["dport"]))
    print("sent")
time.sleep(0.05)
"""

# A connection set up first (the rule set away), then, on a line on stdin, its next packet.
_HELD = r"""
import json, socket, sys
flow, payload = json.loads(sys.argv[1]), sys.argv[2].encode()
family = socket.AF_INET if flow["family"] == 4 else socket.AF_INET6
s = socket.socket(family, socket.SOCK_STREAM if flow["proto"] == 6 else socket.SOCK_DGRAM)
s.bind((flow["src"], flow["sport"]))
s.settimeout(5)
if flow["proto"] == 6:
    s.connect((flow["dst"], flow["dport"]))
else:
    s.sendto(payload, (flow["dst"], flow["dport"]))
    s.recvfrom(65536)
print("ready", flush=True)
sys.stdin.readline()
if flow["proto"] == 6:
    s.send(payload)
else:
    s.sendto(payload, (flow["dst"], flow["dport"]))
print("sent", flush=True)
sys.stdin.readline()
"""


def _client(pid: int, argv: list[str], input: str | None = None) -> str:
    return _run(["nsenter", "-t", str(pid), "-n", *argv], input=input)


def _ip_batch(lines: list[str], pid: int | None = None) -> None:
    script = "".join(line + "\n" for line in lines)
    try:
        if pid is None:
            _run(["ip", "-batch", "-"], input=script)
        else:
            _client(pid, ["ip", "-batch", "-"], input=script)
    except SystemExit as failed:
        raise SystemExit(f"{failed}\nin the batch, {'in C' if pid else 'in R'}:\n{script}") from None


def _mac(name: str, pid: int | None = None) -> str:
    argv = ["ip", "-j", "link", "show", "dev", name]
    return json.loads(_run(argv) if pid is None else _client(pid, argv))[0]["address"]


def _icmp_echo(v4: bool) -> str:
    header = bytes([8 if v4 else 128, 0, 0, 0, 0x12, 0x34, 0, 1])
    packet = header + PAYLOAD
    if v4:
        checksum = _checksum(packet)
        packet = packet[:2] + checksum.to_bytes(2, "big") + packet[4:]
    return packet.hex()


def _tcp_syn_fin(flow: dict) -> str:
    """A TCP segment with SYN and FIN (no valid state has both), its checksum over the pseudo-header."""
    header = (flow["sport"].to_bytes(2, "big") + flow["dport"].to_bytes(2, "big") + (1000).to_bytes(4, "big")
              + bytes(4) + bytes([5 << 4, 0x03]) + (64240).to_bytes(2, "big") + bytes(4))
    family = socket.AF_INET if flow["family"] == 4 else socket.AF_INET6
    src, dst = socket.inet_pton(family, flow["src"]), socket.inet_pton(family, flow["dst"])
    pseudo = (src + dst + bytes([0, 6]) + len(header).to_bytes(2, "big") if flow["family"] == 4 else
              src + dst + len(header).to_bytes(4, "big") + bytes([0, 0, 0, 6]))
    checksum = _checksum(pseudo + header)
    return (header[:16] + checksum.to_bytes(2, "big") + header[18:]).hex()


def _established(flow: dict, pid: int, ruleset: str) -> tuple[subprocess.Popen, socket.socket | None]:
    """Set the flow's connection up with the rule set's tables taken away (the tracing table's
    zones keep conntrack on), then load the rule set again: the client that sends its next
    packet, and R's end of a TCP connection."""
    tables = json.loads(_run(["nft", "-j", "list", "tables"]))["nftables"]
    _run(["nft", "-f", "-"], input="".join(f"delete table {t['table']['family']} {t['table']['name']}\n"
                                           for t in tables if "table" in t and t["table"]["name"] != TRACE_TABLE))
    family = socket.AF_INET if flow["family"] == 4 else socket.AF_INET6
    server = socket.socket(family, socket.SOCK_STREAM if flow["proto"] == 6 else socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((flow["dst"], flow["dport"]))
    server.settimeout(5)
    if flow["proto"] == 6:
        server.listen(1)
    client = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", _HELD, json.dumps(flow),
                               PAYLOAD.decode()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    accepted = None
    try:
        if flow["proto"] == 17:
            data, peer = server.recvfrom(65536)
            server.sendto(data, peer)
        else:
            accepted, _ = server.accept()
        ready = client.stdout.readline().strip()
        if ready != "ready":
            raise SystemExit(f"the connection of {flow['id']} was not set up: {ready or client.wait()}")
    finally:
        server.close()
    _run(["nft", "-f", "-"], input=ruleset)
    return client, accepted


def _setup(flow: dict, hook: str) -> subprocess.Popen:
    """The client namespace and the links of one flow; the sleeping process that holds C."""
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    pid = holder.pid
    for _ in range(100):            # until unshare has made the namespace
        if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
            break
        time.sleep(0.01)
    try:
        _links(flow, hook, pid, 128 if flow["family"] == 6 else 32)
    except SystemExit:
        holder.kill()
        raise
    return holder


def _links(flow: dict, hook: str, pid: int, plen: int) -> None:
    """R's end of a veth pair named as the input interface (C holds the other), routes and
    static neighbours both ways, and at forward a second pair for the output interface."""
    src, dst, inside = flow["src"], flow["dst"], flow["iif"]
    nodad = " nodad" if flow["family"] == 6 else ""
    _ip_batch([f"link add {inside} type veth peer name {CLIENT_END}", f"link set {CLIENT_END} netns {pid}",
               f"link set {inside} up"])
    lines = [f"route add {src}/{plen} dev {inside}"]
    if hook == "input":
        lines.insert(0, f"addr add {dst}/{plen} dev {inside}{nodad}")
    else:                           # the output interface's other end is C's too, where forwarded packets end
        lines = [f"link add {flow['oif']} type veth peer name {CLIENT_OUT}", f"link set {CLIENT_OUT} netns {pid}",
                 f"link set {flow['oif']} up", f"route add {dst}/{plen} dev {flow['oif']}"] + lines
    _ip_batch(lines)
    _ip_batch(["link set lo up", f"link set {CLIENT_END} up", f"addr add {src}/{plen} dev {CLIENT_END}{nodad}",
               f"route add {dst}/{plen} dev {CLIENT_END}",
               f"neigh replace {dst} lladdr {_mac(inside)} dev {CLIENT_END} nud permanent"]
              + ([f"link set {CLIENT_OUT} up"] if hook == "forward" else []), pid)
    _ip_batch([f"neigh replace {src} lladdr {_mac(CLIENT_END, pid)} dev {inside} nud permanent"]
              + ([f"neigh replace {dst} lladdr {_mac(CLIENT_OUT, pid)} dev {flow['oif']} nud permanent"]
                 if hook == "forward" else []))


def _teardown(flow: dict, holder: subprocess.Popen, hook: str) -> None:
    """Delete the flow's links (the veth pair's two ends go together), then C."""
    _ip_batch([f"link del {flow['iif']}"] + ([f"link del {flow['oif']}"] if hook == "forward" else []))
    holder.kill()
    holder.wait()


def _trace_rule(flow: dict, zone: int) -> str:
    """A chain before every other that marks the flow's packets in its original direction, and
    puts every packet of the namespace in a conntrack zone of the flow's own, so that no flow
    meets the connections of the flows before it (their tuples are often the same)."""
    ip = "ip" if flow["family"] == 4 else "ip6"
    match = f"{ip} saddr {flow['src']} {ip} daddr {flow['dst']} meta l4proto {flow['proto']}"
    if flow["proto"] in (6, 17):
        match += f" th sport {flow['sport']} th dport {flow['dport']}"
    return (f"table inet {TRACE_TABLE}\ndelete table inet {TRACE_TABLE}\ntable inet {TRACE_TABLE} {{\n"
            f"  chain tracing {{\n    type filter hook prerouting priority -1000; policy accept;\n"
            f"    ct zone set {zone}\n    {match} meta nftrace set 1\n  }}\n"
            f"  chain zoning {{\n    type filter hook output priority -1000; policy accept;\n"
            f"    ct zone set {zone}\n  }}\n}}\n")


def _events(text: str) -> list[dict]:
    """The trace of the flow's first packet: its events but those of the tracing chain."""
    events, first = [], None
    for line in text.splitlines():
        found = _EVENT.match(line.strip())
        if found is None or found["table"] == TRACE_TABLE:
            continue
        first = first or found["id"]
        if found["id"] != first:
            continue
        what = found["what"].strip()
        event = {"chain": f"{found['family']} {found['table']} {found['chain']}"}
        rule = _RULE.match(what)
        if what.startswith("packet:"):
            continue
        if rule is not None:
            event.update(kind="rule", text=rule["text"], handle=int(rule["handle"]) if rule["handle"] else None,
                         verdict=rule["verdict"])
        elif what.startswith("policy "):
            event.update(kind="policy", verdict=what.split()[1])
        else:
            event.update(kind="other", text=what)
        events.append(event)
    return events


def _observe(flow: dict, hook: str, timeout: float, ruleset: str, zone: int) -> dict:
    holder = _setup(flow, hook)
    receiver = held = accepted = None
    _run(["nft", "-f", "-"], input=_trace_rule(flow, zone))
    if flow["state"] == "established":
        held, accepted = _established(flow, holder.pid, ruleset)
    monitor = subprocess.Popen(["nft", "-a", "monitor", "trace"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        if hook == "input":
            family = socket.AF_INET if flow["family"] == 4 else socket.AF_INET6
            receiver = socket.socket(family, socket.SOCK_RAW, flow["proto"])
            receiver.bind((flow["dst"], 0))
        time.sleep(0.2)             # the monitor listens before the packet leaves
        if held is not None:
            held.stdin.write("\n")
            held.stdin.flush()
            sent = held.stdout.readline().strip()
        else:
            packet = (_icmp_echo(flow["family"] == 4) if flow["proto"] not in (6, 17) else
                      _tcp_syn_fin(flow) if flow["state"] == "invalid" else "")
            sent = _client(holder.pid, [sys.executable, "-c", _SENDER, json.dumps({**flow, "packet": packet,
                                                                                  "timeout": timeout}),
                                        PAYLOAD.decode()]).strip()
        delivered = None
        if receiver is not None:
            delivered = False
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and select.select([receiver], [], [], 0.05)[0]:
                data = receiver.recv(65536)
                delivered = delivered or _is_flow(data, flow)
                if delivered:
                    break
        time.sleep(0.2)
    finally:
        monitor.send_signal(signal.SIGINT)
        out, _ = monitor.communicate(timeout=10)
        if receiver is not None:
            receiver.close()
        if held is not None:
            held.kill()
            held.wait()
        if accepted is not None:
            accepted.close()
        _teardown(flow, holder, hook)
    return {"id": flow["id"], "sent": sent, "delivered": delivered, "events": _events(out)}


def _is_flow(data: bytes, flow: dict) -> bool:
    """A packet a raw socket received is the flow's (IPv4 raw sockets see the IP header)."""
    body = data[(data[0] & 0x0F) * 4:] if flow["family"] == 4 else data
    if flow["proto"] in (6, 17):
        return len(body) >= 4 and int.from_bytes(body[:2], "big") == flow["sport"] \
            and int.from_bytes(body[2:4], "big") == flow["dport"]
    return body[:1] in (b"\x08", b"\x80") and body.endswith(PAYLOAD)


def run(job: dict) -> dict:
    _run(["ip", "link", "set", "lo", "up"])
    for setting, value in (("ipv4/ip_forward", "1"), ("ipv6/conf/all/forwarding", "1"),
                           ("ipv4/conf/all/rp_filter", "0"), ("ipv4/conf/default/rp_filter", "0"),
                           ("ipv4/icmp_echo_ignore_all", "1"), ("ipv6/icmp/echo_ignore_all", "1")):
        with open(f"/proc/sys/net/{setting}", "w", encoding="ascii") as out:
            out.write(value)
    _run(["nft", "-f", "-"], input=job["ruleset"])
    listing = json.loads(_run(["nft", "-j", "list", "ruleset"]))
    flows = [_observe(flow, job["hook"], job.get("timeout", 0.5), job["ruleset"], zone)
             for zone, flow in enumerate(job["flows"], 1)]
    return {"listing": listing, "flows": flows}


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
