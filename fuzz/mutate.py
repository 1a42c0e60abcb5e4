"""Mutations of a file's bytes: at the byte level, at the token level, and for JSON by structure.

Byte mutations find what the readers do with text that is no longer text (bad UTF-8, NUL,
byte-order marks, stray line ends). Token mutations keep the file mostly readable, so the
parser, the checker and the verifier beyond them see near misses: a keyword moved, a
literal replaced by one of another family or past its bound, a span repeated many times.
JSON tables are also mutated as values (a node replaced, removed, duplicated or nested),
which keeps them JSON, so the table reader's checks are reached rather than the JSON parser's.
"""
from __future__ import annotations

import json
import random
import re

# Tokens of .dpi and YAML text alike: strings, numbers and addresses, words, operators, space.
_TOKEN = re.compile(rb'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[0-9A-Fa-f:.]+(?:/\d+)?[A-Za-z]*|[A-Za-z_][\w.]*|'
                    rb'==|!=|<=|>=|\.\.|\s+|.', re.S)
DICTIONARY = tuple(w.encode() for w in (
    # the language: item keywords, words inside items, operators, punctuation
    "policy", "enum", "set", "default", "rule", "invariant", "test", "import", "when", "then", "because",
    "require", "exists", "given", "expect", "version", "and", "or", "not", "in", "log", "same", "across", "per",
    "charge", "priority", "purpose", "allow", "block", "reset", "throttle", "redirect", "true", "false",
    "==", "!=", "<", ">=", "..", "{", "}", "(", ")", ",", "=", '"', "\\", "#", "\n", "\r\n", "\t", " ",
    # fields, outcome variables, names the catalogue and the language know
    "dst.port", "src.ip", "dst.ip", "proto", "app", "tls", "tls.sni", "smtp.auth", "subscriber.plan",
    "subscriber.addons", "subscriber.usage", "subscriber.zone", "subscriber.apn", "subscriber.rat",
    "flow.tethered", "dpi.app", "dpi.tethered", "time.hour", "time.day", "network.congested", "direction",
    "action", "rate", "logged", "target", "scope", "category.vpn", "category.", "smtp", "none", "other",
    # literals at and past their bounds
    "0", "65535", "65536", "-1", "4294967296", "1" + "0" * 30, "9" * 400, "1.5", "0.0000001", "1e9",
    "255.255.255.255", "0.0.0.0/0", "10.0.0.0/33", "::", "::/0", "::ffff:0:0/96", "ffff:" * 7 + "ffff",
    "1:2:3:4:5:6:7:8:9", "0PB", "1PB", "1000000PB", "0bps", "1000Gbps", "1" + "0" * 30 + "Gbps", "24", "7..6",
    '"*.x"', '"' + "a" * 70 + '.com"', '""', '"\\"', '"\\u0000"',
    # YAML: anchors, aliases, tags, merges, documents, flow collections, block scalars
    "&a", "*a", "<<: *a", "!!python/object/apply:os.system", "!!binary", "!!str", "!!int", "!!float",
    "!!map", "!!set", "? ", "---", "...", "%YAML 1.1", "[", "]", "- ", ": ", "|", ">", "~", "null", ".inf",
    "0x1F", "0o17", "1_000", "2011-13-45", "2011-10-01", "yes", "on",
    # JSON
    "null", "[]", "{}", '{"not": []}', "1e400", "-0", "NaN", "Infinity",
))
SPECIAL_BYTES = (b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\r", b"\x0b", b"\x0c", b"\x1b[31m",
                 "\u2028".encode(), "\u202e".encode(), "\ufeff".encode(), "é".encode(), "\U0001f600".encode())


def tokens(data: bytes) -> list[bytes]:
    return _TOKEN.findall(data)


def byte_level(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One byte-level change: flip, insert, delete, duplicate, splice with another file, truncate."""
    if not data:
        return rng.choice(SPECIAL_BYTES)
    at = rng.randrange(len(data) + 1)
    end = min(len(data), at + rng.randrange(1, 64))
    how = rng.randrange(7)
    if how == 0 and at < len(data):
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    if how == 1:
        return data[:at] + rng.choice(SPECIAL_BYTES) + data[at:]
    if how == 2:
        return data[:at] + bytes([rng.randrange(256)]) + data[at:]
    if how == 3:
        return data[:at] + data[end:]
    if how == 4:
        return data[:end] + data[at:end] * rng.choice((2, 3, 50)) + data[end:]
    if how == 5 and other:
        cut = rng.randrange(len(other) + 1)
        return data[:at] + other[cut:cut + rng.randrange(1, 400)] + data[end:]
    return data[:at]


def token_level(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One token-level change: replace, delete, insert, duplicate or swap tokens, repeat a span
    many times, or put in tokens of another file."""
    toks = tokens(data)
    if not toks:
        return rng.choice(DICTIONARY)
    i = rng.randrange(len(toks))
    j = min(len(toks), i + rng.randrange(1, 12))
    how = rng.randrange(8)
    if how == 0:
        toks[i] = rng.choice(DICTIONARY)
    elif how == 1:
        del toks[i:j]
    elif how == 2:
        toks.insert(i, rng.choice(DICTIONARY) + rng.choice((b" ", b"")))
    elif how == 3:
        toks[i:i] = toks[i:j]
    elif how == 4:
        k = rng.randrange(len(toks))
        toks[i], toks[k] = toks[k], toks[i]
    elif how == 5:                 # a span many times: long lines, wide sets, deep nesting
        toks[i:j] = toks[i:j] * rng.choice((10, 100, 1000))
    elif how == 6 and other:
        theirs = tokens(other)
        if theirs:
            k = rng.randrange(len(theirs))
            toks[i:j] = theirs[k:k + rng.randrange(1, 40)]
    else:
        toks[i] = _number_edge(rng, toks[i])
    return b"".join(toks)


def _number_edge(rng: random.Random, tok: bytes) -> bytes:
    """A number in the token made huge, negative, fractional or zero."""
    return re.sub(rb"\d+", lambda m: rng.choice((b"0", b"-" + m[0], m[0] * 20, m[0] + b".5", b"99999999999")),
                  tok, count=1) if re.search(rb"\d", tok) else tok + rng.choice((b"0", b"9" * 30))


def json_level(rng: random.Random, data: bytes) -> bytes:
    """One change to the JSON value (a node replaced, removed, duplicated or wrapped in lists),
    written back as JSON; text that is not JSON gets a token change instead."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return token_level(rng, data, b"")
    nodes = list(_nodes(value, None, None))
    parent, key, node = rng.choice(nodes)
    new = _replacement(rng, node)
    if parent is None:
        value = None if new is _REMOVE else new
    elif new is _REMOVE:
        del parent[key]
    else:
        parent[key] = new
    try:
        return json.dumps(value, indent=rng.choice((None, 2))).encode()
    except (ValueError, RecursionError):
        return data


_REMOVE = object()


def _nodes(value, parent, key):
    yield parent, key, value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, child in list(children):
        yield from _nodes(child, value, k)


def _replacement(rng: random.Random, node):
    how = rng.randrange(9)
    if how == 0:
        return _REMOVE
    if how == 1:
        return rng.choice((None, True, 0, -1, 1.5, 10**30, "", "x" * 5000, [], {}, float("inf")))
    if how == 2 and isinstance(node, list) and node:
        return node + node * rng.choice((1, 100))
    if how == 3 and isinstance(node, dict):
        return dict(node, **{rng.choice(("extra", "index", "rule", "not", "kind")): rng.choice((1, "x", [], None))})
    if how == 4:
        for _ in range(rng.choice((2, 50, 2000))):
            node = [node]
        return node
    if how == 5 and isinstance(node, str):
        return rng.choice((node.upper(), node + "/99", node * 3, "not " + node, node[:1], node + "..0"))
    if how == 6 and isinstance(node, int) and not isinstance(node, bool):
        return rng.choice((-node, node + 1, node * 10**20, str(node)))
    if how == 7:
        return {"not": [node]}
    return node
