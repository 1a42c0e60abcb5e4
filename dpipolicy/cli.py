"""Command line: `dpipolicy check | compile | explain | probe | diff | replay | audit | fmt | lint | import | profile build`. Thin: parsing arguments, rendering, exit codes.

Exit codes: 0 all hold and pass; 1 something violated or failed; 2 bad input; 3 some result
unknown and nothing violated; 4 an internal error (a dpipolicy bug).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TextIO

from dpipolicy.auditformats import FORMATS as AUDIT_FORMATS
from dpipolicy.ciformats import FORMATS as CI_FORMATS     # the CI formats every reporting command offers

EXIT_OK, EXIT_VIOLATED, EXIT_BAD_INPUT, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_BROKEN_PIPE = 141     # 128 + SIGPIPE, what a shell reports for a program killed by a closed pipe


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() keeps control of output and exit codes."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: {message}\n{self.format_usage()}")


INPUT_HELP = "a .dpi policy, a JSON rule table, or a rule set exported from an enforcement point (docs/import.md)"
PROFILE_HELP = "the DPI engine's profile: exact (default), ndpi-4.2, ndpi-5.0, or a YAML file"
FORMAT_HELP = "sarif, junit and github (Actions annotations) are for CI: see docs/output.md"


class _UsageError(Exception):
    pass


def _jobs(text: str) -> int | None:
    """--jobs N: a whole number of processes, at least 1; or auto (None), which the command
    settles once it knows the table's size (automatic_jobs)."""
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, 1 or more, or auto, got {text!r} "
                                         "(for example --jobs 2)")
    return n


PARALLEL_FROM = 100     # match rules: below that, starting processes costs more than they save (docs/performance.md)
AUTO_JOBS_MAX = 8       # a forked worker copies the parts of the loaded tables it touches: bounds memory on big machines


def automatic_jobs(rules: int) -> int:
    """`--jobs auto`: one process per CPU this one may use, up to AUTO_JOBS_MAX, on Linux, where
    workers are forked and share the loaded tables, and for a table of PARALLEL_FROM match
    rules or more; else 1."""
    if rules < PARALLEL_FROM or not sys.platform.startswith("linux"):
        return 1
    return min(len(os.sched_getaffinity(0)), AUTO_JOBS_MAX)


JOBS_AUTO = (f"default auto: on Linux, one per CPU this command may use (at most {AUTO_JOBS_MAX}), for a "
             f"table of {PARALLEL_FROM} match rules or more; else 1")
JOBS_HELP = f"check up to N invariants and tests at once, each in its own process ({JOBS_AUTO})"
JOBS_DIFF_HELP = f"follow up to N changed rules, and check up to N invariants and tests, at once ({JOBS_AUTO})"


