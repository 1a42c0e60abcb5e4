"""Long runs: `--jobs N` gives exactly a serial run's results, `--jobs auto` (the default) uses
every CPU for a large table only, and the progress count shows on a terminal only."""
from __future__ import annotations

import io
import json

import pytest

from dpipolicy import api
from dpipolicy import cli
from dpipolicy.cli import main
from dpipolicy.progress import Progress
from dpipolicy.verifier import parallel
from dpipolicy.verifier.properties import InternalError
from dpipolicy.verifier.diff import diff_tables
from dpipolicy.verifier.validate import shared_obligations
from dpipolicy.verifier.solve import Limits
from dpipolicy.verifier.validate import MistranslationError

from helpers import EXAMPLES, generated, generator, run_cli

OLD = EXAMPLES / "policy-2011-08.dpi"
NEW = EXAMPLES / "policy-2011-09.dpi"
SPEC = EXAMPLES / "spec.dpi"


def _same_with_jobs(*argv):
    """The JSON report of a serial run and of --jobs 2, 3 and auto: returns the serial one."""
    code, serial, err = run_cli(*argv, "--format", "json", "--jobs", "1")
    assert err == ""
    for jobs in ("2", "3", "auto"):
        assert run_cli(*argv, "--format", "json", "--jobs", jobs) == (code, serial, ""), f"--jobs {jobs}"
    return code, json.loads(serial)


def test_jobs_give_the_serial_report_on_the_uk_example():
    code, report = _same_with_jobs("check", NEW, "--spec", SPEC)
    assert code == 1
    assert {r["status"] for r in report["results"]} >= {"holds", "violated", "passed", "failed"}


def test_jobs_give_the_serial_report_on_a_generated_policy(tmp_path):
    policy, spec = generated(tmp_path, 150, 5)
    code, report = _same_with_jobs("check", policy, "--spec", spec)
    assert code == 1
    assert len(report["results"]) == 16
    shown = [r for r in report["results"] if r.get("counterexample") or r.get("witness")]
    assert len(shown) >= 8        # the comparison covers counterexamples and witnesses, not only statuses


def test_jobs_results_name_this_process_rules(tmp_path):
    """Results equal to a serial run's as objects: a counterexample's rule is the table's own
    Origin (its span in the very source file loaded here), not a copy sent back by a worker."""
    policy, spec = generated(tmp_path, 120, 2)
    deployed = api.as_deployed(api.load(policy, (spec,)), None)
    serial = api.check_results(deployed, Limits())
    assert api.check_results(deployed, Limits(), jobs=2) == serial
    origins = {id(rule.origin) for rule in deployed[0].rules}
    decided = [r.counterexample for r in api.check_results(deployed, Limits(), jobs=2)
               if r.counterexample is not None and r.counterexample.origin is not None]
    assert decided and all(id(d.origin) in origins for d in decided)


def test_jobs_give_the_serial_diff():
    code, report = _same_with_jobs("diff", OLD, NEW, "--spec", SPEC)
    assert code == 1
    assert len(report["status_changes"]) == 3      # the spec was checked on both sides


def test_jobs_give_the_serial_diff_of_many_changed_rules(tmp_path):
    """The changed rules' walks spread over processes: the same changes, in the same order,
    naming this process's own rules."""
    old, _ = generated(tmp_path, 200, 3)
    new = tmp_path / "new.dpi"
    new.write_text(generator().mutate(old.read_text(encoding="utf-8"), 0.05, 4), encoding="utf-8")
    tables = (api.load(old).table, api.load(new).table)
    serial = diff_tables(*tables, Limits())
    parallel = diff_tables(*tables, Limits(), jobs=2)
    assert serial.changed_rules[0] >= 8 and len(serial.changes) >= 20
    assert (parallel.changes, parallel.unknown, parallel.queries) == (serial.changes, serial.unknown, serial.queries)
    origins = {id(rule.origin) for table in tables for rule in table.rules}
    assert all(id(c.old.origin) in origins for c in parallel.changes if c.old.origin is not None)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_jobs_must_be_a_whole_number_of_processes(value):
    for command in (("check", NEW), ("diff", OLD, NEW)):
        code, out, err = run_cli(*command, "--spec", SPEC, "--jobs", value)
        assert code == 2 and out == ""
        assert f"argument --jobs: expected a whole number of processes, 1 or more, or auto, got '{value}'" in err
        assert "Traceback" not in err


def test_auto_is_one_process_per_cpu_for_a_large_table_on_linux(monkeypatch):
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    assert cli.automatic_jobs(cli.PARALLEL_FROM - 1) == 1       # starting processes would cost more
    assert cli.automatic_jobs(cli.PARALLEL_FROM) == 3
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert cli.automatic_jobs(10_000) == cli.AUTO_JOBS_MAX     # a big machine: memory, not CPUs, bounds it
    monkeypatch.setattr(cli.sys, "platform", "darwin")          # workers would be spawned, not forked
    assert cli.automatic_jobs(10_000) == 1


