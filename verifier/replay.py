"""`replay`: what a policy does to each flow of a packet capture, as the DPI engine labels it.

nfstream reads the capture and labels each flow with the nDPI it bundles (5.0); the profile's
`ndpi_names` turn nDPI's names into catalogue applications. The decision is `explain`'s: the
capture pins the 5-tuple, the label and (when a TLS handshake was seen) `tls`; everything a
capture cannot tell (plan, add-ons, usage, time, `smtp.auth`, ...) stays open unless assumed,
and where it matters the flow lists its possible outcomes.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dpipolicy.dsl import inputfile
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.profiles import Profile, load_profile
from dpipolicy.dsl.schema import PROTOCOL_NAMES, Schema
from dpipolicy.dsl.values import parse_ip

from .explain import Explanation, explain, explanation_json, parse_flow
from .labels import unobservable_rules

INSTALL_HINT = "pip install 'dpipolicy[replay]'"
NAMES_WHEN_NONE = "ndpi-5.0"     # nfstream bundles nDPI 5.0, so its names are the ones it reports
CAPTURE_FIELDS = ("proto", "src.ip", "src.port", "dst.ip", "dst.port")
# nDPI 5.0 reports a TLS (or QUIC) ClientHello as a JA4 fingerprint: `t13d1516h2_...`.
_JA4 = re.compile(r"^[tq]\d\d[di]\d{4}")


@dataclass(frozen=True)
class CaptureFlow:
    """One flow as nfstream reports it: the direction is that of the flow's first packet."""
    proto: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ndpi_label: str
    tls_handshake: bool

    def endpoints(self) -> tuple[str, str]:
        def show(ip: str, port: int) -> str:
            return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        return show(self.src_ip, self.src_port), show(self.dst_ip, self.dst_port)

    @property
    def proto_name(self) -> str:
        return PROTOCOL_NAMES.get(self.proto, str(self.proto))


@dataclass(frozen=True)
class ReplayedFlow:
    flow: CaptureFlow
    label: str | None            # the catalogue application; None when the profile has no name for it
    explanation: Explanation

    @property
    def determined(self) -> bool:
        return len(self.explanation.outcomes) == 1


@dataclass(frozen=True)
class Replay:
    capture: str
    profile: Profile
    names_from: str              # the profile whose ndpi_names were used
    reader: str                  # "nfstream 6.6.0"
    assumed: str                 # the --assume text
    flows: tuple[ReplayedFlow, ...]

    def summary(self) -> tuple[Counter, int]:
        """Flows per action (of those whose outcome the capture decides), and how many it does not."""
        actions = Counter(f.explanation.outcomes[0][0].kind for f in self.flows if f.determined)
        return actions, sum(not f.determined for f in self.flows)


def _nfstream():
    """Imported late: nfstream is an optional extra, and only `replay` needs it."""
    try:
        import nfstream
    except Exception as exc:   # not installed, or its native engine fails to load
        raise DiagnosticError([Diagnostic(
            "E330", "`replay` needs nfstream, which is not installed or does not load", None,
            location_text="replay", notes=(f"importing nfstream failed: {type(exc).__name__}: {exc}",),
            help=INSTALL_HINT)]) from None
    return nfstream


def read_capture(path: Path) -> tuple[list[CaptureFlow], str]:
    """The flows of a pcap or pcapng file, in the order they started, and the reader's name."""
    nfstream = _nfstream()
    if (problem := inputfile.problem(path)) is not None:
        raise DiagnosticError([Diagnostic("E010", f"cannot read `{path}`: {problem}", None, location_text=str(path))])
    try:
        raw = sorted(nfstream.NFStreamer(source=str(path)), key=lambda f: f.bidirectional_first_seen_ms)
    except Exception as exc:   # nfstream raises plain exceptions for files it cannot parse
        raise DiagnosticError([Diagnostic("E331", f"cannot read `{path}` as a packet capture", None,
                                          location_text=str(path), notes=(f"nfstream: {exc}",),
                                          help="give a pcap or pcapng file")]) from None
    flows = [CaptureFlow(f.protocol, f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.application_name,
                         bool(_JA4.match(f.client_fingerprint or ""))) for f in raw]
    return flows, f"nfstream {getattr(nfstream, '__version__', '?')}"