def _parser() -> argparse.ArgumentParser:
    top = _Parser(prog="dpipolicy", description="Check carrier traffic policies before they ship.")
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", parser_class=_Parser)

    from dpipolicy.compiler.importers.detect import FORMATS

    def reading(p: argparse.ArgumentParser) -> None:
        """How to read a rule set exported from a real enforcement point (docs/import.md)."""
        p.add_argument("--input-format", choices=FORMATS, default=None,
                       help="what the input is (default: told by its content)")
        p.add_argument("--chain", metavar="HOOK", help="the hook the table describes, for a rule set with base "
                       "chains on several (input, forward, output, prerouting, postrouting, ...)")
        p.add_argument("--approximate", action="store_true", help="read what the table cannot hold exactly as "
                       "listed approximations; results that depend on them are approximate")
        p.add_argument("--contract", type=Path, metavar="FILE", help="the engine contract an nftables rule set was "
                       "compiled with (`compile --contract`): its marks and sets read as the DPI and subscriber fields")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalogue", action="append", type=Path, default=[], metavar="FILE",
                       help="an extra application catalogue (YAML); may be repeated")
        p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="time limit per solver query (default 30)")
        p.add_argument("--debug", action="store_true", help="show Python tracebacks on internal errors")

    check = sub.add_parser("check", help="prove invariants and run tests")
    check.add_argument("policy", type=Path, help=INPUT_HELP)
    check.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                       help="a file of invariants and tests; may be repeated")
    check.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text", help=FORMAT_HELP)
    check.add_argument("--profile", metavar="NAME|FILE", help=PROFILE_HELP)
    check.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto", help=JOBS_HELP)
    common(check)
    reading(check)

    comp = sub.add_parser("compile", help="compile a policy to a JSON rule table or an nftables script")
    comp.add_argument("policy", type=Path)
    comp.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    comp.add_argument("--target", choices=("table", "nftables"), default="table",
                      help="table: the JSON rule table (default); nftables: an `nft -f` script (docs/enforcement.md)")
    comp.add_argument("--contract", type=Path, metavar="FILE",
                      help="nftables: write the engine contract (mark layout, label numbers, set names) as JSON")
    comp.add_argument("--approximate", action="store_true",
                      help="nftables: write the nearest rule for what the target cannot express, and list each")
    comp.add_argument("--table", default="dpipolicy", metavar="NAME", help="nftables: the table's name")
    comp.add_argument("--validate", choices=("auto", "required", "off"), default="auto", nargs="?", const="auto",
                      help="nftables: load the script into a fresh network namespace, read the kernel's copy back "
                           "and prove it equal to the table; auto (default): when nft can be run here")
    comp.add_argument("--format", choices=("text", "json"), default="text",
                      help="json: errors in the input also go to standard output, as one JSON object")
    common(comp)

    explain = sub.add_parser("explain", help="show the outcome of a flow and why")
    explain.add_argument("policy", type=Path, help=INPUT_HELP)
    explain.add_argument("--flow", required=True, help='for example "proto=tcp dst.port=465 app=smtps tls=true"')
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.add_argument("--profile", metavar="NAME|FILE", help=PROFILE_HELP)
    common(explain)
    reading(explain)
    probe = sub.add_parser("probe", help="send real traffic through the compiled rule set in a network namespace")
    probe.add_argument("policy", type=Path, help="a .dpi policy")
    probe.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                       help="also send every counterexample and witness of these invariants and tests")
    probe.add_argument("--flow", action="append", default=[], metavar="FLOW",
                       help='also send this flow, e.g. "proto=tcp dst.ip=74.125.206.108 dst.port=587 app=submission" '
                            "(fields left out take realistic values); may be repeated")
    probe.add_argument("--target", choices=("nftables",), default="nftables", help="the engine (nftables)")
    probe.add_argument("--approximate", action="store_true",
                       help="compile with approximations, as `compile --approximate` does")
    probe.add_argument("--wait", type=float, default=0.5, metavar="SECONDS",
                       help="how long to wait for an answer before a flow counts as dropped (default 0.5)")
    probe.add_argument("--format", choices=("text", "json"), default="text")
    common(probe)
    diff = sub.add_parser("diff", help="every flow whose outcome differs between two versions")
    diff.add_argument("old", type=Path, help=INPUT_HELP)
    diff.add_argument("new", type=Path, help=INPUT_HELP)
    diff.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                      help="invariants and tests to check on both sides; may be repeated")
    diff.add_argument("--format", choices=("text", "json", "markdown", *CI_FORMATS), default="text", help=FORMAT_HELP)
    diff.add_argument("--fail-on", choices=("change", "regression"), default="change",
                      help="exit 1 on any change (default), or only when an invariant or test regresses")
    diff.add_argument("--profile-old", metavar="NAME|FILE", help="the engine profile running OLD (default: exact)")
    diff.add_argument("--profile-new", metavar="NAME|FILE", help="the engine profile running NEW (default: exact)")
    diff.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto", help=JOBS_DIFF_HELP)
    common(diff)
    reading(diff)
    replay = sub.add_parser("replay", help="the policy's decision for each flow of a packet capture")
    replay.add_argument("policy", type=Path, help="a .dpi policy or a JSON rule table")
    replay.add_argument("capture", type=Path, help="a pcap or pcapng file")
    replay.add_argument("--profile", default="exact", metavar="NAME|FILE",
                        help="engine profile for nDPI's names: exact (default), ndpi-4.2, ndpi-5.0, or a YAML file")
    replay.add_argument("--assume", default="", metavar="FLOW",
                        help='fields a capture cannot tell, e.g. "subscriber.plan=payg subscriber.addons=vpn"')
    replay.add_argument("--format", choices=("text", "json"), default="text")
    common(replay)
    lint = sub.add_parser("lint", help="find rules that never decide a flow, unused names and more (docs/lint.md)")
    lint.add_argument("policy", type=Path, help="a .dpi policy, or a rule set exported from an enforcement point")
    lint.add_argument("--spec", action="append", type=Path, default=[], metavar="FILE",
                      help="a file of invariants and tests (their names count as used; vacuous ones are found); "
                           "may be repeated")
    lint.add_argument("--strict", action="store_true", help="warnings fail too (exit 1), not only errors")
    lint.add_argument("--format", choices=("text", "json", *CI_FORMATS), default="text", help=FORMAT_HELP)
    common(lint)
    reading(lint)
    audit = sub.add_parser("audit", help="each clause of published terms: held, violated or unknown (docs/audit.md)")
    audit.add_argument("policy", type=Path, help=INPUT_HELP)
    audit.add_argument("--terms", required=True, type=Path, metavar="FILE|NAME",
                       help="the terms file (YAML): the clauses, and the specs whose invariants and tests state them; "
                            "or shipped terms: eu-open-internet")
    audit.add_argument("--strict", action="store_true",
                       help="exit 1 when an interfering rule is constrained by no clause (a traceability finding)")
    audit.add_argument("--format", choices=AUDIT_FORMATS, default=None,
                       help="default: from the suffix of -o (.html, .md, .json), else text")
    audit.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    audit.add_argument("--profile", metavar="NAME|FILE", help=PROFILE_HELP)
    audit.add_argument("--profile-old", metavar="NAME|FILE",
                       help="with --profile-new: audit under both engines, and name the clauses the upgrade breaks")
    audit.add_argument("--profile-new", metavar="NAME|FILE", help="the engine after the upgrade (default: exact)")
    audit.add_argument("--policy-old", type=Path, metavar="FILE",
                       help="the policy before the upgrade, audited under --profile-old, when the upgrade brings "
                            "new rules too (default: POLICY itself)")
    audit.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto", help=JOBS_HELP)
    audit.add_argument("--waivers", type=Path, metavar="FILE",
                       help="a waiver file (YAML): violations accepted for a time, with owner and reason")
    audit.add_argument("--today", metavar="YYYY-MM-DD",
                       help="the date waivers expire against (default: $DPIPOLICY_TODAY, else today)")
    common(audit)
    reading(audit)
    imp = sub.add_parser("import", help="write the rule table of a rule set exported from an enforcement point")
    imp.add_argument("ruleset", type=Path, help="iptables-save, ip6tables-save, `nft list ruleset` (text or -j)")
    imp.add_argument("-o", "--output", type=Path, help="the rule table (JSON; default: standard output)")
    common(imp)
    reading(imp)
    profile = sub.add_parser("profile", help="build an engine profile from the engine's own output (docs/profiles.md)")
    build = profile.add_subparsers(dest="action", required=True, parser_class=_Parser).add_parser(
        "build", help="an engine profile from flows the engine labelled and a truth file")
    build.add_argument("base", type=Path, help="the profile's hand-written part (YAML): name, engine, ndpi_names, ...")
    build.add_argument("--truth", action="append", type=Path, required=True, metavar="FILE",
                       help="the real application of the captures' flows (YAML); may be repeated")
    build.add_argument("--flows", action="append", type=Path, required=True, metavar="FILE",
                       help="a flows CSV, or an ndpiReader result file (-w); may be repeated")
    build.add_argument("--release", metavar="NAME", help="the engine release of result files and of CSVs "
                       "without a `version` column (default: from the file)")
    build.add_argument("-o", "--output", type=Path, help="output file (default: standard output)")
    build.add_argument("--catalogue", action="append", type=Path, default=[], metavar="FILE",
                       help="an extra application catalogue (YAML); may be repeated")
    build.add_argument("--debug", action="store_true", help="show Python tracebacks on internal errors")
    fmt = sub.add_parser("fmt", help="rewrite .dpi files in the canonical layout (docs/fmt.md)")
    fmt.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a .dpi policy or spec file")
    fmt.add_argument("--check", action="store_true",
                     help="write nothing; list the files that are not formatted and exit 1 if there are any")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print what would change as a unified diff")
    fmt.add_argument("--debug", action="store_true", help="show Python tracebacks on internal errors")
    return top


