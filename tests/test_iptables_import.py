"""Reading iptables-save and ip6tables-save dumps (compiler/importers/iptables.py and
iptablesrule.py) through the real CLI: every error the reader gives, at its line and column with
exit 2; each match and target read into the flows the kernel gives that verdict, checked with
`dpipolicy explain` flow by flow; and --approximate, which turns what the table cannot hold into
listed approximations whose results are approximate (exit 3), never a plain pass.

The real dumps (../shared/fixtures/iptables/) are in test_iptables_fixtures.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import run_cli, write_policy


def dump(tmp_path: Path, text: str, name: str = "rules.iptables-save") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors(err: str) -> list[tuple[str, str, str]]:
    """(code, message, place) of each error the CLI printed."""
    return re.findall(r"error\[(E\d+)\]: (.*)\n\s*--> (\S+)", err)


def decided(path: Path, hook: str, flow: str, *options: str) -> tuple[str, str, str]:
    """(action as shown, deciding rule, its line:col) of a flow pinned enough to have one outcome."""
    code, out, err = run_cli("explain", path, "--chain", hook, "--flow", flow, "--format", "json", *options)
    assert code == 0, err
    result = json.loads(out)
    assert result["determined"], result["outcomes"]
    (outcome,) = result["outcomes"]
    place = outcome["rule_location"]
    return outcome["action_text"], outcome["rule"], place[len(str(path)) + 1:] if place.startswith(str(path)) else place


# ----- errors ---------------------------------------------------------------------------------

def filter_table(*lines: str) -> str:
    return "\n".join(("*filter",) + lines + ("COMMIT", ""))


ERRORS = [
    # (dump, code, line:col, words of the message)
    (filter_table('-A INPUT -m comment --comment "open -j ACCEPT'), "E714", "2:31", "a quote that is not closed"),
    ("*filter\nCOMMIT now\n", "E714", "2:8", "COMMIT takes nothing after it"),
    (filter_table("hello"), "E714", "2:1", "`hello` starts no line"),
    (filter_table("[1:x] -A INPUT -j ACCEPT"), "E714", "2:1", "`[1:x]` is not a pair of counters"),
    (filter_table("[1:2] -I INPUT"), "E714", "2:1", "counters with no rule after them"),
    ("*filter extra\nCOMMIT\n", "E714", "1:9", "*filter takes nothing after it"),
    ("COMMIT\n", "E715", "1:1", "COMMIT outside a table"),
    ("-A INPUT -j ACCEPT\n*filter\nCOMMIT\n", "E715", "1:1", "a chain or rule outside a table"),
    ("*filter\nCOMMIT\n:INPUT DROP [0:0]\n", "E715", "3:1", "a chain or rule outside a table"),
    ("*firewall\nCOMMIT\n", "E716", "1:1", "`*firewall` is not a table of iptables"),
    ("*filter\nCOMMIT\n*filter\nCOMMIT\n", "E716", "3:1", "table *filter is given twice"),
    ("*filter\n-A INPUT -j ACCEPT\n", "E717", "1:1", "table *filter has no COMMIT"),
    ("*filter\n*nat\nCOMMIT\n", "E717", "2:1", "table *nat starts before *filter is committed"),
    (filter_table(":INPUT"), "E718", "2:1", "`:INPUT` is not a chain line"),
    (filter_table(":INPUT DROP [0:0]", ":INPUT DROP [0:0]"), "E718", "3:1", "chain INPUT is declared twice"),
    (filter_table(":ACCEPT - [0:0]"), "E718", "2:1", "`ACCEPT` is not a name for a chain"),
    (filter_table(":INPUT REJECT [0:0]"), "E718", "2:8", "`REJECT` is not a policy for built-in chain INPUT"),
    (filter_table(":ssh DROP [0:0]"), "E718", "2:6", "ssh is a user chain, which takes no policy"),
    (filter_table(":PREROUTING ACCEPT [0:0]"), "E718", "2:13", "filter has no built-in chain PREROUTING"),
    ("*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n", "E718", "2:13", "a DROP policy in the nat table"),
    (filter_table(":INPUT DROP [a:b]"), "E718", "2:13", "`[a:b]` is not a pair of counters"),
    (filter_table("-A ssh -j ACCEPT"), "E719", "2:4", "there is no chain ssh in *filter"),
    (filter_table("-A INPUT tcp -j ACCEPT"), "E720", "2:10", "`tcp` is not an option"),
    (filter_table("-A INPUT -p tcp --dprot 22 -j ACCEPT"), "E720", "2:17", "`--dprot` is an option of no match"),
    (filter_table("-A INPUT --log-prefix x -j LOG"), "E720", "2:10", "`--log-prefix` is an option of no match"),
    # udplite has no match of its own, and ICMPv6 none in iptables: no option comes with their -p
    (filter_table("-A INPUT -p udplite --dport 53 -j ACCEPT"), "E720", "2:21", "`--dport` is an option of no match"),
    (filter_table("-A INPUT -p icmpv6 --icmpv6-type 128 -j ACCEPT"), "E720", "2:20",
     "`--icmpv6-type` is an option of no match"),
    (filter_table("-A"), "E721", "2:1", "`-A` needs a chain"),
    (filter_table("-A INPUT -j ACCEPT -p"), "E721", "2:20", "`-p` needs a value"),
    (filter_table("-A INPUT -p tcp -p udp -j ACCEPT"), "E721", "2:17", "`-p` is given twice"),
    (filter_table("-A INPUT -p tcp --dport 1 --dport 2 -j ACCEPT"), "E721", "2:27", "`--dport` is given twice"),
    (filter_table(":a - [0:0]", "-A INPUT -j a -g a"), "E721", "3:15", "one of `-j` and `-g`, not both"),
    (filter_table("-A INPUT -s 10.0.0.300 -j ACCEPT"), "E722", "2:13", "`10.0.0.300` is not an address"),
    (filter_table("-A INPUT -d example.com -j ACCEPT"), "E722", "2:13", "`example.com` is a host name"),
    ("# Generated by iptables-save v1.8.9\n" + filter_table("-A INPUT -s 2001:db8::1 -j ACCEPT"), "E722", "3:13",
     "`2001:db8::1` is an IPv6 address in an iptables dump"),
    (filter_table("-A INPUT -s 10.0.0.0/33 -j ACCEPT"), "E722", "2:13", "prefix length /33 is out of range"),
    (filter_table("-A INPUT -s 10.0.0.0/255.0.255.0 -j ACCEPT"), "E722", "2:13", "netmask `255.0.255.0` has gaps"),
    (filter_table("-A INPUT -s 10.0.0.0/x -j ACCEPT"), "E722", "2:13", "`/x` is not a prefix length or netmask"),
    (filter_table("-A INPUT -m iprange --src-range 10.0.0.9-10.0.0.1 -j ACCEPT"), "E722", "2:33",
     "the range `10.0.0.9-10.0.0.1` is empty"),
    (filter_table("-A INPUT -m iprange --dst-range 10.0.0.9 -j ACCEPT"), "E722", "2:33",
     "`10.0.0.9` is not an address range"),
    (filter_table("-A INPUT -p tcp --dport ssh -j ACCEPT"), "E723", "2:25", "`ssh` is not a port number"),
    (filter_table("-A INPUT -p tcp --dport 90:80 -j ACCEPT"), "E723", "2:25", "the port range `90:80` is empty"),
    (filter_table("-A INPUT -p udp --sport 70000 -j ACCEPT"), "E723", "2:25", "port 70000 is out of range"),
    (filter_table("-A INPUT -p tcp -m multiport --dports " + ",".join(map(str, range(1, 17))) + " -j ACCEPT"),
     "E723", "2:39", "takes at most 15 ports"),
    (filter_table("-A INPUT -m tcp --dport 22 -j ACCEPT"), "E723", "2:13", "`-m tcp` needs `-p tcp` in the same rule"),
    (filter_table("-A INPUT -p udp -m tcp --dport 22 -j ACCEPT"), "E723", "2:20", "`-m tcp` needs `-p tcp`"),
    (filter_table("-A INPUT -m udp --dport 53 -p tcp -j ACCEPT"), "E723", "2:13", "`-m udp` needs `-p udp`"),
    (filter_table("-A INPUT -p 300 -j ACCEPT"), "E724", "2:13", "protocol 300 is out of range"),
    (filter_table("-A INPUT -p tpc -j ACCEPT"), "E724", "2:13", "`tpc` is not a protocol this reader knows"),
    (filter_table("-A INPUT ! ! -p tcp -j ACCEPT"), "E725", "2:12", "`!` given twice"),
    (filter_table("-A INPUT ! -s 10.0.0.1,10.0.0.2 -j DROP"), "E725", "2:10", "`! -s` with several addresses"),
    (filter_table("-A INPUT -j ACCEPT !"), "E725", "2:20", "`!` at the end of the rule"),
    (filter_table("-A INPUT ! -j ACCEPT"), "E725", "2:10", "`-j` cannot be negated"),
    (filter_table("-A INPUT -m comment ! --comment x -j ACCEPT"), "E725", "2:21", "`--comment` cannot be negated"),
    (filter_table("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT"), "E726", "2:26",
     "iptables has no `icmp6` match"),
    (filter_table("-A INPUT -m bogus -j ACCEPT"), "E726", "2:13", "`bogus` is not an iptables match"),
    (filter_table("-A INPUT -j ssh"), "E727", "2:13", "`-j ssh`: there is no target or user chain `ssh`"),
    (filter_table("-A INPUT -g ACCEPT"), "E727", "2:13", "`-g ACCEPT`: there is no target or user chain"),
    ("*nat\n-A PREROUTING -j DROP\nCOMMIT\n", "E728", "2:18", "iptables refuses DROP there"),
    ("*mangle\n-A INPUT -j REJECT\nCOMMIT\n", "E728", "2:13", "REJECT belongs to the filter table"),
    (filter_table("-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1"), "E728", "2:20",
     "DNAT belongs to the nat table"),
    ("*nat\n-A POSTROUTING -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT\n", "E728", "2:26",
     "DNAT is for chains PREROUTING and OUTPUT"),
    (filter_table("-A INPUT -j NOTRACK"), "E728", "2:13", "NOTRACK belongs to the raw table"),
    (filter_table("-A INPUT -j REJECT --reject-with icmp6-port-unreachable"), "E729", "2:34",
     "`icmp6-port-unreachable` is not a reject kind of iptables"),
    (filter_table("-A INPUT -p udp -j REJECT --reject-with tcp-reset"), "E729", "2:41",
     "`--reject-with tcp-reset` on a rule that does not match `-p tcp`"),
    (filter_table("-A INPUT -m state --state OPEN -j ACCEPT"), "E730", "2:27", "`open` is not a connection state"),
    (filter_table("-A INPUT -m state --state SNAT -j ACCEPT"), "E730", "2:27", "`snat` is not a connection state"),
    (filter_table("-A INPUT -p icmp --icmp-type echo -j ACCEPT"), "E731", "2:30", "`echo` is not an icmp type"),
    (filter_table("-A INPUT -p icmp --icmp-type 300 -j ACCEPT"), "E731", "2:30", "types and codes are 0..255"),
    (filter_table("-A INPUT -j NFQUEUE --queue-num 1"), "E732", "2:13", "the verdict is given outside the rule set"),
    (filter_table("-A INPUT -i eth0/1 -j ACCEPT"), "E733", "2:13", "`eth0/1` is not an interface name"),
    (filter_table("-A INPUT -i abcdefghijklmnop -j ACCEPT"), "E733", "2:13", "is not an interface name"),
    (filter_table("-A OUTPUT -i eth0 -j ACCEPT"), "E733", "2:14", "`-i` in chain OUTPUT"),
    (filter_table("-A INPUT -o eth0 -j ACCEPT"), "E733", "2:13", "`-o` in chain INPUT"),
    ("*raw\n-A PREROUTING -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n", "E734", "2:38",
     "a state match in the raw table"),
    (filter_table("-I INPUT -j ACCEPT"), "E735", "2:1", "`-I` in a dump"),
    (filter_table("-P INPUT DROP"), "E735", "2:1", "`-P` in a dump"),
    # the flattening's: a loop iptables-restore would refuse
    (filter_table(":a - [0:0]", ":b - [0:0]", "-A INPUT -j a", "-A a -j b", "-A b -j a"), "E713", "6:1",
     "`jump filter a` loops: filter INPUT -> filter a -> filter b -> filter a"),
]


@pytest.mark.parametrize("text, code, where, words", ERRORS, ids=[f"{e[1]}-{k}" for k, e in enumerate(ERRORS)])
def test_each_error_at_its_line_and_column(tmp_path, text, code, where, words):
    path = dump(tmp_path, text)
    rc, out, err = run_cli("import", path, "--input-format", "iptables", "--chain", "input")
    assert rc == 2 and out == "" and "Traceback" not in err
    [(found, message, place)] = errors(err)
    assert (found, place) == (code, f"{path}:{where}") and words in message, err


IPV6_ERRORS = [
    (filter_table("-A INPUT -f -j DROP"), "E720", "2:10", "`-f` is not an option of ip6tables"),
    (filter_table("-A INPUT -p icmp --icmp-type 8 -j ACCEPT"), "E720", "2:18", "`--icmp-type` is an option of no"),
    (filter_table("-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT"), "E726", "2:21", "ip6tables has no `icmp` match"),
    (filter_table("-A INPUT -s 10.0.0.1 -j ACCEPT"), "E722", "2:13", "`10.0.0.1` is an IPv4 address in an ip6tables"),
    (filter_table("-A INPUT -j REJECT --reject-with icmp-port-unreachable"), "E729", "2:34",
     "`icmp-port-unreachable` is not a reject kind of ip6tables"),
    (filter_table("-A INPUT -s fe80::/129 -j ACCEPT"), "E722", "2:13", "prefix length /129 is out of range"),
    (filter_table("-A INPUT -p ipv6-icmp --icmpv6-type 256 -j ACCEPT"), "E731", "2:37", "types and codes are 0..255"),
]


@pytest.mark.parametrize("text, code, where, words", IPV6_ERRORS)
def test_each_ip6tables_error(tmp_path, text, code, where, words):
    path = dump(tmp_path, text, "rules.ip6tables-save")
    rc, out, err = run_cli("import", path, "--input-format", "ip6tables", "--chain", "input")
    assert rc == 2 and out == "" and "Traceback" not in err
    [(found, message, place)] = errors(err)
    assert (found, place) == (code, f"{path}:{where}") and words in message, err


def test_every_error_of_a_file_at_once(tmp_path):
    path = dump(tmp_path, filter_table("-A INPUT -p tpc -j ACCEPT", "-A INPUT -s 10.0.0.1/40 -j ACCEPT",
                                       "-A ssh -j DROP"))
    rc, _, err = run_cli("check", path, "--input-format", "iptables", "--chain", "input")
    assert rc == 2 and "Traceback" not in err
    assert [(c, p) for c, _, p in errors(err)] == [("E724", f"{path}:2:13"), ("E722", f"{path}:3:13"),
                                                  ("E719", f"{path}:4:4")]


def test_the_help_says_what_to_do(tmp_path):
    path = dump(tmp_path, filter_table("-A INPUT -p tcp --dport ssh -j ACCEPT"))
    _, _, err = run_cli("import", path, "--input-format", "iptables", "--chain", "input")
    assert "help: iptables-save writes port numbers; write the number (ssh is 22)" in err


def test_family_told_by_content_or_named(tmp_path):
    plain = dump(tmp_path, filter_table(":INPUT ACCEPT [0:0]", "-A INPUT -j ACCEPT"))
    rc, _, err = run_cli("import", plain, "--chain", "input")
    assert rc == 2 and "Traceback" not in err
    [(code, message, place)] = errors(err)
    assert (code, place) == ("E700", str(plain)) and "cannot tell whether" in message
    assert "--input-format iptables, or --input-format ip6tables" in err
    # told by an address only one family has, or named
    v6 = dump(tmp_path, filter_table(":INPUT ACCEPT [0:0]", "-A INPUT -s 2001:db8::/32 -j DROP"), "v6.rules")
    assert decided(v6, "input", "proto=udp src.ip=2001:db8::1 dst.ip=2001:db8::2")[1] == "filter INPUT #1"
    assert decided(plain, "input", "proto=udp src.ip=2001:db8::1 dst.ip=2001:db8::2", "--input-format",
                   "ip6tables") == ("allow", "filter INPUT #1", "3:1")
    assert decided(plain, "input", "proto=udp src.ip=2001:db8::1 dst.ip=2001:db8::2", "--input-format",
                   "iptables") == ("allow", "IPv6 packets: not seen by iptables", "")


# ----- what each match and target decides --------------------------------------------------------

HOST = """# Generated by iptables-save v1.8.9 on Mon Dec  7 08:00:00 2026
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:services - [0:0]
:admin - [0:0]
:wan - [0:0]
[12:3400] -A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -m state --state INVALID -j DROP
-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 3 -j ACCEPT
-A INPUT -s 192.0.2.0/255.255.255.0,198.51.100.7 -j admin
-A INPUT -i ppp+ -g wan
-A INPUT -j services
-A INPUT -p tcp -m multiport --dports 8000:8099,9000 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -j REJECT
-A INPUT -j LOG --log-prefix "in: "
-A admin -p tcp --dport 22 -m comment --comment "ssh from admins" -j ACCEPT
-A admin -p tcp -m multiport --ports 5000 -j DROP
-A services -p tcp -m tcp --dport 80 -j ACCEPT
-A services -p tcp ! --dport 443 -j RETURN
-A services -m iprange ! --src-range 203.0.113.10-203.0.113.20 -j ACCEPT
-A wan -p tcp --dport 25 -j ACCEPT
-A wan -j RETURN
-A FORWARD -i br0 -o eth+ ! -s 10.0.0.0/8 -j DROP
-A FORWARD -i br0 -o eth+ -j ACCEPT
-A FORWARD -6 -j ACCEPT
COMMIT
"""
TO_HOST = "dst.ip=192.0.2.200 ct.state=new iface.in=eth0"

# (flow, what the kernel does with it: action, deciding rule, its line:col), each read off HOST by hand
HOST_FLOWS = [
    # the counters before `-A` are skipped: the rule starts at `-A`
    ("proto=tcp src.ip=203.0.113.5 dst.ip=192.0.2.200 iface.in=lo ct.state=new dst.port=9",
     ("allow", "filter INPUT #1", "9:11")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST.replace('new', 'established')} dst.port=9",
     ("allow", "filter INPUT #2", "10:1")),
    (f"proto=udp src.ip=203.0.113.5 {TO_HOST.replace('new', 'related')} dst.port=9",
     ("allow", "filter INPUT #2", "10:1")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST.replace('new', 'invalid')} dst.port=80",
     ("block", "filter INPUT #3", "11:1")),
    (f"proto=icmp src.ip=203.0.113.5 {TO_HOST} icmp.type=8", ("allow", "filter INPUT #4", "12:1")),
    (f"proto=icmp src.ip=203.0.113.15 {TO_HOST} icmp.type=3", ("allow", "filter INPUT #5", "13:1")),
    # an echo reply that is new: past the ICMP rules, into services, outside the negated range
    (f"proto=icmp src.ip=203.0.113.5 {TO_HOST} icmp.type=0", ("allow", "filter services #3", "24:1")),
    # -s with a netmask and a second address: both jump to admin, where the comment names the rule
    (f"proto=tcp src.ip=192.0.2.9 {TO_HOST} dst.port=22", ("allow", "ssh from admins", "20:1")),
    (f"proto=tcp src.ip=198.51.100.7 {TO_HOST} dst.port=22", ("allow", "ssh from admins", "20:1")),
    # not an admin: services returns it (not 443), and it is logged before the DROP policy
    (f"proto=tcp src.ip=198.51.100.8 {TO_HOST} dst.port=22", ("block, log", "filter INPUT policy", "3:1")),
    # --ports matches either port
    (f"proto=tcp src.ip=192.0.2.9 {TO_HOST} src.port=5000 dst.port=1", ("block", "filter admin #2", "21:1")),
    (f"proto=tcp src.ip=192.0.2.9 {TO_HOST} src.port=1 dst.port=5000", ("block", "filter admin #2", "21:1")),
    # ppp+ is every name starting with ppp; -g: wan's RETURN goes back past INPUT's rules to its policy,
    # skipping the LOG rule (the table's default is that policy, unlogged)
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST.replace('eth0', 'ppp0')} dst.port=25",
     ("allow", "filter wan #1", "25:1")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST.replace('eth0', 'ppp7')} dst.port=80", ("block", "default", "")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST} dst.port=80", ("allow", "filter services #1", "22:1")),
    # REJECT --reject-with tcp-reset is the language's reset; a multiport range and a single port
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST} dst.port=8050", ("reset", "filter INPUT #9", "17:1")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST} dst.port=9000", ("reset", "filter INPUT #9", "17:1")),
    (f"proto=tcp src.ip=203.0.113.5 {TO_HOST} dst.port=9001", ("block, log", "filter INPUT policy", "3:1")),
    # `! --dport 443` does not return 443; the range 203.0.113.10-20 is outside `! --src-range`
    (f"proto=tcp src.ip=203.0.113.15 {TO_HOST} dst.port=443", ("block, log", "filter INPUT policy", "3:1")),
    (f"proto=tcp src.ip=203.0.113.21 {TO_HOST} dst.port=443", ("allow", "filter services #3", "24:1")),
    (f"proto=udp src.ip=203.0.113.5 {TO_HOST} dst.port=53", ("allow", "filter services #3", "24:1")),
    # REJECT of UDP answers with an ICMP error: the language's reset
    (f"proto=udp src.ip=203.0.113.15 {TO_HOST} dst.port=53", ("reset", "filter INPUT #10", "18:1")),
    (f"proto=gre src.ip=203.0.113.15 {TO_HOST}", ("block, log", "filter INPUT policy", "3:1")),
    # iptables never sees an IPv6 packet: accepted, by no rule of the file
    ("proto=tcp src.ip=2001:db8::1 dst.ip=2001:db8::2 ct.state=new iface.in=eth0 dst.port=22",
     ("allow", "IPv6 packets: not seen by iptables", "")),
]


@pytest.mark.parametrize("flow, expected", HOST_FLOWS)
def test_matches_and_targets_decide_as_the_kernel(tmp_path, flow, expected):
    assert decided(dump(tmp_path, HOST), "input", flow) == expected


@pytest.mark.parametrize("flow, expected", [
    ("proto=tcp src.ip=192.168.1.5 dst.ip=8.8.8.8 iface.in=br0 iface.out=eth1", ("block", "filter FORWARD #1", "27:1")),
    ("proto=tcp src.ip=10.1.1.5 dst.ip=8.8.8.8 iface.in=br0 iface.out=eth1", ("allow", "filter FORWARD #2", "28:1")),
    # eth+ does not match wlan0; `-6` rules are not loaded by iptables: the DROP policy decides
    ("proto=tcp src.ip=10.1.1.5 dst.ip=8.8.8.8 iface.in=br0 iface.out=wlan0", ("block", "default", "")),
])
def test_forward_interfaces_and_the_other_familys_rules(tmp_path, flow, expected):
    assert decided(dump(tmp_path, HOST), "forward", flow) == expected


def test_a_table_of_each_hook(tmp_path):
    path = dump(tmp_path, HOST)
    rc, _, err = run_cli("import", path)
    [(code, message, place)] = errors(err)
    assert rc == 2 and (code, place) == ("E702", str(path)) and "base chains on 3 hooks" in message
    assert "pick the hook with --chain, one of: input, forward, output" in err
    rc, _, err = run_cli("import", path, "--chain", "inptu")
    assert rc == 2 and errors(err) == [("E702", "`inptu` is not a hook", "--chain")]
    rc, _, err = run_cli("import", path, "--chain", "prerouting")
    assert rc == 2 and errors(err)[0][:2] == ("E710", f"no base chain of {path} is on the prerouting hook")
    policy = write_policy(tmp_path, "policy p version \"1\"\ndefault allow\n")
    rc, _, err = run_cli("check", policy, "--chain", "input")
    assert rc == 2 and errors(err)[0][0] == "E703"


@pytest.mark.parametrize("flow, expected", [
    ("proto=tcp src.ip=192.0.2.1 dst.ip=192.0.2.2 dst.port=22", ("allow", "filter INPUT #1", "3:1")),
    ("proto=tcp src.ip=192.0.2.1 dst.ip=192.0.2.2 dst.port=23", ("block", "default", "")),
    ("proto=udp src.ip=192.0.2.1 dst.ip=192.0.2.2 src.port=53", ("allow", "filter INPUT #2", "4:1")),
    ("proto=icmp src.ip=192.0.2.1 dst.ip=192.0.2.2 icmp.type=8", ("allow", "filter INPUT #3", "5:1")),
])
def test_a_protocol_by_number_loads_its_match(tmp_path, flow, expected):
    """`-p 6 --dport 22` is `-p tcp --dport 22`, as iptables-restore takes it."""
    path = dump(tmp_path, filter_table(":INPUT DROP [0:0]", "-A INPUT -p 6 --dport 22 -j ACCEPT",
                                       "-A INPUT -p 17 --sport 53 -j ACCEPT", "-A INPUT -p 1 --icmp-type 8 -j ACCEPT"))
    assert decided(path, "input", flow, "--input-format", "iptables") == expected


IPV6_HOST = """# Generated by ip6tables-save v1.8.9 on Mon Dec  7 08:00:00 2026
*filter
:INPUT DROP [0:0]
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT
-A INPUT -p ipv6-icmp --icmpv6-type 128 -j ACCEPT
-A INPUT -s fe80::/10 -p udp --dport 546 -j ACCEPT
-A INPUT -s 2001:db8::/ffff:ffff:: -p tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -p udp -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -4 -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize("flow, expected", [
    ("proto=icmpv6 src.ip=fe80::1 dst.ip=fe80::2 icmp.type=135", ("allow", "filter INPUT #1", "4:1")),
    ("proto=icmpv6 src.ip=2001:db8::1 dst.ip=2001:db8::2 icmp.type=128", ("allow", "filter INPUT #2", "5:1")),
    ("proto=icmpv6 src.ip=2001:db8::1 dst.ip=2001:db8::2 icmp.type=129", ("block", "default", "")),
    ("proto=udp src.ip=fe80::1 dst.ip=fe80::2 dst.port=546", ("allow", "filter INPUT #3", "6:1")),
    ("proto=tcp src.ip=2001:db8:ffff::1 dst.ip=2001:db8::2 dst.port=22", ("allow", "filter INPUT #4", "7:1")),
    ("proto=tcp src.ip=2001:db9::1 dst.ip=2001:db8::2 dst.port=22", ("reset", "filter INPUT #5", "8:1")),
    ("proto=udp src.ip=2001:db9::1 dst.ip=2001:db8::2 dst.port=53", ("reset", "filter INPUT #6", "9:1")),
    # `-4` is not loaded by ip6tables, and no IPv4 packet reaches it
    ("proto=udp src.ip=192.0.2.1 dst.ip=192.0.2.2 dst.port=53", ("allow", "IPv4 packets: not seen by ip6tables", "")),
])
def test_an_ip6tables_dump(tmp_path, flow, expected):
    assert decided(dump(tmp_path, IPV6_HOST, "rules.ip6tables-save"), "input", flow) == expected


