"""Command line: `dpipolicy check | compile | explain | diff | replay`. Thin: parsing arguments, rendering, exit codes.

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


PROFILE_HELP = "the DPI engine's profile: exact (default), ndpi-4.2, ndpi-5.0, or a YAML file"


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
    check.add_argument("--profile", metavar="NAME|FILE", help=PROFILE_HELP)
    common(check)

    comp = sub.add_parser("compile", help="compile a policy to a JSON rule table")
    comp.add_argument("policy", type=Path)
    comp.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    comp.add_argument("--format", choices=("text", "json"), default="text",
                      help="json: errors in the input also go to standard output, as one JSON object")
    common(comp)

    explain = sub.add_parser("explain", help="show the outcome of a flow and why")
    explain.add_argument("policy", type=Path, help="a .dpi policy or a JSON rule table")
    explain.add_argument("--flow", required=True, help='for example "proto=tcp dst.port=465 app=smtps tls=true"')
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.add_argument("--profile", metavar="NAME|FILE", help=PROFILE_HELP)
    common(explain)
    diff = sub.add_parser("diff", help="every flow whose outcome differs between two versions")
    diff.add_argument("old", type=Path, help="a .dpi policy or a JSON rule table")
    diff.add_argument("new", type=Path, help="a .dpi policy or a JSON rule table")
    diff.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                      help="invariants and tests to check on both sides; may be repeated")
    diff.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    diff.add_argument("--fail-on", choices=("change", "regression"), default="change",
                      help="exit 1 on any change (default), or only when an invariant or test regresses")
    diff.add_argument("--profile-old", metavar="NAME|FILE", help="the engine profile running OLD (default: exact)")
    diff.add_argument("--profile-new", metavar="NAME|FILE", help="the engine profile running NEW (default: exact)")
    common(diff)
    replay = sub.add_parser("replay", help="the policy's decision for each flow of a packet capture")
    replay.add_argument("policy", type=Path, help="a .dpi policy or a JSON rule table")
    replay.add_argument("capture", type=Path, help="a pcap or pcapng file")
    replay.add_argument("--profile", default="exact", metavar="NAME|FILE",
                        help="engine profile for nDPI's names: exact (default), ndpi-4.2, ndpi-5.0, or a YAML file")
    replay.add_argument("--assume", default="", metavar="FLOW",
                        help='fields a capture cannot tell, e.g. "subscriber.plan=payg subscriber.addons=vpn"')
    replay.add_argument("--format", choices=("text", "json"), default="text")
    common(replay)
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
        stderr.write(exc.summary() + "\n")
        if getattr(args, "format", "text") == "json":     # for programs: the same, as one object
            stdout.write(json.dumps(exc.to_json(), indent=2) + "\n")
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


def _profile(name, loaded):
    from dpipolicy.dsl.profiles import load_profile
    return None if name is None else load_profile(name, loaded.table.schema.catalogue)


def _check(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.report import TextReport, report_json
    limits = _limits(args)
    loaded = api.load(args.policy, tuple(args.spec), tuple(args.catalogue))
    deployed = api.as_deployed(loaded, _profile(args.profile, loaded))
    report = api.check(loaded, limits, deployed)
    table = deployed[0]
    if args.format == "json":
        stdout.write(json.dumps(report_json(table.schema, report, table.named_sets), indent=2) + "\n")
    else:
        stdout.write(TextReport(table.schema, _colour(stdout), table.named_sets).render(report) + "\n")
    return report.exit_code()


def _compile(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.compiler.tablefile import table_to_json, write_table
    from dpipolicy.dsl.words import counted
    limits = _limits(args)
    if api.is_table(args.policy):     # before reading it: whatever the table holds, it is not a policy
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E321", "`compile` takes a .dpi policy, not a rule table", None,
                                          location_text=str(args.policy))])
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    validation = api.translation_validation(loaded, limits)
    if args.output:
        write_table(loaded.table, args.output)
        stderr.write(f"wrote {counted(len(loaded.table.rules), 'match rule')} to {args.output}; {validation.text()}\n")
    else:
        stdout.write(json.dumps(table_to_json(loaded.table), indent=2) + "\n")
    return EXIT_OK if validation.status == "proved" else EXIT_UNKNOWN


def _explain(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.explain import explain, explanation_json, explanation_text, parse_flow
    from dpipolicy.dsl.schema import LABEL
    from dpipolicy.verifier.labels import possible_labels
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    profile = _profile(args.profile, loaded)
    table, _ = api.as_deployed(loaded, profile)
    schema = table.schema
    pinned = parse_flow(schema, args.flow)
    if schema.field(LABEL) is None or LABEL in pinned or "app" not in pinned:
        result = explain(table, pinned)
        if args.format == "json":
            stdout.write(json.dumps(explanation_json(schema, result), indent=2) + "\n")
        else:
            stdout.write(explanation_text(schema, result) + "\n")
        return EXIT_OK
    # under a profile, with the label left open: one explanation per label the engine may give
    labels = possible_labels(profile, schema, pinned)
    members = schema.field(LABEL).members
    parts = [(members[label], how, explain(table, dict(pinned, **{LABEL: label}))) for label, how in labels]
    if args.format == "json":
        stdout.write(json.dumps({"profile": profile.name, "labels": [
            {"label": name, "how": how, "explanation": explanation_json(schema, e)} for name, how, e in parts]},
            indent=2) + "\n")
    else:
        lines = [f"engine profile {profile.name}: {len(parts)} possible label{'s' if len(parts) != 1 else ''}"]
        for name, how, e in parts:
            lines += ["", f"labelled {name} ({how}):", explanation_text(schema, e)]
        stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _diff(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.diff import diff_tables
    from dpipolicy.verifier.labels import under_two_profiles
    from dpipolicy.verifier.diffreport import StatusChange, render_json, render_markdown, render_text
    limits = _limits(args)
    old = api.load(args.old, tuple(args.spec), tuple(args.catalogue))
    new = api.load(args.new, tuple(args.spec), tuple(args.catalogue))
    profiles = (_profile(args.profile_old, old), _profile(args.profile_new, new))
    tables = (old.table, new.table)
    if any(p is not None for p in profiles):       # what the engines do, not only what the texts say
        from dpipolicy.dsl.profiles import load_profile
        exact = load_profile("exact", old.table.schema.catalogue)
        tables = under_two_profiles(*tables, *(p or exact for p in profiles))
    result = diff_tables(*tables, limits)
    for side, name in ((old, args.old), (new, args.new)):     # the diff is of the compiled tables: prove them faithful
        validation = api.translation_validation(side, limits)
        if validation is not None and validation.status != "proved":
            result.unknown.append(f"{name}: {validation.text()}")
    statuses: list[StatusChange] = []
    unknown = bool(result.unknown)
    if args.spec:
        deployed_old, deployed_new = api.as_deployed(old, profiles[0]), api.as_deployed(new, profiles[1])
        before = {(r.kind, r.name): r for r in api.check_results(deployed_old, limits)}
        after = api.check_results(deployed_new, limits)
        for r in after:
            was = before.get((r.kind, r.name))
            if was is not None and was.status != r.status:
                statuses.append(StatusChange(r.kind, r.name, was.status, r.status, r, deployed_new[0].schema,
                                             was, deployed_old[0].schema))
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


def _replay(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.dsl.profiles import load_profile
    from dpipolicy.verifier.replay import replay, replay_json, replay_text
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    profile = load_profile(args.profile, loaded.table.schema.catalogue)
    result = replay(loaded, args.capture, profile, args.assume)
    if args.format == "json":
        stdout.write(json.dumps(replay_json(loaded.table.schema, result), indent=2) + "\n")
    else:
        stdout.write(replay_text(result) + "\n")
    return EXIT_OK


_COMMANDS = {"check": _check, "compile": _compile, "explain": _explain, "diff": _diff, "replay": _replay}


def entry_point() -> int:
    return main()
