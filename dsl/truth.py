"""Truth files: the application really carried by the flows of each capture, written down by
hand with the reason (YAML, safe-loaded; format in docs/profiles.md, "The truth file").

An engine profile is built from what an engine said about flows whose real application is
known; that knowledge must not come from an engine, so it is kept apart, reviewed, and says
how each application was decided. A flow that no entry claims has no known truth and is left
out of the evidence, never guessed from its label.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from .catalogue import Catalogue
from .diagnostics import Diagnostic, DiagnosticError
from .flowcsv import EngineFlow
from .intervals import IntervalSet
from .profiles import FlowValueReader
from .yamlnodes import Codes, compose, read_file

TRUTH_CODES = Codes(unreadable="E441", missing="E442", unknown_key="E443", wrong_type="E444", duplicate="E446")
UNKNOWN_APP, AMBIGUOUS = "E445", "E447"
_TOP = ("version", "captures")
_TOP_OPTIONAL = ("not_decided",)
_CAPTURE_OPTIONAL = ("flows", "leave_out")
_ROW = ("proto", "app", "why")
_ROW_OPTIONAL = ("port", "address", "tls")
_LEAVE = ("proto", "why")
_LEAVE_OPTIONAL = ("port", "address")


@dataclass(frozen=True)
class TruthRow:
    """Flows of one capture: on `proto`, with a server port in `ports` and a server address in
    `addresses` (each when given), carrying `app`. `app` None: left out on purpose."""

    capture: str
    proto: IntervalSet
    ports: IntervalSet | None
    addresses: frozenset | None      # ipaddress objects
    app: str | None
    tls: bool | None
    why: str
    location: str                    # file:line:col

    @property
    def specificity(self) -> int:
        """An address and a port say more than either, and either more than the protocol alone."""
        return 2 * (self.addresses is not None) + (self.ports is not None)

    def server(self, flow: EngineFlow) -> tuple[str, int] | None:
        """The flow's server side if this row claims the flow, else None. The side is the one
        whose address or port the row names; the first packet's destination when it names none."""
        if flow.proto is None or flow.proto not in self.proto:
            return None
        sides = [side for side in (flow.b, flow.a)
                 if (self.ports is None or side[1] in self.ports)
                 and (self.addresses is None or _address(side[0]) in self.addresses)]
        return sides[0] if sides else None


@dataclass(frozen=True)
class Truth:
    rows: tuple[TruthRow, ...]
    not_decided: tuple[tuple[str, str], ...]     # capture -> why it has no entries
    source: str

    def claim(self, flow: EngineFlow) -> tuple[TruthRow, tuple[str, int]] | None:
        """The row that says what `flow` is (the most specific that claims it) and the flow's
        server side; None when no row claims it. Two rows claiming it equally are an error."""
        found = [(row, side) for row in self.rows if row.capture == flow.capture
                 for side in [row.server(flow)] if side is not None]
        if not found:
            return None
        best = max(row.specificity for row, _ in found)
        top = [(row, side) for row, side in found if row.specificity == best]
        left_out = [t for t in top if t[0].app is None]
        if left_out:
            return left_out[0]
        if len({(row.app, row.tls) for row, _ in top}) > 1:
            raise DiagnosticError([Diagnostic(
                AMBIGUOUS, f"{flow.capture}: {flow.proto_text.lower()} {flow.endpoints()} is claimed by "
                f"{len(top)} entries that say different things", None, location_text=top[1][0].location,
                help=f"the other is at {top[0][0].location}; name the server's address or port so that one is "
                "more specific")])
        return top[0]


def merge(truths: list[Truth]) -> Truth:
    """Several truth files read as one (a capture may have entries in more than one)."""
    return Truth(tuple(r for t in truths for r in t.rows), tuple(n for t in truths for n in t.not_decided),
                 ", ".join(t.source for t in truths))


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def read_truth(path: Path, catalogue: Catalogue) -> Truth:
    where = str(path)
    text = read_file(path, where, "truth file", TRUTH_CODES, "give the truth file's path (docs/profiles.md)")
    return parse_truth(text, where, catalogue)


def parse_truth(text: str, where: str, catalogue: Catalogue) -> Truth:
    """Raises DiagnosticError with every problem found."""
    return _Reader(where, catalogue).truth(compose(text, where, TRUTH_CODES))


class _Reader(FlowValueReader):
    unknown_app = UNKNOWN_APP

    def __init__(self, where: str, catalogue: Catalogue):
        super().__init__(where, TRUTH_CODES, catalogue)

    def truth(self, root) -> Truth:
        if root is None:
            raise DiagnosticError([Diagnostic("E442", "the truth file is empty", None, location_text=self.where,
                                              help="a truth file needs `version: 1` and `captures`")])
        top = self.mapping(root, "the truth file", _TOP, _TOP_OPTIONAL)
        self.check_version(top, "E441", "truth file")
        rows: list[TruthRow] = []
        if "captures" in top:
            for capture, (_, node) in self.mapping(top["captures"][1], "`captures`").items():
                parts = self.mapping(node, f"capture `{capture}`", (), _CAPTURE_OPTIONAL)
                if not parts:
                    self.fail("E442", node, f"capture `{capture}` has neither `flows` nor `leave_out`")
                for key, with_app in (("flows", True), ("leave_out", False)):
                    if key in parts:
                        for item in self.sequence(parts[key][1], f"`{capture}: {key}`"):
                            row = self.row(item, capture, with_app)
                            if row is not None:
                                rows.append(row)
        not_decided = ()
        if "not_decided" in top:
            not_decided = tuple((name, self.string(node, f"why `{name}` is not decided") or "")
                                for name, (_, node) in self.mapping(top["not_decided"][1], "`not_decided`").items())
        self.raise_errors()
        return Truth(tuple(rows), not_decided, self.where)

    def row(self, node, capture: str, with_app: bool) -> TruthRow | None:
        what = f"an entry of `{capture}`"
        keys = self.mapping(node, what, _ROW if with_app else _LEAVE, _ROW_OPTIONAL if with_app else _LEAVE_OPTIONAL)
        if not all(k in keys for k in (_ROW if with_app else _LEAVE)):
            return None
        errors = len(self.errors)
        proto = self.protocols(keys["proto"][1])
        ports = self.ports(keys["port"][1]) if "port" in keys else None
        addresses = self.addresses(keys["address"][1]) if "address" in keys else None
        app = self.app_name(keys["app"][1], "application") if with_app else None
        tls = None
        if "tls" in keys:
            value = self.boolean(keys["tls"][1])
            tls = None if value is None else bool(value.min())
        why = self.string(keys["why"][1], "`why`")
        if len(self.errors) > errors:
            return None
        return TruthRow(capture, proto, ports, addresses, app, tls, why, self.at(node))

    def addresses(self, node) -> frozenset | None:
        out = set()
        for item in self._items(node):
            value = _address(str(self.value(item)))
            if value is None:
                self.fail(self.codes.wrong_type, item, f"{self.shown(item)} is not an IP address",
                          help="the server's address, IPv4 or IPv6, without a port")
                return None
            out.add(value)
        return frozenset(out)