# ----- --approximate ------------------------------------------------------------------------------

MARKED = filter_table(":INPUT DROP [0:0]", "-A INPUT -p tcp --dport 22 -m mark --mark 0x1 -j ACCEPT",
                      "-A INPUT -p tcp --dport 80 -j ACCEPT")
V4 = "src.ip in 0.0.0.0/0 and dst.ip in 0.0.0.0/0"       # iptables decides IPv4 flows only
MARKED_SPEC = f"""invariant ssh_closed "SSH is closed"
    when proto == tcp and dst.port == 22 and {V4} require action == block
invariant ssh_open "SSH is open" when proto == tcp and dst.port == 22 and {V4} require action == allow
invariant web_open "The web server is open" when proto == tcp and dst.port == 80 require action == allow
test ssh_refused given proto == tcp and dst.port == 22 and {V4} expect block
"""


def test_an_unmodelled_match_is_an_error_without_approximate(tmp_path):
    path = dump(tmp_path, MARKED)
    spec = write_policy(tmp_path, MARKED_SPEC, "spec.dpi")
    rc, out, err = run_cli("check", path, "--chain", "input", "--input-format", "iptables", "--spec", spec)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert errors(err) == [("E711", "`-m mark --mark 0x1` matches the packet mark, which the rule table cannot hold "
                                    "exactly", f"{path}:3:28")]
    assert "help: pass --approximate to read it as: the rule matching no packet (left out)" in err


