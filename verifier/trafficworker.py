"""Real traffic through a loaded nft script: the engine of `dpipolicy probe`.

The worker runs inside a fresh network namespace (netns.py), reads one JSON job on stdin and
writes one JSON result on stdout. It loads the script, puts every flow's addresses on `lo`,
and opens each flow with real sockets, so the kernel itself says what the script does to it:

- an entry chain on hook `output` jumps to the script's policy chain. On loopback every
  packet of both directions leaves through `output` once, so that chain sees the whole
  connection, as the script's `forward` chain would on a router;
- a classifier stand-in (table `inet dpipolicy_probe`, hook `output`, priority -150, after
  conntrack) writes the flow's connection mark, as the DPI engine would;
- before each flow the subscriber sets hold only that flow's subscriber, and when the flow
  names an hour the script is loaded with a TZ in which now is half past that hour (nft
  turns `meta hour` into UTC with the TZ of the process that loads it);
- the kernel keeps the day of the week of `meta day` in its own time zone, which neither a TZ
  nor a namespace changes, so for a script that tests days the worker asks the kernel which
  day it is now and loads the script with its days rotated so that today is the flow's day.

The worker needs only the standard library and runs as a plain script (`python -I FILE`, or
`python -m dpipolicy.verifier.trafficworker`); probe_flows() starts it from the parent.
Every wait is bounded by the job's `timeout`, so it cannot hang.
"""
from __future__ import annotations

import errno
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

PROBE_TABLE = "dpipolicy_probe"
ENTRY_CHAIN = "probe_output"
PAYLOAD = b"dpipolicy probe"
PORTED = {6, 17, 33, 132, 136}          # the protocols with ports (docs/enforcement.md)
DATAGRAM = {17, 136}                    # UDP and UDP-Lite: datagram sockets of their own
VERDICTS = ("accept", "drop", "reject", "goto", "jump", "return", "queue", "continue")
DAY_TABLE = "dpipolicy_day"
NFT_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")     # meta day 0..6
_DAY_VALUE = re.compile(r'"(' + "|".join(NFT_DAYS) + r')"')


def probe_flows(job: dict, timeout: float | None = None) -> dict:
    """Run the worker on `job` in a fresh network namespace; its parsed result.

    The default bound allows each flow several of the job's waits, plus time to load the
    script once per flow.
    """
    from dpipolicy.compiler.netns import NamespaceError, nft_failure, run_in_namespace   # the worker itself has no package

    if timeout is None:
        timeout = 30 + len(job["flows"]) * (4 * job.get("timeout", 0.5) + 2)
    done = run_in_namespace([sys.executable, "-I", os.path.abspath(__file__)],
                            input=json.dumps(job).encode(), timeout=timeout)
    stderr = nft_failure(done.stderr.decode(errors="replace").strip())
    if done.returncode != 0:
        raise NamespaceError(f"the traffic worker failed (exit {done.returncode}): {stderr}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise NamespaceError(f"the traffic worker wrote no JSON result: {stderr}") from None


# --- the kernel's side: commands, rules and counters ---------------------------------------

def _run(argv: list[str], input: str | None = None, env: dict | None = None) -> str:
    """Run a setup command; any failure ends the job with the command's own message."""
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=20, env=env)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{' '.join(argv)}: no answer within 20 s") from None
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def _nft_json(commands: list[dict]) -> None:
    """Apply nft commands in JSON, which names a chain like `policy` (a keyword of the text
    syntax of nft 1.0.6) as plainly as any other."""
    _run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}))


def _load(job: dict, hour: int | None, days_shift: int = 0) -> None:
    """Load the script afresh (its counters, sets and policer state start empty), its days
    rotated by `days_shift`, and hook its policy chain on `output`.

    Packets of state `related` pass before the policy: they are the RST or ICMP error a
    reject rule sends, which conntrack files under the connection they refuse. On a router
    they leave through `output` and never meet the `forward` chain; here they would meet the
    policy again and be dropped by the very rule that sent them.
    """
    env = dict(os.environ)
    if hour is not None:
        env["TZ"] = _tz_at(hour)
    for script in job["scripts"]:       # one, or the batches a user namespace needs (nftables.batches)
        _run(["nft", "-f", "-"], input=_rotated_days(script, days_shift), env=env)
    table = {"family": "inet", "table": job["table"]}
    _nft_json([
        {"add": {"chain": {**table, "name": ENTRY_CHAIN, "type": "filter", "hook": "output",
                           "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {**table, "chain": ENTRY_CHAIN, "expr": [
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "related"}},
            {"accept": None}]}}},
        {"add": {"rule": {**table, "chain": ENTRY_CHAIN, "expr": [
            {"jump": {"target": job["chain"]}}]}}},
    ])


