"""Parser: source text to an `ast.Module`, reporting every syntax error in the file.

The LALR parser runs with the tree transformer inlined (no intermediate parse tree), which is
what makes 10k-rule policies parse quickly. After a syntax error the parser resumes at the next
line that starts with an item keyword, so one bad rule does not hide the errors after it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .diagnostics import Diagnostic, DiagnosticError
from .source import SourceFile, Span
from .words import counted

ITEM_KEYWORDS = ("policy", "enum", "set", "default", "rule", "invariant", "test", "import")
ITEM_START = re.compile(r"^[ \t]*(%s)\b" % "|".join(ITEM_KEYWORDS), re.M)
MAX_SYNTAX_ERRORS = 50
# Conditions inside conditions (parentheses, `not`, `and` inside `or`): the checker, the compiler
# and the formatter walk them recursively, and no policy needs more (E004).
MAX_NESTING = 100

_TOKEN_WORDS = {
    "NAME": "a name", "HYPHEN_NAME": "a name", "NUMBER": "a number", "IPV4": "an IPv4 address", "IPV6": "an IPv6 address",
    "VOLUME": "a volume such as `20GB`", "RATE": "a rate such as `128kbps`", "STRING": "a quoted string",
    "CMP": "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)", "$END": "end of file",
    "ACTION_WORD": "an action (`allow`, `block`, `reset`, `throttle`, `redirect`)",
    "TRUE": "`true`", "FALSE": "`false`",
    "PART_WORD": "a part of the outcome (`, charge KEY`, `, priority LEVEL`)",
    "PER": "a throttle's scope (`per flow`, `per subscriber`)", "PURPOSE": "`purpose WHY`",
}


def string_body(text: str) -> str:
    """What a string literal says: its text without the quotes, escapes read."""
    return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")


@v_args(inline=True)
class _ToAst(Transformer):
    """Builds AST nodes straight from parser reductions (spans come from the children)."""

    def __init__(self, file: SourceFile | None):
        super().__init__()
        self.file = file
        self.offset = 0             # where the parsed text stands in the file
        self.errors: list[Diagnostic] = []
        self.depths: dict[int, tuple[object, int]] = {}     # id of a condition -> (it, how deep it nests)

    def _tok(self, tok: Token) -> Span:
        return Span(self.file, tok.start_pos + self.offset, tok.end_pos + self.offset)

    def _from(self, first, last) -> Span:
        start = self._tok(first) if isinstance(first, Token) else first.span
        end = self._tok(last) if isinstance(last, Token) else last.span
        return start.to(end)

    def _name(self, tok: Token) -> ast.Ident:
        ident = ast.Ident(str(tok), self._tok(tok))
        if "." in ident.text:
            self.errors.append(Diagnostic("E002", f"`{ident.text}` is not a valid name here", ident.span,
                                          "names of items cannot contain dots",
                                          help="use letters, digits and `_`, for example `"
                                          + ident.text.replace(".", "_") + "`"))
        return ident

    @staticmethod
    def _string(tok: Token) -> str:
        return string_body(str(tok))

    def start(self, *items):
        return ast.Module(tuple(items))

    def policy_decl(self, kw, name, version=None):
        last = version if version is not None else name
        return ast.PolicyDecl(self._name(name), None if version is None else self._string(version),
                              self._from(kw, last))

    def enum_decl(self, kw, name, *members):
        idents = tuple(self._name(m) for m in members if m is not None)
        return ast.EnumDecl(self._name(name), idents, self._from(kw, idents[-1] if idents else name))

    def set_decl(self, kw, name, value):
        return ast.SetDecl(self._name(name), value, self._from(kw, value))

    def default_decl(self, kw, action):
        return ast.DefaultDecl(action, self._from(kw, action))

    def because(self, text):
        return self._string(text)

    def rule_decl(self, kw, name, when, action, because=None):
        return ast.RuleDecl(self._name(name), when, action, because, self._from(kw, action))

    def _invariant_parts(self, parts):
        if parts and isinstance(parts[0], Token) and parts[0].type == "STRING":
            return self._string(parts[0]), parts[1:]
        return None, parts

    def invariant_require(self, kw, name, *parts):
        description, parts = self._invariant_parts(parts)
        when = parts[0] if len(parts) == 2 else None
        return ast.InvariantDecl(self._name(name), description, when, parts[-1], None,
                                 self._from(kw, parts[-1]))

    def invariant_same(self, kw, name, *parts):
        description, parts = self._invariant_parts(parts)
        when = parts[0] if len(parts) == 2 else None
        return ast.InvariantDecl(self._name(name), description, when, None, None,
                                 self._from(kw, parts[-1]), same=parts[-1])

    def same_clause(self, kw, *names):
        across = next(k for k, t in enumerate(names) if t.type == "ACROSS")
        parts = tuple(ast.Ident(str(t), self._tok(t)) for t in names[:across])
        fields = tuple(ast.Ident(str(t), self._tok(t)) for t in names[across + 1:])
        return ast.SameClause(parts, fields, self._from(kw, names[-1]))

    def invariant_exists(self, kw, name, *parts):
        description, parts = self._invariant_parts(parts)
        return ast.InvariantDecl(self._name(name), description, None, None, parts[-1],
                                 self._from(kw, parts[-1]))

    def when_clause(self, expr):
        return expr

    def test_decl(self, kw, name, given, expect):
        return ast.TestDecl(self._name(name), given, expect, self._from(kw, expect))

    def import_decl(self, kw, path):
        return ast.ImportDecl(self._string(path), self._from(kw, path))

    def action(self, word, *rest):
        tokens = [t for t in rest if isinstance(t, Token)]
        log = next((t for t in tokens if t.type == "LOG"), None)
        argument = next((t for t in tokens if t.type in ("RATE", "STRING")), None)
        scope = next((x[1] for x in rest if isinstance(x, tuple) and x[0] == "scope"), None)
        purpose = next((x[1] for x in rest if isinstance(x, tuple) and x[0] == "purpose"), None)
        parts = tuple(x[1:] for x in rest if isinstance(x, tuple) and x[0] == "part")
        rate = target = None
        if argument is not None and argument.type == "RATE":
            rate = ast.Literal("rate", str(argument), self._tok(argument))
        elif argument is not None:
            target = self._string(argument)
        last = rest[-1] if rest else word
        last = last[-1] if isinstance(last, tuple) else last
        return ast.ActionSpec(str(word), rate, target, log is not None, self._from(word, last),
                              argument_span=None if argument is None else self._tok(argument),
                              scope=scope, parts=parts, purpose=purpose)

    def scope(self, per, word):
        return ("scope", self._name(word))

    def outcome_part(self, part, value):
        return ("part", ast.Ident(str(part), self._tok(part)), self._name(value))

    def purpose(self, keyword, word):
        return ("purpose", self._name(word))

    def log_flag(self, tok):
        return tok

    def _nested(self, node, *inner):
        """`node`, a condition holding `inner` ones, one level deeper than the deepest of them; the
        level past MAX_NESTING is E004 (the nodes are kept, so that no id is reused meanwhile)."""
        depth = 1 + max((self.depths[id(x)][1] for x in inner if id(x) in self.depths), default=0)
        self.depths[id(node)] = (node, depth)
        if depth == MAX_NESTING + 1:
            self.errors.append(Diagnostic(
                "E004", f"a condition nested more than {MAX_NESTING} deep", node.span, "nested too deeply",
                help="`and` and `or` take any number of operands; name parts of the condition as sets"))
        return node

    def or_expr(self, *operands):
        return self._nested(ast.Or(operands, operands[0].span.to(operands[-1].span)), *operands)

    def and_expr(self, *operands):
        return self._nested(ast.And(operands, operands[0].span.to(operands[-1].span)), *operands)

    def paren(self, lpar, expr, rpar):
        """A condition in parentheses: its span takes them in (so `not (a or b)` reads whole)."""
        return self._nested(replace(expr, span=self._from(lpar, rpar)), expr)

    def not_expr(self, kw, operand):
        return self._nested(ast.Not(operand, self._from(kw, operand)), operand)

    def compare(self, left, op, right):
        return ast.Compare(str(op), left, right, left.span.to(right.span))

    def member(self, item, container):
        return ast.Member(item, container, False, item.span.to(container.span))

    def not_member(self, item, kw, container):
        return ast.Member(item, container, True, item.span.to(container.span))

    def set_literal(self, lbrace, *rest):
        *elements, rbrace = rest
        return ast.SetLiteral(tuple(e for e in elements if e is not None), self._from(lbrace, rbrace))

    def range(self, low, high):
        return ast.Range(low, high, low.span.to(high.span))

    def operand(self, tok):
        span = self._tok(tok)
        if tok.type in ("NAME", "HYPHEN_NAME"):
            return ast.Ident(str(tok), span)
        if tok.type in ("TRUE", "FALSE"):
            return ast.Literal("bool", str(tok), span)
        return ast.Literal(tok.type.lower(), str(tok), span)


@lru_cache(maxsize=None)
def grammar_text() -> str:
    """The language's grammar (lark), shared by the parser and the formatter."""
    return resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")


