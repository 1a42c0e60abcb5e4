"""The pre-commit hooks of .pre-commit-hooks.yaml, run by pre-commit as a user's repository runs
them: pre-commit installs this project into an environment of its own and runs each hook on a
policy that is right and on one that is not.

pre-commit installs from a git repository, so the hooks repository is a snapshot of this working
tree (what pip needs, and the hooks file) committed in a temporary folder: uncommitted changes are
tested too. Each hook runs from a .pre-commit-config.yaml naming the snapshot, as users run them,
and these runs share one installed environment; `check` and `lint` need a policy and spec files
in `args`, which `pre-commit try-repo` cannot give. One `try-repo` run (which installs an
environment of its own) shows that way of trying a hook works too. Marked `precommit` (it runs
by default; `-m "not precommit"` leaves it out): pre-commit installs the project from the
package index, about 30 s per environment.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dpipolicy.dsl.format import format_source

from helpers import EXAMPLES, ROOT

pytestmark = pytest.mark.precommit
# no git or pre-commit settings of a repository the tests run from (say, inside a hook) leak in
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}

UNFORMATTED = 'policy  p   version "1"\ndefault   allow\n'
SHADOWED = """policy shadowed version "1"

default allow

rule all_tcp
    when proto == tcp
    then block

rule smtp
    when proto == tcp and dst.port == 25
    then reset
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _git(repo: Path, *args: str) -> None:
    who = ("-c", "user.name=dpipolicy tests", "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false")
    done = _run(["git", *who, *args], repo, CLEAN_ENV)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory) -> tuple[Path, str]:
    """The snapshot repository and its commit."""
    repo = tmp_path_factory.mktemp("hooks-repo")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in {d.split("/")[0] for d in package_dirs.values()}:
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "snapshot")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=CLEAN_ENV, capture_output=True, text=True,
                          check=True)
    return repo, head.stdout.strip()


@pytest.fixture(scope="module")
def pre_commit_env(tmp_path_factory) -> dict[str, str]:
    """The environment for pre-commit, with a store (the installed hook environment) of this
    module's own."""
    return dict(CLEAN_ENV, PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("pre-commit-home")))


@pytest.fixture
def user_repo(tmp_path) -> Path:
    """A user's repository with the shipped example policies and spec."""
    for name in ("definitions.dpi", "spec.dpi", "policy-2011-08.dpi", "policy-2011-09.dpi"):
        shutil.copy2(EXAMPLES / name, tmp_path / name)
    (tmp_path / "shadowed.dpi").write_text(SHADOWED, encoding="utf-8")
    (tmp_path / "unformatted.dpi").write_text(UNFORMATTED, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a policy\n", encoding="utf-8")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    return tmp_path


def _pre_commit(env, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "pre_commit", *args, "--color", "never"], cwd, env)


def _run_hook(hooks_repo, env, user_repo: Path, hook: str, args: list[str], *files: str):
    """`pre-commit run HOOK --files ...` with a .pre-commit-config.yaml that gives the hook `args`."""
    repo, rev = hooks_repo
    config = {"repos": [{"repo": str(repo), "rev": rev, "hooks": [{"id": hook, "args": args}]}]}
    (user_repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return _pre_commit(env, user_repo, "run", hook, "--files", *files)


def test_hooks_file_names_each_command():
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert {h: hooks[h]["entry"] for h in hooks} == {
        "dpipolicy-check": "dpipolicy check", "dpipolicy-lint": "dpipolicy lint",
        "dpipolicy-fmt-check": "dpipolicy fmt --check", "dpipolicy-fmt": "dpipolicy fmt"}
    assert all(h["language"] == "python" and h["files"] == r"\.dpi$" for h in hooks.values())
    # one policy with its specs, given in args: never called once per committed file
    assert hooks["dpipolicy-check"]["pass_filenames"] is False
    assert hooks["dpipolicy-lint"]["pass_filenames"] is False


def test_check_hook_passes_a_policy_that_holds(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-check",
                     ["policy-2011-08.dpi", "--spec", "spec.dpi"], "policy-2011-08.dpi")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dpipolicy check" in done.stdout and "Passed" in done.stdout


def test_check_hook_fails_a_violated_policy(hooks_repo, pre_commit_env, user_repo):
    # the spec changed in this commit: the hook still checks the policy its args name
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-check",
                     ["policy-2011-09.dpi", "--spec", "spec.dpi"], "spec.dpi")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed" in done.stdout and "violated auth_smtp_third_party_never_blocked" in done.stdout


def test_check_hook_skips_a_commit_without_dpi_files(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-check",
                     ["policy-2011-09.dpi", "--spec", "spec.dpi"], "notes.txt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Skipped" in done.stdout


def test_lint_hook_passes_a_clean_policy(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-lint",
                     ["policy-2011-08.dpi", "--spec", "spec.dpi"], "policy-2011-08.dpi")
    assert done.returncode == 0, done.stdout + done.stderr


def test_lint_hook_fails_a_shadowed_rule(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-lint", ["shadowed.dpi"], "shadowed.dpi")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "L101" in done.stdout


def test_fmt_check_hook_passes_formatted_files(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-fmt-check", [],
                     "policy-2011-08.dpi", "spec.dpi", "notes.txt")
    assert done.returncode == 0, done.stdout + done.stderr


def test_fmt_check_hook_fails_an_unformatted_file_and_leaves_it(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-fmt-check", [],
                     "policy-2011-08.dpi", "unformatted.dpi")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "would reformat unformatted.dpi" in done.stdout
    assert "policy-2011-08.dpi" not in done.stdout
    assert (user_repo / "unformatted.dpi").read_text(encoding="utf-8") == UNFORMATTED


def test_fmt_hook_rewrites_an_unformatted_file(hooks_repo, pre_commit_env, user_repo):
    done = _run_hook(hooks_repo, pre_commit_env, user_repo, "dpipolicy-fmt", [], "unformatted.dpi")
    assert done.returncode == 1, done.stdout + done.stderr      # pre-commit stops a commit it changed
    assert "files were modified by this hook" in done.stdout
    assert (user_repo / "unformatted.dpi").read_text(encoding="utf-8") == format_source(UNFORMATTED)


def test_try_repo_runs_a_hook_from_the_repository(hooks_repo, pre_commit_env, user_repo):
    """What a user runs to try the hooks before adding them to a configuration (a fresh
    environment of its own: try-repo does not reuse pre-commit's store)."""
    repo, _ = hooks_repo
    done = _pre_commit(pre_commit_env, user_repo, "try-repo", str(repo), "dpipolicy-fmt-check",
                       "--files", "policy-2011-08.dpi", "unformatted.dpi")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "would reformat unformatted.dpi" in done.stdout
