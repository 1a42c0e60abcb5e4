"""The shipped nDPI profiles against nDPI's own regression suite (shared/fixtures/ndpi-suite):
each is what tools/build-profiles.sh writes, every flow with a known truth is allowed by its
release's profile, every entry is shown by a flow or says it is assumed, and the label changes
the suite shows between releases appear in `diff --profile-old A --profile-new B`."""
from __future__ import annotations

import json
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.flowcsv import read_flows
from dpipolicy.dsl.profilebuild import build
from dpipolicy.dsl.profiles import load_profile
from dpipolicy.dsl.truth import merge, parse_truth, read_truth

from helpers import ROOT, run_cli, write_policy

SCRIPT = ROOT / "tools" / "build-profiles.sh"
CATALOGUE = load_catalogue()
RELEASES = ("ndpi-4.2", "ndpi-4.4", "ndpi-4.6", "ndpi-4.8", "ndpi-4.10", "ndpi-5.0")


def build_commands() -> dict[str, list[str]]:
    """The `dpipolicy profile build` commands of the script, by profile, with its variables."""
    variables, commands = {}, {}
    for line in SCRIPT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "dpipolicy")) and " " not in line.split("=", 1)[0]:
            name, value = line.split("=", 1)
            variables[name] = shlex.split(value)[0] if value else ""
        elif line.startswith("dpipolicy profile build"):
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            words = shlex.split(line)
            commands[Path(words[3]).stem] = words[1:]
    return commands


COMMANDS = build_commands()


@lru_cache(maxsize=None)
def built(name: str):
    """The build of one shipped profile, from the inputs the script gives it (run from the root)."""
    words = COMMANDS[name]
    take = lambda flag: [ROOT / words[i + 1] for i, w in enumerate(words) if w == flag]
    truth = merge([read_truth(p, CATALOGUE) for p in take("--truth")])
    flows = [f for p in take("--flows") for f in read_flows(p.resolve())]
    base = ROOT / words[2]
    return build(flows, truth, base.read_text(encoding="utf-8"), words[2], CATALOGUE, "")

def test_the_script_builds_every_shipped_ndpi_profile():
    assert sorted(COMMANDS) == sorted(RELEASES)


