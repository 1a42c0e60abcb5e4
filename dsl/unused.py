"""Unused sets, enums and imports (lint codes L201, L202, L203).

A set is used when some rule, invariant or test reaches it, directly or through other sets: the
checker records exactly those (`Policy.named_sets`). An enum is used when a condition mentions
its field (`subscriber.plan`, `subscriber.addons`, `subscriber.zone`, `subscriber.apn`). An
import is used when the file it names, or a file that one imports, holds a rule, an invariant,
a test, the default or the header, or declares a used set or enum.

A file that only declares sets and enums, imported rather than named on the command line, is a
library shared by several policies: its unused declarations are not reported one by one (each
policy uses its own part), only an import of which nothing is used.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import ast, typed
from .lintcodes import LintFinding
from .loader import FileStart, PlacedItem
from .parser import parse_source
from .schema import ADDON_PREFIX, DECLARABLE
from .source import SourceFile, Span, file_from_text

_IMPORT = re.compile(r'^[ \t]*import[ \t]+("(?:[^"\\\n]|\\.)*")', re.M)
_BEHAVIOUR = (ast.RuleDecl, ast.InvariantDecl, ast.TestDecl, ast.DefaultDecl, ast.PolicyDecl)


def imports_of(file: SourceFile) -> list[tuple[Span, Path]]:
    """The imports written in a file (at the start of a line, as they are in practice), each with
    the file it names. Only valid files reach lint, so such a line is always an import item."""
    out = []
    for match in _IMPORT.finditer(file.text):
        path = parse_source(file_from_text("import " + match.group(1))).items[0].path
        out.append((Span(file, match.start(0) + match.group(0).index("import"), match.end(1)),
                    (file.path.parent / path).resolve()))
    return out


def conditions(policy: typed.Policy) -> list[typed.Cond]:
    """Every condition of the rules, invariants and tests."""
    out = [r.cond for r in policy.rules]
    for inv in policy.invariants:
        out += [c for c in (inv.when, inv.require, inv.exists) if c is not None]
    out += [t.given for t in policy.tests]
    return out


def used_enums(policy: typed.Policy) -> set[str]:
    """Enums of fields some condition mentions, and the enums of the outcome's parts that some
    action gives (the default gives every declared one)."""
    conds = conditions(policy)
    fields = {enum: frozenset(ADDON_PREFIX + a for a in policy.schema.addons) if enum == "addon"
              else frozenset({field}) for enum, field in DECLARABLE.items()}
    parts = {part for action in [r.action for r in policy.rules] + [policy.default] for part, _ in action.parts()}
    return parts | {enum for enum, names in fields.items() if names and any(typed.mentions(c, names) for c in conds)}


def unused_names(placed: list[PlacedItem], files: list[SourceFile], policy: typed.Policy,
                 specs_given: bool) -> list[LintFinding]:
    roots = {id(p.item.span.file) for p in placed if isinstance(p.item, FileStart)}
    items: dict[int, list] = {id(f): [] for f in files}
    for p in placed:
        if not isinstance(p.item, FileStart):
            items.setdefault(id(p.item.span.file), []).append(p.item)
    used_sets = {name for name, _, _ in policy.named_sets}
    enums = used_enums(policy)

    def used(item) -> bool:
        return (isinstance(item, _BEHAVIOUR) or isinstance(item, ast.SetDecl) and item.name.text in used_sets
                or isinstance(item, ast.EnumDecl) and item.name.text in enums)

    by_path = {f.path: f for f in files}
    graph = {id(f): [(span, by_path.get(target)) for span, target in imports_of(f)] for f in files}

    def reaches_use(file: SourceFile) -> bool:
        seen, stack = set(), [file]
        while stack:
            f = stack.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            if any(used(i) for i in items[id(f)]):
                return True
            stack.extend(t for _, t in graph[id(f)] if t is not None)
        return False

    out: list[LintFinding] = []
    set_users = _set_users(p.item for p in placed)
    for file in files:
        if id(file) not in roots and not reaches_use(file):
            continue            # itself an unused import: reported there, not line by line
        library = id(file) not in roots and not any(isinstance(i, _BEHAVIOUR) for i in items[id(file)])
        if not library:
            out += _unused_declarations(items[id(file)], used_sets, enums, set_users, specs_given)
        for span, target in graph[id(file)]:
            if target is not None and not reaches_use(target):
                declared = [i.name.text for i in items[id(target)] if isinstance(i, ast.SetDecl | ast.EnumDecl)]
                what = f" (it declares {', '.join(f'`{n}`' for n in declared[:6])}" \
                       f"{', ...' if len(declared) > 6 else ''})" if declared else ""
                out.append(LintFinding("L203", f"nothing that `{target.display_name}` declares is used{what}", span,
                                       item=span, label="unused import", hint="remove the import"
                                       + _spec_hint(specs_given)))
    return out


def _set_users(items) -> dict[str, list[str]]:
    """For each set, the sets whose members name it."""
    users: dict[str, list[str]] = {}
    for item in items:
        if isinstance(item, ast.SetDecl):
            for e in item.value.elements:
                if isinstance(e, ast.Ident):
                    users.setdefault(e.text, []).append(item.name.text)
    return users


def _unused_declarations(items, used_sets, enums, set_users, specs_given) -> list[LintFinding]:
    out = []
    for item in items:
        if isinstance(item, ast.SetDecl) and item.name.text not in used_sets:
            users = set_users.get(item.name.text, [])
            notes = (f"only {_names('set', users)} {'names' if len(users) == 1 else 'name'} it, and "
                     f"{'it is' if len(users) == 1 else 'they are'} unused too",) if users else ()
            out.append(LintFinding("L201", f"set `{item.name.text}` is never used", item.name.span, item=item.span,
                                   label="unused set", notes=notes,
                                   hint="remove it" + _spec_hint(specs_given)))
        elif isinstance(item, ast.EnumDecl) and item.name.text not in enums:
            out.append(LintFinding(
                "L202", f"enum `{item.name.text}` is never used: no rule, invariant or test mentions "
                f"`{DECLARABLE[item.name.text]}`", item.name.span, item=item.span, label="unused enum",
                hint="remove the declaration" + _spec_hint(specs_given)))
    return out


def _names(kind: str, names: list[str]) -> str:
    return f"{kind}{'s' if len(names) > 1 else ''} " + ", ".join(f"`{n}`" for n in names)


def _spec_hint(specs_given: bool) -> str:
    return "" if specs_given else "; if a spec file uses it, give that file with `--spec`"
