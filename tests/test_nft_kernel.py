"""Real nftables rule sets (tests/fixtures/nft/) against the kernel: each is imported, flattened
at the hooks its first line names, and a witness flow of every rule of each table is sent as a
real packet through the kernel holding the rule set (nftprobe.py: a connection's first packet, or at input
also a packet of an established connection or an invalid TCP segment); the kernel's own trace must
name the rule the table predicts, with its verdict.

A fixture starts with `# hooks: HOOK ...`, and `# approximate` when its import needs it."""
from __future__ import annotations

from pathlib import Path

import pytest

from dpipolicy.compiler.importers import nftruleset
from dpipolicy.compiler.importers.chains import flatten, schema_for
from dpipolicy.dsl.catalogue import load_catalogue

from nftprobe import probe

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "nft").glob("*.nft"))
CATALOGUE = load_catalogue(())


def header(path: Path) -> tuple[list[str], bool]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# hooks: "), f"{path.name} does not say which hooks to test"
    return lines[0].split()[2:], any(line.strip() == "# approximate" for line in lines[:5])


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_the_kernel_decides_as_the_import_predicts(path, capsys):
    hooks, approximate = header(path)
    listing = nftruleset.kernel_listing(path)
    ruleset = nftruleset.read_nft_json(listing, str(path))
    for hook in hooks:
        table, _ = flatten(ruleset, hook, schema_for(ruleset, CATALOGUE), approximate)
        probes, unsent = probe(path, ruleset, table, hook, listing)
        report = [f"{'ok  ' if p.agrees else 'DIFF'} {hook}: {p.flow}: {p.why}: predicted {p.predicted}, "
                  f"kernel {p.observed}, delivered {p.delivered}, sender {p.sent}" for p in probes]
        report += [f"unsent {hook}: {why}: {reason}" for why, reason in unsent]
        print("\n".join(report))
        assert probes, f"no flow sent at {hook}"
        assert all(p.agrees for p in probes), "\n".join(report)
