"""Parsing the next version of a file: the items whose text is unchanged are reused, not parsed.

`dpipolicy diff` loads two versions of a policy that share nearly all their text, and the parse
is most of a load. A file is cut into chunks where a line starts with an item keyword (where
error recovery resumes, `parser.ITEM_START`): a header, then chunks each running from a keyword
to the next, comments and blank lines after its item included. A chunk whose exact text was
seen before, in any file, gives back its items placed in the new file; the other chunks are
parsed, each on its own.

That is what parsing the whole file gives. Tokens never cross a line break, every item starts
with its keyword, and the grammar is LALR: a text whose chunks each parse alone without error
parses to their items, in order. When a chunk does not (a syntax error, or a line inside an
item that starts with a keyword-like name such as `default`), the whole file is parsed as
usual, recovery, error items and all.

A reused item is placed in the new file by its own span and its name's, the places a checked
policy keeps (rule origins, invariant and test locations, the `default`). The nodes inside it
are the first parse's, with spans into the text they were parsed from: only error messages
read those, so a load through a memo that finds errors is done again without it
(`api.load`). Moving every inner span too took three quarters of the next version's parse.
"""
from __future__ import annotations

from dataclasses import replace

from . import ast
from .parsecache import cached
from .parser import ITEM_START, ErrorItem, parse_clean, parse_recovering
from .source import SourceFile, Span

Chunk = tuple[int, tuple[ast.Item, ...]]     # the offset a chunk's text stood at, and its items


class ParseMemo:
    """The chunks of the files parsed so far, by exact text: load one version of a policy with it
    and the next version loaded with it parses only its new chunks."""

    def __init__(self) -> None:
        self._chunks: dict[str, Chunk] = {}
        self.reused = 0         # chunks given back so far: a load that gets any may hold stale inner spans

    def parse(self, file: SourceFile) -> ast.Module:
        """What `parser.parse_recovering(file)` gives, reusing the chunks seen before (with their
        inner spans where they were first parsed)."""
        starts = [0] + [m.start(1) for m in ITEM_START.finditer(file.text)]
        texts = [file.text[start:end] for start, end in zip(starts, starts[1:] + [len(file.text)])]
        seen = [self._chunks.get(text) for text in texts]
        if 2 * seen.count(None) > len(texts):        # mostly new text: one parse is quicker than many
            return self._remember(file, starts, texts, _parsed_whole(file))
        items: list[ast.Item] = []
        for start, text, chunk in zip(starts, texts, seen):
            if chunk is None:
                module = parse_clean(file, text, start)
                if module is None:
                    return self._remember(file, starts, texts, _parsed_whole(file))
                self._chunks[text] = (start, module.items)
                items.extend(module.items)
            else:
                self.reused += 1
                items.extend(_placed(chunk[1], file, start - chunk[0]))
        return ast.Module(tuple(items))

    def _remember(self, file: SourceFile, starts: list[int], texts: list[str], module: ast.Module) -> ast.Module:
        """Keep each chunk of a whole-file parse whose items lie inside it (none if the file has errors).

        Chunk 0 is the header, with no item; any other holds the item that starts at its keyword
        and those after it on its lines. An item crossing into the next chunk (a keyword-like name
        at the start of a line) leaves both unkept: neither parses alone to what the file gives.
        """
        if any(isinstance(item, ErrorItem) for item in module.items):
            return module
        items, taken = module.items, 0
        for index, (start, text) in enumerate(zip(starts, texts)):
            end, first = start + len(text), taken
            while taken < len(items) and items[taken].span.start < end:
                taken += 1
            mine = items[first:taken]
            if (not mine if index == 0 else
                    bool(mine) and mine[0].span.start == start and mine[-1].span.end <= end):
                self._chunks[text] = (start, mine)
        return module


def _parsed_whole(file: SourceFile) -> ast.Module:
    """A file parsed whole as a load without a memo parses it: through the parse cache, so the
    first version of a diff whose file has not changed since the last run is read back."""
    return cached(parse_recovering)(file)


def _placed(items: tuple[ast.Item, ...], file: SourceFile, delta: int):
    """Copies of `items` whose own span and name stand `delta` characters on, in `file`."""
    def moved(span: Span) -> Span:
        return Span(file, span.start + delta, span.end + delta)

    def place(item):
        name = getattr(item, "name", None)
        if name is None:
            return replace(item, span=moved(item.span))
        return replace(item, span=moved(item.span), name=ast.Ident(name.text, moved(name.span)))
    return map(place, items)
