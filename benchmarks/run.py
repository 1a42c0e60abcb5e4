"""Benchmark: parse, type-check, compile, translation validation and check of generated carrier
policies at several sizes, against a floor (reading the file and splitting it into rules with
plain string operations) and the lark parse; the parse cache's second run; the straightforward
z3 encoding (benchmarks/baseline.py) on the same table; the equal-treatment invariants of
spec-equal.dpi on their own; `lint` and `fmt --check`; the diff of each policy against a copy
with 1% of its rules changed, serially and with `--jobs 2`; and the nftables target with its
kernel check (compile, `nft -f` load, read back, proof; skipped where no kernel can be had).
Prints a table and writes JSON (benchmarks/out/results.json), with the number of processes
`--jobs auto` (the commands' default) gives each size here.

Each part of each size runs in its own process, so its peak memory (ru_maxrss) is its own.
Sizes from --check-only-from (default 1,000,000) run parse, compile and check only; the kernel
check runs up to --nft-up-to rules (default 10,000: the kernel's listing grows with the square
of its rules).
Usage: python benchmarks/run.py [--sizes 1000 10000 100000] [--seed 1] [--out benchmarks/out]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE_TIMEOUT_S = 60     # per invariant: past it the baseline's answer is unknown (its time a lower bound)
NFT_PHASES = ("nft_compile", "nft_load", "nft_list", "read_back", "kernel_proof")


def _generator():
    spec = importlib.util.spec_from_file_location("generate", HERE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_inputs(n: int, seed: int, workdir: Path) -> tuple[str, str]:
    policy_text, spec_text = _generator().generate(n, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("rules-*.dpi"):
        old.unlink()
    if n > PART_RULES:
        _write_parts(policy_text, workdir)
    else:
        (workdir / "policy.dpi").write_text(policy_text)
    (workdir / "spec.dpi").write_text(spec_text)
    return policy_text, spec_text


PART_RULES = 100_000        # above this, the policy is split into files of this many rules


def _write_parts(policy_text: str, workdir: Path) -> None:
    """The policy as a national operator keeps one too large for one file (dpipolicy reads at
    most 32 MiB of a file): its definitions in `definitions.dpi`, its rules in files of
    PART_RULES rules, imported in order by `policy.dpi`, which keeps the policy line and the
    default. The rules are the same rules in the same order."""
    head, *rules = policy_text.split("\nrule ")
    lines = head.split("\n")
    policy_line = next(k for k, line in enumerate(lines) if line.startswith("policy "))
    default_line = next(k for k, line in enumerate(lines) if line.startswith("default "))
    definitions = [line for k, line in enumerate(lines) if k not in (policy_line, default_line)][policy_line:]
    (workdir / "definitions.dpi").write_text("\n".join(definitions) + "\n")
    imports = []
    for part, first in enumerate(range(0, len(rules), PART_RULES)):
        name = f"rules-{part:03d}.dpi"
        imports.append(f'import "{name}"')
        body = "".join("\nrule " + rule for rule in rules[first:first + PART_RULES])
        (workdir / name).write_text('import "definitions.dpi"\n' + body.rstrip("\n") + "\n")
    main = lines[:policy_line + 1] + ['import "definitions.dpi"', "", lines[default_line], ""] + imports
    (workdir / "policy.dpi").write_text("\n".join(main) + "\n")


def policy_files(workdir: Path) -> list[Path]:
    """The policy's files: policy.dpi, and its parts when it was split."""
    parts = sorted(workdir.glob("rules-*.dpi"))
    return [workdir / "policy.dpi"] + ([workdir / "definitions.dpi"] + parts if parts else [])


def measure_floor(paths: list[Path]) -> float:
    """Reading the files and cutting them into their items with plain string operations: what
    any reader of them must spend, the floor under the parse."""
    start = time.perf_counter()
    items = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        items += [chunk.split(None, 2)[:2] for chunk in text.split("\nrule ")]
    assert len(items) > 1
    return time.perf_counter() - start


