"""The probe's traffic engine against the real kernel: hand-written scripts in the shape of
docs/enforcement.md, real sockets on loopback in fresh network namespaces, no mocks."""
import itertools

import pytest

from dpipolicy.compiler import netns
from dpipolicy.verifier import trafficworker

# nft 1.0.6 (Debian 12) cannot parse `policy` as a chain name in its text syntax (`chain
# policy`, `jump policy` are syntax errors: it is a keyword), so these scripts call it `rules`.
CHAIN = "rules"
SRC, DST, BLOCKED = "10.0.0.7", "74.125.206.108", "74.125.206.109"
SRC6, DST6, BLOCKED6 = "2001:db8::7", "2001:db8:1::6c", "2001:db8:1::6d"


def script(*rules, sets=(), chains=""):
    """A script as the compiler writes it: the table replaced atomically, `forward` jumping
    to the policy chain, every rule counted and named, and the default rule last."""
    body = "".join(f'    {rule} comment "dpipolicy rule {name} #{i}"\n' for i, (name, rule) in enumerate(rules))
    declared = "".join(f"  set {name} {{ type {'ipv6_addr' if name.endswith('_v6') else 'ipv4_addr'}; "
                       "flags interval; }\n" for name in sets)
    return ("table inet dpipolicy\ndelete table inet dpipolicy\ntable inet dpipolicy {\n" + declared
            + f"  chain forward {{ type filter hook forward priority filter; policy accept; jump {CHAIN}; }}\n"
            + f"  chain {CHAIN} {{\n{body}"
            + '    counter accept comment "dpipolicy rule default #default"\n  }\n' + chains + "}\n")


PORTS = itertools.count(50000)


def flow(id, proto=6, dport=443, family=4, **fields):
    """One flow of a job: from the subscriber's address to DST unless told otherwise, from a
    source port of its own."""
    src, dst = (SRC, DST) if family == 4 else (SRC6, DST6)
    return {"id": id, "family": family, "proto": proto, "src": src, "sport": next(PORTS),
            "dst": dst, "dport": dport if proto in (6, 17, 136) else 0, "mark": None,
            "subscriber": src, "sets": [], "hour": None, "burst": None, **fields}


def probe(text, *flows, timeout=0.4):
    """Each flow's result, by id."""
    result = trafficworker.probe_flows({"scripts": [text], "table": "dpipolicy", "chain": CHAIN,
                                        "timeout": timeout, "flows": list(flows)})
    assert result["nft_version"]
    return {found["id"]: found for found in result["flows"]}


def comments(found):
    return [rule["comment"] for rule in found["rules"]]


def test_the_kernel_is_here():
    """CI runs as root with nft: every test below meets the real kernel, none is skipped."""
    assert netns.kernel_unavailable() is None


def test_a_namespace_is_fresh_and_bounded():
    done = netns.run_in_namespace(["sh", "-c", "ip -o link; nft list ruleset"])
    assert done.returncode == 0
    assert done.stdout.decode().count(": lo:") == 1 and b"table" not in done.stdout
    with pytest.raises(netns.NamespaceError, match="did not finish within 0.5 s"):
        netns.run_in_namespace(["sleep", "5"], timeout=0.5)
    with pytest.raises(netns.NamespaceError, match="must be on PATH"):
        netns.run_in_namespace(["dpipolicy-no-such-program"])


def test_tcp_accept_reset_drop():
    text = script(("mail", "meta l4proto tcp ct original proto-dst 587 counter reject with tcp reset"),
                  ("web", "meta l4proto tcp ct original proto-dst 80 counter drop"))
    found = probe(text, flow("ok"), flow("reset", dport=587), flow("drop", dport=80))
    assert found["ok"]["observed"] == "accepted"
    assert comments(found["ok"]) == ["dpipolicy rule default #default"]
    assert found["ok"]["rules"][0]["packets"] >= 4      # both directions counted
    assert found["reset"]["observed"] == "reset"
    assert comments(found["reset"]) == ["dpipolicy rule mail #0"]
    assert found["reset"]["rules"][0] | {"handle": 0} == {
        "chain": CHAIN, "handle": 0, "comment": "dpipolicy rule mail #0", "packets": 1,
        "log": False, "verdict": "reject"}
    assert found["drop"]["observed"] == "dropped"
    assert comments(found["drop"]) == ["dpipolicy rule web #1"]


