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
        self.waivers: list[str] = []     # the text of each <pre class="waivers">
        self._summary_depth = 0          # > 0 inside <div class="summary">
        self._in_strong = False
        self._in_waivers = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and (attrs.get("id") or "").startswith("clause-"):
            self.clauses.append(attrs["id"][len("clause-"):])
        if tag == "div" and (self._summary_depth or attrs.get("class") == "summary"):
            self._summary_depth += 1
        self._in_strong = tag == "strong" and self._summary_depth > 0
        if tag == "pre" and attrs.get("class") == "waivers":
            self._in_waivers = True
            self.waivers.append("")
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in attrs:
            self.loads.append(tag)

    def handle_endtag(self, tag):
        if tag == "div" and self._summary_depth:
            self._summary_depth -= 1
        self._in_strong = False
        self._in_waivers = self._in_waivers and tag != "pre"

    def handle_data(self, data):
        if self._in_strong and data.strip().isdigit():
            self.counts.append(int(data))
        if self._in_waivers:
            self.waivers[-1] += data


def shown(tmp_path: Path, policy: Path, terms: Path, *args) -> tuple[_Dom, dict]:
    """The HTML report as the browser's DOM holds it, and the JSON report, checked to agree:
    every clause, the summary's counts, nothing to fetch; a screenshot that is a page of text."""
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    code, _, err = run_cli("audit", policy, "--terms", terms, *args, "--format", "html", "-o", html)
    assert code in (0, 1), err
    assert run_cli("audit", policy, "--terms", terms, *args, "--format", "json", "-o", data)[0] == code
    report = json.loads(data.read_text())
    dumped = browse(tmp_path, html, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.clauses == [c["id"] for c in report["clauses"]]
    s = report["summary"]
    assert dom.counts == [s["holds"], s["violated"], s["unknown"], *([s["waived"]] if "waived" in s else []),
                          s["clauses"]]
    assert dom.loads == []          # one self-contained file: nothing to fetch
    picture = tmp_path / "report.png"
    shot = browse(tmp_path, html, f"--screenshot={picture}", "--window-size=1280,2400")
    assert shot.returncode == 0, shot.stderr
    png = picture.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000     # a page with text, not a blank one
    return dom, report


@pytest.mark.parametrize("policy, terms", CASES, ids=[c[0].stem for c in CASES])
def test_the_browser_shows_every_clause_with_the_counts(tmp_path, policy, terms):
    shown(tmp_path, policy, terms)


def test_the_browser_shows_waivers_of_equal_treatment(tmp_path):
    """Binge On's clause waived for the partner rule's flows: its equal-treatment invariant by
    the pairs with a partner's flow; the counts with the waived clause, the waivers' lines."""
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("version: 1\nwaivers:\n  - clause: binge-on-speed\n    rule: partner_video\n"
                       "    owner: Partnerships\n    reason: partner video in HD\n    expires: 2016-03-31\n",
                       encoding="utf-8")
    terms = ROOT / "examples" / "terms"
    dom, report = shown(tmp_path, terms / "tmobile-video-faulty.dpi", terms / "tmobile-video.terms.yaml",
                        "--waivers", waivers, "--today", "2016-01-15")
    assert report["summary"]["waived"] == 1
    under_clause = dom.waivers[1]
    assert "waived: invariant video_services_alike by the waiver of clause binge-on-speed" in under_clause
    assert "accepting pairs with a flow decided by rule `partner_video`" in under_clause