def _colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def collect_garbage_less() -> None:
    """A loaded policy is hundreds of thousands of small objects with few reference cycles, and
    Python's default thresholds make the collector scan them again and again while they are
    built: about a third of loading a 10k-rule policy (docs/performance.md)."""
    gc.set_threshold(100_000, 50, 100)


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    collect_garbage_less()
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
    from dpipolicy.cilog import log_streams
    from dpipolicy.dsl.diagnostics import DiagnosticError
    raw_stdout = stdout
    stdout, stderr = log_streams(args.command, getattr(args, "format", None), stdout, stderr)
    try:
        return _COMMANDS[args.command](args, stdout, stderr)
    except DiagnosticError as exc:
        for d in exc.diagnostics:
            stderr.write(d.render() + "\n\n")
        stderr.write(exc.summary() + "\n")
        if getattr(args, "format", "text") == "json":     # for programs: the same, as one object
            stdout.write(json.dumps(exc.to_json(), indent=2) + "\n")
        elif getattr(args, "format", "text") in CI_FORMATS:     # and for CI: annotations of the errors
            from dpipolicy.cifindings import diagnostic_findings
            from dpipolicy.ciformats import render
            stdout.write(render(args.format, args.command, *diagnostic_findings(exc)))
        return EXIT_BAD_INPUT
    except BrokenPipeError:    # the reader stopped early (`| head`): end quietly, as a piped program does
        if raw_stdout is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return EXIT_BROKEN_PIPE
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