def measure_parse_cache(workdir: Path) -> dict:
    """The parse of the same files by a second run, through the parse cache (dsl/parsecache.py)
    that a first run filled: a cache folder of its own, so it starts empty."""
    import os

    from dpipolicy.dsl.loader import load_items

    os.environ["DPIPOLICY_CACHE"] = str(workdir / "parse-cache")
    shutil.rmtree(workdir / "parse-cache", ignore_errors=True)
    seconds = {}
    for run in ("first_run", "second_run"):
        start = time.perf_counter()
        load_items(workdir / "policy.dpi", (workdir / "spec.dpi",))
        seconds[run] = time.perf_counter() - start
    del os.environ["DPIPOLICY_CACHE"]
    return seconds


def measure_check(n: int, seed: int, workdir: Path, full: bool) -> dict:
    """Time each phase of `dpipolicy check` on an n-rule policy, in this process; then, unless
    only the check is asked for, the equal-treatment invariants and the baseline encoding."""
    import os

    from dpipolicy.cli import automatic_jobs, collect_garbage_less
    from dpipolicy.compiler.lower import lower
    from dpipolicy.dsl.catalogue import load_catalogue
    from dpipolicy.dsl.checker import check_items
    from dpipolicy.dsl.loader import load_items
    from dpipolicy.verifier.properties import TableModel, check_spec
    from dpipolicy.verifier.solve import Limits
    from dpipolicy.verifier.validate import validate

    collect_garbage_less()          # as the command line does
    write_inputs(n, seed, workdir)
    os.environ["DPIPOLICY_CACHE"] = "off"       # the parse itself, as a first run does it
    limits = Limits()
    times = {"floor": measure_floor(policy_files(workdir))}
    start = time.perf_counter()
    catalogue = load_catalogue()
    items, _ = load_items(workdir / "policy.dpi", (workdir / "spec.dpi",))
    times["parse"] = time.perf_counter() - start
    t = time.perf_counter()
    policy = check_items(items, catalogue)
    times["typecheck"] = time.perf_counter() - t
    t = time.perf_counter()
    table = lower(policy)
    times["compile"] = time.perf_counter() - t
    t = time.perf_counter()
    validation = validate(policy, table, limits)
    times["validate"] = time.perf_counter() - t
    t = time.perf_counter()
    model = TableModel(table)
    results = check_spec(model, policy, limits)
    times["verify"] = time.perf_counter() - t
    times["check_total"] = time.perf_counter() - start
    out = {"rules": n, "match_rules": len(table.rules), "seed": seed, "seconds": times,
           "validation": validation.status, "results": _statuses(results),
           "queries": sum(r.queries for r in results), "auto_jobs": automatic_jobs(len(table.rules)),
           "peak_rss_mb": _peak_mb()}       # the check's own, before the parts below add theirs
    if full:
        times["equal_treatment"], out["equal_treatment"] = measure_equal_treatment(table, catalogue, workdir, limits)
        out["baseline"] = measure_baseline(model, policy, limits)
        out["parse_cache"] = measure_parse_cache(workdir)
        out["peak_rss_mb_all_parts"] = _peak_mb()     # with the baseline's encoding and the cache's runs
    return out


def measure_baseline(model, policy, limits) -> dict:
    """dpipolicy's check of the spec's `require` invariants against the straightforward encoding
    of the same table (benchmarks/baseline.py), one after the other in this process."""
    import dataclasses

    from dpipolicy.verifier.properties import check_spec

    spec = dataclasses.replace(policy, invariants=tuple(i for i in policy.invariants if i.require is not None),
                               tests=())
    start = time.perf_counter()
    ours = {r.name: r.status for r in check_spec(model, spec, limits)}
    ours_seconds = time.perf_counter() - start
    base = _baseline().check_baseline(model.table, spec, timeout_s=BASELINE_TIMEOUT_S)
    answered = {k: v["status"] for k, v in base["invariants"].items() if v["status"] != "unknown"}
    agree = all(ours[name] == status for name, status in answered.items())
    return {"ours_seconds": ours_seconds, "baseline_seconds": base["seconds"],
            "baseline_build_seconds": base["build_seconds"], "invariants": len(ours), "agree": agree,
            "baseline_unknown": len(ours) - len(answered), "baseline_timeout_s": BASELINE_TIMEOUT_S,
            "baseline": {k: v["status"] for k, v in base["invariants"].items()}}


