"""The application catalogue: shipped YAML data, optionally extended by a project's own file."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from . import inputfile
from .diagnostics import Diagnostic, DiagnosticError, byte_position, cannot_read
from .yamlnodes import Codes, compose

CATEGORIES = ("email", "vpn", "p2p", "web", "video", "voip", "messaging", "dns", "other")
_PORT = re.compile(r"^(tcp|udp|sctp)/(\d{1,5})(?:-(\d{1,5}))?$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    category: str
    ports: tuple[tuple[int, int, int], ...]   # (protocol number, low port, high port), most common first
    description: str


@dataclass(frozen=True)
class Catalogue:
    applications: tuple[Application, ...]

    @property
    def app_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.applications)

    def get(self, name: str) -> Application | None:
        return next((a for a in self.applications if a.name == name), None)

    def category(self, category: str) -> tuple[str, ...]:
        return tuple(a.name for a in self.applications if a.category == category)


def _error(path: str, message: str, node=None, help: str | None = None) -> Diagnostic:
    where = path
    if node is not None and getattr(node, "start_mark", None) is not None:
        where = f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    return Diagnostic("E050", message, None, help=help, location_text=where)


_CODES = Codes(*["E050"] * 5)     # a catalogue has one code for every problem


def _load_yaml(text: str, path: str):
    """The data and the node tree it was built from, so errors can point at lines; read with
    the bounds of every YAML file (yamlnodes.compose)."""
    tree = compose(text, path, _CODES)
    try:
        return yaml.SafeLoader("").construct_document(tree) if tree is not None else None, tree
    except (ValueError, IndexError, TypeError):
        # an integer past Python's 4300 digits, or an empty tagged scalar (`!!float ""`) that
        # PyYAML's constructors fail on: the scalar it was is found and shown
        node = _unreadable_scalar(tree)
        where = f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}" if node is not None else path
        raise DiagnosticError([Diagnostic("E050", "cannot read this value (a number over 4300 digits, or an "
                                          "empty value with a type tag)", None, location_text=where)]) from None
    except yaml.MarkedYAMLError as exc:      # a tag the safe loader refuses (`!!python/...`)
        mark = exc.problem_mark
        raise DiagnosticError([Diagnostic("E050", f"invalid YAML: {exc.problem}", None,
                                          location_text=f"{path}:{mark.line + 1}:{mark.column + 1}")]) from None


def _unreadable_scalar(node):
    """The first scalar under `node` that PyYAML's safe constructors cannot build, or None."""
    if isinstance(node, yaml.ScalarNode):
        try:
            yaml.SafeLoader("").construct_object(node)
        except (ValueError, IndexError, TypeError):
            return node
        return None
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
    return next((found for child in children if (found := _unreadable_scalar(child)) is not None), None)


def parse_catalogue(text: str, path: str) -> tuple[Application, ...]:
    data, tree = _load_yaml(text, path)
    errors: list[Diagnostic] = []
    if not isinstance(data, dict) or not isinstance(data.get("applications"), list):
        raise DiagnosticError([_error(path, "a catalogue needs an `applications:` list", tree,
                                      help="see docs/language.md, section Applications")])
    app_nodes = next(v for k, v in tree.value if k.value == "applications").value
    apps = []
    for entry, node in zip(data["applications"], app_nodes):
        if not isinstance(entry, dict):
            errors.append(_error(path, "each application is a mapping with `name` and `category`", node))
            continue
        name, category = str(entry.get("name", "")), str(entry.get("category", ""))
        if not _NAME.match(name):
            errors.append(_error(path, f"application name `{name}` must be lowercase letters, digits, `_`", node))
            continue
        if category not in CATEGORIES:
            errors.append(_error(path, f"application `{name}` has unknown category `{category}`", node,
                                 help="categories: " + ", ".join(CATEGORIES)))
            continue
        ports = []
        for port in entry.get("ports") or ():
            match = _PORT.match(str(port))
            lo = int(match.group(2)) if match else 0
            hi = int(match.group(3) or lo) if match else 0
            if not match or not lo <= hi <= 65535:
                errors.append(_error(path, f"application `{name}`: bad port `{port}`", node,
                                     help="write `tcp/465` or `udp/6881-6889`"))
                continue
            ports.append((_PROTO_NUMBERS[match.group(1)], lo, hi))
        apps.append(Application(name, category, tuple(ports), str(entry.get("description", ""))))
    if errors:
        raise DiagnosticError(errors)
    return tuple(apps)


def shipped_catalogue_text() -> str:
    return resources.files(__package__).joinpath("data/applications.yaml").read_text(encoding="utf-8")


@functools.cache
def shipped_applications() -> tuple[Application, ...]:
    """The shipped catalogue's applications, read once per process: it is part of the installed
    package, and `diff` loads two versions (reading its YAML took 0.05 s each time)."""
    return parse_catalogue(shipped_catalogue_text(), "<shipped catalogue>")


def load_catalogue(extra_files: tuple[Path, ...] = ()) -> Catalogue:
    """The shipped catalogue plus a project's files; a project file may redefine an application."""
    apps = {a.name: a for a in shipped_applications()}
    for path in extra_files:
        try:
            text = inputfile.read_text(path)
        except OSError as exc:
            raise DiagnosticError([cannot_read("E051", "catalogue", str(path), exc,
                                               "check the path given to `--catalogue`")]) from None
        except UnicodeDecodeError as exc:
            raise DiagnosticError([Diagnostic("E050", f"the catalogue is not UTF-8: byte 0x{exc.object[exc.start]:02x}",
                                              None, location_text=f"{path}:{byte_position(exc.object, exc.start)}",
                                              help="save the file as UTF-8")]) from None
        apps.update((a.name, a) for a in parse_catalogue(text, str(path)))
    return Catalogue(tuple(apps.values()))
