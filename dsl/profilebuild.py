"""`dpipolicy profile build`: an engine profile from what the engine said about flows whose real
application a truth file gives (docs/profiles.md, "Building a profile").

A profile is a claim about an engine, so its label entries are derived, not written: each
flow with a known truth is evidence that the engine gave that application that label, and
each entry says how many flows show it and names one. The parts that evidence cannot give
(the engine's name, its nDPI names, the fields it cannot observe, entries assumed for a
reason) come from a base profile written by hand.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .catalogue import Catalogue
from .diagnostics import Diagnostic, DiagnosticError
from .flowcsv import EngineFlow
from .intervals import IntervalSet
from .profiles import HOWS, LabelEntry, Profile, parse_profile
from .profiletext import render_profile
from .schema import PROTOCOLS
from .truth import Truth
from .words import counted

BASE_CODE = "E448"
_TCP_UDP = (PROTOCOLS["tcp"], PROTOCOLS["udp"])


@dataclass(frozen=True)
class Evidence:
    """One flow with a known truth: what it is, and what the engine said."""

    flow: EngineFlow
    app: str
    tls: bool | None
    server_port: int
    label: str                   # the catalogue name of the engine's label
    how: str

    def fields(self) -> dict[str, int]:
        """What a profile's `when` may test of this flow, in the schema's encoding."""
        out = {"proto": self.flow.proto, "dst.port": self.server_port}
        if self.tls is not None:
            out["tls"] = int(self.tls)
        return out


@dataclass
class Built:
    text: str                                        # the profile's YAML
    profile: Profile                                 # as it reloads
    evidence: list[Evidence]
    flows: int = 0                                   # read, each flow of a capture file once
    no_truth: int = 0
    left_out: int = 0                                # claimed by a `leave_out` entry
    unnamed: Counter = field(default_factory=Counter)   # nDPI name -> flows the profile has no name for
    own_rules: int = 0                               # labelled by the run's own rules (custom protocols)

    def summary(self) -> str:
        listed = sum(len(entries) for _, entries in self.profile.labels)
        lines = [f"{self.profile.name}: {counted(self.flows, 'flow')} read; {counted(len(self.evidence), 'flow')} "
                 f"with a known truth are the evidence; {counted(len(self.profile.labels), 'application')} "
                 f"listed with {counted(listed, 'entry', 'entries')}",
                 f"  left out: {self.no_truth} with no known truth, {self.left_out} on purpose (leave_out), "
                 f"{self.own_rules} labelled by the run's own custom rules, "
                 f"{sum(self.unnamed.values())} whose label has no catalogue application"]
        if self.unnamed:
            lines.append("  labels with no catalogue application: " + ", ".join(
                f"{name or 'Unknown'} ({n})" for name, n in sorted(self.unnamed.items(), key=lambda kv: (-kv[1], kv[0]))))
        return "\n".join(lines)


def how_of(confidence: str, label: str, app: str) -> str | None:
    """The kind of label (profiles.md, `how`) from the engine's confidence; None for a label
    the run's own custom rules gave (not the engine's behaviour)."""
    text = confidence.lower()
    if label == "unknown":
        return "undetected"
    if "custom" in text:
        return None
    if text.startswith("match by port"):
        return "port"
    return "detected" if label == app else "other"


def gather(flows: list[EngineFlow], truth: Truth, base: Profile) -> Built:
    """Every flow once (a capture file run twice by one release counts once), judged by the truth."""
    built = Built("", base, [])
    seen = set()
    for flow in flows:
        key = (flow.key(), flow.label, flow.confidence)
        if key in seen:
            continue
        seen.add(key)
        built.flows += 1
        claimed = truth.claim(flow)
        if claimed is None:
            built.no_truth += 1
            continue
        row, server = claimed
        if row.app is None:
            built.left_out += 1
            continue
        label = base.catalogue_label(flow.label)
        if label is None:
            built.unnamed[flow.label] += 1
            continue
        how = how_of(flow.confidence, label, row.app)
        if how is None:
            built.own_rules += 1
            continue
        built.evidence.append(Evidence(flow, row.app, row.tls, server[1], label, how))
    return built


def _points(values: set[int]) -> IntervalSet:
    return IntervalSet.of((v, v) for v in values)


def _evidence_text(shown: list[Evidence], how: str) -> str:
    captures = sorted({e.flow.capture for e in shown})
    releases = sorted({e.flow.release for e in shown})
    first = min(shown, key=lambda e: (e.flow.release, e.flow.capture, e.flow.where))
    f = first.flow
    confidence = f.confidence if how != "undetected" else "not classified"
    return (f"{counted(len(shown), 'flow')} in {counted(len(captures), 'capture')} ({', '.join(releases)}); "
            f"e.g. {f.release} {f.capture}: {f.proto_text.lower()} {f.endpoints()} labelled {f.label or 'Unknown'} "
            f"({confidence})")


def entries_for(app: str, shown: list[Evidence], always: bool) -> tuple[LabelEntry, ...]:
    """The entries the evidence of one application shows; none when it was always labelled
    as itself by content (it is then not listed), unless `always`."""
    if not always and all(e.label == app and e.how == "detected" for e in shown):
        return ()
    tls_values = {e.tls for e in shown}
    split = {True, False} <= tls_values
    groups: dict[tuple[str, str, int | None], list[Evidence]] = defaultdict(list)
    for e in shown:
        groups[(e.label, e.how, e.flow.proto if e.how == "port" else None)].append(e)
    out = []
    for (label, how, proto), group in groups.items():
        when: list[tuple[str, IntervalSet]] = []
        if how == "port":
            when += [("proto", IntervalSet.point(proto)), ("dst.port", _points({e.server_port for e in group}))]
        elif how != "detected":
            when.append(("proto", _points({e.flow.proto for e in group})))
        tls = {e.tls for e in group}
        if split and len(tls) == 1 and None not in tls:
            when.append(("tls", IntervalSet.point(int(tls.pop()))))
        out.append(LabelEntry(label, how, tuple(when), _evidence_text(group, how), ""))
    order = {name: i for i, name in enumerate(HOWS)}
    return tuple(sorted(out, key=lambda e: (e.label != app, order[e.how], e.label, e.when[0][1].min() if e.when else -1)))


def build(flows: list[EngineFlow], truth: Truth, base_text: str, base_where: str, catalogue: Catalogue,
          header_note: str) -> Built:
    """The profile: the base's keys and entries, and the entries the evidence shows."""
    base = parse_profile(base_text, base_where, catalogue)
    built = gather(flows, truth, base)
    by_app: dict[str, list[Evidence]] = defaultdict(list)
    for e in built.evidence:
        by_app[e.app].append(e)
    hand = dict(base.labels)
    problems = []
    labels = []
    for app in catalogue.app_names:
        made = entries_for(app, by_app.get(app, []), app in hand)
        for e in hand.get(app, ()):
            if any((m.label, m.how, m.when) == (e.label, e.how, e.when) for m in made):
                problems.append(Diagnostic(BASE_CODE, f"`{app}`: label `{e.label}` ({e.how}) is one the evidence "
                                           "shows", None, location_text=e.location,
                                           help="remove it from the base: the build writes it with its evidence"))
        if hand.get(app) or made:
            labels.append((app, tuple(hand.get(app, ())) + made))
    if base.tethering:
        problems.append(Diagnostic(BASE_CODE, "a base with `tethering` cannot be built from", None,
                                   location_text=base_where, help="the build writes label entries only"))
    if problems:
        raise DiagnosticError(problems)
    header = _header(base_text) + "".join(f"# {line}\n" for line in header_note.splitlines())
    built.text = render_profile(base, header, tuple(labels))
    built.profile = parse_profile(built.text, base.name, catalogue)
    written = [(a, [(e.label, e.how, e.when, e.evidence) for e in es]) for a, es in built.profile.labels]
    meant = [(a, [(e.label, e.how, e.when, e.evidence) for e in es]) for a, es in labels]
    assert written == meant, "the written profile does not reload to the entries built"
    return built


def _header(text: str) -> str:
    """The comment lines a base file starts with."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line + "\n")
    return "".join(lines)