@pytest.mark.parametrize("name", RELEASES)
def test_the_shipped_profile_is_what_its_evidence_builds(name, tmp_path):
    """Through the command line, as the script runs it: the file cannot drift from its evidence."""
    words = COMMANDS[name]
    out = tmp_path / "built.yaml"
    args = [ROOT / w if i in (2,) or words[i - 1] in ("--truth", "--flows") else w for i, w in enumerate(words)]
    at = words.index("-o")
    code, _, err = run_cli(*args[:at], "-o", out)
    assert code == 0, err
    assert err.startswith(f"{name}: ") and "with a known truth are the evidence" in err
    shipped = (ROOT / "dsl" / "data" / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == shipped


@pytest.mark.parametrize("name", RELEASES)
def test_every_flow_with_a_known_truth_is_allowed_by_its_release(name):
    result = built(name)
    profile = load_profile(name, CATALOGUE)
    assert len(result.evidence) > 2900
    wrong = [f"{e.flow.where}: {e.flow.capture} {e.flow.endpoints()} is {e.app}, labelled {e.flow.label!r} "
             f"-> {e.label}; {name} allows {profile.possible_labels(e.app, e.fields())}"
             for e in result.evidence if e.label not in profile.possible_labels(e.app, e.fields())]
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("name", RELEASES)
def test_every_entry_is_shown_by_a_flow_or_says_it_is_assumed(name):
    result = built(name)
    profile = load_profile(name, CATALOGUE)
    unseen = [f"{e.location}: {app} -> {e.label}" for app, entries in profile.labels for e in entries
              if not e.evidence.startswith("assumed")
              and not any(v.app == app and v.label == e.label and e.applies(v.fields()) for v in result.evidence)]
    assert not unseen


def test_the_suite_fixes_what_the_old_profiles_got_wrong():
    tcp, udp = 6, 17
    old = load_profile("ndpi-4.2", CATALOGUE)
    ipsec = old.entries("ipsec")
    assert any(e.how == "port" and e.label == "ipsec" for e in ipsec)         # IKE and NAT-T by port
    assert any(e.how == "port" and e.label == "pop3" for e in old.entries("pop3"))
    new = load_profile("ndpi-5.0", CATALOGUE)
    assert "smtp" in new.possible_labels("unknown", {"proto": tcp, "dst.port": 587})
    assert "smtps" not in new.possible_labels("unknown", {"proto": tcp, "dst.port": 587})
    assert new.catalogue_label("QUIC.YouTube") == "youtube"
    assert "unknown" in old.possible_labels("ipsec", {"proto": udp, "dst.port": 1701})


# ----- what changes between releases, as `diff` shows it ------------------------------------
# (old profile, new profile, real application, flows, old label, new label, what changes), from
# shared/fixtures/ndpi-suite/interesting-diffs.md. What changes: the new engine gives the new
# label where the old never did (`appears`), no longer gives the old label (`gone`), or both.
CHANGES = [
    ("ndpi-4.2", "ndpi-4.4", "unknown", "proto == tcp and dst.port == 587", "smtps", "smtp", "both"),
    ("ndpi-4.2", "ndpi-4.4", "smtp", "proto == tcp and dst.port == 25 and tls", "smtp", "smtps", "both"),
    ("ndpi-4.4", "ndpi-4.6", "imaps", "proto == tcp and dst.port == 993", "tls", "imaps", "gone"),
    ("ndpi-4.2", "ndpi-4.6", "pop3", "proto == tcp and dst.port == 110 and tls", "pop3", "pop3s", "both"),
    ("ndpi-4.8", "ndpi-4.10", "openvpn", "proto == tcp and dst.port == 443", "tls", "openvpn", "gone"),
    ("ndpi-4.2", "ndpi-4.10", "openvpn", "proto == tcp and dst.port == 443", "tls", "openvpn", "gone"),
    ("ndpi-4.2", "ndpi-4.10", "openvpn", "proto == udp and dst.port == 443", "unknown", "openvpn", "gone"),
    ("ndpi-4.8", "ndpi-4.10", "telegram", "proto == udp", "openvpn", "telegram", "gone"),
    ("ndpi-4.2", "ndpi-5.0", "gnutella", "proto == udp and dst.port == 1194", "openvpn", "gnutella", "gone"),
    ("ndpi-4.2", "ndpi-5.0", "whatsapp", "proto == tcp and dst.port == 5222", "facebook", "whatsapp", "gone"),
    ("ndpi-4.2", "ndpi-4.10", "whatsapp", "proto == udp", "stun", "rtp", "appears"),
    ("ndpi-4.2", "ndpi-4.6", "bittorrent", "proto == tcp and dst.port == 6881", "unknown", "bittorrent", "gone"),
    ("ndpi-4.10", "ndpi-5.0", "unknown", "proto == tcp and dst.port == 6881", "unknown", "bittorrent", "appears"),
]


@pytest.mark.parametrize("old, new, app, flows, was, becomes, shows", CHANGES,
                         ids=[f"{c[2]}:{c[4]}->{c[5]}:{c[0]}->{c[1]}" for c in CHANGES])
def test_the_label_change_shows_in_the_diff(tmp_path, old, new, app, flows, was, becomes, shows):
    """A rule per label. `never_new` (the flows never get the new label's outcome) holds under the
    old engine and breaks under the new one, with a flow labelled NEW, where the label appears;
    `never_old` breaks under the old engine with a flow labelled OLD and holds under the new one
    where the old label is gone."""
    policy = write_policy(tmp_path, f"default allow\nrule old_label when app in {{{was}}} then block\n"
                                    f"rule new_label when app in {{{becomes}}} then reset\n")
    spec = write_policy(tmp_path, f"invariant never_new when app == {app} and {flows} require action != reset\n"
                                  f"invariant never_old when app == {app} and {flows} require action != block\n",
                        "spec.dpi")
    code, out, err = run_cli("diff", policy, policy, "--spec", spec, "--profile-old", old, "--profile-new", new,
                             "--format", "json")
    assert code == 1, err
    changes = {s["name"]: s for s in json.loads(out)["status_changes"]}
    assert sorted(changes) == {"both": ["never_new", "never_old"], "gone": ["never_old"], "appears": ["never_new"]}[shows]
    if "never_new" in changes:
        assert (changes["never_new"]["before"], changes["never_new"]["after"]) == ("holds", "violated")
        assert changes["never_new"]["counterexample"]["flow"]["dpi.app"] == becomes
    if "never_old" in changes:
        assert (changes["never_old"]["before"], changes["never_old"]["after"]) == ("violated", "holds")
        assert changes["never_old"]["before_counterexample"]["flow"]["dpi.app"] == was


def test_the_truth_file_example_of_the_docs_reads():
    """docs/profiles.md, "The truth file": the example is a truth file as the build reads it."""
    page = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    example = page.split("### The truth file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    truth = parse_truth(example, "docs/profiles.md", CATALOGUE)
    assert [r.app for r in truth.rows] == ["openvpn", "whatsapp", "dns", None]
    assert truth.not_decided == (("some_capture.pcap", "what it carries cannot be told from its name or ports"),)
