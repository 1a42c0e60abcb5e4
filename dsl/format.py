"""Canonical layout of `.dpi` source text, for `dpipolicy fmt` (rules in docs/fmt.md).

Only the white space between tokens changes: every token is printed as written, so the result
means what the input means, and every comment is kept in its place among the tokens, still
trailing its line or still on a line of its own. The text is read with the language's own
grammar into a concrete tree (parentheses and commas kept) plus the comment tokens; the tree
becomes a stream of layout operations, and a printer turns the stream into lines, filling each
line greedily up to WIDTH columns. Before the result is returned it is read again and its tokens
and comments are compared with the input's, so a mistake here fails loudly instead of quietly
changing a policy or dropping a comment.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

from .parser import MAX_NESTING, grammar_text, parse_source
from .source import file_from_text

WIDTH = 88      # layout choices keep lines to this many columns; a long name, string or comment may exceed it
INDENT = 4

# What separates two tokens; when several are asked for, the strongest wins.
NONE, SPACE, SOFT, LINE, BLANK = range(5)     # SOFT: a space, or a line break when the next piece does not fit
HERE, SAME = "here", "same"                   # push: the column after the text just printed; the current one
_EXPRESSION_CLAUSES = ("when", "require", "exists", "given")


@dataclass(frozen=True, slots=True)
class _Comment:
    text: str
    start: int
    trailing: bool        # written after a token on the same line
    blank_before: bool    # a blank line separates it from what comes before
    indented: bool        # own-line and not in the first column


@dataclass(frozen=True)
class _Read:
    """A source text as the formatter sees it: the concrete tree, its tokens and its comments."""
    tree: Tree
    tokens: list[Token]
    comments: list[_Comment]
    blank_before: frozenset[int]     # start offsets of the tokens a blank line separates from what comes before


class _ConcreteParser:
    """The language's grammar, keeping every token and collecting the comments it skips."""

    def __init__(self) -> None:
        self.comments: list[Token] = []
        self.lark = Lark(grammar_text(), parser="lalr", keep_all_tokens=True, maybe_placeholders=False,
                         lexer_callbacks={"COMMENT": self.comments.append})

    def parse(self, text: str) -> tuple[Tree, list[Token]]:
        self.comments.clear()
        tree = self.lark.parse(text)
        return tree, list(self.comments)


@lru_cache(maxsize=None)
def _concrete_parser() -> _ConcreteParser:
    return _ConcreteParser()


def format_source(text: str, name: str = "<text>") -> str:
    """The canonical layout of one source file's text. Raises DiagnosticError on a syntax error,
    with the diagnostics every other command gives for that file; broken text is never formatted."""
    try:
        read = _read(text)
    except (LarkError, _TooDeep):      # the parser says why, at the place
        read = None
    if read is None or _dotted_item_name(read.tree):
        parse_source(file_from_text(text, name))      # raises, as for every command reading this file
        raise RuntimeError(f"the formatter cannot read `{name}`, which the parser accepts; this is a bug")
    result = _Printer(_Layout(read).ops()).text()
    if result == text:
        return result       # already in its layout: the very tokens and comments, nothing to prove
    try:
        again = _read(result)
    except LarkError:
        again = None
    if again is None or _meaning(again) != _meaning(read):
        raise RuntimeError(f"formatting `{name}` would change its tokens or comments; "
                           "this is a bug in the formatter, so the file is left as it is")
    return result


class _TooDeep(Exception):
    pass


