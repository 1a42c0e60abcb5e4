"""The parse cache across runs (dsl/parsecache.py): an unchanged file is read back, not parsed;
anything wrong with the cache only means parsing again."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from dpipolicy.dsl import parsecache
from dpipolicy.dsl.loader import read_source
from dpipolicy.dsl.parser import parse_recovering

from helpers import ROOT, run_cli

POLICY = ROOT / "examples/uk-mobile/policy-2011-09.dpi"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DPIPOLICY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def counting():
    calls = []

    def parse(file):
        calls.append(file)
        return parse_recovering(file)
    return parse, calls


def test_an_unchanged_file_is_read_back_with_its_spans_in_this_run(folder):
    parse, calls = counting()
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    again = read_source(POLICY, "policy file")
    second = parsecache.cached(parse)(again)
    assert len(calls) == 1 and second == parse_recovering(again)      # spans compare their file by identity
    assert all(item.span.file is again for item in second.items)
    assert len(list(folder.glob("*.pickle"))) == 1


def test_a_changed_text_or_name_is_parsed(folder, tmp_path):
    parse, calls = counting()
    copy = tmp_path / "copy.dpi"
    copy.write_text(POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    parsecache.cached(parse)(read_source(copy, "policy file"))          # same text, another file
    copy.write_text(POLICY.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    parsecache.cached(parse)(read_source(copy, "policy file"))
    assert len(calls) == 3


def test_a_corrupt_entry_is_parsed_again_and_replaced(folder):
    parse, calls = counting()
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    (entry,) = folder.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    file = read_source(POLICY, "policy file")
    module = parsecache.cached(parse)(file)
    assert len(calls) == 2 and module == parse_recovering(file)
    assert entry.read_bytes() != b"not a pickle"


class _Planted:
    def __reduce__(self):
        return os.system, ("touch planted",)


def test_a_planted_entry_runs_nothing(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse, calls = counting()
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    (entry,) = folder.glob("*.pickle")
    entry.write_bytes(pickle.dumps(_Planted()))
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    assert len(calls) == 2 and not (tmp_path / "planted").exists()


def test_a_folder_others_may_write_to_is_never_used(folder):
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    assert parsecache.cache_folder() is None
    folder.chmod(0o700)
    assert parsecache.cache_folder() == folder


def test_off_turns_it_off(monkeypatch):
    monkeypatch.setenv("DPIPOLICY_CACHE", "off")
    parse, _ = counting()
    assert parsecache.cached(parse) is parse


def test_a_second_check_reads_the_cache_and_says_the_same(folder):
    first = run_cli("check", POLICY, "--spec", ROOT / "examples/uk-mobile/spec.dpi")
    entries = sorted(p.name for p in folder.glob("*.pickle"))
    second = run_cli("check", POLICY, "--spec", ROOT / "examples/uk-mobile/spec.dpi")
    assert first == second and first[0] == 1
    assert len(entries) == 3 and sorted(p.name for p in folder.glob("*.pickle")) == entries  # policy, definitions, spec


def test_the_folder_is_pruned_least_recently_used_first(folder):
    parse, _ = counting()
    parsecache.cached(parse)(read_source(POLICY, "policy file"))
    (entry,) = folder.glob("*.pickle")
    size = entry.stat().st_size
    old = [folder / f"{k:064x}.pickle" for k in range(1, 9)]
    for age, path in enumerate(old):
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + age, 1000 + age))     # long unused, the first the oldest
    parsecache.cached(parse)(read_source(POLICY, "policy file"))    # a hit: the entry is used now
    parsecache.prune(folder, limit=4 * size)
    kept = sorted(p.name for p in folder.glob("*.pickle"))
    # down to three quarters of the limit: the entry just used and the two most recent of the rest
    assert kept == sorted([entry.name] + [p.name for p in old[-2:]])

