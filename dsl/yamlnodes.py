"""Reading YAML with a line and column for every value: the node tree of yaml.compose (safe
loader), walked by a reader that collects every problem as a diagnostic at its node. Engine
profiles (profiles.py), terms files (terms.py) and waiver files (waivers.py) read this way,
each with its own codes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .diagnostics import Diagnostic, DiagnosticError, did_you_mean


@dataclass(frozen=True)
class Codes:
    """The error codes of one kind of file: unreadable or invalid YAML, a missing key, an
    unknown key, a value of the wrong type, a key or entry given twice."""
    unreadable: str
    missing: str
    unknown_key: str
    wrong_type: str
    duplicate: str


def read_file(path: Path, where: str, kind: str, codes: Codes, help: str) -> str:
    """The text of a YAML file; one that cannot be read, or is not UTF-8, is `codes.unreadable`
    at the file, with `help` saying what to give."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DiagnosticError([Diagnostic(codes.unreadable, f"{kind} `{where}` is not valid UTF-8", None,
                                          location_text=where, help="save the file as UTF-8")]) from None
    except OSError as exc:
        raise DiagnosticError([Diagnostic(codes.unreadable, f"cannot read {kind} `{where}`: "
                                          f"{(exc.strerror or str(exc)).lower()}", None, location_text=where,
                                          help=help)]) from None


def compose(text: str, where: str, codes: Codes):
    """The YAML node tree of `text` (None for an empty document); invalid YAML is an error at
    the place the parser stopped."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        location = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        raise DiagnosticError([Diagnostic(codes.unreadable, f"invalid YAML: {getattr(exc, 'problem', exc)}", None,
                                          location_text=location)]) from None


class NodeReader:
    """Walks a YAML node tree (so every value has a line and column) and collects errors."""

    def __init__(self, where: str, codes: Codes):
        self.where, self.codes = where, codes
        self.errors: list[tuple[tuple[int, int], Diagnostic]] = []   # (line, column) for sorting
        self._scalars = yaml.SafeLoader("")      # the safe constructor, for typed scalar values

    def at(self, node) -> str:
        if node is None:
            return self.where
        return f"{self.where}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def fail(self, code: str, node, message: str, help: str | None = None) -> None:
        order = (node.start_mark.line, node.start_mark.column) if node is not None else (0, 0)
        self.errors.append((order, Diagnostic(code, message, None, help=help, location_text=self.at(node))))

    def raise_errors(self) -> None:
        """Every problem found, in the order of the file."""
        if self.errors:
            raise DiagnosticError(d for _, d in sorted(self.errors, key=lambda e: e[0]))

    def check_version(self, top: dict, code: str, kind: str) -> None:
        """Files of each kind are at version 1; another version is `code` at its value."""
        if "version" in top and self.value(top["version"][1]) != 1:
            node = top["version"][1]
            self.fail(code, node, f"{kind} version {self.shown(node)} is not supported",
                      help="this dpipolicy reads version 1")

    def value(self, node):
        """A scalar's value (str, int, bool, ...), or the node itself for a list or mapping."""
        if not isinstance(node, yaml.ScalarNode):
            return node
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError as exc:    # a tag the safe loader refuses (`!!python/...`)
            self.fail(self.codes.wrong_type, node, f"cannot read this value: {getattr(exc, 'problem', exc)}")
            return None

    def shown(self, node) -> str:
        if isinstance(node, yaml.ScalarNode):
            return f"`{node.value}`"
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"

    def string(self, node, what: str) -> str | None:
        value = self.value(node)
        if not isinstance(value, str) or not value.strip():
            self.fail(self.codes.wrong_type, node, f"{what} must be a non-empty string")
            return None
        return value

    def sequence(self, node, what: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(self.codes.wrong_type, node, f"{what} must be a list")
            return []
        return node.value

    def mapping(self, node, what: str, required=(), optional=None) -> dict:
        """Key text -> (key node, value node). `optional=None` allows any key."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(self.codes.wrong_type, node, f"{what} must be a mapping")
            return {}
        out: dict = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.fail(self.codes.wrong_type, key_node, f"a key of {what} must be a string, not {self.shown(key_node)}")
                continue
            if key in out:
                first = out[key][0]
                self.fail(self.codes.duplicate, key_node, f"`{key}` appears twice in {what}",
                          help=f"first at line {first.start_mark.line + 1}; keep one")
                continue
            if optional is not None and key not in required and key not in optional:
                allowed = tuple(required) + tuple(optional)
                self.fail(self.codes.unknown_key, key_node, f"unknown key `{key}` in {what}",
                          help=did_you_mean(key, allowed) or "keys: " + ", ".join(allowed))
                continue
            out[key] = (key_node, value_node)
        for key in required:
            if key not in out:
                self.fail(self.codes.missing, node, f"{what} has no `{key}`")
        return out
