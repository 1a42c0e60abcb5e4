"""The shell transcripts in the documentation are true: every command shown is run, and its
output must be what the page says.

How a page is read (the pages of PAGES below):

- A transcript is a fenced block with at least one line starting with `$ `. Each `$ ` line is
  a command; the lines after it, up to the next `$ ` line or the end of the block, are what
  the terminal shows. Fenced blocks without a `$ ` line (policy excerpts, the install line)
  are not transcripts and are not run.
- A line `` `NAME`: `` followed by a fenced block shows a file (errors.md's style): the block
  is written to NAME, as `$ cat` of a missing file is, for the commands after it.
- `<!-- unchecked: WHY -->` before a transcript says why its commands cannot be run here (a
  capture the page does not hold, a byte a page cannot show); they are skipped, not checked.
- A command may chain dpipolicy commands with ` && `: the next runs when one succeeds, and
  what the terminal shows is theirs together.
- A page is one session, as for a reader who follows it from top to bottom in the root of
  the repository: files written by one command (`-o rules.json`, `> report.json`, a file
  shown with `$ cat`) are there for the later commands of the page, in any block.
- Each command runs in a fresh copy of the repository's `examples/` and `tests/fixtures/`
  trees under pytest's tmp_path (so `examples/uk-mobile/...` and the rule sets of
  `tests/fixtures/nft/` resolve as in the repository), beside a link to
  `../shared` (so the captures of `../shared/fixtures/` do too), with that folder as the
  working directory; the earlier commands of the page that write files are replayed first,
  without checks.

What is checked, per command (each one is its own test case, named by page and line):

- `$ dpipolicy ARGS`: run in-process (`dpipolicy.cli.main`). What the terminal shows is
  standard output followed by standard error. With `> FILE`, standard output goes to FILE
  and only standard error is compared (normally nothing). When the next command is
  `$ echo $?`, the exit code must be the number shown after it.
- `$ cat FILE`: when FILE exists at that point (in `examples/`, or written by an earlier
  command), its content must be the text shown. When it does not, the text shown is written
  to FILE (a file the page asks the reader to create); that is setup, not a check.
- `$ sh SCRIPT` and `$ jq ...`: run by /bin/sh with the installed `dpipolicy` script first
  on PATH; standard output and standard error together are compared, and the exit code as
  above. Skipped, with the reason, when `jq` or the `dpipolicy` script is not installed.
- Skipped as not checkable, listed in NOT_CHECKABLE: environment setup (activating a virtual
  environment), and the `--timeout 0.001` example, whose result depends on how fast the
  machine is (a fast one answers within the millisecond). Any other command is an error of this test, so that nothing new in
  a page goes unchecked by accident.

In expected text, `...` stands for any text (possibly several lines): pages shorten long
outputs that way (`"because": "..."`, a JSON excerpt ending in `...`).
"""
from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpipolicy.cli import main

from helpers import FIXTURES, ROOT

PAGES = ("docs/getting-started.md", "docs/diff.md", "docs/firmware.md", "docs/profiles.md", "docs/enforcement.md",
         "docs/errors.md", "docs/language.md", "docs/audit.md", "docs/import.md")
NOT_CHECKABLE = {
    ". .venv/bin/activate",
    "dpipolicy check examples/uk-mobile/policy-2011-08.dpi --spec examples/uk-mobile/spec.dpi --timeout 0.001",
}
SHELL_PROGRAMS = {"sh", "jq"}
FILE_BLOCK = "write "          # the command of a step that writes a file a page shows (`NAME`: and a block)
UNCHECKED = "<!-- unchecked: "   # before a transcript whose setup the page cannot give (a capture, bytes)
SKIP = "unchecked: "
_FILE_LABEL = re.compile(r"^`([^`\s]+)`:$")


@dataclass(frozen=True)
class Step:
    page: str
    line: int                     # 1-based line of the `$ ` command in the page
    command: str
    expected: str                 # the shown output, with a final newline when not empty
    exit_code: int | None         # from a following `$ echo $?`

    @property
    def kind(self) -> str:
        if self.command.startswith(FILE_BLOCK):
            return "file"
        if self.command in NOT_CHECKABLE or self.command.startswith(SKIP):
            return "skip"
        if self.command == "echo $?":
            return "echo"
        program = shlex.split(self.command)[0]
        if program == "dpipolicy":
            return "dpipolicy"
        if program == "cat":
            return "cat"
        if program in SHELL_PROGRAMS:
            return "shell"
        return "unknown"

    @property
    def id(self) -> str:
        return f"{Path(self.page).stem}:{self.line}:{self.command[:60]}"


