"""Waiver files: violations an auditor or operator accepts for a time, each with an owner, a
reason and an expiry date (YAML, safe-loaded; format in docs/audit.md). Every problem is an
error at its YAML node (codes E630-E638). A waiver's region is a condition in the policy
language: it is parsed here, at its own line and column in the waiver file, as the `given` of
a test that the checker types with the policy's names (verifier/waivers.py applies it)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import yaml

from .diagnostics import Diagnostic, DiagnosticError
from .loader import PlacedItem, display_name
from .parser import parse_source
from .source import SourceFile
from .yamlnodes import Codes, NodeReader, compose, read_file

WAIVER_CODES = Codes(unreadable="E630", missing="E632", unknown_key="E633", wrong_type="E634", duplicate="E635")
_TARGETS = ("clause", "invariant", "test")
_REQUIRED = ("owner", "reason", "expires")
_SCOPES = ("rule", "region")
REGION_PREFIX = "__waiver_region_"     # the name of each region's test; no spec name starts so


@dataclass(frozen=True)
class Waiver:
    kind: str                      # what it names: clause, invariant or test
    name: str
    rule: str | None               # it accepts flows decided by this rule ...
    region: str | None             # ... and (or) flows in this region, as written
    region_test: str | None        # the name of the region's test among the checked spec's
    owner: str
    reason: str
    expires: datetime.date
    location: str

    def accepts(self, pairs: bool = False) -> str:
        """What it accepts, in words: flows, or (`pairs`, for equal treatment) the pairs with such a flow."""
        decided = f" decided by rule `{self.rule}`" if self.rule else ""
        what = "pairs with a flow" if pairs else "flows"
        return f"{what}{decided}" + (f" where {self.region}" if self.region else "")


@dataclass(frozen=True)
class Waivers:
    where: str
    waivers: tuple[Waiver, ...]
    regions: tuple[PlacedItem, ...]   # the regions as spec items, for api.load


def read_waivers(path: Path) -> Waivers:
    """Read and validate a waiver file (regions only parsed: the checker types them with the
    policy). Raises DiagnosticError with every problem found."""
    where = display_name(path)
    text = read_file(path, where, "waiver file", WAIVER_CODES, "give the path of a waiver file (docs/audit.md)")
    return _Reader(where).waivers(compose(text, where, WAIVER_CODES))


class _Reader(NodeReader):
    def __init__(self, where: str):
        super().__init__(where, WAIVER_CODES)
        self.regions: list[PlacedItem] = []

    def waivers(self, root) -> Waivers:
        if root is None:
            raise DiagnosticError([Diagnostic("E632", "the waiver file is empty", None, location_text=self.where,
                                              help="a waiver file needs `version: 1` and `waivers`")])
        top = self.mapping(root, "the waiver file", ("version", "waivers"), ())
        self.check_version(top, "E631", "waiver file")
        items = self.sequence(top["waivers"][1], "`waivers`") if "waivers" in top else []
        waivers = tuple(w for w in (self.waiver(item) for item in items) if w is not None)
        self.raise_errors()
        return Waivers(self.where, waivers, tuple(self.regions))

    def waiver(self, node) -> Waiver | None:
        errors = len(self.errors)
        keys = self.mapping(node, "a waiver", _REQUIRED, _TARGETS + _SCOPES)
        if not isinstance(node, yaml.MappingNode):
            return None
        targets = [k for k in _TARGETS if k in keys]
        if len(targets) != 1:
            self.fail("E638", node, "a waiver names " + ("nothing it waives" if not targets else
                                                         "more than one of " + ", ".join(f"`{t}`" for t in targets)),
                      help="give one `clause`, `invariant` or `test`: the clause, or the item, whose violation "
                           "it accepts")
        if not any(k in keys for k in _SCOPES):
            self.fail("E638", node, "a waiver says no flows it accepts",
                      help="give `rule: NAME` (flows that rule decides), `region: CONDITION`, or both")
        values = {k: self.string(keys[k][1], f"`{k}`") for k in keys if k != "expires"}
        expires = self.date(keys["expires"][1]) if "expires" in keys else None
        if len(self.errors) > errors:
            return None
        kind = targets[0]
        region_test = self.region(keys["region"][1], values["region"]) if "region" in keys else None
        return Waiver(kind, values[kind].strip(), values.get("rule", "").strip() or None,
                      values.get("region", "").strip() or None, region_test, values["owner"].strip(),
                      values["reason"].strip(), expires, self.at(node))

    def date(self, node) -> datetime.date | None:
        if isinstance(node, yaml.ScalarNode) and len(node.value) == 10:
            try:
                return datetime.date.fromisoformat(node.value)
            except ValueError:
                pass
        self.fail("E636", node, f"`expires` must be a date written YYYY-MM-DD, not {self.shown(node)}",
                  help="for example `expires: 2011-12-31`: the last day the waiver applies")
        return None

    def region(self, node, text: str) -> str | None:
        """Parse the region where it stands: the test's text has the condition at the line and
        column of the YAML value, so errors point into the waiver file. That holds only for a
        value written on one line: YAML folds the line breaks of a value written on several
        (a block scalar, a long or quoted one wrapped, a lone CR) into spaces."""
        name = f"{REGION_PREFIX}{len(self.regions)}"
        line = node.start_mark.line
        column = node.start_mark.column + (node.style in ('"', "'")) + len(text) - len(text.lstrip())
        if line < 1 or node.end_mark.line != line or "\n" in text.strip():
            self.fail("E634", node, "`region` must be a condition on one line, below the top of the file")
            return None
        source = "\n" * (line - 1) + f"test {name} given\n" + " " * column + text.strip() + "\nexpect allow\n"
        try:
            module = parse_source(SourceFile(Path(self.where), source, self.where))
        except DiagnosticError as exc:
            for d in exc.diagnostics:
                self.errors.append(((line, column), d))
            return None
        self.regions.extend(PlacedItem(item, "spec") for item in module.items)
        return name