def test_udp_accept_drop_reject():
    text = script(("dns", "meta l4proto udp ct original proto-dst 53 counter reject with icmpx admin-prohibited"),
                  ("quic", "meta l4proto udp ct original proto-dst 443 counter drop"))
    found = probe(text, flow("ok", proto=17, dport=123), flow("rejected", proto=17, dport=53),
                  flow("dropped", proto=17, dport=443))
    assert [found[id]["observed"] for id in ("ok", "rejected", "dropped")] == ["accepted", "rejected", "dropped"]
    assert comments(found["ok"]) == ["dpipolicy rule default #default"]
    assert comments(found["rejected"]) == ["dpipolicy rule dns #0"]
    assert comments(found["dropped"]) == ["dpipolicy rule quic #1"]


def test_the_connection_mark_reaches_only_the_flow_it_labels():
    """App label 5 (with tls set) is blocked, label 6 and an unclassified flow are not, though
    all three are one tuple: the classifier stand-in marks only the flow being sent."""
    text = script(("vpn", "ct mark and 0x3ff == 5 counter drop"))
    found = probe(text, flow("five", mark=5 | 0x400, sport=40000), flow("six", mark=6, sport=40000),
                  flow("none", sport=40000))
    assert found["five"]["observed"] == "dropped"
    assert comments(found["five"]) == ["dpipolicy rule vpn #0"]
    assert found["six"]["observed"] == found["none"]["observed"] == "accepted"
    assert comments(found["six"]) == ["dpipolicy rule default #default"]


def test_subscriber_sets_hold_only_the_flows_subscriber():
    text = script(("payg", "meta nfproto ipv4 ct original ip saddr @plan_payg_v4 counter drop"),
                  sets=("plan_payg_v4", "plan_contract_v4"))
    found = probe(text, flow("payg", sets=["plan_payg_v4"]), flow("contract", sets=["plan_contract_v4"]),
                  flow("payg-again", sets=["plan_payg_v4"]))
    assert found["payg"]["observed"] == found["payg-again"]["observed"] == "dropped"
    assert found["contract"]["observed"] == "accepted"


def test_ipv6_flows():
    text = script(("mail6", "meta nfproto ipv6 meta l4proto tcp ct original ip6 daddr 2001:db8:1::6c "
                            "ct original proto-dst 587 counter reject with tcp reset"),
                  ("dns6", "meta nfproto ipv6 meta l4proto udp ct original proto-dst 53 "
                           "counter reject with icmpx admin-prohibited"),
                  ("payg6", "meta nfproto ipv6 ct original ip6 saddr @plan_payg_v6 counter drop"),
                  sets=("plan_payg_v6",))
    found = probe(text, flow("ok", family=6), flow("reset", family=6, dport=587),
                  flow("rejected", family=6, proto=17, dport=53),
                  flow("dropped", family=6, sets=["plan_payg_v6"]))
    assert {id: found[id]["observed"] for id in found} == {
        "ok": "accepted", "reset": "reset", "rejected": "rejected", "dropped": "dropped"}
    assert comments(found["dropped"]) == ["dpipolicy rule payg6 #2"]


def test_meta_hour_follows_the_flows_hour():
    text = script(("night", 'meta hour "03:00"-"03:59" counter drop'))
    found = probe(text, flow("three", hour=3), flow("four", hour=4), flow("fifteen", hour=15))
    assert found["three"]["observed"] == "dropped"
    assert comments(found["three"]) == ["dpipolicy rule night #0"]
    assert found["four"]["observed"] == found["fifteen"]["observed"] == "accepted"


def test_a_throttle_polices_a_burst_and_lets_the_flow_through():
    chains = ("  set throttle_x_flows { typeof ct id; size 65535; flags dynamic,timeout; timeout 10m; }\n"
              "  chain throttle_x {\n"
              "    update @throttle_x_flows { ct id limit rate over 16000 bytes/second } counter drop\n"
              "    counter accept\n  }\n")
    text = script(("video", "meta l4proto { tcp, udp } ct original proto-dst 443 counter goto throttle_x"),
                  chains=chains)
    found = probe(text, flow("burst", burst=200000), flow("quiet"), flow("udp", proto=17, burst=200000),
                  timeout=0.3)
    for id in found:
        assert found[id]["observed"] == "accepted"
        assert found[id]["rules"][0]["comment"] == "dpipolicy rule video #0"
        assert found[id]["rules"][0]["verdict"] == "goto throttle_x"
    assert found["burst"]["policer_drops"] > 0 and found["udp"]["policer_drops"] > 0
    assert found["quiet"]["policer_drops"] == 0
    assert {rule["chain"] for rule in found["burst"]["rules"]} == {CHAIN, "throttle_x"}


