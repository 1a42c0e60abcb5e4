"""The evidence of ndpi-4.2 is what the real engine says: Debian's ndpiReader 4.2 (libndpi-bin,
installed by .ci/run) run on a sample of the suite's captures and on every fixture the profile
is built from gives each flow the label and confidence the evidence CSVs record."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dpipolicy.dsl.flowcsv import read_flows

from helpers import FIXTURES, ROOT

SUITE = FIXTURES / "ndpi-suite"
# The VPN, mail, messaging and p2p captures whose labels the profiles turn on.
SAMPLE = ("openvpn.pcap", "openvpn_obfuscated.pcapng", "openvpn-tlscrypt.pcap", "ipsec_isakmp_esp.pcap",
          "ah.pcapng", "pop3.pcap", "pop3_stls.pcap", "imaps.pcap", "imap-starttls.pcap", "smtp-starttls.pcap",
          "emotet.pcap", "telegram.pcap", "whatsapp.pcap", "tor.pcap", "bets.pcapng", "bittorrent_tcp_miss.pcapng",
          "bt-http.pcapng", "tunnelbear.pcap", "gnutella.pcap")
FIXTURE_CAPTURES = sorted(p for p in (FIXTURES / "pcaps").iterdir() if p.suffix in (".pcap", ".pcapng"))


def ndpi_reader() -> str:
    found = shutil.which("ndpiReader")
    assert found, "ndpiReader is not installed: apt-get install libndpi-bin (.ci/run does)"
    return found


def test_the_binary_is_ndpi_4_2():
    banner = subprocess.run([ndpi_reader(), "-h"], capture_output=True, text=True, timeout=60).stdout
    assert banner.startswith("Welcome to nDPI 4.2.0"), banner[:80]


def run(capture: Path, tmp_path: Path) -> dict:
    """What ndpiReader 4.2 says of each flow (`-w`, as the suite's runs), by unordered endpoints."""
    out = tmp_path / f"{capture.name}.out"
    subprocess.run([ndpi_reader(), "-i", str(capture), "-w", str(out), "-v", "2", "-q"], check=True,
                   capture_output=True, timeout=300)
    return {f.key()[2:]: (f.label, f.confidence) for f in read_flows(out, "ndpiReader")}


def recorded(path: Path, capture: str) -> dict:
    return {f.key()[2:]: (f.label, f.confidence) for f in read_flows(path) if f.capture == capture}


@pytest.mark.parametrize("capture", SAMPLE)
def test_the_suite_csv_is_what_ndpireader_4_2_says(capture, tmp_path):
    assert run(SUITE / "pcap" / capture, tmp_path) == recorded(SUITE / "flows" / "debian-4.2-on-dev-pcaps.csv", capture)


@pytest.mark.parametrize("capture", FIXTURE_CAPTURES, ids=[p.name for p in FIXTURE_CAPTURES])
def test_the_fixture_evidence_is_what_ndpireader_4_2_says(capture, tmp_path):
    evidence = ROOT / "profiles" / "evidence" / "fixtures-debian-4.2.csv"
    assert run(capture, tmp_path) == recorded(evidence, capture.name)
