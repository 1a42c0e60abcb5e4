"""Reading a policy and its spec files, following imports inside each file's policy root.

Imported items are placed where the import stands, so rule order across files is the order a
reader sees. A file already loaded is not loaded again (importing twice is harmless); a file
that imports itself through a chain is a cycle, reported at the import that closes it.

Syntax errors do not stop loading: a broken item stays in the list as a `parser.ErrorItem`, and
the checker reports it with the name and type errors of the other items. Files that cannot be
read and imports that cannot be followed do stop it (what they would define is unknown), and
`load_items` raises with those and every syntax error found so far.

Given a `reuse.ParseMemo`, files are parsed through it: loading the next version of a policy
parses only the items whose text changed (`dpipolicy diff`). Without one, a file parsed by an
earlier run is read from the parse cache (parsecache.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import ast, inputfile
from .diagnostics import Diagnostic, DiagnosticError, cannot_read
from .parsecache import cached
from .parser import ErrorItem, parse_recovering
from .reuse import ParseMemo
from .source import SourceFile, Span


@dataclass(frozen=True, slots=True)
class FileStart:
    """Placed first for each file named on the command line, so that what is missing from the file as
    a whole (its `default`) has a location even when the file is empty."""
    span: Span


@dataclass(frozen=True, slots=True)
class PlacedItem:
    item: ast.Item | ErrorItem | FileStart   # an ErrorItem stands where an item failed to parse
    role: str            # "policy" or "spec": which command-line file it came through


_SHIPPED = Path(__file__).resolve().parent / "data"   # shipped terms and specs: named as in the source tree


def display_name(path: Path) -> str:
    """A path as messages show it: relative to the current folder when below it; a shipped file
    (dsl/data/) as `dsl/data/...` wherever the package is installed."""
    shipped, _ = inputfile.resolved(path)
    if shipped is not None and shipped.is_relative_to(_SHIPPED):
        return "dsl/data/" + shipped.relative_to(_SHIPPED).as_posix()
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_source(path: Path, what: str) -> SourceFile:
    """The text of a source file; `what` names it in errors (`policy file`, `spec file`, `imported file`)."""
    name = display_name(path)
    try:
        raw = inputfile.read_bytes(path)
    except OSError as exc:
        raise DiagnosticError([cannot_read("E010", what, name, exc,
                                           "check the path; it is relative to the current folder")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Show the file with the bad bytes replaced, the caret under the first one.
        shown = raw.decode("utf-8-sig", errors="replace")
        offset = len(raw[:exc.start].decode("utf-8-sig"))
        source = SourceFile(path, shown, name)
        raise DiagnosticError([Diagnostic("E011", f"`{name}` is not valid UTF-8", Span(source, offset, offset + 1),
                                          f"byte 0x{raw[exc.start]:02x} is not UTF-8",
                                          help="save the file as UTF-8")]) from None
    return SourceFile(path, text, name)


class _Loader:
    def __init__(self, memo: ParseMemo | None) -> None:
        self.parse = cached(parse_recovering) if memo is None else memo.parse
        self.loaded: set[Path] = set()
        self.errors: list[Diagnostic] = []
        self.files: list[SourceFile] = []

    def load(self, path: Path, role: str, root: Path, out: list[PlacedItem]) -> None:
        """A command-line file and, depth first, what it imports. The files being read form the
        chain (the last imported by the one before it); it is a stack, not recursion, since a
        chain of imports may be long (10,000 files, docs/reliability.md)."""
        chain: list[Path] = []
        on_chain: set[Path] = set()
        pending: list = []           # per file of the chain, its items still to place

        def enter(file: Path) -> None:
            self.loaded.add(file)
            try:
                source = read_source(file, f"{role} file" if not chain else "imported file")
                self.files.append(source)
            except DiagnosticError as exc:
                self.errors.extend(exc.diagnostics)
                return
            if not chain:
                out.append(PlacedItem(FileStart(Span(source, 0, 0)), role))
            chain.append(file)
            on_chain.add(file)
            pending.append(iter(self.parse(source).items))

        enter(path)
        while pending:
            for item in pending[-1]:
                if not isinstance(item, ast.ImportDecl):
                    out.append(PlacedItem(item, role))
                    continue
                target = self._target(item, root, chain, on_chain)
                if target is not None and target not in self.loaded:
                    enter(target)
                    break
            else:
                pending.pop()
                on_chain.discard(chain.pop())

    def _target(self, item: ast.ImportDecl, root: Path, chain: list[Path], on_chain: set[Path]) -> Path | None:
        """The file an import names, or None after reporting why it cannot be read (`chain`: the
        files being read, the command-line file first and the importer last)."""
        target, unresolvable = inputfile.resolved(chain[-1].parent / item.path)
        if target is None:
            self.errors.append(Diagnostic("E014", f"cannot follow the import of `{item.path}`", item.span,
                                          unresolvable, help="paths are relative to the importing file"))
        elif not target.is_relative_to(root):
            self.errors.append(Diagnostic(
                "E012", f"import `{item.path}` leaves the policy root", item.span, "outside the policy root",
                notes=(f"imports must stay inside {_folder_words(root)}, the folder of `{display_name(chain[0])}`",),
                help="move the imported file into that folder or one below it"))
        elif target in on_chain:
            cycle = " -> ".join(display_name(p) for p in chain[chain.index(target):] + [target])
            self.errors.append(Diagnostic("E013", "import cycle", item.span, "this import closes the cycle",
                                          notes=(cycle,), help="move the shared definitions into a file both import"))
        elif (problem := inputfile.problem(target)) is not None:
            missing = problem == "there is no such file"
            self.errors.append(Diagnostic(
                "E014", f"imported file `{item.path}` does not exist" if missing else f"cannot import `{item.path}`",
                item.span, "no such file" if missing else problem, notes=(f"looked for `{display_name(target)}`",),
                help="paths are relative to the importing file" if missing else "import a .dpi file"))
        else:
            return target
        return None


def load_items(policy_path: Path, spec_paths: tuple[Path, ...] = (),
               memo: ParseMemo | None = None) -> tuple[list[PlacedItem], list[SourceFile]]:
    """All items of the policy (with its imports) followed by those of each spec file.

    Syntax errors come back as `ErrorItem`s among the items (the checker reports them); a file that
    cannot be read or an import that cannot be followed raises DiagnosticError here. With `memo`,
    text parsed by earlier loads with it is not parsed again (the items are the same).
    """
    loader = _Loader(memo)
    items: list[PlacedItem] = []
    for path, role in ((policy_path, "policy"),) + tuple((p, "spec") for p in spec_paths):
        resolved = inputfile.resolved(path)[0] or path.absolute()    # unresolvable: reading it says why
        if resolved in loader.loaded:
            continue
        loader.load(resolved, role, resolved.parent, items)
    if loader.errors:
        syntax = [p.item.diagnostic for p in items if isinstance(p.item, ErrorItem)]
        raise DiagnosticError(sorted(loader.errors + syntax, key=_source_order))
    return items, loader.files


def _folder_words(folder: Path) -> str:
    shown = display_name(folder)
    return "the current folder" if shown == "." else f"`{shown}`"


def _source_order(d: Diagnostic):
    return (d.span is None, d.span.file.display_name if d.span else "", d.span.start if d.span else 0)