def parse_assumptions(schema: Schema, text: str) -> dict[str, int]:
    """`--assume` in `explain --flow`'s syntax, for the fields a capture cannot tell."""
    try:
        pinned = parse_flow(schema, text)
    except DiagnosticError as exc:
        raise DiagnosticError(dataclasses.replace(d, location_text=d.location_text.replace("--flow", "--assume"))
                              for d in exc.diagnostics) from None
    given = [f for f in CAPTURE_FIELDS if f in pinned]
    if given:
        raise DiagnosticError([Diagnostic("E310", f"`{given[0]}` comes from the capture; it cannot be assumed",
                                          None, location_text="--assume",
                                          help="assume what a capture cannot tell: subscriber.plan, "
                                               "subscriber.addons, subscriber.usage, time.hour, smtp.auth, ...")])
    return pinned


def replay(loaded, capture: Path, profile: Profile, assume: str = "") -> Replay:
    """Decide every flow of the capture on the loaded policy's table, with `assume` (in
    `explain --flow`'s syntax) filling in fields the capture cannot tell."""
    schema = loaded.table.schema
    unobservable_rules(loaded.table, profile)      # as `check` does: such a rule could not be enforced
    assumed = parse_assumptions(schema, assume)
    names = profile if profile.ndpi_names else load_profile(NAMES_WHEN_NONE, schema.catalogue)
    apps = schema.member_index("app")               # in the table as compiled, a rule's `app` is the label
    flows, reader = read_capture(capture)
    out = []
    for flow in flows:
        label = names.catalogue_label(flow.ndpi_label)
        pinned = dict(assumed)
        pinned.update({"proto": flow.proto, "src.ip": parse_ip(flow.src_ip)[0], "src.port": flow.src_port,
                       "dst.ip": parse_ip(flow.dst_ip)[0], "dst.port": flow.dst_port})
        if label in apps:
            pinned["app"] = apps[label]
        if flow.tls_handshake:
            pinned["tls"] = 1
        out.append(ReplayedFlow(flow, label, explain(loaded.table, pinned)))
    return Replay(str(capture), profile, names.name, reader, assume.strip(), tuple(out))


# ----- rendering ----------------------------------------------------------------------------
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _outcome_text(action, rule: str, location: str) -> str:
    return f"{action.text()} (rule {rule}{', ' + location if location else ''})"


def replay_text(r: Replay) -> str:
    lines = [f"capture {r.capture}: {_count(len(r.flows), 'flow')}, read by {r.reader} (nDPI 5.0); "
             f"profile {r.profile.name}, nDPI names from {r.names_from}"]
    if r.profile.ndpi_names and r.profile.name != NAMES_WHEN_NONE:
        lines.append(f"note: the labels are nDPI 5.0's; profile {r.profile.name} only maps their names")
    if r.assumed:
        lines.append(f"assuming {r.assumed}")
    for i, f in enumerate(r.flows, start=1):
        src, dst = f.flow.endpoints()
        app = f.label if f.label is not None else "? (no catalogue name for it: app left open)"
        app += ", tls" if f.flow.tls_handshake else ""
        lines.append(f"{i:>3}  {f.flow.proto_name} {src} -> {dst}  nDPI {f.flow.ndpi_label or 'Unknown'} -> app {app}")
        e = f.explanation
        if f.determined:
            lines.append("     " + _outcome_text(*e.outcomes[0][:3]))
            continue
        lines.append("     depends on " + ", ".join(e.deciding_fields) + ":")
        for action, rule, location, conditions in e.outcomes:
            shown = " | ".join(conditions[:3]) + (f" | ... {len(conditions) - 3} more" if len(conditions) > 3 else "")
            lines.append(f"       {_outcome_text(action, rule, location)} when {shown}")
    actions, open_ = r.summary()
    parts = [f"{n} {kind}" for kind, n in sorted(actions.items())]
    if open_:
        parts.append(f"{open_} {'depends' if open_ == 1 else 'depend'} on fields the capture cannot tell")
    lines.append(f"summary: {_count(len(r.flows), 'flow')}: " + (", ".join(parts) if parts else "none"))
    return "\n".join(lines)


def replay_json(schema: Schema, r: Replay) -> dict:
    actions, open_ = r.summary()
    flows = []
    for f in r.flows:
        src, dst = f.flow.endpoints()
        detail = explanation_json(schema, f.explanation)
        flows.append({"proto": f.flow.proto_name, "src": src, "dst": dst, "ndpi_label": f.flow.ndpi_label,
                      "app": f.label, "tls": True if f.flow.tls_handshake else None,
                      **{k: detail[k] for k in ("determined", "outcomes", "deciding_fields", "unpinned")}})
    return {"capture": r.capture, "reader": r.reader, "profile": r.profile.name, "ndpi_names": r.names_from,
            "assumed": r.assumed, "flows": flows, "summary": {"flows": len(r.flows), "actions": dict(sorted(actions.items())),
                                        "undetermined": open_}}
