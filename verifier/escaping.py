"""Escaping for every output format, in one place: what a policy, a terms file, a waiver file or
a path says reaches reports verbatim, so each format must keep it from being read as that
format's own syntax (docs/output.md, "Names and strings in reports").

Markdown (GitHub's dialect: tables, strikethrough, math), XML (JUnit), GitHub Actions workflow
commands, and the text a CI log reads. JSON and SARIF need nothing beyond `json.dumps`, HTML
nothing beyond `html.escape`."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# ----- Markdown --------------------------------------------------------------------------------
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Characters that mean something anywhere in a line: `\` escapes, code, emphasis, links, tables,
# strikethrough and math; `_` only where it is not between two letters or digits (intraword
# underscores never emphasise, so names like `unauth_smtp_relay` stay as they are); `<` only
# where it could open a tag or an autolink, `&` only where it could open an entity; the `:` of
# `://` and the `.` of `www.`, which GitHub would make a link of.
_INLINE = re.compile(r"[\\`*\[\]|~$]|(?<![^\W_])_|_(?![^\W_])|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|:(?=//)"
                     r"|(?<=[Ww][Ww][Ww])\.")
# What starts a block when it opens a line: headings, quotes, lists, setext underlines.
_BLOCK_START = re.compile(r"[#>+=-]|\d+(?=[.)])")


def _one_line(text: str) -> str:
    return _LINE_BREAK.sub(" ", text)


def md_text(value: str) -> str:
    """VALUE as literal Markdown text, on one line: its line breaks become spaces, so it cannot
    end a table row or start a block; syntax it holds is backslash-escaped, and what would start
    a block at the start of a line is escaped there too. Safe in a table cell."""
    text = _INLINE.sub(lambda m: "\\" + m.group(), _one_line(value))
    if text[:1] in (" ", "\t"):            # four of them would start a code block
        text = f"&#{ord(text[0])};" + text[1:]
    start = _BLOCK_START.match(text)
    if start:
        text = text[:start.end()] + "\\" + text[start.end():] if start.group()[0].isdigit() else "\\" + text
    return text


def _longest_run(text: str) -> int:
    """The longest run of backticks in TEXT."""
    return max((len(run) for run in re.findall("`+", text)), default=0)


def md_code(value: str, cell: bool = False) -> str:
    """VALUE as inline code: a backtick fence longer than any run of backticks in it, padded with a
    space where it starts or ends with a backtick or a space (which the fence would lose). Its line
    breaks become spaces, as Markdown shows them in code anyway. In a table CELL its `|` is
    escaped, which GitHub's tables require even in code."""
    text = _one_line(value) or " "
    fence = "`" * (_longest_run(text) + 1)
    if text[0] in "` " or text[-1] in "` ":
        text = f" {text} " if text.strip() else text
    return fence + (text.replace("|", "\\|") if cell else text) + fence


def md_fence(lines: list[str]) -> list[str]:
    """LINES as a fenced code block whose fence (at least three backticks) is longer than any run of
    backticks in them, so no line of theirs can close it."""
    fence = "`" * max(3, _longest_run("\n".join(lines)) + 1)
    return [fence, *lines, fence]


def md_quote(text: str) -> list[str]:
    """TEXT, which may run over several lines, as a block quote: each of its lines quoted, as text."""
    return ["> " + md_text(line) for line in text.splitlines()] or [">"]


def md_html(value: str) -> str:
    """VALUE as the text of an element of raw HTML in Markdown (`<summary>`), where backslash
    escapes are not read: `&` and `<` as references (`>` starts nothing there), on one line (a
    blank line would end the HTML block)."""
    return _one_line(value).replace("&", "&amp;").replace("<", "&lt;")


# ----- XML (JUnit) -----------------------------------------------------------------------------
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even as references: show them as `\\xNN`."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def xml_document(root: ET.Element) -> str:
    """ROOT as an XML document. ElementTree writes a CR in element text as it is, and XML parsers
    read a CR as a line feed: it is written as `&#13;` instead (attributes already get references
    for CR, LF and tab, and markup holds no CR)."""
    body = ET.tostring(root, encoding="unicode").replace("\r", "&#13;")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# ----- GitHub Actions workflow commands and the CI log -----------------------------------------
def workflow_data(text: str) -> str:
    """The message of a workflow command: `%`, CR and LF would end or garble it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: str) -> str:
    """A property value of a workflow command: also `:` and `,`, which end the properties."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


_LOG_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


def inert_commands(text: str, spell, at_line_start: bool = True) -> str:
    """TEXT with nothing GitHub Actions would run as a workflow command: the runner reads a line
    whose first non-blank characters are `::` as one, and `##[` anywhere in a line (its older
    form). SPELL(char) gives the format's own inert spelling of one character (a reference, an
    escape, or the character and a zero-width space): the first `:` of such a line and the first
    `#` of each `##[` are spelt so. AT_LINE_START: whether TEXT starts a line."""
    parts = _LOG_LINE_BREAK.split(text)
    for i in range(0, len(parts), 2):
        line = parts[i]
        stripped = line.lstrip()
        if (i or at_line_start) and stripped.startswith("::"):
            blank = len(line) - len(stripped)
            line = line[:blank] + spell(":") + line[blank + 1:]
        parts[i] = line.replace("##[", spell("#") + "#[")
    return "".join(parts)


def zero_width(char: str) -> str:
    """Plain text and Markdown: the character, then a zero-width space; it shows as before."""
    return char + "\u200b"


def json_escape(char: str) -> str:
    """JSON: `##[` is only ever inside a string, where `\\u0023` reads back as `#`."""
    return f"\\u{ord(char):04x}"


def character_reference(char: str) -> str:
    """XML and HTML: a character reference, which reads back as the character."""
    return f"&#{ord(char)};"
