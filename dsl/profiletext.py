"""An engine profile written out as YAML, in the layout of the shipped ones, so that a built
profile reads like a hand-written one and reloads to the same entries."""
from __future__ import annotations

import json
import re
import textwrap

from .profiles import TRAFFIC_FIELDS, WHEN_FIELDS, LabelEntry, Profile
from .schema import PROTOCOL_NAMES

WIDTH = 96
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


def _scalar(text: str) -> str:
    return text if _PLAIN.match(text) and text.lower() not in ("true", "false", "null", "yes", "no", "on", "off") \
        else json.dumps(text, ensure_ascii=False)


def _folded(key: str, text: str, indent: int) -> list[str]:
    """`key: >-` and the text wrapped under it, or on one line when it fits."""
    pad = " " * indent
    one = f"{pad}{key}: {json.dumps(text, ensure_ascii=False)}"
    if len(one) <= WIDTH:
        return [one]
    lines = textwrap.wrap(text, WIDTH - indent - 2, break_long_words=False, break_on_hyphens=False)
    return [f"{pad}{key}: >-"] + [f"{pad}  {line}" for line in lines]


def when_text(entry: LabelEntry) -> str:
    """`{proto: tcp, dst.port: [993, "6881-6889"]}`: the entry's `when` as the profile writes it."""
    parts = []
    for name, values in sorted(entry.when, key=lambda kv: WHEN_FIELDS.index(kv[0])):
        points = [lo if lo == hi else f'"{lo}-{hi}"' for lo, hi in values.intervals]
        if name == "proto":
            shown = [PROTOCOL_NAMES.get(p, str(p)) for p in range(values.min(), values.hull()[1] + 1) if p in values]
            parts.append(f"proto: {shown[0] if len(shown) == 1 else '[' + ', '.join(shown) + ']'}")
        elif name == "dst.port":
            parts.append(f"dst.port: [{', '.join(str(p) for p in points)}]")
        else:
            parts.append(f"tls: {'true' if values.min() else 'false'}")
    return "{" + ", ".join(parts) + "}"


def render_profile(profile: Profile, header: str, labels: tuple[tuple[str, tuple[LabelEntry, ...]], ...]) -> str:
    """The profile's YAML: `header` (comment lines), then its keys with `labels` as given."""
    out = [header.rstrip("\n")] if header.strip() else []
    out += ["version: 1", f"name: {_scalar(profile.name)}"]
    if profile.engine:
        out += _folded("engine", profile.engine, 0)
    if profile.description:
        out += _folded("description", profile.description, 0)
    out.append(f"unobservable: [{', '.join(f for f in TRAFFIC_FIELDS if f in profile.unobservable)}]")
    if profile.ndpi_names:
        out.append("ndpi_names:")
        out += [f"  {_scalar(name)}: {app}" for name, app in profile.ndpi_names]
    out.append("labels:" if labels else "labels: {}")
    for app, entries in labels:
        out.append(f"  {app}:")
        for e in entries:
            out += [f"    - label: {e.label}", f"      how: {e.how}"]
            if e.when:
                out.append(f"      when: {when_text(e)}")
            out += _folded("evidence", e.evidence, 6)
            if e.note:
                out += _folded("note", e.note, 6)
    return "\n".join(out) + "\n"
