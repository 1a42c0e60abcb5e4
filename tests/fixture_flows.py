"""The real application of every flow in shared/fixtures/pcaps/labels.csv, written down by hand.

A DPI engine's label is what we test; the real application is the ground truth we test it
against, so it must not come from an engine. It follows from what each capture is (its
source and README line) and the server's port, one group per capture, protocol and server
port. A flow's server port is whichever of its two ports the group names: some captures start
with the server's packet, so labels.csv then lists the server as the source.

`tls` is whether the session is encrypted with TLS (or upgraded with STARTTLS), as the
language's `tls` field means it; None where that does not apply or is not known.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

from helpers import FIXTURES

PCAPS = FIXTURES / "pcaps"
LABELS_CSV = PCAPS / "labels.csv"
VERSIONS = {"ndpi-4.2": "label_ndpi_4.2", "ndpi-5.0": "label_ndpi_5.0"}


@dataclass(frozen=True)
class Group:
    file: str
    proto: str
    server_port: int
    app: str
    tls: bool | None
    reason: str
    server_ip: str | None = None      # only where one capture holds two applications on one port


GROUPS = (
    Group("ndpi_bittorrent_utp.pcap", "udp", 40959, "bittorrent", None,
          "nDPI's uTP (BitTorrent over UDP) test capture; peers use arbitrary ports"),
    Group("ndpi_bittorrent_utp.pcap", "udp", 33333, "bittorrent", None,
          "same capture: a short uTP exchange between two local peers"),
    Group("ndpi_dns.pcap", "udp", 53, "dns", False, "DNS queries and answers on port 53"),
    Group("ndpi_http.pcapng", "tcp", 80, "http", False, "plain HTTP GET to google.com on port 80"),
    Group("ndpi_imap.pcap", "tcp", 143, "imap", False, "IMAP with a cleartext LOGIN on port 143"),
    Group("ndpi_imaps.pcap", "tcp", 993, "imaps", True,
          "IMAP over implicit TLS on 993 (server names mail.ntop.org, imap.asia.secureserver.net)"),
    Group("ndpi_ipsec_isakmp_esp.pcap", "udp", 500, "ipsec", None, "IKE key exchange on port 500"),
    Group("ndpi_ipsec_isakmp_esp.pcap", "udp", 4500, "ipsec", None, "ESP in UDP (NAT traversal) on port 4500"),
    Group("ndpi_openvpn.pcap", "udp", 1194, "openvpn", None, "nDPI's OpenVPN capture: UDP on the OpenVPN port"),
    Group("ndpi_openvpn.pcap", "udp", 13680, "openvpn", None, "same capture: OpenVPN servers on UDP 13680"),
    Group("ndpi_openvpn.pcap", "udp", 1234, "openvpn", None, "same capture: a NordVPN OpenVPN server on UDP 1234"),
    Group("ndpi_openvpn.pcap", "udp", 443, "openvpn", None, "same capture: OpenVPN over UDP 443 (three flows)"),
    Group("ndpi_openvpn.pcap", "tcp", 1194, "openvpn", None, "same capture: OpenVPN over TCP 1194"),
    Group("ndpi_openvpn.pcap", "tcp", 443, "openvpn", None, "same capture: OpenVPN over TCP 443 (two flows)"),
    Group("ndpi_openvpn_nohmac_tcp.pcapng", "tcp", 1194, "openvpn", None,
          "OpenVPN over TCP 1194 without an HMAC on the control channel"),
    Group("ndpi_openvpn_obfuscated.pcapng", "udp", 1214, "openvpn", None,
          "OpenVPN through a NordVPN obfuscated server (scrambled packets) on UDP 1214"),
    Group("ndpi_openvpn_obfuscated.pcapng", "tcp", 443, "openvpn", None,
          "same capture: obfuscated OpenVPN on TCP 443 (the capture starts with the server's packet)"),
    Group("ndpi_openvpn_obfuscated.pcapng", "tcp", 465, "openvpn", None,
          "same capture: obfuscated OpenVPN on TCP 465 to a NordVPN address"),
    Group("ndpi_pop3.pcap", "tcp", 110, "pop3", False, "POP3 with cleartext USER/PASS on port 110"),
    Group("ndpi_smtp-starttls.pcap", "tcp", 25, "smtp", True,
          "SMTP on 25 upgraded with STARTTLS (IPv4 to Google's MX, IPv6 to a Dovecot server)"),
    Group("ndpi_smtp.pcap", "tcp", 25, "smtp", False, "SMTP mail transfer on 25 without STARTTLS"),
    Group("ndpi_smtps.pcapng", "tcp", 465, "smtps", True, "SMTP over implicit TLS on 465"),
    Group("ndpi_tls-appdata.pcap", "tcp", 443, "facebook", True,
          "TLS application data from 179.60.195.173, a Facebook server (nDPI's address list: Facebook)",
          server_ip="179.60.195.173"),
    Group("ndpi_tls-appdata.pcap", "tcp", 443, "twitch", True,
          "TLS application data to 52.223.198.7, a Twitch server (nDPI's address list: Twitch)",
          server_ip="52.223.198.7"),
    Group("ndpi_wireguard.pcap", "udp", 51820, "wireguard", None, "WireGuard handshakes and data on 51820"),
    Group("openvpn_tcp_on_587.pcap", "tcp", 587, "openvpn", None,
          "ndpi_openvpn_nohmac_tcp.pcapng with port 1194 rewritten to 587"),
    Group("openvpn_tcp_on_993.pcap", "tcp", 993, "openvpn", None,
          "ndpi_openvpn_nohmac_tcp.pcapng with port 1194 rewritten to 993"),
    Group("suricata-verify_smtp-submission-auth.pcap", "tcp", 587, "submission", False,
          "client mail submission on 587 with AUTH LOGIN and no STARTTLS"),
    Group("suricata-verify_smtps-465.pcap", "tcp", 465, "smtps", True, "SMTP over implicit TLS on 465"),
    Group("zeek_smtp-starttls.pcap", "tcp", 25, "smtp", True, "SMTP on 25 to Google upgraded with STARTTLS"),
)

_PROTO_NUMBERS = {"6": "tcp", "17": "udp"}


@dataclass(frozen=True)
class FixtureFlow:
    row: dict[str, str]
    group: Group

    @property
    def labels(self) -> dict[str, str]:
        """nDPI's label per profile name; empty means not detected."""
        return {profile: self.row[column] for profile, column in VERSIONS.items()}

    def describe(self) -> str:
        r = self.row
        return f"{r['file']}: {self.group.proto} {r['src_ip']}:{r['src_port']} -> {r['dst_ip']}:{r['dst_port']}"


def group_of(row: dict[str, str]) -> list[Group]:
    """Every group that claims the row (the test asks for exactly one)."""
    ports = {int(row["src_port"]), int(row["dst_port"])}
    addresses = {row["src_ip"], row["dst_ip"]}
    return [g for g in GROUPS
            if g.file == row["file"] and g.proto == _PROTO_NUMBERS.get(row["ip_proto"])
            and g.server_port in ports and (g.server_ip is None or g.server_ip in addresses)]


def fixture_flows() -> list[FixtureFlow]:
    with LABELS_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        groups = group_of(row)
        assert len(groups) == 1, f"{row}: claimed by {len(groups)} groups"
        out.append(FixtureFlow(row, groups[0]))
    return out
