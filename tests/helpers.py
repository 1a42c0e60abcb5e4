"""Shared test helpers: paths, running the CLI in-process, checking policy text."""
from __future__ import annotations

import io
from pathlib import Path

from dpipolicy.cli import main
from dpipolicy.verifier.solve import Answer, Outcome

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "uk-mobile"
FIXTURES = ROOT.parent / "shared" / "fixtures"


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