class _Parser:
    """One LALR parser with the AST builder inlined; the builder is re-pointed at each file."""

    def __init__(self) -> None:
        self.builder = _ToAst(None)
        self.lark = Lark(grammar_text(), parser="lalr",
                         maybe_placeholders=True, transformer=self.builder)

    def parse(self, file: SourceFile, text: str, offset: int = 0) -> tuple[ast.Module, list[Diagnostic]]:
        self.builder.file, self.builder.offset, self.builder.errors = file, offset, []
        self.builder.depths = {}
        try:
            module = self.lark.parse(text)
        finally:
            self.builder.depths = {}
        return module, self.builder.errors


@lru_cache(maxsize=None)
def _parser() -> _Parser:
    return _Parser()


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """Stands where an item could not be read, carrying its syntax error.

    The loader places it like any item and the checker reports its diagnostic together with its
    own, in source order, so one typo does not hide the type errors of the rest of the file.
    `kind` and `name` say what the broken item would have declared (`rule`, `fair_use`) when that
    can be read, so that uses of the name are not reported as unknown as well.
    """

    diagnostic: Diagnostic
    kind: str | None = None
    name: str | None = None

    @property
    def span(self) -> Span:
        return self.diagnostic.span


def parse_recovering(file: SourceFile) -> ast.Module:
    """Parse one file, carrying on after syntax errors: each item that fails becomes an `ErrorItem`.

    After an error the failing item is blanked out (newlines kept, so offsets stay valid) and the
    file is parsed again, so every broken item is reported, each at its own location.
    """
    text = file.text
    broken: list[ErrorItem] = []
    while True:
        try:
            module, builder_errors = _parser().parse(file, text)
        except UnexpectedInput as exc:
            offset = _error_offset(text, exc)
            diagnostic = _syntax_diagnostic(file, text, exc, offset)
            new_text, begin, end = _blank_failed_item(text, offset)
            kind, name = _item_head(text[begin:end])
            broken.append(ErrorItem(diagnostic, kind, name))
            # INVARIANT: a round that blanks nothing stops the loop, so it always ends.
            if new_text == text or len(broken) >= MAX_SYNTAX_ERRORS:
                # The rest of the file is unread: anything it declares may be missing ("*").
                # A note, not one more error: the errors counted are the syntax errors shown.
                stop = Diagnostic("E003", f"stopped reading `{file.display_name}` after "
                                  f"{counted(len(broken), 'syntax error')}", None, location_text=file.display_name,
                                  help="fix these first; the rest of the file was not checked", severity="note")
                return ast.Module(tuple(broken) + (ErrorItem(stop, "*"),))
            text = new_text
            continue
        items = list(module.items) + broken + [ErrorItem(d) for d in builder_errors if d.code != "E004"]
        items = _without_too_deep(file, items, [d for d in builder_errors if d.code == "E004"])
        return ast.Module(tuple(sorted(items, key=lambda item: item.span.start)))