def test_approximate_results_are_never_a_plain_pass(tmp_path):
    path = dump(tmp_path, MARKED)
    spec = write_policy(tmp_path, MARKED_SPEC, "spec.dpi")
    args = ("check", path, "--chain", "input", "--input-format", "iptables", "--spec", spec, "--approximate")
    rc, out, _ = run_cli(*args, "--format", "json")
    assert rc == 3
    report = json.loads(out)
    approximation = {"rule": "filter INPUT #1", "location": f"{path}:3:28",
                     "what": "`-m mark --mark 0x1` matches the packet mark",
                     "instead": "the rule matching no packet (left out)"}
    assert report["approximations"] == [approximation]
    statuses = {r["name"]: (r["status"], r.get("table_status"), r.get("approximations")) for r in report["results"]}
    # SSH with the mark is accepted by the kernel, without it dropped: the table (rule left out) says
    # "closed", and neither answer about SSH can be trusted; the web server's is exact
    assert statuses == {"ssh_closed": ("approximate", "holds", [approximation]),
                        "ssh_open": ("approximate", "violated", [approximation]),
                        "ssh_refused": ("approximate", "passed", [approximation]),
                        "web_open": ("holds", None, None)}
    assert report["summary"]["approximate"] == 3 and report["summary"]["holds"] == 1
    rc, text, _ = run_cli(*args)
    assert rc == 3 and "approximated (1 approximation, --approximate):" in text
    assert f"  - {path}:3:28: rule `filter INPUT #1`: `-m mark --mark 0x1` matches the packet mark; read as the rule " \
           "matching no packet (left out)" in text
    assert "approximate: the table says holds, the kernel may not" in text