def measure_lint_fmt(n: int, seed: int, workdir: Path) -> dict:
    """`dpipolicy lint` and `dpipolicy fmt --check` of the policy, each timed whole, in this process."""
    import os

    from dpipolicy.cli import collect_garbage_less
    from dpipolicy.dsl.format import format_source
    from dpipolicy.verifier.lint import lint_files
    from dpipolicy.verifier.solve import Limits

    collect_garbage_less()
    write_inputs(n, seed, workdir)
    os.environ["DPIPOLICY_CACHE"] = "off"
    start = time.perf_counter()
    lint_files(workdir / "policy.dpi", (workdir / "spec.dpi",), (), Limits())
    lint = time.perf_counter() - start
    start = time.perf_counter()
    text = (workdir / "policy.dpi").read_text(encoding="utf-8")
    result = format_source(text, "policy.dpi")
    formatted = result == text
    unformatted = time.perf_counter() - start
    # the case CI meets: `fmt --check` of a file kept in its layout
    start = time.perf_counter()
    assert format_source(result, "policy.dpi") == result
    fmt = time.perf_counter() - start
    return {"seconds": {"lint": lint, "fmt_check": fmt, "fmt_check_unformatted": unformatted},
            "formatted": formatted, "peak_rss_mb": _peak_mb()}


def measure_diffs(n: int, seed: int, workdir: Path) -> dict:
    """Both diffs with an empty parse cache, as the first diff of two files is (a cache folder of
    its own, emptied before each). Peak memory: this process's, and the largest worker's."""
    import os

    from dpipolicy.cli import collect_garbage_less
    from dpipolicy.verifier.solve import Limits

    collect_garbage_less()
    policy_text, _ = write_inputs(n, seed, workdir)
    os.environ["DPIPOLICY_CACHE"] = str(workdir / "diff-cache")
    times = {}
    for key, jobs in (("diff_total", 1), ("diff_total_jobs2", 2)):
        shutil.rmtree(workdir / "diff-cache", ignore_errors=True)
        times[key], figures = measure_diff(policy_text, n, seed, workdir, Limits(), jobs)
    del os.environ["DPIPOLICY_CACHE"]
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": times, "diff": figures, "peak_rss_mb": _peak_mb(), "peak_rss_mb_workers": workers}


def measure_kernel(n: int, seed: int, workdir: Path) -> dict:
    from dpipolicy import api
    from dpipolicy.cli import collect_garbage_less
    from dpipolicy.verifier.solve import Limits

    collect_garbage_less()
    write_inputs(n, seed, workdir)
    loaded = api.load(workdir / "policy.dpi")
    return measure_nftables(loaded.table, workdir, Limits())


