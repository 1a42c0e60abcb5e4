"""Reading a policy and its spec files, following imports inside each file's policy root.

Imported items are placed where the import stands, so rule order across files is the order a
reader sees. A file already loaded is not loaded again (importing twice is harmless); a file
that imports itself through a chain is a cycle, reported at the import that closes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, DiagnosticError
from .parser import parse_source
from .source import SourceFile


@dataclass(frozen=True, slots=True)
class PlacedItem:
    item: ast.Item
    role: str            # "policy" or "spec": which command-line file it came through


def display_name(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_source(path: Path) -> SourceFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DiagnosticError([Diagnostic("E010", f"cannot read `{path}`: {exc.strerror or exc}", None,
                                          location_text=str(path),
                                          help="check the path; policy files end in `.dpi`")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiagnosticError([Diagnostic("E011", "file is not valid UTF-8", None,
                                          location_text=f"{path}: byte {exc.start}",
                                          help="save the file as UTF-8")]) from None
    return SourceFile(path, text, display_name(path))


class _Loader:
    def __init__(self) -> None:
        self.loaded: set[Path] = set()
        self.errors: list[Diagnostic] = []
        self.files: list[SourceFile] = []

    def load(self, path: Path, role: str, root: Path, chain: tuple[Path, ...], out: list[PlacedItem]) -> None:
        self.loaded.add(path)
        try:
            source = read_source(path)
            self.files.append(source)
            module = parse_source(source)
        except DiagnosticError as exc:
            self.errors.extend(exc.diagnostics)
            return
        for item in module.items:
            if isinstance(item, ast.ImportDecl):
                self._import(item, path, role, root, chain + (path,), out)
            else:
                out.append(PlacedItem(item, role))

    def _import(self, item: ast.ImportDecl, importer: Path, role: str, root: Path,
                chain: tuple[Path, ...], out: list[PlacedItem]) -> None:
        target = (importer.parent / item.path).resolve()
        if not target.is_relative_to(root):
            self.errors.append(Diagnostic(
                "E012", f"import `{item.path}` leaves the policy root", item.span, "outside the policy root",
                notes=(f"the policy root is `{display_name(root)}`, the folder of the file named on the command line",),
                help="move the file inside the policy root, or check the policy from a folder that holds both"))
        elif target in chain:
            cycle = " -> ".join(display_name(p) for p in chain[chain.index(target):] + (target,))
            self.errors.append(Diagnostic("E013", "import cycle", item.span, "this import closes the cycle",
                                          notes=(cycle,), help="move the shared definitions into a file both import"))
        elif not target.is_file():
            self.errors.append(Diagnostic("E014", f"imported file `{item.path}` does not exist", item.span,
                                          "no such file", notes=(f"looked for `{display_name(target)}`",),
                                          help="paths are relative to the importing file"))
        elif target not in self.loaded:
            self.load(target, role, root, chain, out)


def load_items(policy_path: Path, spec_paths: tuple[Path, ...] = ()) -> tuple[list[PlacedItem], list[SourceFile]]:
    """All items of the policy (with its imports) followed by those of each spec file."""
    loader = _Loader()
    items: list[PlacedItem] = []
    for path, role in ((policy_path, "policy"),) + tuple((p, "spec") for p in spec_paths):
        resolved = path.resolve()
        if resolved in loader.loaded:
            continue
        loader.load(resolved, role, resolved.parent, (), items)
    if loader.errors:
        raise DiagnosticError(loader.errors)
    return items, loader.files