def _without_too_deep(file: SourceFile, items: list, too_deep: list[Diagnostic]) -> list:
    """Each item holding a condition nested too deeply (E004) stands as an ErrorItem with the
    item's kind and name, as a syntax error does: nothing walks that condition."""
    if not too_deep:
        return items
    out = []
    for item in items:
        inside = [d for d in too_deep if not isinstance(item, ErrorItem)
                  and item.span.start <= d.span.start < item.span.end]
        if not inside:
            out.append(item)
            continue
        kind, name = _item_head(file.text[item.span.start:item.span.start + 200])
        out += [ErrorItem(d, kind, name) if i == 0 else ErrorItem(d) for i, d in enumerate(inside)]
    return out


def parse_clean(file: SourceFile, text: str, offset: int) -> ast.Module | None:
    """`text`, the piece of `file` that starts at `offset`, parsed on its own; None if it has any
    syntax error, so that the caller can parse the whole file with `parse_recovering`."""
    try:
        module, builder_errors = _parser().parse(file, text, offset)
    except UnexpectedInput:
        return None
    return None if builder_errors else module


def parse_source(file: SourceFile) -> ast.Module:
    """Parse one file; raise DiagnosticError with every syntax error found."""
    module = parse_recovering(file)
    errors = [item.diagnostic for item in module.items if isinstance(item, ErrorItem)]
    if errors:
        raise DiagnosticError(errors)
    return module