def _statuses(results) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return statuses


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _baseline():
    spec = importlib.util.spec_from_file_location("baseline", HERE / "baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_equal_treatment(table, catalogue, workdir: Path, limits) -> tuple[float, dict]:
    """The equal-treatment invariants of spec-equal.dpi on the table (read against its schema,
    so the policy is not parsed again): the time to check them all, and each one's status and
    solver calls."""
    from dpipolicy.dsl.checker import check_spec_items
    from dpipolicy.dsl.loader import load_items
    from dpipolicy.verifier.properties import TableModel, check_spec

    path = workdir / "spec-equal.dpi"
    path.write_text(_generator().EQUAL_TREATMENT_SPEC)
    spec = check_spec_items(load_items(path)[0], catalogue, table.schema)
    model = TableModel(table)
    start = time.perf_counter()
    results = check_spec(model, spec, limits)
    seconds = time.perf_counter() - start
    return seconds, {r.name: {"status": r.status, "queries": r.queries} for r in results}


def measure_nftables(table, workdir: Path, limits) -> dict:
    """`compile --target nftables` of the table, then the kernel check's steps: `nft -f` in a
    fresh namespace, `nft -j list` of the table, reading the kernel's JSON back as a rule
    table, and the proof that it is the table."""
    from dpipolicy.compiler.backends import TARGETS, Options
    from dpipolicy.compiler.importers.nftjson import read_kernel_rules
    from dpipolicy.verifier.kernel import kernel_equivalence
    from dpipolicy.compiler.netns import kernel_unavailable, run_in_namespace

    why = kernel_unavailable()
    if why is not None:
        return {"skipped": why}
    seconds = {}
    t = time.perf_counter()
    compiled = TARGETS["nftables"].compile(table, Options(str(workdir / "policy.dpi")))
    seconds["nft_compile"] = time.perf_counter() - t
    script = compiled.text.encode()
    t = time.perf_counter()
    loaded = run_in_namespace(["nft", "-f", "-"], input=script, timeout=3600)
    seconds["nft_load"] = time.perf_counter() - t
    assert loaded.returncode == 0, loaded.stderr
    listing = workdir / "kernel.json"
    timed = run_in_namespace(["sh", "-c", f'nft -f - && t0=$(date +%s%N) && nft -j list table inet '
                                          f'{compiled.contract.table} > "$1" && echo $(( $(date +%s%N) - t0 ))',
                              "sh", str(listing)], input=script, timeout=3600)
    seconds["nft_list"] = int(timed.stdout) / 1e9       # the listing alone, timed in the namespace
    t = time.perf_counter()
    ruleset = json.loads(listing.read_text())
    kernel = read_kernel_rules(ruleset, compiled.contract, compiled.table.schema)
    seconds["read_back"] = time.perf_counter() - t
    t = time.perf_counter()
    check = kernel_equivalence(compiled.table, kernel, limits)
    seconds["kernel_proof"] = time.perf_counter() - t
    seconds["compile_and_kernel_check"] = sum(seconds.values())
    seconds["without_nft"] = seconds["nft_compile"] + seconds["read_back"] + seconds["kernel_proof"]
    held = sum(1 for item in ruleset["nftables"] if "rule" in item)     # every chain's, as the kernel holds them
    return {"seconds": seconds, "kernel_rules": held, "read_back_rules": len(kernel[0].rules),
            "script_bytes": len(script), "status": check.status}


def measure_diff(policy_text: str, n: int, seed: int, workdir: Path, limits, jobs: int) -> tuple[float, dict]:
    """The whole `dpipolicy diff --jobs N` of the policy against a copy with 1% of its rules
    mutated: load both (parse, check, compile), prove both translations, then diff."""
    from dpipolicy import api
    from dpipolicy.dsl.catalogue import shipped_applications

    (workdir / "policy-new.dpi").write_text(_generator().mutate(policy_text, 0.01, seed + 1))
    shipped_applications.cache_clear()     # as in a fresh `dpipolicy diff`, which reads it once
    start = time.perf_counter()
    memo = api.Memo()               # as `dpipolicy diff` does: the new version parses, checks and lowers only its changed rules
    old = api.load(workdir / "policy.dpi", (), memo=memo)
    old_proof = api.prove(old, limits, jobs)        # as `dpipolicy diff` does: with --jobs, while the new one loads
    new = api.load(workdir / "policy-new.dpi", (), memo=memo)
    diff, validations = api.diff(old, new, (old.table, new.table), limits, jobs, old_proof)
    seconds = time.perf_counter() - start
    return seconds, {"changed_rules": list(diff.changed_rules), "regions": len(diff.changes),
                     "unknown": len(diff.unknown), "queries": diff.queries,
                     "validation": [v.status for v in validations]}


PARTS = {"check": lambda n, seed, wd: measure_check(n, seed, wd, full=True),
         "check_only": lambda n, seed, wd: measure_check(n, seed, wd, full=False),
         "lint_fmt": measure_lint_fmt, "diff": measure_diffs, "nftables": measure_kernel}


def run_size(n: int, args) -> dict:
    """Every part of one size, each in a child process of its own."""
    parts = ["check_only"] if n >= args.check_only_from else ["check", "lint_fmt", "diff"]
    parts += ["nftables"] if n <= args.nft_up_to and n < args.check_only_from else []
    row = {"rules": n}
    for part in parts:
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--part", part, "--seed", str(args.seed),
                               "--out", str(args.out)], capture_output=True, text=True, check=True)
        row["check" if part == "check_only" else part] = json.loads(done.stdout.strip().splitlines()[-1])
    parse, floor = row["check"]["seconds"]["parse"], row["check"]["seconds"]["floor"]
    row["over_parse"] = {k: v / parse for part in ("check", "lint_fmt", "diff") if part in row
                         for k, v in row[part]["seconds"].items()}
    row["over_floor"] = {k: v / floor for k, v in row["check"]["seconds"].items()}
    if "nftables" in row and "seconds" in row["nftables"]:
        row["nftables_over_parse"] = {k: v / parse for k, v in row["nftables"]["seconds"].items()}
    return row


