"""CI formats: Findings and Cases (dpipolicy/findings.py) as SARIF 2.1.0, JUnit XML or GitHub
Actions annotations. One entry, `render`, for every command, so `check`, `diff` and `lint`
differ only in what they convert, never in how a format is written.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path, PurePath
from typing import Callable, Sequence
from urllib.parse import quote

from dpipolicy import __version__
from dpipolicy.findings import Case, Finding, Place
from dpipolicy.verifier.escaping import workflow_data, workflow_property, xml_document, xml_text

FORMATS = ("sarif", "junit", "github")
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def render(format_name: str, command: str, findings: Sequence[Finding], cases: Sequence[Case]) -> str:
    """The whole output of `dpipolicy COMMAND --format FORMAT_NAME`, ending in a newline.

    SARIF and GitHub annotations show the findings, JUnit the cases."""
    renderers: dict[str, Callable[[str, Sequence[Finding], Sequence[Case]], str]] = {
        "sarif": _sarif, "junit": _junit, "github": _github}
    if format_name not in renderers:
        raise ValueError(f"format {format_name!r} is not one of {FORMATS}")
    return renderers[format_name](command, findings, cases)


def relative_path(path: str) -> str:
    """A path as CI tools resolve it: relative to the working directory (the checkout, in CI),
    with forward slashes; a path outside the working directory stays absolute."""
    pure = PurePath(path)
    if pure.is_absolute():
        try:
            pure = Path(path).resolve().relative_to(Path.cwd().resolve())
        except (ValueError, OSError, RuntimeError):       # outside the folder; a link loop, a name too long
            return pure.as_posix()
    return pure.as_posix()


# ----- SARIF ----------------------------------------------------------------------------------
def _uri(path: str) -> str:
    relative = relative_path(path)
    if PurePath(relative).is_absolute():
        return Path(relative).as_uri()
    return quote(relative, safe="/")


def _physical(place: Place) -> dict:
    region = {"startLine": place.line, "startColumn": place.column}
    if place.end_line is not None and place.end_column is not None:
        region.update(endLine=place.end_line, endColumn=place.end_column)
    return {"artifactLocation": {"uri": _uri(place.path)}, "region": region}


def _message(finding: Finding) -> str:
    return finding.message + (f"\nhint: {finding.hint}" if finding.hint else "")


def _sarif(command: str, findings: Sequence[Finding], cases: Sequence[Case]) -> str:
    rules: list[dict] = []
    index: dict[str, int] = {}
    results = []
    for f in findings:
        if f.rule_id not in index:
            index[f.rule_id] = len(rules)
            rules.append({"id": f.rule_id, "shortDescription": {"text": f.rule_text}})
        result: dict = {"ruleId": f.rule_id, "ruleIndex": index[f.rule_id], "level": f.level,
                        "message": {"text": _message(f)}}
        if f.place is not None:
            result["locations"] = [{"physicalLocation": _physical(f.place)}]
        related = list(dict.fromkeys(f.related))       # SARIF wants them unique
        if related:
            result["relatedLocations"] = [{"id": i, "physicalLocation": _physical(place), "message": {"text": label}}
                                          for i, (place, label) in enumerate(related, 1)]
        if f.hint:
            result["properties"] = {"hint": f.hint}
        results.append(result)
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "dpipolicy", "version": __version__, "rules": rules}},
        "automationDetails": {"id": f"dpipolicy/{command}/"},    # one category per command
        "columnKind": "unicodeCodePoints",
        "results": results}]}
    return json.dumps(log, indent=2) + "\n"


# ----- JUnit XML ------------------------------------------------------------------------------
def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _junit(command: str, findings: Sequence[Finding], cases: Sequence[Case]) -> str:
    suites: dict[str, list[Case]] = {}
    for case in cases:
        suites.setdefault(xml_text(case.suite), []).append(case)
    root = ET.Element("testsuites", name=f"dpipolicy {command}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for suite, members in suites.items():
        counts = {"tests": len(members), "failures": sum(c.outcome == "failed" for c in members),
                  "errors": sum(c.outcome == "error" for c in members), "time": sum(c.seconds for c in members)}
        element = ET.SubElement(root, "testsuite", name=suite, tests=str(counts["tests"]),
                                failures=str(counts["failures"]), errors=str(counts["errors"]), skipped="0",
                                time=_seconds(counts["time"]))
        for key in totals:
            totals[key] += counts[key]
        for case in members:
            testcase = ET.SubElement(element, "testcase", classname=f"dpipolicy.{command}.{suite}",
                                     name=xml_text(case.name), time=_seconds(case.seconds))
            if case.outcome != "passed":
                tag = "failure" if case.outcome == "failed" else "error"
                text = xml_text(case.message)
                problem = ET.SubElement(testcase, tag, message=text.split("\n", 1)[0], type=case.outcome)
                problem.text = text
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", _seconds(totals["time"]))
    ET.indent(root)
    return xml_document(root)


# ----- GitHub Actions workflow commands -------------------------------------------------------
_GITHUB_LEVELS = {"error": "error", "warning": "warning", "note": "notice"}


def _github(command: str, findings: Sequence[Finding], cases: Sequence[Case]) -> str:
    lines = []
    for f in findings:
        properties = []
        if f.place is not None:
            place = f.place
            properties += [("file", relative_path(place.path)), ("line", place.line), ("col", place.column)]
            if place.end_line == place.line and place.end_column is not None:     # GitHub takes an end
                properties += [("endLine", place.line), ("endColumn", place.end_column - 1)]   # on one line only
        properties.append(("title", f"{f.rule_id}: {f.rule_text}"))
        joined = ",".join(f"{key}={workflow_property(str(value))}" for key, value in properties)
        lines.append(f"::{_GITHUB_LEVELS[f.level]} {joined}::{workflow_data(_message(f))}")
    return "".join(line + "\n" for line in lines)