def _error_offset(text: str, exc: UnexpectedInput) -> int:
    if isinstance(exc, UnexpectedEOF) or getattr(exc, "token", None) is not None and exc.token.type == "$END":
        end = _value_end(_stack_top(exc, 1))
        return end if end is not None else len(text.rstrip())
    pos = getattr(exc, "pos_in_stream", None)
    return len(text) if pos is None else pos


def _blank_failed_item(text: str, offset: int) -> tuple[str, int, int]:
    """Replace the item holding the error with spaces (newlines kept, so positions stay valid).

    An error at the very start of an item (its keyword was unexpected) means the item before it
    is unfinished: that one is blanked, not the good item that follows it.
    """
    starts = [m.start(1) for m in ITEM_START.finditer(text)]
    if offset in starts:
        begin = max((s for s in starts if s < offset), default=0)
    else:
        begin = max((s for s in starts if s <= offset), default=0)
    end = min((s for s in starts if s > begin), default=len(text))
    blank = re.sub(r"[^\n]", " ", text[begin:end])
    return text[:begin] + blank + text[end:], begin, end


_HEAD = re.compile(r"\s*(%s)\b(?:\s+([A-Za-z_][A-Za-z0-9_]*)\b)?" % "|".join(ITEM_KEYWORDS))
_NAMED_KINDS = ("enum", "set", "rule", "invariant", "test")


def _item_head(chunk: str) -> tuple[str | None, str | None]:
    """The keyword and declared name of an item's text, as far as they can be read."""
    match = _HEAD.match(chunk)
    if match is None:
        return None, None
    kind = match.group(1)
    return kind, match.group(2) if kind in _NAMED_KINDS else None


# ----- syntax error messages -------------------------------------------------------------------
# Words that are keywords only where the grammar expects them; anywhere else the lexer reads them
# as names, so `tls and then block` fails at `block` although the mistake is before `then`.
_SOFT_KEYWORDS = frozenset({"when", "then", "because", "require", "exists", "given", "expect",
                            "version", "and", "or", "in", "same", "across"})
_ACTION_WORDS = ("allow", "block", "reset", "throttle", "redirect")
_OPERANDS = ("NAME", "HYPHEN_NAME", "NUMBER", "IPV4", "IPV6", "VOLUME", "RATE", "STRING", "TRUE", "FALSE")
_ITEM_TERMINALS = tuple(k.upper() for k in ITEM_KEYWORDS)
# What is missing after a token, by the token's type (for the keyword-read-as-a-name case).
_MISSING_AFTER = {"CMP": "a value", "IN": "a set or value", "__ANON_0": "a value", "COMMA": "a value",
                  "LBRACE": "a value", "AND": "a condition", "OR": "a condition", "NOT": "a condition",
                  "WHEN": "a condition", "GIVEN": "a condition", "REQUIRE": "a condition",
                  "EXISTS": "a condition", "LPAR": "a condition", "RULE": "a name", "SET": "a name",
                  "ENUM": "a name", "INVARIANT": "a name", "TEST": "a name", "POLICY": "a name",
                  "SAME": "an outcome part", "ACROSS": "a field"}
