"""Reading back the engine contract `dpipolicy compile --contract FILE` writes (contract.py,
Contract.to_json), so that a rule set exported from a kernel can be read under it: its
connection marks as the application label and the other classifier fields, its subscriber
sets as plans, add-ons and the rest (docs/import.md, "The nftables engine contract").

The file states every number the reader needs but one: a partition's sets (one per plan,
zone, APN or radio) are listed in the order of the members they stand for, so the k-th set
of a field is its k-th member, as build_contract writes them.
"""
from __future__ import annotations

import json
from pathlib import Path

from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.loader import read_source
from dpipolicy.dsl.schema import DOMAIN_SPECIAL, SNI

from .contract import FORMAT, VERSION, Approximation, Contract, SubscriberSet

CODE = "E756"
_HELP = "give the contract file `dpipolicy compile --target nftables --contract FILE` wrote with the rule set"


class _Bad(Exception):
    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where, self.message = where, message


def read_contract(path: Path) -> Contract:
    """The contract in `path`. Raises DiagnosticError (E756) at the JSON path of what is wrong."""
    text = read_source(path, "contract file").text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DiagnosticError([Diagnostic(CODE, f"the contract file is not JSON: {exc.msg}", None, help=_HELP,
                                          location_text=f"{path}:{exc.lineno}:{exc.colno}")]) from None
    try:
        return _contract(data)
    except _Bad as bad:
        raise DiagnosticError([Diagnostic(CODE, bad.message, None, help=_HELP,
                                          location_text=f"{path}: {bad.where}" if bad.where else str(path))]) from None


def _get(data, key: str, where: str, kind: type):
    if not isinstance(data, dict):
        raise _Bad(where, f"`{where or 'the file'}` must be an object")
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        words = {dict: "an object", list: "a list", str: "a string", int: "a number", bool: "true or false"}[kind]
        raise _Bad(f"{where}.{key}" if where else key,
                   f"`{key}` must be {words}" if key in data else f"`{key}` is missing")
    return value


def _numbered(values: dict, where: str, first: int) -> tuple[str, ...]:
    """The values of an object keyed "first", "first+1", ... in that order (no gap)."""
    out = []
    for n in range(first, first + len(values)):
        value = values.get(str(n))
        if not isinstance(value, str):
            raise _Bad(where, f"`{where}` must number its entries from {first} without a gap (no \"{n}\")")
        out.append(value)
    return tuple(out)


def _contract(data) -> Contract:
    if _get(data, "format", "", str) != FORMAT:
        raise _Bad("format", f"not an engine contract (no \"format\": \"{FORMAT}\")")
    if _get(data, "version", "", int) != VERSION:
        raise _Bad("version", f"contract version {data['version']} is not supported (this dpipolicy reads {VERSION})")
    table = _get(data, "table", "", dict)
    mark = _get(data, "connection_mark", "", dict)
    apps = {k: v for k, v in _get(mark, "app", "connection_mark", dict).items() if k != "0"}
    sni = mark.get(SNI)
    server_names = None
    if sni is not None:
        if not isinstance(sni, dict):
            raise _Bad(f"connection_mark.{SNI}", f"`{SNI}` must be an object")
        server_names = DOMAIN_SPECIAL + _numbered({k: v for k, v in sni.items() if k not in ("0", "1")},
                                                  f"connection_mark.{SNI}", len(DOMAIN_SPECIAL))
    targets = _get(_get(data, "packet_mark", "", dict), "targets", "packet_mark", dict)
    return Contract(_get(table, "name", "table", str), _numbered(apps, "connection_mark.app", 1),
                    _subscriber_sets(_get(data, "subscriber_sets", "", list)), _numbered(targets, "packet_mark.targets", 1),
                    server_names, _approximations(_get(data, "approximations", "", list)),
                    _get(table, "base_chain", "table", str), _get(table, "chain", "table", str))


def _subscriber_sets(entries: list) -> tuple[SubscriberSet, ...]:
    out, members = [], {}
    for k, entry in enumerate(entries):
        where = f"subscriber_sets[{k}]"
        name, field = _get(entry, "ipv4", where, str), _get(entry, "field", where, str)
        partition = _get(entry, "partition", where, bool)
        if not name.endswith("_v4") or _get(entry, "ipv6", where, str) != name[:-3] + "_v6":
            raise _Bad(where, "a subscriber set is a pair named NAME_v4 and NAME_v6")
        if field == "subscriber.usage":
            usage = _get(entry, "usage", where, dict)
            values = IntervalSet.span(_get(usage, "from_bytes", f"{where}.usage", int),
                                      _get(usage, "to_bytes", f"{where}.usage", int))
        elif partition:
            members[field] = members.get(field, -1) + 1         # the k-th set of a partition is its k-th member
            values = IntervalSet.point(members[field])
        else:
            values = IntervalSet.point(1)                       # an add-on, roaming: the flows that have it
        out.append(SubscriberSet(name[:-3], field, values, partition))
    return tuple(out)


def _approximations(entries: list) -> tuple[Approximation, ...]:
    keys = ("rule", "location", "what", "instead")
    return tuple(Approximation(*(_get(entry, key, f"approximations[{k}]", str) for key in keys))
                 for k, entry in enumerate(entries))