def transcript_steps(page: str) -> list[Step]:
    """The commands of every transcript block of a page, in order, with their shown output."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    in_block = skip_block = False
    current: tuple[int, str, list[str]] | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            line, command, output = current
            steps.append(Step(page, line, command, "".join(o + "\n" for o in output), None))
        current = None

    label: tuple[int, str] | None = None      # a `NAME`: line, waiting for its block
    unchecked = False                          # the next block follows `<!-- unchecked: WHY -->`
    block: list[str] | None = None             # the lines of the block that shows that file
    for number, text in enumerate(lines, start=1):
        if text.startswith("```"):
            flush()
            if block is not None:
                steps.append(Step(page, label[0], FILE_BLOCK + label[1], "".join(b + "\n" for b in block), None))
                label = block = None
            elif not in_block and label is not None:
                block = []
            in_block = not in_block
            skip_block = in_block and unchecked
            unchecked = False
            continue
        if block is not None:
            block.append(text)
            continue
        if not in_block:
            found = _FILE_LABEL.match(text)
            label = (number, found.group(1)) if found else (label if not text.strip() else None)
            unchecked = text.startswith(UNCHECKED) or (unchecked and not text.strip())
            continue
        if text.startswith("$ "):
            flush()
            current = (number, (SKIP if skip_block else "") + text[2:].strip(), [])
        elif current is not None:
            current[2].append(text)
    flush()
    # attach `echo $?` to the command before it
    out: list[Step] = []
    for step in steps:
        if step.kind == "echo":
            assert out, f"{page}:{step.line}: `echo $?` with no command before it"
            before = out[-1]
            out[-1] = Step(before.page, before.line, before.command, before.expected, int(step.expected.strip()))
        else:
            out.append(step)
    return out


STEPS = [step for page in PAGES for step in transcript_steps(page)]
CHECKED = [step for step in STEPS if step.kind not in ("skip", "file")]


def _redirect(words: list[str]) -> tuple[list[str], str | None]:
    if ">" in words:
        at = words.index(">")
        assert len(words) == at + 2, f"unsupported redirection in {' '.join(words)!r}"
        return words[:at], words[at + 1]
    return words, None


def _writes_files(step: Step) -> bool:
    if step.kind in ("cat", "shell", "file"):
        return True
    if step.kind == "dpipolicy":
        words, target = _redirect(shlex.split(step.command))
        return target is not None or "-o" in words or "--output" in words
    return False


def _dpipolicy_script() -> Path | None:
    found = shutil.which("dpipolicy", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


def run_step(step: Step, folder: Path) -> tuple[int | None, str]:
    """Run one command in `folder` (the working directory); (exit code, what the terminal shows).
    `cat` of a missing file writes it and returns (None, the text)."""
    if step.kind == "file":
        path = folder / step.command[len(FILE_BLOCK):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.expected, encoding="utf-8")
        return None, step.expected
    if step.kind == "dpipolicy":
        shown, code = "", 0
        for command in step.command.split(" && "):        # `a && b`: b runs when a succeeds
            words, target = _redirect(shlex.split(command))
            assert words[0] == "dpipolicy", f"{step.page}:{step.line}: `{command}` in a chain of dpipolicy commands"
            out, err = io.StringIO(), io.StringIO()
            code = main(words[1:], out, err)
            if target is not None:
                (folder / target).write_text(out.getvalue(), encoding="utf-8")
            shown += err.getvalue() if target is not None else out.getvalue() + err.getvalue()
            if code != 0:
                break
        return code, shown
    if step.kind == "cat":
        (name,) = shlex.split(step.command)[1:]
        path = folder / name
        if path.exists():
            return 0, path.read_text(encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step.expected, encoding="utf-8")
        return None, step.expected
    if step.kind == "shell":
        program = shlex.split(step.command)[0]
        script = _dpipolicy_script()
        if script is None:
            pytest.skip("the dpipolicy script is not installed next to this Python")
        if program != "sh" and shutil.which(program) is None:
            pytest.skip(f"`{program}` is not installed")
        env = dict(os.environ, PATH=f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
        done = subprocess.run(["/bin/sh", "-c", step.command], cwd=folder, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        return done.returncode, done.stdout
    raise AssertionError(f"{step.page}:{step.line}: no rule to check `{step.command}`; "
                         "add one to tests/test_docs.py, or to NOT_CHECKABLE if it cannot be checked")


def matches(expected: str, actual: str) -> bool:
    """Equal, where `...` in `expected` stands for any text."""
    if "..." not in expected:
        return expected == actual
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


@pytest.mark.parametrize("step", CHECKED, ids=[s.id for s in CHECKED])
def test_transcript_command(step: Step, tmp_path: Path, monkeypatch):
    folder = tmp_path / "dpipolicy"     # pages run from the repository, beside ../shared (fixtures)
    shutil.copytree(ROOT / "examples", folder / "examples")
    shutil.copytree(ROOT / "tests" / "fixtures", folder / "tests" / "fixtures")
    (tmp_path / "shared").symlink_to(FIXTURES.parent, target_is_directory=True)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NO_COLOR", "1")
    for earlier in STEPS[: STEPS.index(step)]:
        if earlier.page == step.page and _writes_files(earlier):
            run_step(earlier, folder)
    code, shown = run_step(step, folder)
    if code is None:
        return          # `cat` of a file the page asks the reader to write: setup only
    assert matches(step.expected, shown), (
        f"{step.page}:{step.line}: `{step.command}` shows something else than the page.\n"
        f"--- page\n{step.expected}--- actual\n{shown}")
    if step.exit_code is not None:
        assert code == step.exit_code, f"{step.page}:{step.line}: exit code {code}, the page says {step.exit_code}"


def test_pages_have_transcripts():
    for page in PAGES:
        assert any(s.page == page and s.kind == "dpipolicy" for s in STEPS), f"no `$ dpipolicy` command in {page}"


def test_ellipsis_matching():
    assert matches('{"because": "..."}\n', '{"because": "ToS 7.2"}\n')
    assert matches("a\n...\nz\n", "a\nb\nc\nz\n")
    assert not matches("a\n...\nz\n", "a\nb\nc\ny\n")
    assert not matches("exact\n", "exact but longer\n")
