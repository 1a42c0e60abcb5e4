"""One input through `dpipolicy.cli.main` in this process, and what it broke of the promise.

The promise (docs/reliability.md): an exit code of 0 to 3, never 4; no traceback; every error
located in one of the forms errors.md documents; output well formed in the format asked for.
The time bound is the pool's (a hang cannot be judged from inside).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dpipolicy.cli import main

from .inputs import Input

_HEADER = re.compile(r"^(error|warning|note)\[(\w+)\]: ", re.M)
_LINE_COL = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)$")
_JSON_PATH = re.compile(r"^(?P<file>[^:\s]+): (?P<path>[\w.\[\]:-]+)$")
_OPTION = re.compile(r"^--[a-z-]+(:\d+:\d+)?$")
_GITHUB = re.compile(r"^::(error|warning|notice)( [^\r\n]*)?::[^\r\n]*$")
# Codes located at a whole file or a name, as errors.md shows them: a file that cannot be read
# or is of the wrong kind, a file not read to the end (E003), a table whose JSON is no object
# of the format, a profile or terms name. A YAML file with no document in it is located at
# the file whatever the code (there is no node to point at).
WHOLE_FILE_CODES = frozenset({"E003", "E010", "E015", "E051", "E300", "E301", "E302", "E321", "E331", "E400",
                              "E600", "E630"})
_NEWLINE = re.compile(rb"\n")
_YAML_BREAKS = re.compile(rb"\r\n|\r|\n|\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9")     # YAML 1.1 counts all as line ends
KEEP = 2000         # characters of output kept with a finding


@dataclass
class Verdict:
    code: int | None
    seconds: float
    problems: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)      # the diagnostic codes printed
    stdout: str = ""
    stderr: str = ""


def write(inp: Input, folder: Path) -> None:
    """The input's files, alone in `folder`."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in inp.files.items():
        (folder / name).write_bytes(data)


def judge_run(inp: Input, folder: Path, keep_output: bool = False) -> Verdict:
    """Write the input's files into `folder`, run its command there, and judge the run. The
    output is kept (its first KEEP characters) only with a problem, unless `keep_output`."""
    write(inp, folder)
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(folder)
    start = time.perf_counter()
    try:
        code = main(list(inp.argv), out, err)
    except BaseException as exc:      # noqa: BLE001 -- anything leaving main is a finding
        code = None
        err.write(f"\n[escaped main: {type(exc).__name__}: {exc}]\n")
    finally:
        seconds = time.perf_counter() - start
        os.chdir(here)
    verdict = Verdict(code, seconds, stdout=out.getvalue(), stderr=err.getvalue())
    verdict.problems = judge(inp, verdict, folder)
    verdict.codes = [c for _, c in _HEADER.findall(verdict.stderr)]
    if keep_output:
        pass
    elif verdict.problems:
        verdict.stdout, verdict.stderr = verdict.stdout[:KEEP], verdict.stderr[:KEEP]
    else:
        verdict.stdout = verdict.stderr = ""
    return verdict


def judge(inp: Input, verdict: Verdict, folder: Path) -> list[str]:
    problems = []
    if verdict.code is None:
        problems.append("an exception left main")
    elif verdict.code == 4:
        problems.append("exit 4 (internal error)")
    elif verdict.code not in (0, 1, 2, 3):
        problems.append(f"exit {verdict.code}")
    if "Traceback" in verdict.stdout or "Traceback" in verdict.stderr:
        problems.append("a traceback in the output")
    if verdict.code == 2 and not verdict.stderr.strip():
        problems.append("exit 2 with nothing on standard error")
    problems += unlocated(verdict.stderr, folder)
    problems += malformed(inp, verdict.stdout, verdict.code)
    return problems


def unlocated(stderr: str, folder: Path) -> list[str]:
    """Each diagnostic of the text report without a location in a documented form."""
    problems = []
    lines = stderr.split("\n")
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if not header:
            continue
        code = header[2]
        arrow = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not arrow.startswith("--> "):
            problems.append(f"{code} has no location")
            continue
        where = arrow[4:]
        problem = _bad_location(code, where, folder)
        if problem:
            problems.append(f"{code} at `{where[:200]}`: {problem}")
    return problems


def _bad_location(code: str, where: str, folder: Path) -> str | None:
    if where in ("", "<input>", "None") or where.startswith("<"):
        return "no place"
    if m := _LINE_COL.match(where):
        path = folder / m["file"]
        if path.is_file():
            text = path.read_bytes()
            lines = (_YAML_BREAKS if path.suffix == ".yaml" else _NEWLINE).split(text)
            line, col = int(m["line"]), int(m["col"])
            if not 1 <= line <= len(lines) or not 1 <= col <= len(lines[line - 1]) + 1:
                return f"outside the file ({len(lines)} lines)"
        return None
    if _JSON_PATH.match(where) or _OPTION.match(where):
        return None
    if code in WHOLE_FILE_CODES or _no_document(folder / where):
        return None
    return "a whole file or name, for a code errors.md locates more exactly"


def _no_document(path: Path) -> bool:
    try:
        return path.suffix == ".yaml" and yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader) is None
    except (OSError, ValueError, yaml.YAMLError):
        return False


def malformed(inp: Input, stdout: str, code: int | None) -> list[str]:
    """Output that is not what its format promises (a report with a broken escape breaks this).
    `compile --format json` writes JSON only for bad input: else its output is the target's."""
    fmt = _option(inp.argv, "--format")
    if not stdout.strip() or fmt in (None, "text", "markdown") or inp.command == "compile" and code != 2:
        return []
    try:
        if fmt in ("json", "sarif"):
            data = json.loads(stdout)
            if fmt == "sarif" and not isinstance(data.get("runs"), list):
                return ["SARIF without runs"]
        elif fmt == "junit":
            ElementTree.fromstring(stdout.encode("utf-8"))
        elif fmt == "github":
            bad = [line for line in stdout.split("\n") if line and not _GITHUB.match(line)]
            if bad:
                return [f"a line that is no workflow command: {bad[0][:200]!r}"]
        elif fmt == "html" and not stdout.lstrip().lower().startswith("<!doctype html"):
            return ["HTML without its doctype"]
    except (ValueError, ElementTree.ParseError) as exc:
        return [f"{fmt} output does not parse: {str(exc)[:200]}"]
    return []


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None
