"""What an engine said about each flow of its captures, read from a flows CSV or from
ndpiReader's own result file: the evidence an engine profile is built from (docs/profiles.md,
"Building a profile").

A flows CSV has a header line and one flow per line. Columns read (others are ignored, in any
order): `pcap` (the capture's file name), `l4` (TCP, UDP, ESP or an IP protocol number),
`src_ip`, `src_port`, `dst_ip`, `dst_port` (the flow's first packet; a flow without ports
has 0), `label` (the engine's name; empty or `Unknown` when it did not classify the flow) and
`confidence` (how: `DPI`, `Match by port`, `Match by IP`, `Unknown`, ...); and, when present,
`version` (the engine release that ran) and `pcap_blob` (which file of that name: captures
change between releases). nDPI's regression-suite CSVs and nfstream's are of this kind.

An ndpiReader result file is what `ndpiReader -i CAPTURE -w FILE -v 2` writes: one line per
flow, `N<TAB>TCP a:p <-> b:q [proto: 7.126/HTTP.Google][...][Confidence: DPI]...`.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .diagnostics import Diagnostic, DiagnosticError
from .schema import PROTOCOLS

REQUIRED_COLUMNS = ("pcap", "l4", "src_ip", "src_port", "dst_ip", "dst_port", "label", "confidence")
CODE = "E440"


@dataclass(frozen=True)
class EngineFlow:
    """One flow and the engine's label for it; `a` sent the first packet."""

    release: str              # the engine release that labelled it
    capture: str              # the capture's file name
    capture_version: str      # which file of that name (a content hash), "" when not known
    proto: int | None         # the IP protocol number; None for a name this tool does not know
    proto_text: str           # as the engine wrote it
    a: tuple[str, int]
    b: tuple[str, int]
    label: str                # the engine's name; "" when not classified
    confidence: str
    where: str                # file:line

    def endpoints(self) -> str:
        def show(ip: str, port: int) -> str:
            return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        return f"{show(*self.a)} <-> {show(*self.b)}" if self.a[1] or self.b[1] else f"{self.a[0]} <-> {self.b[0]}"

    def key(self) -> tuple:
        """The same flow of the same capture file, whichever side sent first."""
        return (self.capture, self.capture_version, self.proto_text, tuple(sorted((self.a, self.b))))


def protocol_number(text: str) -> int | None:
    name = text.strip().lower()
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    return int(name) if name.isdigit() and int(name) <= 255 else None


def _error(where: str, message: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic(CODE, message, None, location_text=where, help=help)])


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _error(str(path), f"flows file `{path}` is not valid UTF-8", "save the file as UTF-8") from None
    except OSError as exc:
        raise _error(str(path), f"cannot read flows file `{path}`: {(exc.strerror or str(exc)).lower()}",
                     "give a flows CSV or an ndpiReader result file (`-w FILE`)") from None


def read_flows(path: Path, release: str | None = None) -> list[EngineFlow]:
    """A flows CSV, or an ndpiReader result file (any other suffix than `.csv`), whose capture
    is the file's name less `.out`. `release` names the run where the file does not."""
    text = _read_text(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(text, str(path), release)
    capture = path.name[:-4] if path.name.endswith(".out") else path.name
    return read_ndpi_reader(text, str(path), capture, release or "ndpiReader")


def _columns(line: str) -> list[int]:
    """The 1-based character column where each field of a CSV line starts."""
    starts, quoted = [1], False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            starts.append(i + 2)
    return starts


def _read_csv(text: str, where: str, release: str | None) -> list[EngineFlow]:
    lines = text.splitlines()
    if not lines:
        raise _error(where, "the flows CSV is empty", "the first line names the columns: " + ", ".join(REQUIRED_COLUMNS))
    header = next(csv.reader([lines[0]]))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise _error(f"{where}:1:1", f"the flows CSV has no column {', '.join(f'`{m}`' for m in missing)}",
                     "columns read: " + ", ".join(REQUIRED_COLUMNS) + " (and version, pcap_blob when present)")
    index = {name: i for i, name in enumerate(header)}
    flows, problems = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = next(csv.reader([line]))
        at = _columns(line)
        if len(fields) != len(header):
            problems.append(Diagnostic(CODE, f"{len(fields)} fields where the header has {len(header)}", None,
                                       location_text=f"{where}:{number}:1"))
            continue
        row = dict(zip(header, fields))
        ports = []
        for column in ("src_port", "dst_port"):
            value = row[column].strip() or "0"
            if not value.isdigit() or int(value) > 65535:
                problems.append(Diagnostic(CODE, f"`{row[column]}` is not a port", None,
                                           location_text=f"{where}:{number}:{at[index[column]]}",
                                           help="a port 0..65535 (0 for a flow without ports)"))
                break
            ports.append(int(value))
        else:
            label = "" if row["label"] == "Unknown" else row["label"]
            flows.append(EngineFlow(release or row.get("version") or Path(where).stem, row["pcap"],
                                    row.get("pcap_blob", ""), protocol_number(row["l4"]), row["l4"],
                                    (row["src_ip"], ports[0]), (row["dst_ip"], ports[1]), label,
                                    row["confidence"], f"{where}:{number}"))
    if problems:
        raise DiagnosticError(problems)
    return flows


# `  12	TCP 10.0.0.1:5000 <-> [2001:db8::1]:443 [proto: 91.126/TLS.Google][...]`; ports absent for ESP, ICMP.
_FLOW = re.compile(r"^\s*\d+\s+(?P<l4>\S+)\s+(?P<a>\S+)\s+(?:<->|->)\s+(?P<b>\S+)\s+(?P<rest>\[.*)$")
_PROTO = re.compile(r"\[proto: (?:[\d.]+/)?(?P<label>[^\]]*)\]")
_CONFIDENCE = re.compile(r"\[Confidence: (?P<confidence>[^\]]*)\]")
_ENDPOINT = re.compile(r"^(?:\[(?P<ip6>[^\]]+)\]|(?P<ip>[^\s:]+(?::[^\s:]*)*?)):(?P<port>\d+)$")


def _endpoint(text: str) -> tuple[str, int] | None:
    found = _ENDPOINT.match(text)
    if found is None:
        return (text, 0) if ":" not in text or text.count(":") > 1 else None
    return found.group("ip6") or found.group("ip"), int(found.group("port"))


def read_ndpi_reader(text: str, where: str, capture: str, release: str) -> list[EngineFlow]:
    """The flow lines of one ndpiReader result file (`-w`); other lines are the statistics."""
    flows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        found = _FLOW.match(line)
        if found is None or "[proto:" not in line:
            continue
        a, b = _endpoint(found.group("a")), _endpoint(found.group("b"))
        proto, confidence = _PROTO.search(line), _CONFIDENCE.search(line)
        if a is None or b is None or proto is None:
            problems.append(Diagnostic(CODE, "cannot read this flow line", None, location_text=f"{where}:{number}:1",
                                       help="lines of `ndpiReader -w FILE -v 2` are read"))
            continue
        label = proto.group("label")
        flows.append(EngineFlow(release, capture, "", protocol_number(found.group("l4")), found.group("l4"), a, b,
                                "" if label == "Unknown" else label,
                                confidence.group("confidence") if confidence else "Unknown", f"{where}:{number}"))
    if problems:
        raise DiagnosticError(problems)
    return flows