def test_a_logged_drop_is_reported_as_logged():
    text = script(("audit", 'meta l4proto tcp ct original proto-dst 25 counter log prefix "dpipolicy audit " drop'))
    found = probe(text, flow("smtp", dport=25))
    assert found["smtp"]["observed"] == "dropped"
    assert [(rule["comment"], rule["log"], rule["verdict"]) for rule in found["smtp"]["rules"]] == [
        ("dpipolicy rule audit #0", True, "drop")]


def test_icmp_and_raw_protocols():
    """An echo request and a GRE packet (47, no ports) from raw sockets; a refusal is the
    ICMP "administratively prohibited" error (type 3 code 13, ICMPv6 type 1 code 1)."""
    text = script(("ping", f"meta nfproto ipv4 ct original ip daddr {BLOCKED} counter reject with icmpx admin-prohibited"),
                  ("ping6", f"meta nfproto ipv6 ct original ip6 daddr {BLOCKED6} counter reject with icmpx admin-prohibited"),
                  ("gre", "meta l4proto 47 counter drop"))
    found = probe(text, flow("ping", proto=1), flow("ping-refused", proto=1, dst=BLOCKED),
                  flow("ping6", proto=58, family=6), flow("ping6-refused", proto=58, family=6, dst=BLOCKED6),
                  flow("gre", proto=47), flow("gre-refused", proto=47, dst=BLOCKED))
    assert {id: found[id]["observed"] for id in found} == {
        "ping": "accepted", "ping-refused": "rejected", "ping6": "accepted", "ping6-refused": "rejected",
        "gre": "dropped", "gre-refused": "rejected"}
    assert "code 13" in found["ping-refused"]["detail"] and "code 1," in found["ping6-refused"]["detail"]
    assert comments(found["ping"]) == ["dpipolicy rule default #default"]
    assert comments(found["gre-refused"]) == ["dpipolicy rule ping #0"]


def test_a_script_that_does_not_load_is_an_error_with_nfts_message():
    with pytest.raises(netns.NamespaceError, match="syntax error"):
        probe("table inet dpipolicy { chain rules { no such rule } }", flow("any"))


def test_meta_day_follows_the_flows_day():
    """Whatever day it is in the kernel, a flow of Saturday meets the Saturday rule and a flow
    of Monday the rule of the days holding Monday: the worker rotates the script's days so
    that the kernel's today stands for the flow's day."""
    text = script(("saturday", 'meta day "Saturday" counter drop'),
                  ("early_week", 'meta day { "Monday", "Tuesday" } counter reject with tcp reset'))
    days = ("Saturday", "Monday", "Tuesday", "Wednesday", "Sunday")
    found = probe(text, *(flow(day, day=day) for day in days))
    assert {day: found[day]["observed"] for day in days} == {
        "Saturday": "dropped", "Monday": "reset", "Tuesday": "reset", "Wednesday": "accepted", "Sunday": "accepted"}
    assert comments(found["Monday"]) == ["dpipolicy rule early_week #1"]


def test_the_congestion_and_tethering_bits_of_the_mark():
    text = script(("congested", "ct mark and 0x1000 == 0x1000 counter drop"),
                  ("tethered", "ct mark and 0x2000 == 0x2000 counter reject with tcp reset"))
    found = probe(text, flow("congested", mark=0x1000), flow("tethered", mark=0x2000), flow("both", mark=0x3000),
                  flow("neither", mark=0x400))
    assert {id: found[id]["observed"] for id in found} == {
        "congested": "dropped", "tethered": "reset", "both": "dropped", "neither": "accepted"}


def test_days_are_rotated_only_in_day_tests():
    """Only the quoted days of lines that test `meta day` move; a rule named like a day keeps
    its comment and log prefix."""
    text = ('    set days_1 { typeof meta day; elements = { "Saturday", "Sunday" } }\n'
            '        meta day != "Sunday" counter log prefix "dpipolicy Monday " accept'
            ' comment "dpipolicy rule Monday #0"\n'
            '        ct mark and 0x3ff == 0x1 counter drop comment "dpipolicy rule Sunday #1"\n')
    assert trafficworker._rotated_days(text, 1) == text.replace('"Saturday", "Sunday"', '"Sunday", "Monday"') \
        .replace('!= "Sunday"', '!= "Monday"')
    assert trafficworker._rotated_days(text, 0) is text
    assert trafficworker._rotated_days(text, -6) == trafficworker._rotated_days(text, 1)
