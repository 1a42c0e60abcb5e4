"""examples/terms/: each published clause, stated as invariants, holds on its policy and
catches its faulty version (examples/terms/README.md)."""
from __future__ import annotations

import pytest

from helpers import ROOT, run_cli

TERMS = ROOT / "examples" / "terms"
# clause: the invariants and tests the faulty version breaks (every other one still holds)
CAUGHT = {
    "ee-p2p-peak": {"p2p_slowed_only_at_peak"},
    "three-tethering": {"tethering_where_included"},
    "three-eu-roaming": {"no_slowing_p2p_vpn_roaming_in_eu", "no_sd_video_roaming_in_eu", "roaming_in_eu_like_at_home"},
    "eu-zero-rating-cap": {"cap_slows_every_application_alike"},
    "tmobile-video": {"video_services_alike", "video_at_1_5_mbps"},
}


def statuses(policy: str, clause: str) -> tuple[int, dict[str, str]]:
    code, out, err = run_cli("check", TERMS / f"{policy}.dpi", "--spec", TERMS / f"{clause}.spec.dpi")
    assert "Traceback" not in err, err
    found = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("invariant", "test"):
            found[words[2]] = words[1]
    return code, found


def test_every_clause_is_listed():
    assert {p.name[:-len(".spec.dpi")] for p in TERMS.glob("*.spec.dpi")} == set(CAUGHT)


@pytest.mark.parametrize("clause", sorted(CAUGHT))
def test_the_policy_keeps_the_clause(clause):
    code, found = statuses(clause, clause)
    assert code == 0 and found and set(found.values()) <= {"holds", "passed"}, found


@pytest.mark.parametrize("clause", sorted(CAUGHT))
def test_the_faulty_version_is_caught(clause):
    code, found = statuses(f"{clause}-faulty", clause)
    assert code == 1
    assert {name for name, status in found.items() if status in ("violated", "failed")} == CAUGHT[clause], found
    assert set(found.values()) <= {"holds", "passed", "violated", "failed"}


def test_each_policy_quotes_its_source():
    for clause in CAUGHT:
        header = (TERMS / f"{clause}.dpi").read_text(encoding="utf-8").split("\npolicy ")[0]
        assert "http" in header or "ECLI" in header, clause