def _nesting(tree: Tree) -> int:
    """How deep conditions nest in the tree (counted without recursion: that is what it guards)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        depth += node.data in ("paren", "not_expr", "and_expr", "or_expr")
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.children if isinstance(child, Tree))
    return deepest


def _read(text: str) -> _Read:
    tree, raw_comments = _concrete_parser().parse(text)
    if _nesting(tree) > MAX_NESTING:          # the walks below recurse
        raise _TooDeep
    tokens = list(tree.scan_values(lambda v: isinstance(v, Token)))
    comments: list[_Comment] = []
    blank: set[int] = set()
    end, after_token = 0, False
    for element in sorted(tokens + raw_comments, key=lambda t: t.start_pos):
        newlines = text.count("\n", end, element.start_pos)
        if element.type == "COMMENT":
            line_start = text.rfind("\n", 0, element.start_pos) + 1
            comments.append(_Comment(element.value.rstrip(), element.start_pos, after_token and newlines == 0,
                                     newlines >= 2, text[line_start:element.start_pos].strip() == ""
                                     and line_start < element.start_pos))
        elif newlines >= 2:
            blank.add(element.start_pos)
        end, after_token = element.end_pos, element.type != "COMMENT"
    return _Read(tree, tokens, comments, frozenset(blank))


def _dotted_item_name(tree: Tree) -> bool:
    """Whether a name an item declares has a dot: the grammar reads it, the parser reports it (E002)."""
    return any(isinstance(t, Token) and t.type == "NAME" and "." in t for item in tree.children for t in item.children)


def _meaning(read: _Read) -> list[tuple]:
    """Tokens and comments in order, each comment with whether it trails a line. Commas are left
    out: where they stand is fixed by the grammar (the text parsed), except the optional one
    before `}`, which the layout may add or drop."""
    tokens = [(t.start_pos, t.value) for t in read.tokens if t.value != ","]
    comments = [(c.start, "#", c.text, c.trailing) for c in read.comments]
    return [element[1:] for element in sorted(tokens + comments)]


def _tokens(node: Tree | Token) -> list[Token]:
    return [node] if isinstance(node, Token) else list(node.scan_values(lambda v: isinstance(v, Token)))


def _flat(node: Tree | Token) -> str:
    """A set member or enum member on one line: its tokens joined (a range has no spaces)."""
    return "".join(t.value for t in _tokens(node))


def _braced(item: Tree) -> list[Tree | Token]:
    """The `{ ... }` tokens and members of a `set` or `enum` item."""
    return item.children[3].children if item.data == "set_decl" else item.children[2:]


def _members(braced: list[Tree | Token]) -> list[tuple[Tree | Token, Token | None]]:
    """Each member between the braces with the comma written after it (None after the last one,
    unless the optional trailing comma is there)."""
    members: list[tuple[Tree | Token, Token | None]] = []
    for child in braced[1:-1]:
        if isinstance(child, Token) and child.value == ",":
            members[-1] = (members[-1][0], child)
        else:
            members.append((child, None))
    return members


class _Layout:
    """The concrete tree as a stream of operations for the printer:
    ("text", TEXT, BLANK_BEFORE), ("gap", STRENGTH), ("push", COLUMN | HERE | SAME, KEEPS_BLANKS), ("pop",),
    ("note", TEXT, TRAILING, BLANK_BEFORE) for a comment, and ("flush",), which prints the
    own-line comments waiting for the next line at the current indentation.
    """

    def __init__(self, read: _Read) -> None:
        self.read = read
        self.out: list[tuple] = []
        self.next_comment = 0                  # the first comment not yet in `out`
        self.starts = [c.start for c in read.comments]

    def ops(self) -> list[tuple]:
        items = self.read.tree.children
        one_line = [self._one_line(item) for item in items]
        multi_line = [item.data in ("rule_decl", "invariant_require", "invariant_same", "invariant_exists", "test_decl")
                      or not one_line[k] for k, item in enumerate(items)]
        pads = self._pads(items, one_line)
        for k, item in enumerate(items):
            first = _tokens(item)[0]
            if k:
                leading = self.read.comments[self.next_comment:self._before(first.start_pos)]
                separated = first.start_pos in self.read.blank_before or any(c.blank_before for c in leading)
                self._gap(BLANK if (multi_line[k - 1] or multi_line[k]) and not separated else LINE)
            end = _tokens(items[k + 1])[0].start_pos if k + 1 < len(items) else None
            self._item(item, pads[k], one_line[k], end)
        self._comments_before(None)
        return self.out

    # ----- decisions over whole items ----------------------------------------------------------

    def _one_line(self, item: Tree) -> bool:
        """Whether a `set` or `enum` item is written on one line: it fits and holds no comment
        (other items: True, unused)."""
        if item.data not in ("set_decl", "enum_decl"):
            return True
        tokens = _tokens(item)
        if self._between(tokens[0].start_pos, tokens[-1].start_pos):
            return False
        braced = _braced(item)
        members = [_flat(m) for m, _ in _members(braced)]
        braces = 4 + sum(map(len, members)) + 2 * (len(members) - 1) if members else 2
        head = f"set {item.children[1]} = " if item.data == "set_decl" else f"enum {item.children[1]} "
        return len(head) + braces <= WIDTH

    def _pads(self, items: list[Tree], one_line: list[bool]) -> list[int]:
        """Spaces after each item's name: one-line `set` (or `enum`) items on consecutive lines
        line up their `=` (or `{`)."""
        pads = [0] * len(items)
        k = 0
        while k < len(items):
            j = k + 1
            if items[k].data in ("set_decl", "enum_decl") and one_line[k]:
                while (j < len(items) and items[j].data == items[k].data and one_line[j]
                       and self._adjacent(items[j - 1], items[j])):
                    j += 1
                width = max(len(items[i].children[1]) for i in range(k, j))
                for i in range(k, j):
                    pads[i] = width - len(items[i].children[1])
            k = j
        return pads

    def _adjacent(self, before: Tree, after: Tree) -> bool:
        """No blank line and no own-line comment between two items."""
        end, start = _tokens(before)[-1].end_pos, _tokens(after)[0].start_pos
        return start not in self.read.blank_before and not any(not c.trailing for c in self._between(end, start))

    # ----- items ---------------------------------------------------------------------------------

    def _item(self, item: Tree, pad: int, one_line: bool, end: int | None) -> None:
        keyword, *rest = item.children
        self._tok(keyword)
        self._push(INDENT)
        if item.data in ("set_decl", "enum_decl"):
            self._gap(SPACE)
            self._tok(rest[0], pad)
            if item.data == "set_decl":
                self._gap(SPACE)
                self._tok(rest[1])
            self._gap(SPACE)
            self._braces(_braced(item), one_line)
        elif item.data in ("rule_decl", "invariant_require", "invariant_same", "invariant_exists", "test_decl"):
            self._clauses(rest)
        else:                                     # policy, import, default: one line
            for child in rest:
                self._gap(SPACE)
                self._node(child)
        self._tail(end)

    def _clauses(self, children: list[Tree | Token]) -> None:
        """`NAME` after the keyword, then each clause (`when ...`, `then ...`, the invariant's
        description) on its own line; a condition continues under its first character."""
        parts: list[Tree | Token] = []
        for child in children:
            parts.extend(child.children if isinstance(child, Tree) and child.data in ("because", "when_clause")
                         else [child])
        name, *clauses = parts
        self._gap(SPACE)
        self._tok(name)
        previous = name
        for part in clauses:
            if isinstance(part, Token) and part.type != "STRING":      # a clause keyword
                self._gap(LINE)
                self._tok(part)
            elif previous is name:                                      # an invariant's description
                self._gap(LINE)
                self._tok(part)
            elif previous.value in _EXPRESSION_CLAUSES:
                self._gap(SPACE)
                self._push(INDENT + len(previous.value) + 1)
                self._node(part)
                self._pop()
            else:
                self._gap(SPACE)
                self._node(part)
            previous = part

    def _braces(self, braced: list[Tree | Token], one_line: bool) -> None:
        """A declared set or enum: `{ a, b }` on one line, or one member block, four columns in,
        filled greedily, each member followed by a comma, `}` on a line of its own."""
        lbrace, rbrace, members = braced[0], braced[-1], _members(braced)
        self._tok(lbrace)
        if one_line:
            for k, (member, comma) in enumerate(members):
                self._gap(SPACE)
                self._node(member)
                if k + 1 < len(members):
                    self._tok(comma)
            self._gap(SPACE if members else NONE)
        else:
            self._push(INDENT, keeps_blanks=True)
            for k, (member, comma) in enumerate(members):
                blank = _tokens(member)[0].start_pos in self.read.blank_before
                self._gap(LINE if k == 0 or blank else SOFT)
                self._node(member)
                if comma is None:
                    self._text(",")
                else:
                    self._tok(comma)
            self._comments_before(rbrace.start_pos)
            self.out.append(("flush",))
            self._pop()
            self._push(0)
            self._gap(LINE)
            self._tok(rbrace)
            self._pop()
            return
        self._tok(rbrace)

    def _tail(self, end: int | None) -> None:
        """Close an item: its trailing comment, and the own-line comments right under it that are
        indented (a note on the item, or a clause commented out), stay with it."""
        comments, k, stop = self.read.comments, self.next_comment, self._before(end)
        if k < stop and comments[k].trailing:
            k += 1
        while k < stop and not comments[k].blank_before and comments[k].indented:
            k += 1
        self._notes(k)
        self.out.append(("flush",))
        self._pop()

    # ----- conditions and actions ----------------------------------------------------------------

    def _node(self, node: Tree | Token) -> None:
        if isinstance(node, Token):
            self._tok(node)
            return
        kind, children = node.data, node.children
        if kind in ("or_expr", "and_expr"):
            for child in children:
                if isinstance(child, Token):                # `and` / `or` starts a piece of a filled line
                    self._gap(SOFT)
                    self._tok(child)
                    self._gap(SPACE)
                elif kind == "or_expr" and child.data == "and_expr":
                    # one piece of the `or` line: broken only when it does not fit on a line of its own,
                    # so a line break never suggests that `or` binds tighter than `and`
                    self._push(SAME)
                    self._node(child)
                    self._pop()
                else:
                    self._node(child)
        elif kind == "paren":                               # ( condition ): continues after the `(`
            self._tok(children[0])
            self._push(HERE)
            self._node(children[1])
            self._tok(children[2])
            self._pop()
        elif kind == "set_literal":                         # {a, b} in a condition: continues after the `{`
            members = _members(children)
            self._tok(children[0])
            self._push(HERE)
            for k, (member, comma) in enumerate(members):
                self._node(member)
                if k + 1 < len(members):
                    self._tok(comma)
                    self._gap(SOFT)
                elif comma is not None and self._between(comma.start_pos, children[-1].start_pos):
                    self._tok(comma)        # kept so that a comment after it cannot end up after another
            self._tok(children[-1])
            self._pop()
        elif kind == "range":
            for child in children:
                self._node(child)
        elif kind == "same_clause":                         # `same a, b across c, d`: commas close up
            for k, child in enumerate(children):
                if k and child.type != "COMMA":
                    self._gap(SOFT if children[k - 1].type == "COMMA" else SPACE)
                self._tok(child)
        elif kind in ("log_flag", "outcome_part"):         # `, log`, `, charge zero_rated`
            self._tok(children[0])
            for child in children[1:]:
                self._gap(SPACE)
                self._tok(child)
        else:                                               # operand, comparison, membership, not, action
            for k, child in enumerate(children):
                if k and not (isinstance(child, Tree) and child.data in ("log_flag", "outcome_part")):
                    self._gap(SPACE)
                self._node(child)

    # ----- operations ----------------------------------------------------------------------------

    def _tok(self, token: Token, pad: int = 0) -> None:
        self._comments_before(token.start_pos)
        self.out.append(("text", token.value + " " * pad, token.start_pos in self.read.blank_before))

    def _text(self, text: str) -> None:
        """Text with no source token: the optional comma after the last member of a set block."""
        self.out.append(("text", text, False))

    def _gap(self, strength: int) -> None:
        self.out.append(("gap", strength))

    def _push(self, column: int | str, keeps_blanks: bool = False) -> None:
        self.out.append(("push", column, keeps_blanks))

    def _pop(self) -> None:
        self.out.append(("pop",))

    def _comments_before(self, position: int | None) -> None:
        self._notes(self._before(position))

    def _before(self, position: int | None) -> int:
        """The index of the first comment at or after a source offset (None: the end of the file)."""
        return len(self.starts) if position is None else bisect.bisect_left(self.starts, position)

    def _between(self, start: int, end: int) -> list[_Comment]:
        return self.read.comments[bisect.bisect_right(self.starts, start):self._before(end)]

    def _notes(self, upto: int) -> None:
        for comment in self.read.comments[self.next_comment:upto]:
            self.out.append(("note", comment.text, comment.trailing, comment.blank_before))
        self.next_comment = upto


class _Printer:
    """Lines from layout operations. A gap is resolved when the next text arrives: a SOFT gap
    breaks the line only if the piece that follows (up to the next SOFT gap of the same or an
    outer level, nested brackets counted as written on one line) would pass WIDTH."""

    def __init__(self, ops: list[tuple]) -> None:
        self.ops = ops
        self.lines: list[str] = []
        self.line: str | None = None          # the line being filled; None before the first and after a flush
        self.gap = NONE
        self.must_break = False               # a trailing comment ends the current line
        self.waiting: list[tuple[str, bool]] = []    # own-line comments for the next line break
        self.frames: list[tuple[int, bool]] = [(0, True)]   # (indentation, whether blank lines are kept)

    def text(self) -> str:
        for index, op in enumerate(self.ops):
            kind = op[0]
            if kind == "text":
                self._put(index, op[1], op[2])
            elif kind == "gap":
                self.gap = max(self.gap, op[1])
            elif kind == "push":
                column = len(self.line) if op[1] == HERE else self.frames[-1][0] if op[1] == SAME else op[1]
                self.frames.append((column, op[2]))
            elif kind == "pop":
                self.frames.pop()
            elif kind == "note":
                if op[2] and self.line is not None:
                    self.line += "  " + op[1]
                    self.must_break = True
                else:
                    self.waiting.append((op[1], op[3]))
            else:
                self._flush()
        self._flush()
        self._end_line()
        return "".join(line + "\n" for line in self.lines)

    def _put(self, index: int, text: str, blank_before: bool) -> None:
        if (self.line is None or self.must_break or self.waiting or self.gap >= LINE
                or self.gap == SOFT and len(self.line) + 1 + self._piece(index) > WIDTH):
            self._end_line()
            if self.gap == BLANK:
                self._blank()
            self._flush()
            if blank_before and self.frames[-1][1]:
                self._blank()
            self.line = " " * self.frames[-1][0] + text
        else:
            self.line += (" " if self.gap >= SPACE else "") + text
        self.gap, self.must_break = NONE, False

    def _piece(self, index: int) -> int:
        """Width of the text from ops[index] to the next place the line may or must break."""
        ops = self.ops
        width, depth = len(ops[index][1]), 0
        for at in range(index + 1, len(ops)):
            op = ops[at]
            kind = op[0]
            if kind == "text":
                width += len(op[1])
            elif kind == "gap":
                if op[1] >= LINE or op[1] == SOFT and depth <= 0:
                    break
                width += op[1] != NONE
            elif kind == "push":
                depth += 1
            elif kind == "pop":
                depth -= 1
            else:                               # a comment or a flush: the line ends here
                break
        return width

    def _flush(self) -> None:
        """Print the waiting own-line comments, each on its own line at the current indentation."""
        if not self.waiting:
            return
        self._end_line()
        column, keeps_blanks = self.frames[-1]
        for text, blank_before in self.waiting:
            if blank_before and keeps_blanks:
                self._blank()
            self.lines.append(" " * column + text)
        self.waiting = []

    def _end_line(self) -> None:
        if self.line is not None:
            self.lines.append(self.line)
            self.line = None
        self.must_break = False

    def _blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")
