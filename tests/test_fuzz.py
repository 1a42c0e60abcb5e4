"""The fuzz harness (fuzz/, docs/reliability.md) in CI: a bounded slice of inputs over every kind of
file and every command keeps the promise, and inputs planted to break it are reported, each
with the problem it breaks, so a slice with no findings means something."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import fuzz.__main__ as fuzz_command
from dpipolicy import cli
from fuzz import inputs

from helpers import AUDIT_POLICY

SLICE_SEED = 21     # not the long run's seed (1), so CI adds inputs the long run does not make
SLICE_INPUTS = int(os.environ.get("DPIPOLICY_FUZZ_INPUTS", "2000"))
# Every command the harness gives each kind of file (fuzz/inputs.py), all of which a slice must reach.
KINDS_AND_COMMANDS = {
    "generated": {"check", "compile", "lint", "fmt", "explain", "diff"},
    "policy": {"check", "compile", "lint", "fmt", "explain", "diff"},
    "spec": {"check", "lint", "fmt", "diff"},
    "table": {"check", "explain", "diff"},
    "profile": {"check", "explain"},
    "catalogue": {"check"},
    "terms": {"audit"},
    "waivers": {"audit"},
}


def run_harness(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    record = tmp_path / "run.json"
    code = fuzz_command.main([*argv, "--out", str(tmp_path / "findings"), "--json", str(record)])
    return code, json.loads(record.read_text(encoding="utf-8"))


def test_a_slice_over_every_kind_and_command_keeps_the_promise(tmp_path):
    code, figures = run_harness(tmp_path, "--inputs", str(SLICE_INPUTS), "--seed", str(SLICE_SEED), "--jobs", "2")
    problems = [f"input {r['number']} ({r['label']}): {r['problems']}" for r in figures["finding_records"]]
    assert problems == [] and figures["findings"] == 0 and code == 0
    assert figures["inputs"] == SLICE_INPUTS
    reached: dict[str, set] = {}
    for row in figures["rows"]:
        reached.setdefault(row["kind"], set()).add(row["command"])
    assert reached == KINDS_AND_COMMANDS
    # the slice reaches past the readers: clean runs, violations and located errors alike
    exits = {key for row in figures["rows"] for key in row if key.startswith("exit ")}
    assert {"exit 0", "exit 1", "exit 2"} <= exits


# ----- planted: a bug in the command, set off by a mark in the policy ----------------------------
# The bugs that only write something and exit: mark -> (standard output, standard error, exit code).
_WRITES = {
    "traceback": ("", 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: planted\n', 2),
    "silent": ("", "", 2),
    "unlocated": ("", "error[E100]: planted\n\n", 2),
    "outside": ("", "error[E100]: planted\n --> policy.dpi:99:1\n\n", 2),
    "exit9": ("", "", 9),
    "json": ('{"results": [\n', "", 1),
    "junit": ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testcase name="a"></testsuites>\n', "", 1),
    "github": ("::error file=policy.dpi,line=1::a message\nwith a raw newline\n", "", 1),
}


def _misbehave(mark: str, stdout, stderr) -> int:
    """What each planted bug does instead of checking the policy."""
    if mark in _WRITES:
        out, err, code = _WRITES[mark]
        stdout.write(out)
        stderr.write(err)
        return code
    if mark == "raise":
        raise RuntimeError("planted")
    if mark == "hang":
        time.sleep(120)
    if mark == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError(f"no planted bug {mark!r}")


PLANTED = {     # mark: (format asked for, the problem the harness must report)
    "raise": ("text", "exit 4 (internal error)"),
    "traceback": ("text", "a traceback in the output"),
    "silent": ("text", "exit 2 with nothing on standard error"),
    "unlocated": ("text", "E100 has no location"),
    "outside": ("text", f"E100 at `policy.dpi:99:1`: outside the file ({AUDIT_POLICY.count(chr(10)) + 2} lines)"),
    "exit9": ("text", "exit 9"),
    "json": ("json", "json output does not parse: Expecting value: line 2 column 1 (char 14)"),
    "junit": ("junit", "junit output does not parse: mismatched tag: line 2, column 33"),
    "github": ("github", "a line that is no workflow command: 'with a raw newline'"),
    "hang": ("text", "no answer within 3 s (a hang)"),
    "crash": ("text", "the worker died (signal SIGSEGV)"),
}
CLEAN = "clean"         # a planted input with no bug: the real check, no finding


@pytest.fixture
def planted(monkeypatch):
    """Input number k of the run is the policy marked with the k-th mark; `check` misbehaves on a
    marked policy and is the real one otherwise. The workers fork from this process, so they
    run the patched command."""
    marks = [*PLANTED, CLEAN]
    real_check = cli._COMMANDS["check"]

    def check(args, stdout, stderr):
        first = Path(args.policy).read_text(encoding="utf-8").split("\n", 1)[0]
        mark = first.removeprefix("# plant: ")
        return real_check(args, stdout, stderr) if mark in (first, CLEAN) else _misbehave(mark, stdout, stderr)

    def make(seed: int, number: int) -> inputs.Input:
        mark = marks[number]
        fmt = PLANTED[mark][0] if mark in PLANTED else "text"
        policy = f"# plant: {mark}\n{AUDIT_POLICY}".encode()
        return inputs.Input(number, f"planted {mark}", "policy", {"policy.dpi": policy},
                            ["check", "policy.dpi", "--format", fmt, "--jobs", "1"])

    monkeypatch.setitem(cli._COMMANDS, "check", check)
    monkeypatch.setattr(inputs, "make", make)
    return marks


def test_every_planted_bug_is_a_finding_with_its_problem(tmp_path, planted):
    code, figures = run_harness(tmp_path, "--inputs", str(len(planted)), "--jobs", "2", "--bound", "3")
    assert code == 1
    found = {r["label"].removeprefix("planted "): r["problems"] for r in figures["finding_records"]}
    assert found == {mark: [problem] for mark, (_, problem) in PLANTED.items()}
    assert figures["inputs"] == len(planted) and figures["findings"] == len(PLANTED)


def test_a_finding_is_saved_and_replays_alone(tmp_path, planted, capsys):
    number = planted.index("raise")
    run_harness(tmp_path, "--inputs", str(len(planted)), "--jobs", "2", "--bound", "3")
    saved = tmp_path / "findings" / f"1-{number}"
    note = json.loads((saved / "FINDING.json").read_text(encoding="utf-8"))
    assert note["argv"] == ["check", "policy.dpi", "--format", "text", "--jobs", "1"]
    assert (saved / "policy.dpi").read_text(encoding="utf-8").startswith("# plant: raise\n")
    capsys.readouterr()
    assert fuzz_command.main(["--replay", str(number), "--out", str(tmp_path / "replay")]) == 1
    shown = capsys.readouterr().out
    assert "exit 4 in" in shown and "problems: ['exit 4 (internal error)']" in shown
    assert "internal error: RuntimeError: planted" in shown


def test_a_saved_finding_replays_as_it_was_made(tmp_path, planted, monkeypatch, capsys):
    """`--replay-saved` runs the saved files and command: it makes nothing again, so it replays a
    finding of a run whose corpus (the checkout's files) is no longer this one."""
    number = planted.index("raise")
    run_harness(tmp_path, "--inputs", str(len(planted)), "--jobs", "2", "--bound", "3")
    monkeypatch.setattr(inputs, "make", lambda seed, number: pytest.fail("a saved finding is not made again"))
    capsys.readouterr()
    saved = tmp_path / "findings" / f"1-{number}"
    assert fuzz_command.main(["--replay-saved", str(saved), "--out", str(tmp_path / "replay")]) == 1
    shown = capsys.readouterr().out
    assert shown.startswith(f"input {number} (planted raise) in {tmp_path / 'replay' / f'1-{number}'}:\n"
                            "  dpipolicy check policy.dpi --format text --jobs 1\n")
    assert "problems: ['exit 4 (internal error)']" in shown
    assert (tmp_path / "replay" / f"1-{number}" / "policy.dpi").read_bytes() == (saved / "policy.dpi").read_bytes()
