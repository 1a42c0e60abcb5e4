"""Benchmark: parse, type-check, compile, translation validation and check of generated carrier
policies at several sizes, the equal-treatment invariants of spec-equal.dpi on their own, the diff of each policy against a copy with 1% of its rules
changed, serially and with `--jobs 2`, and the nftables target with its kernel check
(compile, `nft -f` load, read back, proof; skipped where no kernel can be had). Prints a table and writes JSON (benchmarks/out/results.json),
with the number of processes `--jobs auto` (the commands' default) gives each size here.

Each size runs in its own process so peak memory (ru_maxrss) belongs to that size alone.
Usage: python benchmarks/run.py [--sizes 1000 10000] [--seed 1] [--out benchmarks/out]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NFT_PHASES = ("nft_compile", "nft_load", "nft_list", "read_back", "kernel_proof")


def _generator():
    spec = importlib.util.spec_from_file_location("generate", HERE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_one(n: int, seed: int, workdir: Path) -> dict:
    """Time each phase of `dpipolicy check` on an n-rule policy, in this process."""
    from dpipolicy.cli import automatic_jobs, collect_garbage_less
    from dpipolicy.compiler.lower import lower
    from dpipolicy.dsl.catalogue import load_catalogue
    from dpipolicy.dsl.checker import check_items
    from dpipolicy.dsl.loader import load_items
    from dpipolicy.verifier.properties import TableModel, check_spec
    from dpipolicy.verifier.solve import Limits
    from dpipolicy.verifier.validate import validate

    collect_garbage_less()          # as the command line does
    policy_text, spec_text = _generator().generate(n, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "policy.dpi").write_text(policy_text)
    (workdir / "spec.dpi").write_text(spec_text)
    limits = Limits()
    times = {}
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
    results = check_spec(TableModel(table), policy, limits)
    times["verify"] = time.perf_counter() - t
    times["check_total"] = time.perf_counter() - start
    times["equal_treatment"], equal = measure_equal_treatment(table, catalogue, workdir, limits)
    nftables = measure_nftables(table, workdir, limits)
    times["diff_total"], diff_figures = measure_diff(policy_text, n, seed, workdir, limits, 1)
    times["diff_total_jobs2"], _ = measure_diff(policy_text, n, seed, workdir, limits, 2)
    statuses = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "rules": n, "match_rules": len(table.rules), "seed": seed, "seconds": times,
        "check_over_parse": times["check_total"] / times["parse"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "validation": validation.status, "results": statuses,
        "queries": sum(r.queries for r in results),
        "equal_treatment": equal,
        "diff_over_parse": times["diff_total"] / times["parse"],
        "diff_jobs2_over_parse": times["diff_total_jobs2"] / times["parse"], "diff": diff_figures,
        "auto_jobs": automatic_jobs(len(table.rules)),
        "nftables": nftables,
        "nftables_over_parse": {k: v / times["parse"] for k, v in nftables.get("seconds", {}).items()},
    }


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
    from dpipolicy.verifier.netns import kernel_unavailable, run_in_namespace

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
    kernel = read_kernel_rules(json.loads(listing.read_text()), compiled.contract, compiled.table.schema)
    seconds["read_back"] = time.perf_counter() - t
    t = time.perf_counter()
    check = kernel_equivalence(compiled.table, kernel, limits)
    seconds["kernel_proof"] = time.perf_counter() - t
    seconds["compile_and_kernel_check"] = sum(seconds.values())
    seconds["without_nft"] = seconds["nft_compile"] + seconds["read_back"] + seconds["kernel_proof"]
    return {"seconds": seconds, "kernel_rules": len(kernel[0].rules), "script_bytes": len(script),
            "status": check.status}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)   # child process: one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.seed, args.out / f"n{args.one}")))
        return 0
    rows = []
    for n in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed),
                               "--out", str(args.out)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    phases = ("parse", "typecheck", "compile", "validate", "verify", "check_total", "equal_treatment", "diff_total",
              "diff_total_jobs2")
    print(f"{'rules':>7} {'match':>7} " + " ".join(f"{p:>11}" for p in phases)
          + f" {'check/parse':>11} {'diff/parse':>11} {'-j2/parse':>11} {'regions':>7} {'peak MB':>8}")
    for r in rows:
        print(f"{r['rules']:>7} {r['match_rules']:>7} " + " ".join(f"{r['seconds'][p]:>10.2f}s" for p in phases)
              + f" {r['check_over_parse']:>10.2f}x {r['diff_over_parse']:>10.2f}x {r['diff_jobs2_over_parse']:>10.2f}x"
              f" {r['diff']['regions']:>7} {r['peak_rss_mb']:>8.0f}")
    print(f"\n{'rules':>7} {'kernel':>7} " + " ".join(f"{p:>13}" for p in NFT_PHASES)
          + f" {'all/parse':>10} {'ours/parse':>10}")
    for r in rows:
        nft = r["nftables"]
        if "skipped" in nft:
            print(f"{r['rules']:>7} nftables skipped: {nft['skipped']}")
            continue
        print(f"{r['rules']:>7} {nft['kernel_rules']:>7} " + " ".join(f"{nft['seconds'][p]:>12.2f}s" for p in NFT_PHASES)
              + f" {r['nftables_over_parse']['compile_and_kernel_check']:>9.2f}x"
              f" {r['nftables_over_parse']['without_nft']:>9.2f}x")
    print("--jobs auto (the default) here: " + ", ".join(f"{r['auto_jobs']} at {r['rules']:,} rules" for r in rows))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "results.json"
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