def _reading(args):
    """--input-format, --chain and --approximate: how to read a rule set (docs/import.md)."""
    from dpipolicy import api
    return api.Reading(args.input_format, args.chain, args.approximate, args.contract)


def _diff_readings(args) -> tuple:
    """How `diff` reads each side: --chain, --approximate and --contract are for the rule sets
    among them, so a policy can be diffed with the rule set that should implement it; given
    where neither side is a rule set, they are E703 as for any command."""
    from dpipolicy import api
    from dpipolicy.compiler.importers import detect
    reading = _reading(args)
    plain = api.Reading(args.input_format)
    rulesets = [api.input_format(path, plain) not in (detect.POLICY, detect.TABLE) for path in (args.old, args.new)]
    if not any(rulesets):
        return reading, reading
    return tuple(reading if is_ruleset else plain for is_ruleset in rulesets)


def _profile(name, loaded):
    from dpipolicy.dsl.profiles import load_profile
    return None if name is None else load_profile(name, loaded.table.schema.catalogue)


def _check(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.report import TextReport, report_json
    limits = _limits(args)
    loaded = api.load(args.policy, tuple(args.spec), tuple(args.catalogue), reading=_reading(args))
    deployed = api.as_deployed(loaded, _profile(args.profile, loaded))
    jobs = args.jobs or automatic_jobs(len(loaded.table.rules))
    from dpipolicy.progress import Progress
    with Progress(stderr) as progress:
        report = api.check(loaded, limits, deployed, jobs, progress)
    table = deployed[0]
    if args.format == "json":
        stdout.write(json.dumps(report_json(table.schema, report, table.named_sets), indent=2) + "\n")
    elif args.format in CI_FORMATS:
        from dpipolicy.cifindings import check_findings
        from dpipolicy.ciformats import render
        findings = check_findings(report, table.schema, table.named_sets, str(args.policy))
        stdout.write(render(args.format, "check", *findings))
    else:
        stdout.write(TextReport(table.schema, _colour(stdout), table.named_sets).render(report) + "\n")
    return report.exit_code()


def _audit(args, stdout: TextIO, stderr: TextIO) -> int:
    """`check` with the terms' specs, its results mapped onto the terms' clauses."""
    from dataclasses import replace

    from dpipolicy import api
    from dpipolicy.auditformats import SUFFIXES, render, summary_line
    from dpipolicy.dsl.terms import check_names, read_terms, terms_path
    from dpipolicy.dsl.waivers import read_waivers
    from dpipolicy.verifier.audit import audit
    from dpipolicy.verifier.trace import trace
    from dpipolicy.verifier.waivers import check_waiver_names, review, split_regions
    limits = _limits(args)
    fmt = args.format or SUFFIXES.get(args.output.suffix.lower() if args.output else "", "text")
    terms = read_terms(terms_path(args.terms))
    waivers = read_waivers(args.waivers) if args.waivers is not None else None
    today = _today(args) if waivers is not None else None
    loaded = api.load(args.policy, terms.specs, tuple(args.catalogue), extra=waivers.regions if waivers else (),
                      reading=_reading(args))
    spec, _ = split_regions(loaded.spec)
    invariants, tests = tuple(i.name for i in spec.invariants), tuple(t.name for t in spec.tests)
    check_names(terms, invariants, tests)
    if waivers is not None:
        check_waiver_names(waivers, tuple(c.id for c in terms.clauses), invariants, tests,
                           tuple(r.origin.name for r in loaded.table.rules) + ("default",))
    upgrading = args.profile_old is not None or args.profile_new is not None or args.policy_old is not None
    if upgrading and args.profile is not None:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E639", "--profile cannot be given with --profile-old/--profile-new "
                                          "or --policy-old", None, location_text="--profile",
                                          help="give one engine with --profile, or the two of an upgrade with "
                                               "--profile-old and --profile-new")])

    profile = _profile(args.profile_new if upgrading else args.profile, loaded)
    deployed_table, deployed_spec = api.as_deployed(loaded, profile)
    rest, regions = split_regions(deployed_spec)        # the waivers' regions are not checked
    deployed = (deployed_table, rest)
    jobs = args.jobs or automatic_jobs(len(loaded.table.rules))
    from dpipolicy.progress import Progress
    with Progress(stderr) as progress:
        if upgrading:
            from dpipolicy.verifier.auditupgrade import upgrade
            earlier = loaded if args.policy_old is None else api.load(args.policy_old, terms.specs,
                                                                        tuple(args.catalogue), reading=_reading(args))
            old = _profile(args.profile_old, earlier)
            before = audit(terms, api.check(earlier, limits, api.as_deployed(earlier, old), jobs, progress))
            up = upgrade(old.name if old else "exact", profile.name if profile else "exact", before,
                         None if args.policy_old is None else (str(args.policy_old), str(args.policy)))
        result = audit(terms, api.check(loaded, limits, deployed, jobs, progress), trace(terms, loaded.table, spec))
        if upgrading:
            result = replace(result, upgrade=up)
    table = deployed[0]
    if waivers is not None:
        result = review(result, waivers, regions, deployed, limits, today)
    _write(args.output, render(fmt, result, table.schema, table.named_sets), stdout)
    if args.output is not None:
        stderr.write(f"wrote the audit to {args.output}: {summary_line(result)}\n")
    return result.exit_code(args.strict)


