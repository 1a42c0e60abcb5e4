"""Shared test helpers: paths, running the CLI in-process, checking policy text."""
from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

from dpipolicy.cli import main
from dpipolicy.verifier.solve import Answer, Outcome

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "uk-mobile"
FIXTURES = ROOT.parent / "shared" / "fixtures"
EXAMPLES_SCALE = "DPIPOLICY_EXAMPLES_SCALE"


def examples(ci_count: int) -> int:
    """The examples a property test draws: the count CI runs, times DPIPOLICY_EXAMPLES_SCALE (default
    1), so one setting deepens every test checked against an independent answer (docs/reliability.md)."""
    return max(1, round(ci_count * float(os.environ.get(EXAMPLES_SCALE, "1"))))


def first_block(path: Path, heading: str) -> str:
    """The first fenced block of a page after a heading (a page's example, as written)."""
    import re
    text = path.read_text(encoding="utf-8")
    return re.search(r"```[a-z]*\n(.*?)```", text[text.index(heading):], re.S).group(1)


def run_cli(*argv: str, env_no_color: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out, err)
    return code, out.getvalue(), err.getvalue()


def write_policy(tmp_path: Path, text: str, name: str = "policy.dpi") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TimedOutScope:
    """Stands for verifier.solve.Scope: every query times out."""

    def solve(self, *args, **kwargs) -> Outcome:
        return Outcome(Answer.UNKNOWN, reason="timeout")


def generator():
    """benchmarks/generate.py, loaded by path as benchmarks/run.py does."""
    spec = importlib.util.spec_from_file_location("generate", ROOT / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated(tmp_path: Path, rules: int, seed: int) -> tuple[Path, Path]:
    """A policy and spec from benchmarks/generate.py."""
    policy_text, spec_text = generator().generate(rules, seed)
    (tmp_path / "policy.dpi").write_text(policy_text, encoding="utf-8")
    (tmp_path / "spec.dpi").write_text(spec_text, encoding="utf-8")
    return tmp_path / "policy.dpi", tmp_path / "spec.dpi"


def name_matches(name: str, pattern: str) -> bool:
    """Plain server-name matching, label by label: case does not matter, nor a trailing dot;
    `*.x` matches every name with more labels than x that ends in x's labels, not x itself."""
    labels = name.lower().rstrip(".").split(".")
    want = pattern.lower().rstrip(".").split(".")
    if want[0] == "*":
        suffix = want[1:]
        return len(labels) > len(suffix) and labels[len(labels) - len(suffix):] == suffix
    return labels == want


# The small mail policy and spec the audit tests share (test_audit.py, test_audit_waivers.py).
AUDIT_POLICY = """policy mail version "1"
default allow
rule relay_only when proto == tcp and dst.port == 25 then block because "port 25 is for our relays"
rule slow_video when app == youtube then throttle 1Mbps because "video is optimised"
"""
AUDIT_INVARIANTS = """invariant submission_open "Mail submission is never blocked"
    when dst.port == 587 and app == submission require action == allow
invariant video_untouched "Video is never slowed"
    when app == youtube and dst.port == 443 require action == allow
"""