_CHARACTER_HELP = {
    "'": "strings use double quotes: \"...\"",
    "\u2018": "strings use plain double quotes: \"...\"", "\u2019": "strings use plain double quotes: \"...\"",
    "\u201c": "strings use plain double quotes: \"...\"", "\u201d": "strings use plain double quotes: \"...\"",
    "&": "use the words `and`, `or`, `not`", "|": "use the words `and`, `or`, `not`",
    "!": "use the words `and`, `or`, `not`",
    ";": "items need no separator: remove the `;`",
    '"': "a string must end with `\"` on the same line",
}


def _stack_top(exc: UnexpectedInput, depth: int):
    """The value `depth` places from the top of the parser's stack at the error (a token or a node)."""
    parser = getattr(exc, "interactive_parser", None)
    stack = parser.parser_state.value_stack if parser is not None else []
    return stack[-depth] if len(stack) >= depth else None


def _value_end(value) -> int | None:
    if isinstance(value, Token):
        return value.end_pos
    span = getattr(value, "span", None)
    return span.end if isinstance(span, Span) else None


def _acceptable(exc: UnexpectedInput) -> set[str]:
    """Terminals that really continue the text at the error (LALR's own list over-approximates)."""
    try:
        accepts = exc.interactive_parser.accepts() if getattr(exc, "interactive_parser", None) else None
    except Exception:       # the exact list is a nicety; the table's list is still right
        accepts = None
    return set(accepts) if accepts else set(getattr(exc, "expected", None) or ())


def _expected_phrases(accepts: set[str]) -> list[str]:
    """The acceptable terminals as phrases, most telling first: clause keywords, then operators,
    values, closing brackets, connectives, and last the start of a new item."""
    out: list[str] = []
    for t in ("THEN", "WHEN", "REQUIRE", "EXISTS", "GIVEN", "EXPECT", "BECAUSE", "VERSION", "ACROSS", "EQUAL"):
        if t in accepts:
            out.append("`=`" if t == "EQUAL" else f"`{t.lower()}`")
    if "ACTION_WORD" in accepts:
        out.append("an action (`allow`, `block`, `reset`, `throttle`, `redirect`)")
    if "CMP" in accepts:
        out.append("a comparison (`==`, `!=`, `<`, ...)")
    if "IN" in accepts:
        out += ["`in`", "`not in`"] if "NOT" in accepts else ["`in`"]
    if set(_OPERANDS) <= accepts:
        out.append("a condition" if {"LPAR", "NOT"} <= accepts and "IN" not in accepts else "a value")
    else:
        if "NOT" in accepts and "IN" not in accepts:
            out.append("`not`")
        out += [_describe_terminal(t) for t in _OPERANDS if t in accepts]
    for t in ("RPAR", "RBRACE", "COMMA", "LBRACE", "__ANON_0", "LOG", "AND", "OR"):
        if t in accepts:
            out.append(_describe_terminal(t))
    if any(t in accepts for t in _ITEM_TERMINALS):
        out.append("a new item (`rule`, `set`, `invariant`, ...)")
    elif "$END" in accepts:
        out.append("end of file")
    return out


