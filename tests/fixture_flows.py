"""The flows of shared/fixtures/pcaps/labels.csv with their real application.

A DPI engine's label is what we test; the real application is the ground truth we test it
against, so it must not come from an engine. It is written down by hand, with the reason, in
profiles/truth/fixtures.yaml (the truth file the shipped profiles are built with); here each
labelled flow is matched to its entry there.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.flowcsv import EngineFlow
from dpipolicy.dsl.schema import PROTOCOL_NAMES
from dpipolicy.dsl.truth import TruthRow, read_truth

from helpers import FIXTURES, ROOT

PCAPS = FIXTURES / "pcaps"
LABELS_CSV = PCAPS / "labels.csv"
TRUTH = ROOT / "profiles" / "truth" / "fixtures.yaml"
VERSIONS = {"ndpi-4.2": "label_ndpi_4.2", "ndpi-5.0": "label_ndpi_5.0"}


@dataclass(frozen=True)
class FixtureFlow:
    row: dict[str, str]
    truth: TruthRow
    server_port: int

    @property
    def proto(self) -> str:
        return PROTOCOL_NAMES[int(self.row["ip_proto"])]

    @property
    def labels(self) -> dict[str, str]:
        """nDPI's label per profile name; empty means not detected."""
        return {profile: self.row[column] for profile, column in VERSIONS.items()}

    def describe(self) -> str:
        r = self.row
        return f"{r['file']}: {self.proto} {r['src_ip']}:{r['src_port']} -> {r['dst_ip']}:{r['dst_port']}"


def fixture_flows() -> list[FixtureFlow]:
    truth = read_truth(TRUTH, load_catalogue())
    with LABELS_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for number, row in enumerate(rows, start=2):
        flow = EngineFlow("labels.csv", row["file"], "", int(row["ip_proto"]), row["ip_proto"],
                          (row["src_ip"], int(row["src_port"])), (row["dst_ip"], int(row["dst_port"])),
                          "", "", f"{LABELS_CSV}:{number}")
        claimed = truth.claim(flow)
        assert claimed is not None and claimed[0].app is not None, f"{row}: no entry of {TRUTH} claims it"
        out.append(FixtureFlow(row, claimed[0], claimed[1][1]))
    return out