def test_commands_settle_auto_by_the_size_of_the_table(monkeypatch):
    asked = []
    monkeypatch.setattr(cli, "automatic_jobs", lambda rules: asked.append(rules) or 1)
    sizes = [len(api.load(path).table.rules) for path in (NEW, OLD)]
    assert run_cli("check", NEW, "--spec", SPEC)[0] == run_cli("check", NEW, "--spec", SPEC, "--jobs", "auto")[0] == 1
    assert run_cli("diff", OLD, NEW)[0] == 1
    assert asked == [sizes[0], sizes[0], sizes[1]]      # the new version checked twice, then the old one of the diff
    run_cli("check", NEW, "--jobs", "2")
    run_cli("diff", OLD, NEW, "--jobs", "1")
    assert len(asked) == 3          # a number given is used as it is


def test_an_error_in_a_worker_is_an_internal_error(monkeypatch):
    real = parallel.check_property

    def failing(model, spec, k, limits):
        if k == 2:
            raise InternalError("made to fail")
        return real(model, spec, k, limits)

    monkeypatch.setattr(parallel, "check_property", failing)     # forked workers see it too
    code, out, err = run_cli("check", NEW, "--spec", SPEC, "--jobs", "2")
    assert code == 4 and out == ""
    assert "internal error: InternalError: made to fail" in err


def test_translations_proved_beside_are_those_proved_in_turn():
    """Under --jobs 2 the old version is proved in another process while the new one loads,
    and the new one beside the diff: the same validations (and queries: a rule both share is
    proved once) as serially."""
    memo = api.Memo()
    old, new = api.load(OLD, memo=memo), api.load(NEW, memo=memo)
    tables = (old.table, new.table)
    serial, validations = api.diff(old, new, tables, Limits(), 1)
    beside, beside_validations = api.diff(old, new, tables, Limits(), 2, api.prove(old, Limits(), 2))
    assert [v.status for v in validations] == ["proved", "proved"] and beside_validations == validations
    assert shared_obligations((old.policy, old.table), (new.policy, new.table))   # proved with the old version only
    assert beside.changes == serial.changes


def test_a_mistranslation_found_beside_the_diff_is_raised(monkeypatch):
    def mistranslated(state, _):
        raise MistranslationError("made to fail")

    monkeypatch.setattr(api, "_proof", mistranslated)      # the forked process sees it too
    code, out, err = run_cli("diff", OLD, NEW, "--jobs", "2")
    assert code == 4 and out == ""
    assert "MistranslationError: made to fail" in err and "Traceback" not in err


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _screen(written: str) -> list[str]:
    """What a terminal shows after `written`: a carriage return goes back to the line's start,
    later characters overwrite earlier ones."""
    lines, line, col = [], [], 0
    for ch in written:
        if ch == "\n":
            lines.append("".join(line))
            line, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            line[col:col + 1] = [ch]
            col += 1
    return lines + ["".join(line)]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_progress_counts_on_a_terminal_and_is_wiped(jobs):
    out, err = io.StringIO(), _Terminal()
    code = main(["check", str(NEW), "--spec", str(SPEC), "--jobs", jobs], out, err)
    assert code == 1
    written = err.getvalue()
    counts = [f"\rchecked {n} of 8 invariants and tests" for n in range(9)]
    positions = [written.index(c) for c in counts]
    assert positions == sorted(positions)            # 0 to 8, in order
    assert "\n" not in written                       # updated in place
    assert _screen(written)[-1].strip() == ""        # and wiped at the end
    assert written.endswith("\r")                    # with the cursor at the start of the line
    assert out.getvalue() == run_cli("check", NEW, "--spec", SPEC)[1]   # the report is unchanged


def test_no_progress_when_standard_error_is_not_a_terminal():
    code, out, err = run_cli("check", NEW, "--spec", SPEC, "--jobs", "2")
    assert code == 1 and err == ""
    assert "4 invariants (3 hold, 1 violated)" in out


def test_progress_is_wiped_when_an_error_ends_the_work():
    err = _Terminal()
    with pytest.raises(ValueError):
        with Progress(err) as progress:
            progress(0, 16)
            progress(10, 16)
            raise ValueError("stop")
    assert _screen(err.getvalue()) == [" " * len("checked 10 of 16 invariants and tests")]


def test_progress_overwrites_a_longer_line_fully():
    err = _Terminal()
    progress = Progress(err, "tests")
    progress(10, 10)
    progress(9, 100)      # never shorter in a real run; the line must still read right
    progress(1, 2)
    assert _screen(err.getvalue())[-1].rstrip() == "checked 1 of 2 tests"