def _today(args):
    """The date waivers expire against: --today, else $DPIPOLICY_TODAY (for CI), else the clock."""
    import datetime
    given, where = (args.today, "--today") if args.today else (os.environ.get("DPIPOLICY_TODAY"), "DPIPOLICY_TODAY")
    if not given:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(given)
    except ValueError:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E636", f"{where} must be a date written YYYY-MM-DD, not `{given}`", None,
                                          location_text=where, help="for example 2011-10-01")]) from None


def _compile(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.compiler.backends import TARGETS, Options
    from dpipolicy.dsl.words import counted
    limits = _limits(args)
    if api.is_table(args.policy):     # before reading it: whatever the table holds, it is not a policy
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E321", "`compile` takes a .dpi policy, not a rule table", None,
                                          location_text=str(args.policy))])
    target = TARGETS[args.target]
    _nftables_options_only(args, target)
    _valid_table_name(args.table)
    loaded = api.load(args.policy, (), tuple(args.catalogue))
    validation = api.translation_validation(loaded, limits)
    compiled = target.compile(loaded.table, Options(str(args.policy), args.table, args.approximate))
    kernel = api.kernel_check(compiled, limits, args.validate) if target.loads_into_kernel else None
    _write(args.output, compiled.text, stdout)
    if args.contract is not None:
        _write(args.contract, json.dumps(compiled.contract.to_json(), indent=2) + "\n", stdout)
    what = (counted(len(loaded.table.rules), "match rule") if args.target == "table"
            else f"the nftables script of {counted(len(loaded.table.rules), 'match rule')}")
    lines = [f"wrote {what} to {args.output}; {validation.text()}"] if args.output else []
    for a in compiled.approximations:
        lines.append(f"approximated: {a.text()}")
    if kernel is not None:
        lines.append(f"kernel check: {kernel.text()}")
    if lines:
        stderr.write("\n".join(lines) + "\n")
    proved = validation.status == "proved" and (kernel is None or kernel.status in ("proved", "skipped"))
    return EXIT_OK if proved else EXIT_UNKNOWN


def _nftables_options_only(args, target) -> None:
    given = [flag for flag, value in (("--contract", args.contract), ("--approximate", args.approximate),
                                      ("--table", args.table != "dpipolicy")) if value]
    if given and not target.loads_into_kernel:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E322", f"{given[0]} applies to `--target nftables` only", None,
                                          location_text=given[0], help="add `--target nftables`")])