def _join(phrases: list[str], limit: int = 6) -> str:
    if len(phrases) > limit:
        return ", ".join(phrases[:limit]) + ", ..."
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _describe_terminal(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    terminal = next((t for t in _parser().lark.terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return f"`{terminal.pattern.value}`"
    return name.lower()


def _syntax_diagnostic(file: SourceFile, text: str, exc: UnexpectedInput, offset: int) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        char = file.text[offset] if offset < len(file.text) else ""
        return Diagnostic("E001", f"unexpected character `{char}`", Span(file, offset, offset + 1),
                          "not part of any token", help=_CHARACTER_HELP.get(char))
    accepts = _acceptable(exc)
    previous = _stack_top(exc, 1)
    if isinstance(previous, Token) and previous.type == "ACTION_WORD":
        # The grammar lets any action take a rate or a target (the checker explains why not);
        # offer only what this action really takes.
        accepts -= {"RATE", "STRING"} - {{"throttle": "RATE", "redirect": "STRING"}.get(str(previous), "")}
    if isinstance(previous, Token) and previous.type == "NAME" and previous.value in _SOFT_KEYWORDS:
        before = _stack_top(exc, 2)
        what = _MISSING_AFTER.get(before.type) if isinstance(before, Token) else None
        if what is not None:
            return Diagnostic("E001", f"syntax error: missing {what} after `{before}`",
                              Span(file, previous.start_pos, previous.end_pos),
                              f"`{previous}` is a keyword, not {what}",
                              help=f"write {what} between `{before}` and `{previous}`")
    phrases = _expected_phrases(accepts)
    if isinstance(previous, Token) and previous.type == "ACTION_WORD":
        # after `throttle`/`redirect` its argument is the telling expectation
        phrases.sort(key=lambda p: not (p.startswith("a rate") or p.startswith("a quoted")))
    expected = _join(phrases) if phrases else ""
    notes: tuple[str, ...] = ()
    tok = exc.token if isinstance(exc, UnexpectedToken) else None
    if tok is not None and tok.type != "$END":
        span = Span(file, tok.start_pos, tok.end_pos)
        shown = str(tok) if len(str(tok)) <= 30 else str(tok)[:27] + "..."
        found, label = f"`{shown}`", "unexpected here"
        hint = _token_hint(tok, accepts, text)
        if tok.type in _ITEM_TERMINALS and not any(t in accepts for t in _ITEM_TERMINALS):
            label = "a new item starts here"
            owner = _item_before(file, offset)
            if owner is not None:
                notes = (f"the `{owner[0]}` item at {owner[1]} is not complete",)
    else:
        end = offset
        span = Span(file, end, end + 1)
        found, label, hint = "end of file", "the file ends here", None
        owner = _item_before(file, offset + 1)
        if owner is not None:
            notes = (f"the `{owner[0]}` item at {owner[1]} is not complete",)
    if hint is not None:
        return Diagnostic("E001", f"syntax error: unexpected {found}", span, label, help=hint,
                          notes=notes + ((f"expected {expected}",) if expected else ()))
    return Diagnostic("E001", f"syntax error: unexpected {found}", span, label, notes=notes,
                      help=f"expected {expected}" if expected else None)


def _item_before(file: SourceFile, offset: int) -> tuple[str, str] | None:
    """The keyword and location of the last item that starts before offset."""
    starts = [m for m in ITEM_START.finditer(file.text) if m.end() <= offset]
    if not starts:
        return None
    m = starts[-1]
    begin = m.start(1)
    line, col = file.line_col(begin)
    return m.group(1), f"{line}:{col}"


def _token_hint(tok: Token, accepts: set[str], text: str) -> str | None:
    """A targeted suggestion for the common slips; None when the expected list says it best."""
    kind = tok.type
    if kind == "EQUAL" and "CMP" in accepts:
        return "to compare, write `==`"
    if kind == "CMP" and "CMP" not in accepts and "AND" in accepts:
        return "comparisons do not chain: join them with `and`"
    if str(tok) in _ACTION_WORDS and "THEN" in accepts:
        return f"write `then` before the action: `then {tok}`"
    if kind == "NUMBER" and "RATE" in accepts:
        unit = re.match(r"\s*(bps|kbps|Mbps|Gbps)\b", text[tok.end_pos:])
        if unit:
            return f"write the rate and its unit together: `{tok}{unit.group(1)}`"
        return "a rate needs a unit, for example `128kbps`"
    if str(tok) == "log" and "COMMA" in accepts:
        return "write `, log` after the action"
    if kind in _OPERANDS and {"COMMA", "RBRACE"} <= accepts:
        return "separate the members with `,`"
    if kind in _OPERANDS and "LBRACE" in accepts and "NAME" not in accepts:
        return f"write the members in braces: `{{ {tok}, ... }}`"
    if kind in _OPERANDS and kind != "STRING" and "STRING" in accepts and "NAME" not in accepts:
        return f"put the text in double quotes: `\"{tok}\"`"
    return None