def print_tables(rows: list[dict]) -> None:
    phases = ("floor", "parse", "typecheck", "compile", "validate", "verify", "check_total")
    print(f"{'rules':>9} {'match':>9} " + " ".join(f"{p:>11}" for p in phases)
          + f" {'parse/floor':>11} {'check/floor':>11} {'check/parse':>11} {'peak MB':>8}")
    for r in rows:
        c = r["check"]
        print(f"{r['rules']:>9} {c['match_rules']:>9} " + " ".join(f"{c['seconds'][p]:>10.2f}s" for p in phases)
              + f" {r['over_floor']['parse']:>10.1f}x {r['over_floor']['check_total']:>10.1f}x"
              f" {r['over_parse']['check_total']:>10.2f}x {c['peak_rss_mb']:>8.0f}")
    full = [r for r in rows if "diff" in r]
    if full:
        print(f"\n{'rules':>9} " + " ".join(f"{p:>14}" for p in ("lint", "fmt --check", "diff", "diff -j2",
                                                                    "equal treat.", "cache 2nd/1st"))
              + f" {'diff MB':>8} {'workers':>8} {'ours':>8} {'baseline':>9} {'faster':>7}")
        for r in full:
            o, c, b = r["over_parse"], r["check"], r["check"]["baseline"]
            cache = c["parse_cache"]["second_run"] / c["parse_cache"]["first_run"]
            cells = [o["lint"], o["fmt_check"], o["diff_total"], o["diff_total_jobs2"],
                     c["seconds"]["equal_treatment"] / c["seconds"]["parse"], cache]
            print(f"{r['rules']:>9} " + " ".join(f"{x:>13.2f}x" for x in cells)
                  + f" {r['diff']['peak_rss_mb']:>8.0f} {r['diff']['peak_rss_mb_workers']:>8.0f}"
                  f" {b['ours_seconds']:>7.2f}s {b['baseline_seconds']:>8.2f}s"
                  f" {b['baseline_seconds'] / b['ours_seconds']:>6.1f}x" + ("" if b["agree"] else "  DISAGREE")
                  + (f"  (baseline: {b['baseline_unknown']} unknown after {b['baseline_timeout_s']} s each,"
                     " so at least that)" if b["baseline_unknown"] else ""))
    kernel = [r for r in rows if "nftables" in r]
    if kernel:
        print(f"\n{'rules':>9} {'kernel':>7} " + " ".join(f"{p:>13}" for p in NFT_PHASES)
              + f" {'all/parse':>10} {'ours/parse':>10}")
    for r in kernel:
        nft = r["nftables"]
        if "skipped" in nft:
            print(f"{r['rules']:>9} nftables skipped: {nft['skipped']}")
            continue
        print(f"{r['rules']:>9} {nft['kernel_rules']:>7} " + " ".join(f"{nft['seconds'][p]:>12.2f}s" for p in NFT_PHASES)
              + f" {r['nftables_over_parse']['compile_and_kernel_check']:>9.2f}x"
              f" {r['nftables_over_parse']['without_nft']:>9.2f}x")
    print("--jobs auto (the default) here: "
          + ", ".join(f"{r['check']['auto_jobs']} at {r['rules']:,} rules" for r in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--check-only-from", type=int, default=1_000_000,
                        help="from this size on, only parse, compile and check")
    parser.add_argument("--nft-up-to", type=int, default=10_000, help="the largest size given the kernel check")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)   # child process: one size, one part
    parser.add_argument("--part", choices=tuple(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(PARTS[args.part](args.one, args.seed, args.out / f"n{args.one}")))
        return 0
    rows = [run_size(n, args) for n in args.sizes]
    print_tables(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "results.json"
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
