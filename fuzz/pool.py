"""Worker processes that run inputs in-process, and a parent that holds each to its time bound.

Running `main` in a long-lived process is what makes a million inputs affordable (a fresh
interpreter costs more than most inputs). A hang cannot be caught from inside the process
(z3 and the regex engine do not return to Python), so the parent waits on each worker with a
deadline, kills one that overruns, records the input as a hang and starts another. A worker
that dies (a crash in C code, the memory limit) is recorded the same way. Workers are
replaced after `recycle` inputs, so no run depends on how many came before it.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable

MEMORY_LIMIT = 3 << 30      # bytes of address space per worker: a blow-up fails alone, not the machine


def _worker(conn, seed: int, scratch: str, nice: int) -> None:
    from . import inputs, oracle
    os.nice(nice)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides when to stop
    # the parse cache of the inputs goes with the worker's scratch folder: a million inputs in
    # the user's own cache folder would fill it (665,000 entries, 3.1 GB, in the first long run)
    os.environ["DPIPOLICY_CACHE"] = str(Path(scratch) / "parse-cache")
    folder = Path(scratch) / "input"
    while True:
        number = conn.recv()
        if number is None:
            return
        inp = inputs.make(seed, number)
        verdict = oracle.judge_run(inp, folder)
        conn.send((number, inp.kind, inp.command, inp.label, asdict(verdict)))


class _Worker:
    def __init__(self, seed: int, nice: int) -> None:
        self.seed, self.nice = seed, nice
        self.scratch = tempfile.mkdtemp(prefix="dpipolicy-fuzz-")
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_worker, args=(child, seed, self.scratch, nice), daemon=True)
        self.process.start()
        child.close()
        self.number: int | None = None
        self.deadline = 0.0
        self.done = 0
        self.dead = False           # gave no verdict: to be killed and replaced

    def give(self, number: int, bound: float) -> None:
        self.number, self.deadline = number, time.monotonic() + bound
        self.conn.send(number)

    def receive(self) -> dict:
        """The verdict of the input given, or a problem record when the worker died."""
        try:
            number, kind, command, label, verdict = self.conn.recv()
        except (EOFError, OSError):
            return self.lost(f"the worker died ({self._death()})")
        self.number, self.done = None, self.done + 1
        return dict(number=number, kind=kind, command=command, label=label, **verdict)

    def lost(self, problem: str) -> dict:
        """The record of an input the worker gave no verdict for (made again to name it)."""
        from . import inputs
        inp = inputs.make(self.seed, self.number)
        self.dead = True
        return dict(number=self.number, kind=inp.kind, command=inp.command, label=inp.label, code=None,
                    seconds=None, problems=[problem], codes=[], stdout="", stderr="")

    def _death(self) -> str:
        self.process.join(5)
        code = self.process.exitcode
        return f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def run(seed: int, numbers: Iterable[int], jobs: int, bound: float, report: Callable[[dict], None],
        recycle: int = 5000, nice: int = 10) -> None:
    """Run every input number on `jobs` workers; `report` gets one record per input, in the
    order they finish: number, kind, command, label, code, seconds, problems (a hang or crash
    is a problem), codes, and stdout and stderr when there is a problem."""
    pending = iter(numbers)
    workers = [_Worker(seed, nice) for _ in range(jobs)]
    try:
        for w in workers:
            _feed(w, pending, bound)
        while live := [w for w in workers if w.number is not None]:
            soonest = min(w.deadline for w in live)
            ready = wait([w.conn for w in live], timeout=max(0.0, soonest - time.monotonic()))
            for i, w in enumerate(workers):
                if w.number is None:
                    continue
                if w.conn in ready:
                    report(w.receive())
                elif time.monotonic() > w.deadline:
                    report(w.lost(f"no answer within {bound:g} s (a hang)"))
                else:
                    continue
                if w.dead or w.done >= recycle:
                    w.stop(kill=w.dead)
                    workers[i] = w = _Worker(seed, nice)
                _feed(w, pending, bound)
    finally:
        for w in workers:
            w.stop(kill=w.dead or w.number is not None)


def _feed(w: _Worker, pending, bound: float) -> None:
    number = next(pending, None)
    if number is not None:
        w.give(number, bound)
