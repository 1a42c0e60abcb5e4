"""Terms files: the clauses of published terms, each with the invariants and tests that state it
(YAML, safe-loaded; format in docs/audit.md). Every problem is reported at its YAML node
(codes E600-E619); the names are resolved once the specs are loaded (`check_names`)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from . import inputfile
from .diagnostics import Diagnostic, DiagnosticError, did_you_mean
from .loader import display_name
from .yamlnodes import Codes, NodeReader, compose, read_file

TERMS_CODES = Codes(unreadable="E600", missing="E602", unknown_key="E603", wrong_type="E604", duplicate="E605")
_TOP_REQUIRED = ("version", "title", "specs", "clauses")
_TOP_OPTIONAL = ("limits",)
SHIPPED_TERMS = ("eu-open-internet",)   # dsl/data/terms/NAME.yaml, for `audit --terms NAME`
_CLAUSE_REQUIRED = ("id", "text", "source")
_CLAUSE_OPTIONAL = ("invariants", "tests")


@dataclass(frozen=True)
class Cited:
    """An invariant or test a clause names, with the place it is named (for E606)."""
    name: str
    location: str


@dataclass(frozen=True)
class Clause:
    id: str
    text: str                      # the clause's own words
    source: str                    # where the words are published (URL, or document and section)
    invariants: tuple[Cited, ...]
    tests: tuple[Cited, ...]
    location: str


@dataclass(frozen=True)
class Terms:
    title: str
    where: str                     # the terms file, as shown in messages
    specs: tuple[Path, ...]        # the spec files, resolved against the terms file's folder
    clauses: tuple[Clause, ...]
    limits: str = ""               # what a check of these terms cannot show, said in every report


def terms_path(name: Path) -> Path:
    """A terms file, or the shipped terms of that name when no such file exists."""
    if str(name) in SHIPPED_TERMS and not name.exists():
        return Path(str(resources.files(__package__).joinpath(f"data/terms/{name}.yaml")))
    return name


def read_terms(path: Path) -> Terms:
    """Read and validate a terms file. Raises DiagnosticError with every problem found."""
    where = display_name(path)
    text = read_file(path, where, "terms file", TERMS_CODES,
                     "give the path of a terms file (docs/audit.md), or the name of shipped terms: "
                     + ", ".join(SHIPPED_TERMS))
    return _Reader(where, (inputfile.resolved(path)[0] or path.absolute()).parent).terms(
        compose(text, where, TERMS_CODES))


class _Reader(NodeReader):
    def __init__(self, where: str, folder: Path):
        super().__init__(where, TERMS_CODES)
        self.folder = folder

    def terms(self, root) -> Terms:
        if root is None:
            raise DiagnosticError([Diagnostic("E602", "the terms file is empty", None, location_text=self.where,
                                              help="a terms file needs `version: 1`, `title`, `specs` and `clauses`")])
        top = self.mapping(root, "the terms file", _TOP_REQUIRED, _TOP_OPTIONAL)
        self.check_version(top, "E601", "terms file")
        title = (self.string(top["title"][1], "`title`") or "") if "title" in top else ""
        specs = self.specs(top["specs"][1]) if "specs" in top else ()
        clauses = self.clauses(top["clauses"][1]) if "clauses" in top else ()
        limits = (self.string(top["limits"][1], "`limits`") or "") if "limits" in top else ""
        self.raise_errors()
        return Terms(title, self.where, specs, clauses, limits.strip())

    def specs(self, node) -> tuple[Path, ...]:
        out: list[Path] = []
        for item in self.sequence(node, "`specs`"):
            name = self.string(item, "a spec file")
            if name is None:
                continue
            path, unresolvable = inputfile.resolved(self.folder / name)
            if path is None:
                self.fail("E607", item, f"cannot follow spec file `{name}`: {unresolvable}")
            elif not path.is_relative_to(self.folder):
                self.fail("E607", item, f"spec file `{name}` is outside the terms file's folder",
                          help="spec files must be in the folder of the terms file, or below it")
            elif (problem := inputfile.problem(path)) is not None:
                self.fail("E607", item, f"spec file `{name}` does not exist" if problem == "there is no such file"
                          else f"cannot read spec file `{name}`: {problem}",
                          help="paths are relative to the folder of the terms file")
            elif path in out:
                self.fail("E605", item, f"spec file `{name}` is listed twice")
            else:
                out.append(path)
        return tuple(out)

    def clauses(self, node) -> tuple[Clause, ...]:
        items = self.sequence(node, "`clauses`")
        if isinstance(node, yaml.SequenceNode) and not items:
            self.fail("E604", node, "`clauses` is an empty list", help="list at least one clause")
        out: dict[str, Clause] = {}
        for item in items:
            clause = self.clause(item)
            if clause is None:
                continue
            if clause.id in out:
                self.fail("E605", item, f"clause id `{clause.id}` is used twice",
                          help=f"first at {out[clause.id].location}; give each clause its own id")
                continue
            out[clause.id] = clause
        return tuple(out.values())

    def clause(self, node) -> Clause | None:
        errors = len(self.errors)         # an unknown key (a misspelt `invariants`) is said once, alone
        keys = self.mapping(node, "a clause", _CLAUSE_REQUIRED, _CLAUSE_OPTIONAL)
        if not isinstance(node, yaml.MappingNode):
            return None
        id_, text, source = (self.string(keys[k][1], f"`{k}`") if k in keys else None for k in _CLAUSE_REQUIRED)
        invariants = self.names(keys["invariants"][1], "invariants") if "invariants" in keys else ()
        tests = self.names(keys["tests"][1], "tests") if "tests" in keys else ()
        if len(self.errors) > errors or None in (id_, text, source):
            return None
        if not invariants and not tests:
            self.fail("E608", node, f"clause `{id_}` names no invariant or test",
                      help="list under `invariants` or `tests` the names, from the spec files, that state it")
            return None
        return Clause(id_.strip(), text.strip(), source.strip(), invariants, tests, self.at(node))

    def names(self, node, key: str) -> tuple[Cited, ...]:
        out: list[Cited] = []
        for item in self.sequence(node, f"`{key}`"):
            name = self.string(item, f"a name in `{key}`")
            if name is None:
                continue
            if any(c.name == name for c in out):
                self.fail("E605", item, f"`{name}` is listed twice in `{key}`")
                continue
            out.append(Cited(name, self.at(item)))
        return tuple(out)


def check_names(terms: Terms, invariants: tuple[str, ...], tests: tuple[str, ...]) -> None:
    """Every name a clause cites is an invariant (or test) of the loaded policy and specs, and is
    listed under the right key. Raises DiagnosticError (E606) with every one that is not."""
    errors = []
    for clause in terms.clauses:
        for key, cited, defined, other in (("invariants", clause.invariants, invariants, tests),
                                           ("tests", clause.tests, tests, invariants)):
            for c in cited:
                if c.name in defined:
                    continue
                if c.name in other:
                    help = f"`{c.name}` is {'a test' if key == 'invariants' else 'an invariant'}: " \
                           f"list it under `{'tests' if key == 'invariants' else 'invariants'}`"
                else:
                    help = did_you_mean(c.name, defined) or (
                        f"the {key} of the listed specs: {', '.join(defined)}" if defined
                        else f"the listed specs define no {key}")
                errors.append(Diagnostic("E606", f"clause `{clause.id}`: no {key[:-1]} `{c.name}` in the listed specs",
                                         None, location_text=c.location, help=help))
    if errors:
        raise DiagnosticError(errors)
