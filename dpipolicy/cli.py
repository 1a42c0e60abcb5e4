"""Command line: `dpipolicy check | compile | explain | diff`. Thin: parsing arguments, rendering, exit codes.

Exit codes: 0 all hold and pass; 1 something violated or failed; 2 bad input; 3 some result
unknown and nothing violated; 4 an internal error (a dpipolicy bug).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TextIO

EXIT_OK, EXIT_VIOLATED, EXIT_BAD_INPUT, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() keeps control of output and exit codes."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: {message}\n{self.format_usage()}")


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    top = _Parser(prog="dpipolicy", description="Check carrier traffic policies before they ship.")
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalogue", action="append", type=Path, default=[], metavar="FILE",
                       help="an extra application catalogue (YAML); may be repeated")
        p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="time limit per solver query (default 30)")
        p.add_argument("--debug", action="store_true", help="show Python tracebacks on internal errors")

    check = sub.add_parser("check", help="prove invariants and run tests")
    check.add_argument("policy", type=Path, help="a .dpi policy or a JSON rule table")
    check.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                       help="a file of invariants and tests; may be repeated")
    check.add_argument("--format", choices=("text", "json"), default="text")
    common(check)

    comp = sub.add_parser("compile", help="compile a policy to a JSON rule table")
    comp.add_argument("policy", type=Path)
    comp.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    common(comp)

    explain = sub.add_parser("explain", help="show the outcome of a flow and why")
    explain.add_argument("policy", type=Path, help="a .dpi policy or a JSON rule table")
    explain.add_argument("--flow", required=True, help='for example "proto=tcp dst.port=465 app=smtps tls=true"')
    explain.add_argument("--format", choices=("text", "json"), default="text")
    common(explain)
    diff = sub.add_parser("diff", help="every flow whose outcome differs between two versions")
    diff.add_argument("old", type=Path, help="a .dpi policy or a JSON rule table")
    diff.add_argument("new", type=Path, help="a .dpi policy or a JSON rule table")
    diff.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                      help="invariants and tests to check on both sides; may be repeated")
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    diff.add_argument("--fail-on", choices=("change", "regression"), default="change",
                      help="exit 1 on any change (default), or only when an invariant or test regresses")
    common(diff)
    return top


def _colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        stderr.write(str(exc))
        return EXIT_BAD_INPUT
    if args.version:
        from dpipolicy import __version__
        stdout.write(f"dpipolicy {__version__}\n")
        return EXIT_OK
    if args.command is None:
        stderr.write(_parser().format_help())
        return EXIT_BAD_INPUT
    from dpipolicy.dsl.diagnostics import DiagnosticError
    try:
        return _COMMANDS[args.command](args, stdout, stderr)
    except DiagnosticError as exc:
        for d in exc.diagnostics:
            stderr.write(d.render() + "\n\n")
        count = len(exc.diagnostics)
        stderr.write(f"{count} error{'s' if count != 1 else ''}; nothing was checked\n")
        return EXIT_BAD_INPUT
    except Exception as exc:   # a bug in dpipolicy: say so plainly, never a bare traceback
        if args.debug:
            traceback.print_exc(file=stderr)
        stderr.write(f"internal error: {type(exc).__name__}: {exc}\n"
                     "this is a bug in dpipolicy; rerun with --debug for details and report it\n")
        return EXIT_INTERNAL


def _limits(args):
    from dpipolicy.verifier.solve import Limits
    if args.timeout <= 0:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E320", "--timeout must be positive", None, location_text="--timeout",
                                          help="give the limit per solver query in seconds, e.g. --timeout 30")])
    return Limits(timeout_s=args.timeout)


def _check(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.report import TextReport, report_json
    limits = _limits(args)
    loaded = api.load(args.policy, tuple(args.spec), tuple(args.catalogue))
    report = api.check(loaded, limits)
    if args.format == "json":
        stdout.write(json.dumps(report_json(loaded.table.schema, report, loaded.table.named_sets), indent=2) + "\n")
    else:
        stdout.write(TextReport(loaded.table.schema, _colour(stdout), loaded.table.named_sets).render(report) + "\n")
    return report.exit_code()


def _compile(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.compiler.tablefile import table_to_json, write_table
    limits = _limits(args)
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    if loaded.policy is None:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E321", "`compile` takes a .dpi policy, not a rule table", None,
                                          location_text=str(args.policy))])
    validation = api.translation_validation(loaded, limits)
    if args.output:
        write_table(loaded.table, args.output)
        stderr.write(f"wrote {len(loaded.table.rules)} match rules to {args.output}; {validation.text()}\n")
    else:
        stdout.write(json.dumps(table_to_json(loaded.table), indent=2) + "\n")
    return EXIT_OK if validation.status == "proved" else EXIT_UNKNOWN


def _explain(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.explain import explain, explanation_json, explanation_text, parse_flow
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    pinned = parse_flow(loaded.table.schema, args.flow)
    result = explain(loaded, pinned)
    if args.format == "json":
        stdout.write(json.dumps(explanation_json(loaded.table.schema, result), indent=2) + "\n")
    else:
        stdout.write(explanation_text(loaded.table.schema, result) + "\n")
    return EXIT_OK


def _diff(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.diff import diff_tables
    from dpipolicy.verifier.diffreport import StatusChange, render_json, render_markdown, render_text
    limits = _limits(args)
    old = api.load(args.old, tuple(args.spec), tuple(args.catalogue))
    new = api.load(args.new, tuple(args.spec), tuple(args.catalogue))
    result = diff_tables(old.table, new.table, limits)
    for side, name in ((old, args.old), (new, args.new)):     # the diff is of the compiled tables: prove them faithful
        validation = api.translation_validation(side, limits)
        if validation is not None and validation.status != "proved":
            result.unknown.append(f"{name}: {validation.text()}")
    statuses: list[StatusChange] = []
    unknown = bool(result.unknown)
    if args.spec:
        before = {(r.kind, r.name): r for r in api.check_results(old, limits)}
        after = api.check_results(new, limits)
        for r in after:
            was = before.get((r.kind, r.name))
            if was is not None and was.status != r.status:
                statuses.append(StatusChange(r.kind, r.name, was.status, r.status, r, new.table.schema))
        unknown |= any(r.status == "unknown" for r in after)
    if args.format == "json":
        stdout.write(json.dumps(render_json(result, statuses), indent=2) + "\n")
    elif args.format == "markdown":
        stdout.write(render_markdown(result, statuses) + "\n")
    else:
        stdout.write(render_text(result, statuses) + "\n")
    regressed = any(s.before in ("holds", "passed") and s.after in ("violated", "failed") for s in statuses)
    if regressed or (args.fail_on == "change" and result.changes):
        return EXIT_VIOLATED
    return EXIT_UNKNOWN if unknown else EXIT_OK


_COMMANDS = {"check": _check, "compile": _compile, "explain": _explain, "diff": _diff}


def entry_point() -> int:
    return main()