def _valid_table_name(name: str) -> None:
    import re
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E322", f"`{name}` is not a table name nftables accepts here", None,
                                          location_text="--table",
                                          help="a letter, then letters, digits or `_` (at most 64)")])


def _write(path: Path | None, text: str, stdout: TextIO) -> None:
    if path is None:
        stdout.write(text)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E015", f"cannot write `{path}`: {(exc.strerror or str(exc)).lower()}",
                                          None, location_text=str(path),
                                          help="check that the file and its folder are writable")]) from None


def _explain(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.explain import explain, explanation_json, explanation_text, parse_flow
    from dpipolicy.dsl.schema import DETECTED, LABEL, TETHERED
    from dpipolicy.verifier.labels import possible_labels
    from dpipolicy.verifier.approximated import meeting
    from dpipolicy.verifier.report import approximation_json, approximation_names
    from dpipolicy.dsl.intervals import IntervalSet
    loaded = api.load(args.policy, (), tuple(args.catalogue), reading=_reading(args))
    profile = _profile(args.profile, loaded)
    table, _ = api.as_deployed(loaded, profile)
    schema = table.schema
    pinned = parse_flow(schema, args.flow)
    if schema.field(DETECTED) is not None and DETECTED not in pinned and TETHERED in pinned:
        detections = profile.possible_detections(pinned[TETHERED], pinned)
        if len(detections) == 1:        # the engine cannot get this flow's tethering wrong
            pinned[DETECTED] = detections[0]
    if schema.field(LABEL) is None or LABEL in pinned or "app" not in pinned:
        result = explain(table, pinned)
        met = meeting(table, [{name: IntervalSet.point(value) for name, value in pinned.items()}])
        if args.format == "json":
            data = explanation_json(schema, result)
            if met:
                data["approximations"] = [approximation_json(a) for a in met]
            stdout.write(json.dumps(data, indent=2) + "\n")
        else:
            lines = [explanation_text(schema, result)]
            if met:
                lines += [f"approximate: the kernel may decide such a flow otherwise, because of "
                          f"{approximation_names(met)}:"] + [f"  - {a.text()}" for a in met]
            stdout.write("\n".join(lines) + "\n")
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


def _probe(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.compiler.backends import TARGETS, Options
    from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
    from dpipolicy.verifier import kernelprobe
    from dpipolicy.compiler.netns import kernel_unavailable
    limits = _limits(args)
    if api.is_table(args.policy):
        raise DiagnosticError([Diagnostic("E321", "`probe` takes a .dpi policy, not a rule table", None,
                                          location_text=str(args.policy))])
    if args.wait <= 0:
        raise DiagnosticError([Diagnostic("E320", "--wait must be positive", None, location_text="--wait",
                                          help="give the wait in seconds, e.g. --wait 0.5")])
    why = kernel_unavailable()
    if why is not None:
        raise api.no_kernel(f"`probe` needs a kernel to send traffic through: {why}", "probe")
    loaded = api.load(args.policy, tuple(args.spec), tuple(args.catalogue))
    compiled = TARGETS[args.target].compile(loaded.table, Options(str(args.policy), approximate=args.approximate))
    flows, unsent = kernelprobe.witness_flows(compiled, limits)
    if args.spec:
        flows += kernelprobe.spec_flows(api.check_results(api.as_deployed(loaded, None), limits))
    flows += [(f"--flow {text}", kernelprobe.given_flow(compiled.table.schema, text)) for text in args.flow]
    report = kernelprobe.run(compiled, flows, args.wait)
    report.unsent[:0] = unsent
    schema = compiled.table.schema
    if args.format == "json":
        stdout.write(json.dumps(kernelprobe.report_json(schema, report), indent=2) + "\n")
    else:
        stdout.write(kernelprobe.report_text(schema, report) + "\n")
    return EXIT_OK if report.agreed else EXIT_VIOLATED


def _diff(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.approximated import diff_marked
    from dpipolicy.verifier.labels import under_two_profiles
    from dpipolicy.verifier.diffreport import StatusChange, render_json, render_markdown, render_text
    limits = _limits(args)
    memo = api.Memo()           # the new version parses, checks and lowers only what differs from the old
    old_reading, new_reading = _diff_readings(args)
    old = api.load(args.old, tuple(args.spec), tuple(args.catalogue), memo, reading=old_reading)
    jobs = args.jobs or automatic_jobs(len(old.table.rules))
    old_proof = api.prove(old, limits, jobs)     # with several jobs, while the new version loads
    new = api.load(args.new, tuple(args.spec), tuple(args.catalogue), memo, reading=new_reading)
    profiles = (_profile(args.profile_old, old), _profile(args.profile_new, new))
    tables = (old.table, new.table)
    if any(p is not None for p in profiles):       # what the engines do, not only what the texts say
        from dpipolicy.dsl.profiles import load_profile
        exact = load_profile("exact", old.table.schema.catalogue)
        tables = under_two_profiles(*tables, *(p or exact for p in profiles))
    # the diff is of the compiled tables: prove them faithful
    result, validations = api.diff(old, new, tables, limits, jobs, old_proof)
    result = diff_marked(result, old.table, new.table)
    for validation, name in zip(validations, (args.old, args.new)):
        if validation is not None and validation.status != "proved":
            result.unknown.append(f"{name}: {validation.text()}")
    statuses: list[StatusChange] = []
    unknown = bool(result.unknown)
    after = []
    if args.spec:
        deployed_old, deployed_new = api.as_deployed(old, profiles[0]), api.as_deployed(new, profiles[1])
        before = {(r.kind, r.name): r for r in api.check_results(deployed_old, limits, jobs)}
        after = api.check_results(deployed_new, limits, jobs)
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
    elif args.format in CI_FORMATS:
        from dpipolicy.cifindings import diff_findings
        from dpipolicy.ciformats import render
        stdout.write(render(args.format, "diff", *diff_findings(result, statuses, after, str(args.new), args.fail_on)))
    else:
        stdout.write(render_text(result, statuses) + "\n")
    regressed = any(s.before in ("holds", "passed") and s.after in ("violated", "failed") for s in statuses)
    if regressed or (args.fail_on == "change" and result.changes):
        return EXIT_VIOLATED
    return EXIT_UNKNOWN if unknown or result.approximations else EXIT_OK


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


def _fmt(args, stdout: TextIO, stderr: TextIO) -> int:
    """Format each file, going on past files that cannot be read or parsed (those make the exit code 2)."""
    import difflib
    from dpipolicy import api
    from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
    from dpipolicy.dsl.format import format_source
    from dpipolicy.dsl.loader import read_source
    from dpipolicy.dsl.words import counted
    changed, unchanged, failed, errors = 0, 0, 0, []
    for path in args.files:
        try:
            if api.is_table(path):
                raise DiagnosticError([Diagnostic("E321", "`fmt` formats .dpi source files, not rule tables", None,
                                                  location_text=str(path))])
            source = read_source(path, "source file")
            formatted = format_source(source.text, source.display_name)
            if formatted != source.text and not (args.check or args.diff):
                try:
                    path.write_text(formatted, encoding="utf-8", newline="")
                except OSError as exc:
                    raise DiagnosticError([Diagnostic("E015", f"cannot write `{source.display_name}`: "
                                                      f"{(exc.strerror or str(exc)).lower()}", None,
                                                      location_text=source.display_name,
                                                      help="check that the file and its folder are writable")])
        except DiagnosticError as exc:
            failed += 1
            errors += exc.diagnostics
            continue
        if formatted == source.text:
            unchanged += 1
            continue
        changed += 1
        if args.diff:
            def lines(text: str) -> list[str]:       # split at line feeds only, as diff and patch do
                parts = text.split("\n")
                return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            for line in difflib.unified_diff(lines(source.text), lines(formatted),
                                             f"{source.display_name}\t(original)",
                                             f"{source.display_name}\t(formatted)"):
                stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        else:
            stdout.write(f"{'would reformat' if args.check else 'reformatted'} {source.display_name}\n")
    for d in errors:
        stderr.write(d.render() + "\n\n")
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    summary = f"{counted(changed, 'file')} {verb}, {unchanged} already formatted"
    if failed:
        summary += (f", {counted(failed, 'file')} not formatted "
                    f"({counted(sum(d.severity == 'error' for d in errors), 'error')})")
    stderr.write(summary + "\n")
    if failed:
        return EXIT_BAD_INPUT
    return EXIT_VIOLATED if args.check and changed else EXIT_OK


def _lint(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy import api
    from dpipolicy.verifier.lint import lint_files
    from dpipolicy.verifier.lintreport import render_json, render_text, status
    limits = _limits(args)
    from dpipolicy.compiler.importers.detect import POLICY, TABLE
    reading = _reading(args)
    kind = api.input_format(args.policy, reading)
    if kind == TABLE:     # unused names, comments and set members live in the source
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E321", "`lint` takes a .dpi policy, not a rule table", None,
                                          location_text=str(args.policy))])
    if kind == POLICY:
        if args.chain is not None or args.approximate or args.contract is not None:
            api.load(args.policy, reading=reading)      # says that these apply to rule sets only
        result = lint_files(args.policy, tuple(args.spec), tuple(args.catalogue), limits)
    else:
        result = api.lint_ruleset(args.policy, tuple(args.spec), tuple(args.catalogue), limits, reading)
    if args.format == "json":
        stdout.write(json.dumps(render_json(result, args.strict), indent=2) + "\n")
    elif args.format in CI_FORMATS:
        from dpipolicy.ciformats import render
        from dpipolicy.lintfindings import lint_findings
        stdout.write(render(args.format, "lint", *lint_findings(result, args.strict)))
    else:
        stdout.write(render_text(result, args.strict) + "\n")
    return {"failed": EXIT_VIOLATED, "unknown": EXIT_UNKNOWN, "passed": EXIT_OK}[status(result, args.strict)]


def _import(args, stdout: TextIO, stderr: TextIO) -> int:
    """The rule table of a rule set exported from an enforcement point, as `compile` writes one."""
    from dpipolicy import api
    from dpipolicy.compiler.importers.detect import DESCRIBED, RULE_SETS
    from dpipolicy.compiler.tablefile import table_text
    from dpipolicy.dsl.catalogue import load_catalogue
    from dpipolicy.dsl.words import counted
    from dpipolicy.verifier.report import approximations_text
    reading = _reading(args)
    kind = api.input_format(args.ruleset, reading)
    if kind not in RULE_SETS:
        from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
        raise DiagnosticError([Diagnostic("E703", f"`import` reads a rule set exported from an enforcement point, and "
                                          f"`{args.ruleset}` is {DESCRIBED[kind]}", None,
                                          location_text=str(args.ruleset),
                                          help="compile a policy with `dpipolicy compile`; a rule table is read as "
                                               "it is; name a rule set's format with --input-format")])
    table = api.import_table(args.ruleset, load_catalogue(tuple(args.catalogue)), reading)
    _write(args.output, table_text(table), stdout)
    lines = [f"wrote {counted(len(table.rules), 'match rule')} ({table.policy_name}) to {args.output}"] \
        if args.output else []
    lines += approximations_text(table.approximations)
    if lines:
        stderr.write("\n".join(lines) + "\n")
    return EXIT_OK


def _profile_build(args, stdout: TextIO, stderr: TextIO) -> int:
    from dpipolicy.dsl.catalogue import load_catalogue
    from dpipolicy.dsl.flowcsv import read_flows
    from dpipolicy.dsl.profilebuild import build
    from dpipolicy.dsl.profiles import PROFILE_CODES
    from dpipolicy.dsl.truth import merge, read_truth
    from dpipolicy.dsl.yamlnodes import read_file
    catalogue = load_catalogue(tuple(args.catalogue))
    base = read_file(args.base, str(args.base), "base profile", PROFILE_CODES, "give the base profile's path")
    truth = merge([read_truth(path, catalogue) for path in args.truth])
    flows = [flow for path in args.flows for flow in read_flows(path, args.release)]
    import textwrap
    note = "\n".join(textwrap.wrap(
        "Label entries built by `dpipolicy profile build` from " + ", ".join(p.name for p in args.flows)
        + " with the truth of " + ", ".join(p.name for p in args.truth)
        + "; rebuild rather than edit them (docs/profiles.md, \"Building a profile\").", 92))
    built = build(flows, truth, base, str(args.base), catalogue, note)
    _write(args.output, built.text, stdout)
    stderr.write(built.summary() + "\n")
    return EXIT_OK


_COMMANDS = {"check": _check, "compile": _compile, "explain": _explain, "probe": _probe, "diff": _diff,
             "replay": _replay, "audit": _audit, "import": _import,
             "fmt": _fmt, "lint": _lint, "profile": _profile_build}


def entry_point() -> int:
    return main()