@pytest.mark.parametrize("rule, what", [
    ("-A INPUT -p tcp --syn -j ACCEPT", "`--syn` tests the SYN flag of each packet"),
    ("-A INPUT -p tcp ! --tcp-flags SYN,ACK SYN -j DROP", "`! --tcp-flags SYN,ACK SYN` tests TCP flags of each packet"),
    ("-A INPUT -m conntrack --ctstate NEW --ctdir ORIGINAL -j ACCEPT",
     "`--ctdir ORIGINAL` tests the connection's tuples, status or expiry"),
    ("-A INPUT -m conntrack --ctstate DNAT -j ACCEPT", "`--ctstate DNAT` tests whether the connection's addresses"),
    ("-A INPUT -p icmp --icmp-type 3/4 -j ACCEPT", "`--icmp-type 3/4` tests the ICMP code 4 too"),
    ("-A INPUT -p icmp --icmp-type port-unreachable -j ACCEPT", "`--icmp-type port-unreachable` tests the ICMP code 3"),
    ("-A INPUT -p tcp -m limit --limit 5/min -j ACCEPT", "`-m limit` matches packets up to a rate"),
    ("-A INPUT -f -j DROP", "`-f` tests whether a packet is a fragment"),
    # the protocol may come after its match, as iptables-restore takes it
    ("-A INPUT -m addrtype --dst-type LOCAL -m tcp --dport 22 -p tcp -j ACCEPT",
     "`-m addrtype --dst-type LOCAL` matches the kind of address"),
    ("-A INPUT -p tcp -j REJECT", "the rule answers TCP flows with an ICMP error"),
    ("-A INPUT -p tcp -m set --match-set blocked src -j DROP", "`-m set --match-set blocked src` matches ipset sets"),
])
def test_each_approximation_is_reported_at_its_column(tmp_path, rule, what):
    path = dump(tmp_path, filter_table(":INPUT DROP [0:0]", rule))
    rc, _, err = run_cli("import", path, "--input-format", "iptables", "--chain", "input")
    assert rc == 2 and "Traceback" not in err
    [(code, message, place)] = errors(err)
    assert code == "E711" and message.startswith(what) and place.startswith(f"{path}:3:"), err
    rc, out, err = run_cli("import", path, "--input-format", "iptables", "--chain", "input", "--approximate")
    assert rc == 0, err
    [approximation] = json.loads(out)["approximations"]
    assert approximation["what"].startswith(what) and approximation["source"] == place


