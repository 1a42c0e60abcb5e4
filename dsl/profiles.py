"""Engine profiles: which labels a DPI engine may give each real application, and which fields
it cannot observe (YAML, safe-loaded; format in docs/profiles.md).

A profile is a claim about an engine, so every entry carries its evidence, and every problem
is reported with the line and column of the YAML node (codes E400-E409).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import yaml

from . import inputfile
from .catalogue import Catalogue
from .diagnostics import Diagnostic, DiagnosticError, did_you_mean
from .intervals import IntervalSet
from .schema import CT_STATE, ICMP_TYPE, INTERFACE_FIELDS, PROTOCOLS
from .yamlnodes import Codes, NodeReader, compose

SHIPPED = ("exact", "ndpi-4.2", "ndpi-4.4", "ndpi-4.6", "ndpi-4.8", "ndpi-4.10", "ndpi-5.0")
HOWS = ("detected", "other", "port", "undetected")
WHEN_FIELDS = ("proto", "dst.port", "tls")
# Fields read from the packets; the rest (subscriber.*, network.congested, time.*) come from elsewhere.
TRAFFIC_FIELDS = ("proto", "src.ip", "src.port", "dst.ip", "dst.port", "direction", "tls", "smtp.auth", "tls.sni",
                  "flow.tethered")
# Fields the firewall itself reads (language.md, "Firewall fields"): no engine profile changes them.
FIREWALL_FIELDS = (CT_STATE, ICMP_TYPE) + INTERFACE_FIELDS
_TOP_REQUIRED = ("version", "name")
_TOP_OPTIONAL = ("engine", "description", "unobservable", "ndpi_names", "labels", "tethering")
_ENTRY_REQUIRED = ("label", "how", "evidence")
_ENTRY_OPTIONAL = ("when", "note")
# How the engine's detection of tethering may be wrong: `missed`, a tethered flow taken for the
# phone's own; `flagged`, the phone's own flow taken for a tethered one.
TETHERING_MISTAKES = ("missed", "flagged")
_MISTAKE_OPTIONAL = ("when", "note")
# nDPI's masters that carry another service, named after the dot: `TLS.YouTube`, `DTLS.Zoom`, `QUIC.GMail`.
CARRIERS = ("TLS", "DTLS", "QUIC")


class _OnFlows:
    """An entry about the flows satisfying its `when` (field -> values, schema encoding)."""

    __slots__ = ()

    def condition(self) -> dict[str, IntervalSet]:
        return dict(self.when)

    def applies(self, flow: Mapping[str, int]) -> bool:
        """Can the entry apply to this flow? A field the flow leaves out may take any value."""
        return all(name not in flow or flow[name] in values for name, values in self.when)


@dataclass(frozen=True, slots=True)
class LabelEntry(_OnFlows):
    """One label the engine may give a real application, on flows satisfying `when`."""

    label: str
    how: str                                      # detected | other | port | undetected
    when: tuple[tuple[str, IntervalSet], ...]     # field -> values, schema encoding; () = any flow
    evidence: str
    location: str                                 # file:line:col of the entry
    note: str = ""


@dataclass(frozen=True, slots=True)
class TetheringEntry(_OnFlows):
    """A mistake the engine may make detecting tethering, on flows satisfying `when`."""

    mistake: str                                  # missed | flagged
    when: tuple[tuple[str, IntervalSet], ...]     # as LabelEntry.when; () = any flow
    evidence: str
    location: str

    @property
    def truth(self) -> int:
        """The value of `flow.tethered` on the flows it is about (1 for a miss)."""
        return int(self.mistake == "missed")


@dataclass(frozen=True)
class Profile:
    name: str
    engine: str
    description: str
    source: str                                   # the file, as shown in messages
    unobservable: frozenset[str]
    ndpi_names: tuple[tuple[str, str], ...]       # nDPI protocol name -> catalogue application
    labels: tuple[tuple[str, tuple[LabelEntry, ...]], ...]   # real application -> its labels
    tethering: tuple[TetheringEntry, ...] = ()     # no entry: tethering is detected exactly

    @property
    def is_exact(self) -> bool:
        return not self.labels and not self.tethering

    def entries(self, app: str) -> tuple[LabelEntry, ...]:
        """The labels `app` may get; an application not listed is always labelled as itself."""
        for name, entries in self.labels:
            if name == app:
                return entries
        return (LabelEntry(app, "detected", (), "not listed: labelled as itself", self.source),)

    def possible_labels(self, app: str, flow: Mapping[str, int] | None = None) -> tuple[str, ...]:
        """The labels `app` may get on `flow` (fields it leaves out may take any value); where
        no entry applies, its own."""
        labels = tuple(dict.fromkeys(e.label for e in self.entries(app) if e.applies(flow or {})))
        return labels or (app,)

    def possible_detections(self, tethered: int, flow: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """What the engine may say of a flow whose `flow.tethered` is `tethered` (fields `flow`
        leaves out may take any value): the truth, and its opposite where a mistake applies."""
        wrong = any(e.truth == tethered and e.applies(flow or {}) for e in self.tethering)
        return (tethered, 1 - tethered) if wrong else (tethered,)

    def catalogue_label(self, ndpi_name: str) -> str | None:
        """An nDPI label as a catalogue name: the full name (`TLS.ntop`); for TLS, DTLS and QUIC, the
        service inside (`QUIC.YouTube` is YouTube); else its master protocol (`TLS`). None when
        the profile does not know it. Empty means not detected."""
        names = dict(self.ndpi_names)
        name = ndpi_name or "Unknown"
        master, _, inside = name.partition(".")
        if name in names:
            return names[name]
        if master in CARRIERS and inside in names:
            return names[inside]
        return names.get(master)


# ----- reading ------------------------------------------------------------------------------
def load_profile(name_or_path: str | Path, catalogue: Catalogue) -> Profile:
    """A shipped profile by name (SHIPPED: `exact`, `ndpi-4.2` ... `ndpi-5.0`) or a profile file."""
    text = str(name_or_path)
    if text in SHIPPED:
        data = resources.files(__package__).joinpath(f"data/profiles/{text}.yaml").read_text(encoding="utf-8")
        return parse_profile(data, f"dsl/data/profiles/{text}.yaml", catalogue)
    path = Path(name_or_path)
    try:
        data = inputfile.read_text(path)
    except UnicodeDecodeError:
        raise DiagnosticError([Diagnostic("E400", f"profile `{text}` is not valid UTF-8", None,
                                          location_text=text, help="save the file as UTF-8")]) from None
    except OSError as exc:
        hint = did_you_mean(text, SHIPPED)
        raise DiagnosticError([Diagnostic(
            "E400", f"no shipped profile `{text}`, and cannot read it as a file: {exc.strerror}", None,
            location_text=text, help=hint or "shipped profiles: " + ", ".join(SHIPPED))]) from None
    return parse_profile(data, text, catalogue)


def parse_profile(text: str, where: str, catalogue: Catalogue) -> Profile:
    """Raises DiagnosticError with every problem found."""
    return _Reader(where, catalogue).profile(compose(text, where, PROFILE_CODES))


PROFILE_CODES = Codes(unreadable="E400", missing="E402", unknown_key="E403", wrong_type="E405", duplicate="E408")


class FlowValueReader(NodeReader):
    """Values that name flows, in the schema's encoding: protocols, ports, booleans (profiles'
    `when` and truth files read them alike), and application names of the catalogue."""

    unknown_app = "E406"

    def __init__(self, where: str, codes: Codes, catalogue: Catalogue):
        super().__init__(where, codes)
        self.apps = catalogue.app_names

    def app_name(self, node, what: str) -> str | None:
        name = self.value(node)
        if not isinstance(name, str) or name not in self.apps:
            self.fail(self.unknown_app, node, f"{what} {self.shown(node)} is not in the application catalogue",
                      help=did_you_mean(str(name), self.apps) or "names are those of `app` in a policy")
            return None
        return name

    def _items(self, node) -> list:
        return node.value if isinstance(node, yaml.SequenceNode) else [node]

    def protocols(self, node) -> IntervalSet | None:
        numbers = []
        for item in self._items(node):
            value = self.value(item)
            if isinstance(value, str) and value in PROTOCOLS:
                numbers.append(PROTOCOLS[value])
            elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
                numbers.append(value)
            else:
                self.fail(self.codes.wrong_type, item, f"{self.shown(item)} is not a protocol",
                          help="names: " + ", ".join(PROTOCOLS) + "; or a number 0..255")
                return None
        return IntervalSet.of((n, n) for n in numbers)

    def ports(self, node) -> IntervalSet | None:
        pairs = []
        for item in self._items(node):
            value = self.value(item)
            lo = hi = value
            if isinstance(value, str) and value.count("-") == 1:
                low, high = value.split("-")
                lo, hi = (int(low), int(high)) if all(p.isdigit() and len(p) <= 5 for p in (low, high)) else (None, None)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or not 0 <= lo <= hi <= 65535:
                self.fail(self.codes.wrong_type, item, f"{self.shown(item)} is not a port or a port range",
                          help='write a port 0..65535 or a range as a string, "6881-6889"')
                return None
            pairs.append((lo, hi))
        return IntervalSet.of(pairs)

    def boolean(self, node) -> IntervalSet | None:
        value = self.value(node)
        if not isinstance(value, bool):
            self.fail(self.codes.wrong_type, node, f"`tls` must be true or false, not {self.shown(node)}")
            return None
        return IntervalSet.point(int(value))


class _Reader(FlowValueReader):
    """A profile's node tree, read with the profile codes; the catalogue names labels."""

    def __init__(self, where: str, catalogue: Catalogue):
        super().__init__(where, PROFILE_CODES, catalogue)

    # --- the parts of a profile ---
    def profile(self, root) -> Profile:
        if root is None:
            raise DiagnosticError([Diagnostic("E402", "the profile is empty", None, location_text=self.where,
                                              help="a profile needs at least `version: 1` and `name`")])
        top = self.mapping(root, "the profile", _TOP_REQUIRED, _TOP_OPTIONAL)
        self.check_version(top, "E401", "profile")

        def text(key: str) -> str:
            return (self.string(top[key][1], f"`{key}`") or "") if key in top else ""

        name, engine, description = text("name"), text("engine"), text("description")
        unobservable = self.unobservable(top["unobservable"][1]) if "unobservable" in top else frozenset()
        names = self.ndpi_names(top["ndpi_names"][1]) if "ndpi_names" in top else ()
        labels = self.labels(top["labels"][1]) if "labels" in top else ()
        tethering = self.tethering(top["tethering"][1]) if "tethering" in top else ()
        self.raise_errors()
        return Profile(name, engine, description, self.where, unobservable, names, labels, tethering)

    def unobservable(self, node) -> frozenset[str]:
        seen: dict[str, object] = {}
        for item in self.sequence(node, "`unobservable`"):
            field = self.value(item)
            if field in FIREWALL_FIELDS:
                self.fail("E404", item, f"{self.shown(item)} is read by the firewall, not by the DPI engine",
                          help="a profile says what the classifier sees; the kernel reads the connection-tracking "
                               "state, the interfaces and the ICMP type itself, whatever the engine")
            elif field not in TRAFFIC_FIELDS:
                self.fail("E404", item, f"{self.shown(item)} is not a field the engine reads from traffic",
                          help=did_you_mean(str(field), TRAFFIC_FIELDS) or "fields: " + ", ".join(TRAFFIC_FIELDS))
            elif field in seen:
                self.fail("E408", item, f"`{field}` is listed twice in `unobservable`")
            else:
                seen[field] = item
        return frozenset(seen)

    def ndpi_names(self, node) -> tuple[tuple[str, str], ...]:
        out = []
        for key, (_, value_node) in self.mapping(node, "`ndpi_names`").items():
            app = self.app_name(value_node, f"nDPI name `{key}`:")
            if app is not None:
                out.append((key, app))
        return tuple(out)

    def labels(self, node) -> tuple[tuple[str, tuple[LabelEntry, ...]], ...]:
        out = []
        for key, (key_node, value_node) in self.mapping(node, "`labels`").items():
            app = self.app_name(key_node, "application")
            items = self.sequence(value_node, f"the labels of `{key}`")
            if isinstance(value_node, yaml.SequenceNode) and not items:
                self.fail("E405", value_node, f"`{key}` is listed with no labels",
                          help="list at least one label, or remove the application (it is then labelled as itself)")
            entries: list[LabelEntry] = []
            for item in items:
                entry = self.entry(item, key)
                if entry is None:
                    continue
                if any((e.label, e.how, e.when) == (entry.label, entry.how, entry.when) for e in entries):
                    self.fail("E408", item, f"`{key}`: label `{entry.label}` ({entry.how}) is listed twice "
                              "with the same `when`")
                    continue
                entries.append(entry)
            if app is not None and entries:
                out.append((app, tuple(entries)))
        return tuple(out)

    def tethering(self, node) -> tuple[TetheringEntry, ...]:
        out: list[TetheringEntry] = []
        for mistake, (_, value_node) in self.mapping(node, "`tethering`", (), TETHERING_MISTAKES).items():
            items = self.sequence(value_node, f"`tethering.{mistake}`")
            if isinstance(value_node, yaml.SequenceNode) and not items:
                self.fail("E405", value_node, f"`tethering.{mistake}` is an empty list",
                          help="list at least one entry, or remove the key (the engine then makes no such mistake)")
            for item in items:
                what = f"an entry of `tethering.{mistake}`"
                keys = self.mapping(item, what, ("evidence",), _MISTAKE_OPTIONAL)
                if "evidence" not in keys:
                    continue
                errors = len(self.errors)
                evidence = self.string(keys["evidence"][1], "`evidence`")
                if "note" in keys:
                    self.string(keys["note"][1], "`note`")
                when = self.when(keys["when"][1]) if "when" in keys else ()
                if len(self.errors) > errors:
                    continue
                entry = TetheringEntry(mistake, when, evidence, self.at(item))
                if any((e.mistake, e.when) == (mistake, when) for e in out):
                    self.fail("E408", item, f"`tethering.{mistake}`: an entry with the same `when` is listed twice")
                    continue
                out.append(entry)
        return tuple(out)

    def entry(self, node, app: str) -> LabelEntry | None:
        keys = self.mapping(node, f"a label of `{app}`", _ENTRY_REQUIRED, _ENTRY_OPTIONAL)
        if not all(k in keys for k in _ENTRY_REQUIRED):
            return None
        errors = len(self.errors)
        label = self.app_name(keys["label"][1], "label")
        how_node = keys["how"][1]
        how = self.value(how_node)
        if how not in HOWS:
            self.fail("E407", how_node, f"unknown `how`: {self.shown(how_node)}",
                      help=did_you_mean(str(how), HOWS) or "one of: " + ", ".join(HOWS))
        elif label is not None and (how == "undetected") != (label == "unknown"):
            self.fail("E407", how_node, f"`how: {how}` with label `{label}`",
                      help="`undetected` goes with label `unknown`, and label `unknown` with `undetected`")
        evidence = self.string(keys["evidence"][1], "`evidence`")
        note = self.string(keys["note"][1], "`note`") if "note" in keys else ""
        when = self.when(keys["when"][1]) if "when" in keys else ()
        if len(self.errors) > errors:
            return None
        return LabelEntry(label, how, when, evidence, self.at(node), note or "")

    def when(self, node) -> tuple[tuple[str, IntervalSet], ...]:
        out = []
        for key, (key_node, value_node) in self.mapping(node, "`when`").items():
            if key not in WHEN_FIELDS:
                self.fail("E404", key_node, f"`when` cannot test `{key}`",
                          help=did_you_mean(key, WHEN_FIELDS) or "`when` tests: " + ", ".join(WHEN_FIELDS))
                continue
            values = {"proto": self.protocols, "dst.port": self.ports, "tls": self.boolean}[key](value_node)
            if values is not None:
                out.append((key, values))
        return tuple(sorted(out, key=lambda kv: WHEN_FIELDS.index(kv[0])))
