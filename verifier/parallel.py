"""Work spread over several processes with a serial run's results: invariants and tests
(`check --jobs`), and the changed rules' walks of a diff (`diff --jobs`), with the proof of
both versions' translations beside them.

Each invariant, test or walk stands alone, and every z3 session has a context of its own, so
which process does which, and in what order, changes nothing: the results come back in order
with the same statuses, counterexamples, regions and witnesses.

Workers get the tables and spec once, when they start. On Linux they are forked, so they
share the parent's loaded tables and indexes without copying them; elsewhere the platform's
start method pickles them (the same results, with a start-up cost that grows with the table).

A result travels back pickled with each rule's `Origin` and name sent as its index in its
table, so a result names the parent's own rule (equal to a serial run's result, and the source
text the origin points into is not copied back with each result, nor a rule's name once per
mention: a 100k diff's fan-outs mention five million, which as fresh strings took 340 MB).
"""
from __future__ import annotations

import io
import multiprocessing
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from typing import Callable, Sequence, TypeVar

from dpipolicy.dsl import typed

from .properties import TableModel, check_property, property_count
from .results import Result
from .solve import Limits

T = TypeVar("T")
_worker: tuple[Callable, object, dict[int, tuple[int, int]]] | None = None   # set in a worker


def map_in_processes(function: Callable[[object, T], object], state: object, items: Sequence[T], jobs: int,
                     models: tuple[TableModel, ...], progress: Callable[[int, int], None] | None = None) -> list:
    """`[function(state, item) for item in items]`, by up to `jobs` processes, in item order: this
    one and `jobs - 1` workers (none when jobs is 1 or there is at most one item). `function`
    must be a module-level function; its results may name rules of `models`, which come back
    as the parent's own. `progress(done, total)` is called before the first item and as each
    one finishes.

    This process takes items too, from the back while the workers take them from the front:
    a worker's results cost pickling there and unpickling here, and a parent that only waited
    for them would leave one of the `jobs` processors to them."""
    total = len(items)
    results: list = [None] * total
    done = 0

    def finished(k: int, result: object) -> None:
        nonlocal done
        results[k], done = result, done + 1
        if progress is not None:
            progress(done, total)

    def collect(futures) -> None:
        for future in futures:
            finished(pending.pop(future), _ResultUnpickler(future.result(), models).load())

    if progress is not None:
        progress(0, total)
    helpers = min(jobs, total) - 1
    if helpers <= 0:
        for k, item in enumerate(items):
            finished(k, function(state, item))
        return results
    with ProcessPoolExecutor(helpers, mp_context=_start_method(), initializer=_start,
                             initargs=(function, state, models)) as pool:
        submitted = [pool.submit(_run, item) for item in items]
        pending = dict(zip(submitted, range(total)))
        try:
            # A future not yet handed to a worker can be cancelled: this process then runs it.
            for k in reversed(range(total)):
                if not submitted[k].cancel():
                    break           # the workers have taken this item and every one before it
                del pending[submitted[k]]
                finished(k, function(state, items[k]))
                collect([future for future in pending if future.done()])
            collect(as_completed(list(pending)))
        except BaseException:
            pool.shutdown(cancel_futures=True)     # an error or ^C: start nothing more
            raise
    return results


def beside(function: Callable[[object, None], T], state: object, jobs: int) -> Callable[[], T]:
    """`function(state, None)` in a process of its own, beside this one, when `jobs` is above 1;
    else here, when its result is asked for. Returns what gives its result (or raises what it
    raised): call that once, when this process has done its own share of the work."""
    if jobs <= 1:
        return partial(function, state, None)
    pool = ProcessPoolExecutor(1, mp_context=_start_method(), initializer=_start, initargs=(function, state, ()))
    future = pool.submit(_run, None)

    def result() -> T:
        try:
            return _ResultUnpickler(future.result(), ()).load()
        finally:
            pool.shutdown()
    return result


def check_spec_parallel(model: TableModel, spec: typed.Policy, limits: Limits, jobs: int,
                        progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """`check_spec` with up to `jobs` processes, with the same results in the same order."""
    return map_in_processes(_check_one, (model, spec, limits), range(property_count(spec)), jobs, (model,), progress)


def _check_one(state: tuple[TableModel, typed.Policy, Limits], k: int) -> Result:
    model, spec, limits = state
    return check_property(model, spec, k, limits)


def _start_method():
    """fork on Linux (workers share the loaded table); the platform's default elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


_NAME, _ORIGIN = 1, 2           # the parts of a TableModel entry: (action, rule name, origin, because)


def _rules(models: tuple[TableModel, ...]) -> dict[int, tuple[int, int, int]]:
    """The id of each rule's name and Origin -> (which model, its index among the model's
    entries, which part of the entry)."""
    return {id(entry[part]): (m, i, part) for m, model in enumerate(models)
            for i, entry in enumerate(model.entries) for part in (_NAME, _ORIGIN) if entry[part] is not None}


def _start(function: Callable, state: object, models: tuple[TableModel, ...]) -> None:
    global _worker
    _worker = (function, state, _rules(models))


def _run(item) -> bytes:
    function, state, origins = _worker
    out = io.BytesIO()
    _ResultPickler(out, origins).dump(function(state, item))
    return out.getvalue()


class _ResultPickler(pickle.Pickler):
    """Pickles a result with each rule's name and Origin as (model, index among its entries, part)."""

    def __init__(self, file, rules: dict[int, tuple[int, int, int]]):
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.rules = rules

    def persistent_id(self, obj):
        return self.rules.get(id(obj)) if type(obj) is str or isinstance(obj, typed.Origin) else None


class _ResultUnpickler(pickle.Unpickler):
    """Reads a `_ResultPickler` result back, each rule's name and Origin as this process's own."""

    def __init__(self, data: bytes, models: tuple[TableModel, ...]):
        super().__init__(io.BytesIO(data))
        self.models = models

    def persistent_load(self, where: tuple[int, int, int]) -> str | typed.Origin:
        m, i, part = where
        return self.models[m].entries[i][part]
