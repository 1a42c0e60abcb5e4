"""Reading YAML with a line and column for every value: the node tree of yaml.compose (safe
loader), walked by a reader that collects every problem as a diagnostic at its node. Engine
profiles (profiles.py), terms files (terms.py) and waiver files (waivers.py) read this way,
each with its own codes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import inputfile
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
        return inputfile.read_text(path)
    except UnicodeDecodeError:
        raise DiagnosticError([Diagnostic(codes.unreadable, f"{kind} `{where}` is not valid UTF-8", None,
                                          location_text=where, help="save the file as UTF-8")]) from None
    except OSError as exc:
        raise DiagnosticError([Diagnostic(codes.unreadable, f"cannot read {kind} `{where}`: "
                                          f"{(exc.strerror or str(exc)).lower()}", None, location_text=where,
                                          help=help)]) from None


MAX_DEPTH = 100             # lists and mappings inside each other: yaml's composer recurses, and no file needs more
MAX_VALUES = 1_000_000      # values of a file, each alias counted as the values it stands for (an alias bomb
                            # stands for billions: walking them would never end)


class _TooBig(Exception):
    def __init__(self, mark, message: str):
        self.mark, self.message = mark, message


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_DEPTH and a tree that, with its aliases
    followed, holds more than MAX_VALUES values (or itself), at the place where that happens."""

    def __init__(self, text: str):
        super().__init__(text)
        self.depth = 0
        self.sizes: dict[int, int] = {}      # id of a finished node -> its values, aliases followed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self.sizes:
                raise _TooBig(event.start_mark, "an alias inside the value it names")
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooBig(event.start_mark, f"lists and mappings nested more than {MAX_DEPTH} deep")
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self.sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        if size > MAX_VALUES:
            raise _TooBig(event.start_mark, f"more than {MAX_VALUES:,} values here, counting each alias as the "
                                            "values it stands for")
        self.sizes[id(node)] = size
        return node


def compose(text: str, where: str, codes: Codes):
    """The YAML node tree of `text` (None for an empty document); invalid YAML, and a tree too
    deep or too big (MAX_DEPTH, MAX_VALUES), are an error at the place the reader stopped."""
    loader = None
    try:
        loader = _BoundedLoader(text)        # the reader checks every character here
        return loader.get_single_node()
    except _TooBig as exc:
        message, mark = exc.message, exc.mark
    except yaml.MarkedYAMLError as exc:
        message, mark = f"invalid YAML: {exc.problem or exc.context}", exc.problem_mark or exc.context_mark
    except yaml.reader.ReaderError as exc:      # a character YAML does not allow: no mark, an offset
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"invalid YAML: {exc.reason}: U+{character:04X}"
        mark = _mark_at(text, where, exc.position)
    except yaml.YAMLError as exc:
        message, mark = f"invalid YAML: {exc}", None
    finally:
        if loader is not None:
            loader.dispose()
    location = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
    raise DiagnosticError([Diagnostic(codes.unreadable, message, None, location_text=location)]) from None


_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")     # YAML 1.1's line breaks, CRLF being one


def _mark_at(text: str, where: str, position: int) -> yaml.Mark:
    """The mark of character `position`, its line and column counted as PyYAML's reader counts
    them for every other error (a lone CR, NEL, LS and PS end a line too; a BOM takes no
    column), so an error before a character YAML refuses and one after it agree on the lines."""
    line, start = 0, 0
    for found in _LINE_BREAKS.finditer(text, 0, position):
        line, start = line + 1, found.end()
    return yaml.Mark(where, position, line, position - start - text.count("\ufeff", start, position), None, None)


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
        """Files of each kind are at version 1; another version is `code` at its value (a value
        that cannot be read at all is already an error: not a second one)."""
        if "version" not in top:
            return
        node, before = top["version"][1], len(self.errors)
        if self.value(node) != 1 and len(self.errors) == before:
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
        except ValueError:               # an integer past Python's 4300 digits
            self.fail(self.codes.wrong_type, node, "cannot read this value: a number over 4300 digits long")
            return None
        except (IndexError, TypeError):  # PyYAML's own constructors on an empty tagged scalar (`!!float ""`)
            self.fail(self.codes.wrong_type, node, f"cannot read this value as {node.tag.rsplit(':', 1)[-1]}")
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
