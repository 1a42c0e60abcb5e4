"""Resource bounds (docs/reliability.md, "Bounds"): each input that could exhaust the stack, the
memory, the time or a file descriptor gets a clean error at its place, or a bounded result.

A test that guards against a hang runs under `bounded`, so that a regression fails the test
instead of stopping the suite.
"""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from dpipolicy.dsl.inputfile import MAX_BYTES
from dpipolicy.dsl.parser import MAX_NESTING
from dpipolicy.dsl.yamlnodes import MAX_DEPTH, MAX_VALUES
from dpipolicy.verifier.solve import Answer, Limits, Scope
from dpipolicy.dsl.schema import Field

from helpers import AUDIT_INVARIANTS, AUDIT_POLICY, run_cli, write_policy

BOUND_S = 60        # far above what each takes here (docs/reliability.md gives the times): catches a blow-up


@contextlib.contextmanager
def bounded(seconds: float = BOUND_S):
    """Fail, rather than hang, when the block takes longer than `seconds`."""
    def expire(signum, frame):
        raise TimeoutError(f"not done within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def check(*argv: str) -> tuple[int, str, str]:
    with bounded():
        return run_cli(*argv)


# ----- deep nesting ----------------------------------------------------------------------------
DEEP = 100_000


@pytest.mark.parametrize("condition", ["not " * DEEP + "tls", "(" * DEEP + "tls" + ")" * DEEP,
                                       "".join(f"(tls {'and' if i % 2 else 'or'} " for i in range(DEEP // 2))
                                       + "tls" + ")" * (DEEP // 2)])
@pytest.mark.parametrize("command", [("check",), ("lint",), ("fmt", "--check"), ("compile", "--format", "json")])
def test_conditions_nested_100000_deep_are_an_error_at_the_place(condition, command):
    write_policy(Path("."), f"default allow\nrule r when {condition} then block\n")
    code, out, err = check(*command, "policy.dpi")
    assert code == 2 and "internal error" not in err
    assert f"error[E004]: a condition nested more than {MAX_NESTING} deep\n --> policy.dpi:2:" in err


def test_a_condition_nested_as_deep_as_allowed_checks():
    write_policy(Path("."), "default allow\nrule r when " + "not " * MAX_NESTING + "tls then block\n"
                 f"test t given {'' if MAX_NESTING % 2 == 0 else 'not '}tls expect block\n")
    assert check("check", "policy.dpi")[0] == 0
    assert check("fmt", "--check", "policy.dpi")[0] in (0, 1)


def test_sets_holding_sets_10000_deep_are_an_error_at_the_set():
    chain = "".join(f"set s{i} = {{s{i + 1}, {i}}}\n" for i in range(10_000))
    write_policy(Path("."), f"default allow\n{chain}set s10000 = {{1}}\nrule r when dst.port in s0 then block\n")
    code, _, err = check("check", "policy.dpi")
    assert code == 2 and "internal error" not in err
    assert f"error[E004]: set `s9900` holds sets nested more than {MAX_NESTING} deep\n" in err


def test_sets_holding_sets_as_deep_as_allowed_check():
    n = MAX_NESTING - 1
    chain = "".join(f"set s{i} = {{s{i + 1}, {i}}}\n" for i in range(n))
    write_policy(Path("."), f"default allow\n{chain}set s{n} = {{{n}}}\nrule r when dst.port in s0 then block\n"
                 f"test t given dst.port == {n} expect block\n")
    assert check("check", "policy.dpi")[0] == 0


# ----- huge sets, enormous numbers, long lines -------------------------------------------------
def test_a_set_of_50000_addresses_is_checked_exactly():
    members = ", ".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(0, 100_000, 2))
    write_policy(Path("."), f"default allow\nset s = {{{members}}}\nrule r when dst.ip in s then block\n"
                 "test in_set given dst.ip == 10.1.134.158 expect block\n"
                 "test between given dst.ip == 10.1.134.159 expect allow\n")
    assert check("check", "policy.dpi")[0] == 0


@pytest.mark.parametrize("text, code, message", [
    ("rule r when dst.port == " + "9" * 10_000 + " then block", "E111", "port 999"),
    ("rule r when dst.ip in 10.0.0.0/" + "9" * 5_000 + " then block", "E110", "prefix length /999"),
    ("rule r when subscriber.usage > " + "9" * 5_000 + "GB then block", "E111", "volume 999"),
    ("rule r when time.hour in 0.." + "9" * 5_000 + " then block", "E111", "hour 999"),
])
def test_enormous_numbers_in_a_policy_are_out_of_range(text, code, message):
    write_policy(Path("."), f"default allow\n{text}\n")
    exit_code, _, err = check("check", "policy.dpi")
    assert exit_code == 2 and "internal error" not in err
    assert f"error[{code}]: {message}" in err and " --> policy.dpi:2:" in err


def test_enormous_numbers_in_a_table_a_profile_a_catalogue_and_a_flow_are_errors():
    digits = "9" * 5_000
    write_policy(Path("."), "default allow\n")
    Path("table.json").write_text('{"format": "dpipolicy-rule-table", "version": ' + digits + "}", encoding="utf-8")
    Path("profile.yaml").write_text(f"version: {digits}\nname: x\nengine: x\n", encoding="utf-8")
    Path("apps.yaml").write_text(f"applications:\n  - {{name: a, category: vpn, ports: [tcp/{digits}]}}\n",
                                 encoding="utf-8")
    cases = [(("check", "table.json"), "E300"), (("check", "policy.dpi", "--profile", "profile.yaml"), "E405"),
             (("check", "policy.dpi", "--catalogue", "apps.yaml"), "E050"),
             (("explain", "policy.dpi", "--flow", f"dst.port={digits}"), "E310")]
    for argv, code in cases:
        exit_code, _, err = check(*argv)
        assert exit_code == 2 and f"error[{code}]" in err and "internal error" not in err, (argv, err[:300])


def test_a_line_of_10_megabytes_reads_and_an_error_on_it_shows_a_window_of_it():
    write_policy(Path("."), "default allow # " + "x" * (10 << 20) + "\n")
    assert check("check", "policy.dpi")[0] == 0
    write_policy(Path("."), "default allow\nrule r when " + "tls or " * 200_000 + "dst.port == 70000 then block\n")
    code, _, err = check("check", "policy.dpi")
    assert code == 2 and "error[E111]: port 70000 is out of range" in err
    assert len(err) < 2_000        # the line shown is cut around the caret, marked `...`
    assert "2 | ... or tls or " in err and "dst.port == 70000 then block\n" in err


# ----- imports and big files -------------------------------------------------------------------
def test_10000_imports_in_one_file_and_a_chain_of_10000_imports_load():
    for i in range(10_000):
        Path(f"d{i}.dpi").write_text(f"set s{i} = {{ {i} }}\n", encoding="utf-8")
        Path(f"c{i}.dpi").write_text(f"set c{i} = {{ {i} }}\n" + (f'import "c{i + 1}.dpi"\n' if i < 9_999 else ""),
                                     encoding="utf-8")
    imports = "".join(f'import "d{i}.dpi"\n' for i in range(10_000))
    write_policy(Path("."), f'default allow\n{imports}import "c0.dpi"\n'
                 "rule r when dst.port in s9999 or dst.port in c9999 then block\n"
                 "test t given dst.port == 9999 expect block\n")
    start = time.monotonic()
    assert check("check", "policy.dpi")[0] == 0
    assert time.monotonic() - start < BOUND_S


@pytest.mark.parametrize("name, argv", [
    ("policy.dpi", ("check", "policy.dpi")),
    ("spec.dpi", ("check", "small.dpi", "--spec", "spec.dpi")),
    ("table.json", ("check", "table.json")),
    ("profile.yaml", ("check", "small.dpi", "--profile", "profile.yaml")),
    ("apps.yaml", ("check", "small.dpi", "--catalogue", "apps.yaml")),
    ("terms.yaml", ("audit", "small.dpi", "--terms", "terms.yaml")),
])
def test_a_50_megabyte_file_is_refused_before_it_is_read(name, argv):
    write_policy(Path("."), "default allow\n", "small.dpi")
    with open(name, "wb") as f:
        f.truncate(50 << 20)        # 50 MB (sparse): refused by its size, so never read
    code, _, err = check(*argv)
    assert code == 2 and "internal error" not in err
    assert f"larger than {MAX_BYTES:,} bytes" in err


def test_a_50_megabyte_import_is_refused_at_the_import():
    write_policy(Path("."), 'default allow\nimport "big.dpi"\n')
    with open("big.dpi", "wb") as f:
        f.truncate(50 << 20)
    code, _, err = check("check", "policy.dpi")
    assert code == 2
    assert f"error[E014]: cannot import `big.dpi`\n --> policy.dpi:2:1\n" in err
    assert f"it is larger than {MAX_BYTES:,} bytes" in err


# ----- YAML alias bombs ------------------------------------------------------------------------
BOMB = "bomb:\n  - &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))     # 10**10 values
YAML_FILES = {
    "profile": ("version: 1\nname: engine\nengine: an engine\n", ("check", "policy.dpi", "--profile", "f.yaml"), "E400"),
    "catalogue": ("applications:\n  - {name: corpvpn, category: vpn}\n", ("check", "policy.dpi", "--catalogue", "f.yaml"),
                  "E050"),
    "terms": ("version: 1\ntitle: T\nspecs: [spec.dpi]\nclauses:\n  - {id: mail, text: t, source: s, invariants: "
              "[submission_open]}\n", ("audit", "policy.dpi", "--terms", "f.yaml"), "E600"),
    "waivers": ("version: 1\nwaivers:\n  - {clause: mail, rule: relay_only, owner: o, reason: r, expires: 2011-12-31}\n",
                ("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "f.yaml", "--today", "2011-10-01"),
                "E630"),
}


def _yaml_case(kind: str, extra: str) -> tuple[int, str, str]:
    write_policy(Path("."), AUDIT_POLICY)
    write_policy(Path("."), AUDIT_INVARIANTS, "spec.dpi")
    write_policy(Path("."), YAML_FILES["terms"][0], "terms.yaml")
    text, argv, _ = YAML_FILES[kind]
    Path("f.yaml").write_text(text + extra, encoding="utf-8")
    return check(*argv)


@pytest.mark.parametrize("kind", YAML_FILES)
def test_a_yaml_alias_bomb_is_refused_at_its_place_at_once(kind):
    start = time.monotonic()
    code, _, err = _yaml_case(kind, BOMB)
    assert code == 2 and "internal error" not in err
    assert f"error[{YAML_FILES[kind][2]}]: more than {MAX_VALUES:,} values here, counting each alias as the values " \
           "it stands for\n --> f.yaml:" in err
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("kind", YAML_FILES)
def test_a_yaml_alias_inside_its_own_anchor_is_refused(kind):
    code, _, err = _yaml_case(kind, "loop: &l [x, *l]\n")
    assert code == 2 and f"error[{YAML_FILES[kind][2]}]: an alias inside the value it names\n --> f.yaml:" in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_yaml_aliases_that_stand_for_few_values_are_read(kind):
    code, _, err = _yaml_case(kind, "shared: &s [a, b]\nagain: *s\n")
    assert "more than" not in err and "alias" not in err


@pytest.mark.parametrize("kind", YAML_FILES)
def test_yaml_nested_deeper_than_the_bound_is_refused(kind):
    code, _, err = _yaml_case(kind, "deep: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n")
    assert code == 2 and f"lists and mappings nested more than {MAX_DEPTH} deep" in err


# ----- symbolic-link loops, named pipes, devices -----------------------------------------------
def _special(kind: str, path: Path) -> None:
    if kind == "loop":
        os.symlink(path.name + ".other", path)
        os.symlink(path.name, path.name + ".other")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        os.symlink("/dev/zero", path)           # a device, through a link inside the folder


SPECIALS = ("loop", "fifo", "folder", "device")
WORDS = {"loop": "symbolic links", "fifo": "it is a named pipe, not a file", "folder": "it is a folder, not a file",
         "device": ""}


@pytest.mark.parametrize("kind", SPECIALS)
def test_an_import_of_a_link_loop_a_named_pipe_a_folder_or_a_device_is_an_error_at_the_import(kind):
    write_policy(Path("."), 'default allow\nimport "x.dpi"\n')
    _special(kind, Path("x.dpi"))
    code, _, err = check("check", "policy.dpi")
    assert code == 2 and "internal error" not in err
    if kind == "device":            # /dev/zero is outside the policy root: refused as such
        assert "error[E012]: import `x.dpi` leaves the policy root\n --> policy.dpi:2:1" in err
    else:
        assert "error[E014]: " in err and " --> policy.dpi:2:1" in err and WORDS[kind] in err


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_an_import_of_a_device_node_inside_the_root_is_an_error_at_the_import():
    write_policy(Path("."), 'default allow\nimport "zero.dpi"\n')
    os.mknod("zero.dpi", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    code, _, err = check("check", "policy.dpi")
    assert code == 2 and "error[E014]: cannot import `zero.dpi`" in err and "it is a device, not a file" in err


@pytest.mark.parametrize("kind", SPECIALS)
@pytest.mark.parametrize("name, argv", [
    ("x.dpi", ("check", "x.dpi")), ("x.dpi", ("check", "small.dpi", "--spec", "x.dpi")),
    ("x.dpi", ("fmt", "--check", "x.dpi")), ("x.json", ("check", "x.json")),
    ("x.yaml", ("check", "small.dpi", "--profile", "x.yaml")), ("x.yaml", ("check", "small.dpi", "--catalogue", "x.yaml")),
    ("x.yaml", ("audit", "small.dpi", "--terms", "x.yaml")),
])
def test_a_link_loop_a_named_pipe_a_folder_or_a_device_on_the_command_line_is_an_error(kind, name, argv):
    write_policy(Path("."), "default allow\n", "small.dpi")
    _special(kind, Path(name))
    code, _, err = check(*argv)
    assert code == 2 and "internal error" not in err and "cannot read" in err


@pytest.mark.parametrize("kind", SPECIALS)
def test_a_terms_file_naming_a_link_loop_a_named_pipe_a_folder_or_a_device_is_an_error_at_the_name(kind):
    write_policy(Path("."), AUDIT_POLICY)
    Path("terms.yaml").write_text(YAML_FILES["terms"][0].replace("spec.dpi", "x.dpi"), encoding="utf-8")
    _special(kind, Path("x.dpi"))
    code, _, err = check("audit", "policy.dpi", "--terms", "terms.yaml")
    assert code == 2 and "error[E607]: " in err and " --> terms.yaml:3:9" in err


# ----- the solver's memory ---------------------------------------------------------------------
HARD = ("".join(f"(declare-const x{i} (_ BitVec 1024))" for i in range(6))
        + "(assert (= (bvmul (bvmul (bvmul (bvmul (bvmul x0 x1) x2) x3) x4) x5) (_ bv12345 1024)))"
        + "(assert (bvugt x0 (_ bv1 1024)))")


def test_a_query_past_the_memory_limit_is_unknown_and_the_next_ones_are_answered():
    """Two in a row: z3's global memory_max_size, used before, crashed the process the second time."""
    fields = (Field("x0", "port", 2 ** 1024 - 1),)
    for _ in range(2):
        outcome = Scope().solve(HARD, fields, Limits(timeout_s=60, memory_mb=100))
        assert outcome.answer is Answer.UNKNOWN and outcome.reason == "max. memory exceeded"
    easy = Scope().solve("(declare-const y (_ BitVec 8)) (assert (= y #x05))", (Field("y", "port", 255),), Limits())
    assert easy.answer is Answer.SAT and easy.model == {"y": 5}
