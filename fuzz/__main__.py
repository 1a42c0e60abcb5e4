"""`python -m fuzz --inputs N --seed S --jobs J`: run the harness, print its table, write its JSON.

`--replay NUMBER` makes one input again, writes its files to `--out` and runs it here, so a
finding is looked at without the pool. Findings' inputs are written under `--out` too, and
`--replay-saved FOLDER` runs one of them here as it was made: an input's number names the same
input only while the corpus (the checkout's shipped and test files) is the same.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from . import corpus, inputs, oracle, pool
from .tally import Tally

DEFAULT_BOUND = 60.0


def main(argv: list[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    if args.replay is not None or args.replay_saved is not None:
        return _replay(args)
    tally = Tally(args.seed)
    started = time.monotonic()
    last = [started]

    def report(record: dict) -> None:
        tally.add(record)
        if record["problems"]:
            _save(args, record)
            print(f"finding at input {record['number']}: {'; '.join(record['problems'])} ({record['label']})",
                  file=sys.stderr, flush=True)
        if args.progress and time.monotonic() - last[0] > args.progress:
            last[0] = time.monotonic()
            rate = tally.inputs / (last[0] - started)
            print(f"{tally.inputs} inputs, {len(tally.findings)} findings, {rate:.1f}/s", file=sys.stderr, flush=True)

    numbers = range(args.start, args.start + args.inputs)
    pool.run(args.seed, numbers, args.jobs, args.bound, report, nice=args.nice)
    elapsed = time.monotonic() - started
    figures = dict(tally.figures(), start=args.start, jobs=args.jobs, bound_seconds=args.bound,
                   wall_seconds=round(elapsed, 1), inputs_per_second=round(tally.inputs / elapsed, 1),
                   commit=_commit(), corpus_seeds=len(corpus.seeds()))
    print(tally.table())
    print(f"{tally.inputs} inputs in {elapsed:.0f} s ({figures['inputs_per_second']}/s), "
          f"{len(tally.findings)} findings; seed {args.seed}, inputs {args.start}..{args.start + args.inputs - 1}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if tally.findings else 0


def _arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=int, default=1000, help="how many inputs (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    p.add_argument("--start", type=int, default=0, help="the first input's number (to resume or split a run)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--bound", type=float, default=DEFAULT_BOUND,
                   help=f"seconds an input may take before it counts as a hang (default {DEFAULT_BOUND:g})")
    p.add_argument("--nice", type=int, default=10, help="niceness of the workers (default 10)")
    p.add_argument("--json", type=Path, help="write the figures and findings here")
    p.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="folder for findings' inputs")
    p.add_argument("--progress", type=float, default=0, metavar="SECONDS", help="a progress line this often")
    replay = p.add_mutually_exclusive_group()
    replay.add_argument("--replay", type=int, metavar="NUMBER", help="make input NUMBER again and run it here")
    replay.add_argument("--replay-saved", type=Path, metavar="FOLDER",
                        help="run the finding saved in FOLDER here, with its files and command as the run made them")
    return p


def _save(args, record: dict) -> None:
    """The input's files and a note of its command and findings, under --out/NUMBER."""
    inp = inputs.make(args.seed, record["number"])
    folder = args.out / f"{args.seed}-{record['number']}"
    oracle.write(inp, folder)
    (folder / "FINDING.json").write_text(json.dumps(dict(record, argv=inp.argv), indent=2), encoding="utf-8")


def _saved(folder: Path) -> inputs.Input:
    """The input of a finding `_save` wrote: its files and the command of its note."""
    note = json.loads((folder / "FINDING.json").read_text(encoding="utf-8"))
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "FINDING.json"}
    return inputs.Input(note["number"], note["label"], note["kind"], files, note["argv"])


def _replay(args) -> int:
    if args.replay_saved is not None:
        inp, folder = _saved(args.replay_saved), args.out / args.replay_saved.name
        if folder.resolve() == args.replay_saved.resolve():
            sys.exit("python -m fuzz: --out must be another folder than the saved finding's parent "
                     "(the replay's files are written there afresh)")
    else:
        inp, folder = inputs.make(args.seed, args.replay), args.out / f"{args.seed}-{args.replay}"
    verdict = oracle.judge_run(inp, folder.resolve(), keep_output=True)
    oracle.write(inp, folder)       # written again: the run may have changed them (fmt)
    print(f"input {inp.number} ({inp.label}) in {folder}:\n  dpipolicy {' '.join(inp.argv)}")
    print(f"exit {verdict.code} in {verdict.seconds:.2f} s; problems: {verdict.problems or 'none'}")
    print("--- stdout ---\n" + verdict.stdout + "--- stderr ---\n" + verdict.stderr)
    return 1 if verdict.problems else 0


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=corpus.ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
