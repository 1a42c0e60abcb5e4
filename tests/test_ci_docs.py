"""docs/ci.md stays true: its YAML parses, every dpipolicy command in it is one the command
line accepts, and its pre-commit configuration names hooks that .pre-commit-hooks.yaml has."""
from __future__ import annotations

import re
import shlex
import shutil
import textwrap

import pytest
import yaml

from dpipolicy.cli import _parser

from helpers import EXAMPLES, ROOT, run_cli

PAGE = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
# the variables the examples set, with values of the kind they stand for
VARIABLES = {"$POLICY": "policies/policy.dpi", "$SPEC": "policies/spec.dpi", "base/$POLICY": "base/policies/policy.dpi"}


def _yaml_blocks() -> list[object]:
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", PAGE, flags=re.S | re.M)
    return [yaml.safe_load(textwrap.dedent(body)) for _, body in blocks]


def _scripts(node):
    """The shell text of every `run:` (GitHub) and `script:` (GitLab) under a parsed block."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script"):
                yield from [value] if isinstance(value, str) else value
            else:
                yield from _scripts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _scripts(value)


def _commands() -> list[tuple[str, ...]]:
    """The words of every dpipolicy command the YAML runs, up to a redirection or `||`."""
    found = set()
    for block in _yaml_blocks():
        for script in _scripts(block):
            for line in script.replace("\\\n", " ").splitlines():
                if line.strip().startswith("dpipolicy "):
                    words = shlex.split(line, comments=True)
                    cut = next((i for i, w in enumerate(words) if w in (">", "||", "&&", ";")), len(words))
                    found.add(tuple(words[:cut]))
    return sorted(found)


def test_every_yaml_block_parses():
    blocks = _yaml_blocks()
    assert len(blocks) == 5
    workflow = blocks[0]
    assert set(workflow["jobs"]) == {"check", "diff"}
    assert blocks[1]["dpipolicy"]["artifacts"]["reports"]["junit"] == "dpipolicy-junit.xml"


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_each_command_is_accepted(command):
    words = [VARIABLES.get(w, w) for w in command]
    _parser().parse_args(words[1:])              # raises on an option that does not exist


def test_commands_found_cover_the_page():
    commands = [" ".join(c) for c in _commands()]
    assert {c.split()[1] for c in commands} == {"check", "diff", "compile"}
    for wanted in ("--format sarif", "--format junit", "--format github", "--format markdown", "--jobs 2"):
        assert any(wanted in c for c in commands), wanted


def test_pre_commit_configuration_uses_the_hooks_with_arguments_they_accept():
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    configured = [h for block in _yaml_blocks() if isinstance(block, dict) and "repos" in block
                  for repo in block["repos"] for h in repo["hooks"]]
    configured += [h for block in _yaml_blocks() if isinstance(block, list) for h in block]
    assert {h["id"] for h in configured} == {"dpipolicy-check", "dpipolicy-lint", "dpipolicy-fmt-check"}
    for hook in configured:
        entry = hooks[hook["id"]]["entry"].split()
        files = [] if hooks[hook["id"]].get("pass_filenames", True) is False else ["policies/policy.dpi"]
        _parser().parse_args(entry[1:] + [str(a) for a in hook.get("args", [])] + files)


def test_the_pull_request_diff_as_the_workflow_runs_it(tmp_path, monkeypatch):
    """The base branch checked out in base/, its policy compiled, then diffed with the pull
    request's policy and spec; straight from base/ the same diff works only while the
    definitions files are the same."""
    for side, policy in (("base/policies", "policy-2011-08.dpi"), ("policies", "policy-2011-09.dpi")):
        (tmp_path / side).mkdir(parents=True)
        for name in ("definitions.dpi", "spec.dpi"):
            shutil.copy2(EXAMPLES / name, tmp_path / side / name)
        shutil.copy2(EXAMPLES / policy, tmp_path / side / "policy.dpi")
    monkeypatch.chdir(tmp_path)
    assert run_cli("compile", "base/policies/policy.dpi", "-o", "base-rules.json")[0] == 0
    code, out, err = run_cli("diff", "base-rules.json", "policies/policy.dpi", "--spec", "policies/spec.dpi",
                             "--fail-on", "regression", "--jobs", "2", "--format", "markdown")
    assert (code, err) == (1, "")
    assert "| :x: | `auth_smtp_third_party_never_blocked` | holds | violated |" in out
    assert "old: block by unauth_smtp_relay at base/policies/policy.dpi:9:1" in out
    # straight from base/: the definitions are word for word the same, so they count once ...
    assert run_cli("diff", "base/policies/policy.dpi", "policies/policy.dpi", "--spec", "policies/spec.dpi",
                   "--fail-on", "regression")[0] == 1
    # ... but a pull request that edits a definition meets it twice: hence the compiled table
    definitions = tmp_path / "policies" / "definitions.dpi"
    definitions.write_text(definitions.read_text().replace("{ payg, monthly, business }", "{ payg, monthly, business, prepaid }", 1))
    code, _, err = run_cli("diff", "base/policies/policy.dpi", "policies/policy.dpi", "--spec", "policies/spec.dpi")
    assert code == 2 and "error[E102]: duplicate enum `plan`" in err