def test_what_decides_nothing_needs_no_approximation(tmp_path):
    """A rule that only counts packets decides nothing, whatever it matches; a limit on a LOG rule
    only thins the log."""
    path = dump(tmp_path, "# Generated by iptables-save v1.8.9\n" + filter_table(
        ":INPUT DROP [0:0]", "-A INPUT -m mark --mark 0x1",
                                       "-A INPUT -p tcp -m limit --limit 5/min -j LOG", "-A INPUT -p tcp -j ACCEPT"))
    rc, out, err = run_cli("import", path, "--input-format", "iptables", "--chain", "input")
    assert rc == 0 and "approximations" not in json.loads(out), err
    assert decided(path, "input", "proto=tcp src.ip=192.0.2.1 dst.ip=192.0.2.2 dst.port=1") == \
        ("allow, log", "filter INPUT #3", "6:1")


NESTED = """# Generated by iptables-save v1.8.9
*filter
:INPUT DROP [0:0]
:a - [0:0]
:b - [0:0]
-A INPUT -i eth0 -p tcp --dport 1 -j DROP
-A INPUT -i eth+ -p tcp --dport 1 -j ACCEPT
-A INPUT ! -i eth+ -p tcp --dport 2 -m comment --comment "twice" -j ACCEPT
-A INPUT -p tcp --dport 3 -m comment --comment "twice" -j ACCEPT
-A INPUT -p udp -j a
-A INPUT -p udp --dport 9 -j ACCEPT
-A a -p udp --dport 5 -g b
-A a -p udp -j DROP
-A b -p udp --sport 7 -j RETURN
-A b -p udp -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize("flow, expected", [
    # eth0 is named, eth7 only falls under eth+, wlan0 under neither
    ("proto=tcp dst.port=1 iface.in=eth0", ("block", "filter INPUT #1", "6:1")),
    ("proto=tcp dst.port=1 iface.in=eth7", ("allow", "filter INPUT #2", "7:1")),
    ("proto=tcp dst.port=1 iface.in=wlan0", ("block", "default", "")),
    ("proto=tcp dst.port=2 iface.in=wlan0", ("allow", "twice (filter INPUT #3)", "8:1")),    # a shared comment
    ("proto=tcp dst.port=2 iface.in=eth0", ("block", "default", "")),
    ("proto=tcp dst.port=3 iface.in=eth0", ("allow", "twice (filter INPUT #4)", "9:1")),
    # INPUT jumps to a, which goes to b: b's RETURN goes back to INPUT after the jump (line 11 does not
    # match port 5), so the policy drops it
    ("proto=udp dst.port=5 src.port=7", ("block", "default", "")),
    ("proto=udp dst.port=5 src.port=8", ("allow", "filter b #2", "15:1")),
    ("proto=udp dst.port=9 src.port=7", ("block", "filter a #2", "13:1")),
])
def test_gotos_within_jumps_and_interface_patterns(tmp_path, flow, expected):
    path = dump(tmp_path, NESTED)
    assert decided(path, "input", f"{flow} src.ip=192.0.2.1 dst.ip=192.0.2.2") == expected


TABLES = """# Generated by iptables-save v1.8.9
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 53 -j NOTRACK
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m conntrack --ctstate INVALID -j DROP
-A PREROUTING -p tcp -j MARK --set-mark 0x1
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080
-A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 3128
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp --dport 25 -j REJECT --reject-with tcp-reset
-A OUTPUT -o eth0 -p udp --sport 1024: -j NFLOG --nflog-group 1
-A OUTPUT -p sctp --dport 2905 -j DROP
COMMIT
"""


@pytest.mark.parametrize("hook, flow, expected", [
    # prerouting: raw (-300), mangle (-150), nat (-100) in that order; MARK changes no verdict
    ("prerouting", "proto=tcp dst.port=80 iface.in=eth0 ct.state=invalid", ("block", "mangle PREROUTING #1", "13:1")),
    ("prerouting", "proto=tcp dst.port=80 iface.in=eth0 ct.state=new", ("allow", "nat PREROUTING #1", "21:1")),
    ("prerouting", "proto=tcp dst.port=81 iface.in=eth0 ct.state=new", ("allow", "default", "")),
    # output: nat OUTPUT (-100) rewrites before filter OUTPUT (0), which decides
    ("output", "proto=tcp dst.port=25", ("reset", "filter OUTPUT #1", "28:1")),
    ("output", "proto=udp src.port=2000 iface.out=eth0", ("allow, log", "filter OUTPUT policy", "27:1")),   # NFLOG
    ("output", "proto=udp src.port=1000 iface.out=eth0", ("allow", "default", "")),       # `--sport 1024:`
    ("output", "proto=sctp dst.port=2905", ("block", "filter OUTPUT #3", "30:1")),
])
def test_the_tables_of_a_hook_in_priority_order(tmp_path, hook, flow, expected):
    path = dump(tmp_path, TABLES)
    assert decided(path, hook, f"{flow} src.ip=192.0.2.1 dst.ip=192.0.2.2", "--approximate") == expected


@pytest.mark.parametrize("hook, where, what", [
    # untracked packets are seen by mangle's state match as untracked, not as the table reads them
    ("prerouting", "5:36", "`-j NOTRACK` leaves the packet untracked, which later chains see in its connection state"),
    # filter OUTPUT sees the redirected destination
    ("output", "22:1", "the rule rewrites the packet's destination address, which the later chains of the hook see"),
])
def test_what_changes_the_packet_for_later_chains_is_an_approximation(tmp_path, hook, where, what):
    path = dump(tmp_path, TABLES)
    rc, _, err = run_cli("import", path, "--chain", hook)
    assert rc == 2 and errors(err) == [("E711", f"{what}, which the rule table cannot hold exactly", f"{path}:{where}")]
    rc, out, _ = run_cli("import", path, "--chain", hook, "--approximate")
    approximations = json.loads(out)["approximations"]
    assert rc == 0 and [(a["source"], a["what"]) for a in approximations] == [(f"{path}:{where}", what)]


def test_a_policy_the_dump_does_not_give_is_an_approximation(tmp_path):
    """Without `:INPUT POLICY` iptables-restore keeps the kernel's policy, which the file does not show."""
    path = dump(tmp_path, "# Generated by ip6tables-save v1.8.9\n"
                + filter_table("-A INPUT -p tcp --dport 22 -j ACCEPT"))
    rc, _, err = run_cli("import", path, "--chain", "input")
    assert rc == 2 and errors(err) == [("E711", "the file does not give the policy of built-in chain INPUT of *filter "
                                        "(iptables-restore keeps the one the kernel has), which the rule table cannot "
                                        "hold exactly", f"{path}:2:1")]
    spec = write_policy(tmp_path, """invariant ssh_open "SSH is open"
    when proto == tcp and dst.port == 22 require action == allow
invariant web_closed "Nothing else is open" when proto == tcp and dst.port == 80 and src.ip in ::/0 and dst.ip in ::/0
    require action == block
""", "spec.dpi")
    rc, out, _ = run_cli("check", path, "--chain", "input", "--approximate", "--spec", spec, "--format", "json")
    results = {r["name"]: (r["status"], r.get("table_status")) for r in json.loads(out)["results"]}
    # the header says ip6tables; SSH is accepted by its rule whatever the policy, port 80 by the guess
    assert rc == 3 and results == {"ssh_open": ("holds", None), "web_closed": ("approximate", "violated")}
