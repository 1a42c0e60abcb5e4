"""Parser: source text to an `ast.Module`, reporting every syntax error in the file.

The LALR parser runs with the tree transformer inlined (no intermediate parse tree), which is
what makes 10k-rule policies parse quickly. After a syntax error the parser resumes at the next
line that starts with an item keyword, so one bad rule does not hide the errors after it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .diagnostics import Diagnostic, DiagnosticError
from .source import SourceFile, Span

ITEM_KEYWORDS = ("policy", "enum", "set", "default", "rule", "invariant", "test", "import")
_ITEM_START = re.compile(r"^[ \t]*(?:%s)\b" % "|".join(ITEM_KEYWORDS), re.M)
MAX_SYNTAX_ERRORS = 50

_TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "IPV4": "an IPv4 address", "IPV6": "an IPv6 address",
    "VOLUME": "a volume such as `20GB`", "RATE": "a rate such as `128kbps`", "STRING": "a quoted string",
    "CMP": "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)", "$END": "end of file",
}


@v_args(inline=True)
class _ToAst(Transformer):
    """Builds AST nodes straight from parser reductions (spans come from the children)."""

    def __init__(self, file: SourceFile | None):
        super().__init__()
        self.file = file
        self.errors: list[Diagnostic] = []

    def _tok(self, tok: Token) -> Span:
        return Span(self.file, tok.start_pos, tok.end_pos)

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
        body = str(tok)[1:-1]
        return body.replace('\\"', '"').replace("\\\\", "\\")

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
        log = next((t for t in rest if t.type == "LOG"), None)
        argument = next((t for t in rest if t.type in ("RATE", "STRING")), None)
        rate = target = None
        if argument is not None and argument.type == "RATE":
            rate = ast.Literal("rate", str(argument), self._tok(argument))
        elif argument is not None:
            target = self._string(argument)
        last = log if log is not None else (argument if argument is not None else word)
        return ast.ActionSpec(str(word), rate, target, log is not None, self._from(word, last),
                              argument_span=None if argument is None else self._tok(argument))

    def log_flag(self, tok):
        return tok

    def or_expr(self, *operands):
        return ast.Or(operands, operands[0].span.to(operands[-1].span))

    def and_expr(self, *operands):
        return ast.And(operands, operands[0].span.to(operands[-1].span))

    def not_expr(self, kw, operand):
        return ast.Not(operand, self._from(kw, operand))

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
        if tok.type == "NAME":
            return ast.Ident(str(tok), span)
        if tok.type in ("TRUE", "FALSE"):
            return ast.Literal("bool", str(tok), span)
        return ast.Literal(tok.type.lower(), str(tok), span)


@lru_cache(maxsize=None)
def _grammar_text() -> str:
    return resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")


class _Parser:
    """One LALR parser with the AST builder inlined; the builder is re-pointed at each file."""

    def __init__(self) -> None:
        self.builder = _ToAst(None)
        self.lark = Lark(_grammar_text(), parser="lalr",
                         maybe_placeholders=True, transformer=self.builder)

    def parse(self, file: SourceFile, text: str) -> tuple[ast.Module, list[Diagnostic]]:
        self.builder.file, self.builder.errors = file, []
        module = self.lark.parse(text)
        return module, self.builder.errors


@lru_cache(maxsize=None)
def _parser() -> _Parser:
    return _Parser()


def parse_source(file: SourceFile) -> ast.Module:
    """Parse one file; raise DiagnosticError with every syntax error found."""
    text = file.text
    errors: list[Diagnostic] = []
    while len(errors) < MAX_SYNTAX_ERRORS:
        try:
            module, builder_errors = _parser().parse(file, text)
        except UnexpectedInput as exc:
            offset = _error_offset(text, exc)
            errors.append(_syntax_diagnostic(file, exc, offset))
            text = _blank_failed_item(text, offset)
            continue
        errors.extend(builder_errors)
        break
    if errors:
        raise DiagnosticError(errors)
    return module


def _error_offset(text: str, exc: UnexpectedInput) -> int:
    if isinstance(exc, UnexpectedEOF) or getattr(exc, "token", None) is not None and exc.token.type == "$END":
        return len(text.rstrip())
    pos = getattr(exc, "pos_in_stream", None)
    return len(text) if pos is None else pos


def _blank_failed_item(text: str, offset: int) -> str:
    """Replace the item holding the error with spaces (newlines kept, so positions stay valid)."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    begin = max((s for s in starts if s <= offset), default=0)
    end = min((s for s in starts if s > offset), default=len(text))
    if end <= begin:
        end = len(text)
    blank = re.sub(r"[^\n]", " ", text[begin:end])
    return text[:begin] + blank + text[end:]


def _describe_terminal(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    terminal = next((t for t in _parser().lark.terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return f"`{terminal.pattern.value}`"
    return name.lower()


def _syntax_diagnostic(file: SourceFile, exc: UnexpectedInput, offset: int) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        char = file.text[offset] if offset < len(file.text) else ""
        return Diagnostic("E001", f"unexpected character `{char}`", Span(file, offset, offset + 1),
                          "not part of any token", help=_character_help(char))
    expected = sorted({_describe_terminal(t) for t in (exc.expected or ()) if not t.startswith("__")})
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        span = Span(file, tok.start_pos, tok.end_pos)
        found = f"`{tok}`"
        label = "unexpected here"
    else:
        span = Span(file, max(0, offset - 1), max(1, offset))
        found = "end of file"
        label = "the file ends here"
    shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
    return Diagnostic("E001", f"syntax error: unexpected {found}", span, label,
                      help=f"expected {shown}" if shown else None)


def _character_help(char: str) -> str | None:
    if char in "'":
        return "strings use double quotes: \"...\""
    if char in "&|!":
        return "use the words `and`, `or`, `not`"
    return None
