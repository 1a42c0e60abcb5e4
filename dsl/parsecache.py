"""A parse cache across runs: a file whose text, name and parser are unchanged is not parsed
again (CI runs the same policy through check, lint and audit; a reviewer runs check twice).

An entry is the file's syntax tree, pickled, under a key hashing the text, the name it is shown
by, and the grammar and code of the parser. The folder is `$DPIPOLICY_CACHE`, else
`$XDG_CACHE_HOME/dpipolicy`, else `~/.cache/dpipolicy`; `DPIPOLICY_CACHE=off` turns the cache
off. Deleting the folder is always safe; it is kept under 1 GiB by deleting the entries used
least recently. Since unpickling runs whatever the file says, a folder
that is not the user's own, or that others may write to, is never read (nor written): the cache
is then off, silently, as it is when an entry cannot be read, is corrupt or is not a tree of
this text (every such case parses the file, and replaces the entry).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import stat
import tempfile
from functools import cache
from pathlib import Path
from typing import Callable

from . import ast
from .source import SourceFile

_SOURCE = "source"          # the persistent id of the entry's own source file (see _Pickler)
LIMIT_BYTES = 1 << 30       # the folder's size above which entries least recently used are deleted
_PRUNE_ON = "0"             # the first hex digit of the keys whose write is followed by a prune
_pruned: set[Path] = set()  # the folders this run has pruned
_PLAIN = {("builtins", n) for n in ("frozenset", "set", "tuple", "list", "dict", "int", "str", "bytes")}


def cached(parse: Callable[[SourceFile], ast.Module]) -> Callable[[SourceFile], ast.Module]:
    """`parse`, going through the cache folder when there is a usable one."""
    folder = cache_folder()
    if folder is None:
        return parse

    def through_cache(file: SourceFile) -> ast.Module:
        entry = folder / _key(file)
        module = _read(entry, file)
        if module is None:
            module = parse(file)
            _write(entry, module, file)
            if entry.name.startswith(_PRUNE_ON) and folder not in _pruned:
                _pruned.add(folder)
                prune(folder)
        else:
            with contextlib.suppress(OSError):
                os.utime(entry)         # used now: the last to go when the folder is pruned
        return module
    return through_cache


def prune(folder: Path, limit: int = LIMIT_BYTES) -> None:
    """Keep the folder under `limit` bytes: the entries least recently used go first, down to
    three quarters of it. Since it lists the whole folder, a run asks it at most once, after
    the first write whose key starts with _PRUNE_ON (one in sixteen, so runs are reproducible):
    a run that reads 10,000 imports writes as many entries."""
    try:
        entries = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in os.scandir(folder)
                   if e.name.endswith(".pickle") and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in sorted(entries):
        if total <= limit * 3 // 4:
            return
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size


def cache_folder() -> Path | None:
    """The cache folder, made if missing; None when it is off or not safe to read."""
    setting = os.environ.get("DPIPOLICY_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        folder = Path(setting)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base) / "dpipolicy"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError:
        return None
    private = info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return folder if private and stat.S_ISDIR(info.st_mode) else None


def _key(file: SourceFile) -> str:
    digest = hashlib.sha256(_parser_identity().encode())
    for part in (file.display_name, str(file.path), file.text):
        digest.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    return digest.hexdigest() + ".pickle"


@cache
def _parser_identity() -> str:
    """What a tree depends on beside the text: the grammar and the modules that build it."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(pickle.format_version.encode())
    for name in ("grammar.lark", "parser.py", "ast.py", "source.py", "diagnostics.py", "parsecache.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


@cache
def _init_fields(cls: type) -> tuple[str, ...] | None:
    """The fields of one of our dataclasses, when its constructor takes them all."""
    if not (dataclasses.is_dataclass(cls) and cls.__module__.startswith("dpipolicy.")):
        return None
    fields = dataclasses.fields(cls)
    return tuple(f.name for f in fields) if all(f.init for f in fields) else None


class _Pickler(pickle.Pickler):
    """Stores the entry's source file by reference: the tree read back points to the file read
    now, so every span is this run's."""

    def __init__(self, out, file: SourceFile):
        super().__init__(out, protocol=pickle.HIGHEST_PROTOCOL)
        self.file = file

    def persistent_id(self, obj):
        if obj is self.file:
            return _SOURCE
        if isinstance(obj, SourceFile):
            raise pickle.PicklingError("a tree holding another file's spans is not cached")
        return None

    def reducer_override(self, obj):
        """A node as its class and field values: read back through its constructor, several
        times quicker than pickle's default for frozen dataclasses (which asks for the class's
        fields once per node)."""
        names = _init_fields(type(obj))
        if names is None:
            return NotImplemented
        return type(obj), tuple(getattr(obj, n) for n in names)


class _Unpickler(pickle.Unpickler):
    """Builds only the classes a syntax tree is made of: even a planted entry runs nothing."""

    def __init__(self, data, file: SourceFile):
        super().__init__(data)
        self.file = file

    def find_class(self, module: str, name: str):
        if module.startswith("dpipolicy.dsl.") or (module, name) in _PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a syntax tree")

    def persistent_load(self, pid):
        if pid != _SOURCE:
            raise pickle.UnpicklingError("unknown reference")
        return self.file


def _read(entry: Path, file: SourceFile) -> ast.Module | None:
    try:
        with entry.open("rb") as data:
            count = _Unpickler(data, file).load()
            if type(count) is not int:
                return None
            # one unpickler per item: each was written with a memory of its own (see _write)
            items = tuple(_Unpickler(data, file).load() for _ in range(count))
    except Exception:         # missing, unreadable or corrupt: parse again (the entry is replaced)
        return None
    return ast.Module(items)


def _write(entry: Path, module: ast.Module, file: SourceFile) -> None:
    """Write the entry whole or not at all (a temporary file renamed), never failing the run.
    An entry is the number of items, then each item pickled on its own (the pickler forgets
    what it wrote between items): the pickler's record of every object written would
    otherwise grow with the file, and cost a large policy more memory than its tree. Nodes are
    immutable values, so one that two items shared would read back as two equal ones."""
    try:
        fd, name = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
    except OSError:
        return                # an unwritable folder: this run goes on uncached
    try:
        with os.fdopen(fd, "wb") as tmp:
            pickler = _Pickler(tmp, file)
            pickler.dump(len(module.items))
            for item in module.items:
                pickler.dump(item)
                pickler.clear_memo()
        os.replace(name, entry)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError, OSError):
        with contextlib.suppress(OSError):  # an unpicklable tree: this run goes on uncached
            os.unlink(name)
