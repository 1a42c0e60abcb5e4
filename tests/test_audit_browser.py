"""The HTML audit report in a real browser (issue 18): Debian's chromium, headless, opens the
one file with no network, and its DOM holds every clause with the counts of the JSON report;
a screenshot shows it renders. `.ci/run` installs chromium."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, run_cli

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
CASES = [(EXAMPLES / "policy-2011-09.dpi", EXAMPLES / "terms.yaml"),
         (ROOT / "examples" / "terms" / "eu-zero-rating-cap.dpi", ROOT / "examples" / "terms" / "eu-zero-rating-cap.terms.yaml")]


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "these tests need Debian's chromium (apt-get install chromium; .ci/run installs it)"
    return found


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=120)


class _Dom(HTMLParser):
    """What the test reads of the browser's DOM: clause sections, the summary's counts, and any
    tag that would load something."""

    def __init__(self) -> None:
        super().__init__()
        self.clauses: list[str] = []
        self.counts: list[int] = []
        self.loads: list[str] = []
        self._summary_depth = 0          # > 0 inside <div class="summary">
        self._in_strong = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and (attrs.get("id") or "").startswith("clause-"):
            self.clauses.append(attrs["id"][len("clause-"):])
        if tag == "div" and (self._summary_depth or attrs.get("class") == "summary"):
            self._summary_depth += 1
        self._in_strong = tag == "strong" and self._summary_depth > 0
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in attrs:
            self.loads.append(tag)

    def handle_endtag(self, tag):
        if tag == "div" and self._summary_depth:
            self._summary_depth -= 1
        self._in_strong = False

    def handle_data(self, data):
        if self._in_strong and data.strip().isdigit():
            self.counts.append(int(data))


@pytest.mark.parametrize("policy, terms", CASES, ids=[c[0].stem for c in CASES])
def test_the_browser_shows_every_clause_with_the_counts(tmp_path, policy, terms):
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    code, _, err = run_cli("audit", policy, "--terms", terms, "--format", "html", "-o", html)
    assert code in (0, 1), err
    assert run_cli("audit", policy, "--terms", terms, "--format", "json", "-o", data)[0] == code
    report = json.loads(data.read_text())
    shown = browse(tmp_path, html, "--dump-dom")
    assert shown.returncode == 0, shown.stderr
    dom = _Dom()
    dom.feed(shown.stdout)
    assert dom.clauses == [c["id"] for c in report["clauses"]]
    s = report["summary"]
    assert dom.counts == [s["holds"], s["violated"], s["unknown"], s["clauses"]]
    assert dom.loads == []          # one self-contained file: nothing to fetch
    picture = tmp_path / "report.png"
    shot = browse(tmp_path, html, f"--screenshot={picture}", "--window-size=1280,2400")
    assert shot.returncode == 0, shot.stderr
    png = picture.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000     # a page with text, not a blank one