def _tz_at(hour: int) -> str:
    """A POSIX TZ in which the time now is about HH:30 (POSIX writes UTC+h as `-h`)."""
    now = time.time() % 86400
    offset = round(hour * 3600 + 1800 - now) % 86400
    if offset > 43200:
        offset -= 86400
    sign = "-" if offset >= 0 else "+"
    h, rest = divmod(abs(offset), 3600)
    return f"PRB{sign}{h}:{rest // 60:02}:{rest % 60:02}"


def _rotated_days(script: str, shift: int) -> str:
    """The script with every day of its `meta day` tests (and of its sets of days) moved on by
    `shift` days. The script quotes a day's name nowhere else: names of rules and sets are bare
    words, so a rule named `Monday` appears only unquoted or inside a longer comment."""
    if not shift:
        return script

    def moved(day: re.Match) -> str:
        return f'"{NFT_DAYS[(NFT_DAYS.index(day[1]) + shift) % 7]}"'
    return "\n".join(_DAY_VALUE.sub(moved, line) if "meta day" in line else line for line in script.split("\n"))


def _today() -> int:
    """The kernel's day of the week now, as `meta day` numbers it: which of seven counters, one
    per day, a datagram to the discard port of 127.0.0.1 meets."""
    counters = "\n".join(f"    meta day \"{day}\" counter" for day in NFT_DAYS)
    _run(["nft", "-f", "-"], input=(
        f"table inet {DAY_TABLE}\ndelete table inet {DAY_TABLE}\ntable inet {DAY_TABLE} {{\n"
        f"  chain today {{\n    type filter hook output priority -200; policy accept;\n{counters}\n  }}\n}}\n"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        _send_noting(probe.sendto, PAYLOAD, ("127.0.0.1", 9))
    listing = json.loads(_run(["nft", "-j", "list", "table", "inet", DAY_TABLE]))["nftables"]
    _run(["nft", "delete", "table", "inet", DAY_TABLE])
    met = [k for k, rule in enumerate(item["rule"] for item in listing if "rule" in item)
           if next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)]
    if len(met) != 1:
        raise SystemExit(f"cannot tell the kernel's day of the week: the datagram met {len(met)} of 7 day counters")
    return met[0]


def _classify(flow: dict) -> None:
    """Replace the stand-in classifier with one that marks this flow's exact original tuple
    (two flows of a job may share a tuple and differ in mark)."""
    rule = ""
    if flow.get("mark"):
        ip = "ip" if flow["family"] == 4 else "ip6"
        rule = (f"meta nfproto ipv{flow['family']} meta l4proto {flow['proto']} "
                f"ct original {ip} saddr {flow['src']} ct original {ip} daddr {flow['dst']}")
        if flow["proto"] in PORTED:
            rule += f" ct original proto-src {flow['sport']} ct original proto-dst {flow['dport']}"
        rule += f" ct mark set {flow['mark']}"
    _run(["nft", "-f", "-"], input=(
        f"table inet {PROBE_TABLE}\ndelete table inet {PROBE_TABLE}\ntable inet {PROBE_TABLE} {{\n"
        f"  chain classify {{\n    type filter hook output priority -150; policy accept;\n"
        f"    {rule}\n  }}\n}}\n"))


def _fill_sets(job: dict, flow: dict) -> None:
    """Every subscriber set a flow names holds this flow's subscriber and no one else."""
    table = {"family": "inet", "table": job["table"]}
    named = sorted({name for other in job["flows"] for name in other.get("sets") or ()})
    commands = [{"flush": {"set": {**table, "name": name}}} for name in named]
    commands += [{"add": {"element": {**table, "name": name, "elem": [flow["subscriber"]]}}}
                 for name in flow.get("sets") or ()]
    if commands:
        _nft_json(commands)


def _rules(job: dict) -> list[dict]:
    """Every rule of the table with a counter, the policy chain first, each chain in order."""
    listing = json.loads(_run(["nft", "-j", "list", "table", "inet", job["table"]]))["nftables"]
    rules = []
    for item in listing:
        rule = item.get("rule")
        if rule is None:
            continue
        exprs = rule["expr"]
        counter = next((e["counter"] for e in exprs if "counter" in e), None)
        if not counter:
            continue
        verdict = next((e for e in reversed(exprs) if next(iter(e)) in VERDICTS), None)
        if verdict is None:
            name = "continue"
        elif next(iter(verdict)) in ("goto", "jump"):
            name = f"{next(iter(verdict))} {next(iter(verdict.values()))['target']}"
        else:
            name = next(iter(verdict))
        rules.append({"chain": rule["chain"], "handle": rule["handle"], "comment": rule.get("comment"),
                      "packets": counter["packets"], "log": any("log" in e for e in exprs),
                      "verdict": name})
    rules.sort(key=lambda rule: rule["chain"] != job["chain"])     # stable: chain order kept
    return rules


def _grown(before: list[dict], after: list[dict]) -> list[dict]:
    """The rules whose packet counters grew, with the growth as their packets."""
    old = {(rule["chain"], rule["handle"]): rule["packets"] for rule in before}
    grown = []
    for rule in after:
        packets = rule["packets"] - old.get((rule["chain"], rule["handle"]), 0)
        if packets > 0:
            grown.append({**rule, "packets": packets})
    return grown


# --- the sockets' side: one flow, observed -------------------------------------------------

def _family(flow: dict) -> int:
    return socket.AF_INET if flow["family"] == 4 else socket.AF_INET6


def _send_noting(send, *args) -> list[str]:
    """Send once; a drop on `output` refuses a local sender with EPERM, which is noted (the
    observation is what arrives), not raised."""
    try:
        send(*args)
    except OSError as error:
        return [f"send: {errno.errorcode.get(error.errno, error.errno)}"]
    return []


def _wait(sockets: list[socket.socket], deadline: float) -> list[socket.socket]:
    """The sockets readable before the deadline (none when it passes)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return []
    return select.select(sockets, [], [], left)[0]


def _tcp(flow: dict, timeout: float, burst: int | None, opened: list) -> tuple[str, str]:
    """Open a TCP connection: accepted when the handshake completes and a payload arrives,
    reset when a RST answers the SYN, dropped when nothing answers in time."""
    deadline = time.monotonic() + timeout
    server = socket.socket(_family(flow), socket.SOCK_STREAM)
    opened.append(server)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((flow["dst"], flow["dport"]))
    server.listen(8)
    server.setblocking(False)
    client = socket.socket(_family(flow), socket.SOCK_STREAM)
    opened.append(client)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # close with a RST, so that no TIME_WAIT keeps the tuple from the next flow that uses it
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.bind((flow["src"], flow["sport"]))
    client.setblocking(False)
    code = client.connect_ex((flow["dst"], flow["dport"]))
    if code not in (0, errno.EINPROGRESS):
        return "dropped", f"connect: {errno.errorcode.get(code, code)}"
    left = max(0.0, deadline - time.monotonic())
    if not select.select([], [client], [], left)[1]:
        return "dropped", f"no answer to the SYN within {timeout:g} s"
    code = client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code == errno.ECONNREFUSED:
        return "reset", "connect: ECONNREFUSED (a RST answered the SYN)"
    if code:
        return "dropped", f"connect: {errno.errorcode.get(code, code)}"
    try:
        client.send(PAYLOAD)
    except OSError as error:
        return "dropped", f"handshake completed, then send: {errno.errorcode.get(error.errno, error.errno)}"
    if not _wait([server], deadline):
        return "dropped", "handshake completed but the server accepted nothing"
    conn, _ = server.accept()
    opened.append(conn)
    received = b""
    while len(received) < len(PAYLOAD) and _wait([conn], deadline):
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    if received != PAYLOAD:
        return "dropped", "handshake completed but the payload did not arrive"
    detail = "handshake completed, payload arrived"
    if burst:
        detail += "; " + _tcp_burst(client, conn, burst, timeout)
    return "accepted", detail


def _tcp_burst(client: socket.socket, conn: socket.socket, size: int, timeout: float) -> str:
    """Push `size` bytes as fast as the connection takes them, for at most `timeout`."""
    data = memoryview(bytes(size))
    sent = received = 0
    deadline = time.monotonic() + timeout
    while received < size and time.monotonic() < deadline:
        writable = [client] if sent < size else []
        left = max(0.0, deadline - time.monotonic())
        readable, writable, _ = select.select([conn], writable, [], left)
        if writable:
            try:
                sent += client.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
            except OSError as error:
                return f"burst: writing failed after {sent} bytes ({errno.errorcode.get(error.errno)})"
        if readable:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    return f"burst: {sent} of {size} bytes written, {received} received within {timeout:g} s"


def _datagram(flow: dict, timeout: float, burst: int | None, opened: list) -> tuple[str, str]:
    """Send a UDP (or UDP-Lite) datagram: accepted when it arrives, rejected when an ICMP
    error comes back to the connected client, dropped otherwise."""
    deadline = time.monotonic() + timeout
    server = socket.socket(_family(flow), socket.SOCK_DGRAM, flow["proto"])
    opened.append(server)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((flow["dst"], flow["dport"]))
    client = socket.socket(_family(flow), socket.SOCK_DGRAM, flow["proto"])
    opened.append(client)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    client.bind((flow["src"], flow["sport"]))
    client.connect((flow["dst"], flow["dport"]))
    notes = _send_noting(client.send, PAYLOAD)
    while True:
        readable = _wait([server, client], deadline)
        if not readable:
            return "dropped", "; ".join(notes + [f"nothing arrived within {timeout:g} s"])
        if client in readable:
            try:
                client.recv(65536)
            except OSError as error:
                name = errno.errorcode.get(error.errno, error.errno)
                return "rejected", "; ".join(notes + [f"an ICMP error came back (recv: {name})"])
        if server in readable and server.recv(65536) == PAYLOAD:
            detail = "the datagram arrived"
            if burst:
                detail += "; " + _datagram_burst(client, server, burst, timeout)
            return "accepted", detail


def _datagram_burst(client: socket.socket, server: socket.socket, size: int, timeout: float) -> str:
    """Send `size` bytes in datagrams of 1000, then count what arrives within `timeout`."""
    sent = refused = received = 0
    for start in range(0, size, 1000):
        try:
            sent += client.send(bytes(min(1000, size - start)))
        except OSError:             # EPERM from a policer's drop, or a queued ICMP error
            refused += 1
    deadline = time.monotonic() + timeout
    server.setblocking(False)
    while received < sent and _wait([server], deadline):
        received += len(server.recv(65536))
    return (f"burst: {sent} of {size} bytes sent ({refused} datagrams refused), "
            f"{received} received within {timeout:g} s")


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _raw(flow: dict, timeout: float, burst: int | None, opened: list) -> tuple[str, str]:
    """Send one packet of the flow's protocol from a raw socket: accepted when a raw receiver
    on the destination sees it, rejected when an ICMP destination-unreachable error comes
    back to the source, dropped otherwise. An ICMP flow sends an echo request."""
    deadline = time.monotonic() + timeout
    v4 = flow["family"] == 4
    proto = flow["proto"]
    icmp = socket.IPPROTO_ICMP if v4 else socket.IPPROTO_ICMPV6
    ident = os.getpid() & 0xFFFF
    if proto == icmp:
        # an echo request; the kernel fills in the ICMPv6 checksum, IPv4's is ours
        header = struct.pack("!BBHHH", 8 if v4 else 128, 0, 0, ident, 1)
        packet = header + PAYLOAD
        if v4:
            packet = packet[:2] + struct.pack("!H", _checksum(packet)) + packet[4:]
    elif proto in PORTED:
        packet = struct.pack("!HH", flow["sport"], flow["dport"]) + PAYLOAD
    else:
        packet = PAYLOAD
    receiver = socket.socket(_family(flow), socket.SOCK_RAW, proto)
    opened.append(receiver)
    receiver.bind((flow["dst"], 0))
    errors = socket.socket(_family(flow), socket.SOCK_RAW, icmp)
    opened.append(errors)
    errors.bind((flow["src"], 0))
    sender = errors if proto == icmp else socket.socket(_family(flow), socket.SOCK_RAW, proto)
    if sender is not errors:
        opened.append(sender)
        sender.bind((flow["src"], 0))
    notes = _send_noting(sender.sendto, packet, (flow["dst"], 0))
    while True:
        readable = _wait([receiver, errors], deadline)
        if not readable:
            return "dropped", "; ".join(notes + [f"nothing arrived within {timeout:g} s"])
        if receiver in readable:
            data = receiver.recv(65536)
            body = data[(data[0] & 0x0F) * 4:] if v4 else data     # IPv4 raw sockets see the header
            if body[-len(PAYLOAD):] == PAYLOAD and (proto != icmp or body[0] in (8, 128)):
                return "accepted", "; ".join(notes + ["the packet arrived"])
        if errors in readable:
            data = errors.recv(65536)
            body = data[(data[0] & 0x0F) * 4:] if v4 else data
            if body[0] == (3 if v4 else 1):
                return "rejected", "; ".join(notes + [
                    f"ICMP{'' if v4 else 'v6'} destination unreachable, code {body[1]}, came back"])


def _observe(flow: dict, timeout: float) -> tuple[str, str]:
    """Open one flow with real sockets; what happened to it and how it showed."""
    opened: list[socket.socket] = []
    try:
        if flow["proto"] == 6:
            return _tcp(flow, timeout, flow.get("burst"), opened)
        if flow["proto"] in DATAGRAM:
            return _datagram(flow, timeout, flow.get("burst"), opened)
        return _raw(flow, timeout, flow.get("burst"), opened)
    finally:
        for sock in opened:
            sock.close()


def run(job: dict) -> dict:
    """Every flow of the job, in turn, observed with the rules whose counters grew."""
    timeout = float(job.get("timeout", 0.5))
    # a link's MTU, not loopback's 64 KiB: a TCP segment that big is larger than the bucket of
    # a policer of a few kB/s, so it would never pass where a real link's segments would
    _run(["ip", "link", "set", "lo", "mtu", "1500", "up"])
    # the kernel's echo reply is an ICMP message of another type, which the policy may decide by
    # another rule: the probe observes the echo request it sends, and the host answers none
    for path in ("/proc/sys/net/ipv4/icmp_echo_ignore_all", "/proc/sys/net/ipv6/icmp/echo_ignore_all"):
        with open(path, "w", encoding="ascii") as setting:
            setting.write("1")
    for address in sorted({a for flow in job["flows"] for a in (flow["src"], flow["dst"])}):
        argv = (["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"] if ":" in address
                else ["ip", "addr", "add", f"{address}/32", "dev", "lo"])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if done.returncode != 0 and "File exists" not in done.stderr:   # lo has 127.0.0.1, ::1
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    results = []
    days = any("meta day" in script for script in job["scripts"])
    for flow in job["flows"]:
        for _ in range(2):             # once more if midnight (the kernel's) fell within the flow
            today = _today() if days and flow.get("day") else None
            shift = 0 if today is None else today - NFT_DAYS.index(flow["day"])
            _classify(flow)
            _load(job, flow.get("hour"), shift)
            _fill_sets(job, flow)
            before = _rules(job)
            observed, detail = _observe(flow, timeout)
            rules = _grown(before, _rules(job))
            if today is None or _today() == today:
                break
        results.append({"id": flow["id"], "observed": observed, "detail": detail, "rules": rules,
                        "policer_drops": sum(rule["packets"] for rule in rules
                                             if rule["chain"].startswith("throttle_")
                                             and rule["verdict"] == "drop")})
    version = _run(["nft", "--version"]).split()
    return {"flows": results, "nft_version": version[1].lstrip("v") if len(version) > 1 else ""}


def main() -> None:
    json.dump(run(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
