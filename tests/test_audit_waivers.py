"""`dpipolicy audit --waivers`: waived clauses (shown with who, why and until when), partial
coverage, expired and unmatched waivers as findings, the date used for today, every format,
and the errors of waiver files (docs/audit.md, "Waivers"; E630-E638)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dpipolicy.verifier import properties
from helpers import AUDIT_INVARIANTS, AUDIT_POLICY, ROOT, TimedOutScope, run_cli, write_policy

POLICY, SPEC = AUDIT_POLICY, AUDIT_INVARIANTS
TERMS = """version: 1
title: Example terms
specs: [spec.dpi]
clauses:
  - {id: mail, text: We never block mail submission., source: Terms 1, invariants: [submission_open]}
  - {id: video, text: Video is never slowed., source: Terms 2, invariants: [video_untouched]}
"""


def waiver(target: str = "clause: video", scope: str = "rule: slow_video", expires: str = "2011-12-31") -> str:
    return f"""version: 1
waivers:
  - {target}
    {scope}
    owner: Video team
    reason: the optimiser is being renegotiated
    expires: {expires}
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DPIPOLICY_TODAY", raising=False)
    write_policy(tmp_path, POLICY)
    write_policy(tmp_path, SPEC, "spec.dpi")
    write_policy(tmp_path, TERMS, "terms.yaml")


def audit(waivers: str, *extra: str, today: str = "2011-10-01"):
    Path("waivers.yaml").write_text(waivers, encoding="utf-8")
    return run_cli("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "waivers.yaml", "--today", today,
                   *extra)


def test_a_waived_clause_is_shown_with_who_why_and_until_when_and_does_not_fail():
    code, out, _ = audit(waiver())
    assert code == 0
    assert "summary: 2 clauses: 1 held, 0 violated, 0 unknown, 1 waived" in out
    assert "clause video: waived" in out
    assert ('  waived: invariant video_untouched by the waiver of clause video, owner Video team, expires 2011-12-31: '
            '"the optimiser is being renegotiated" (waivers.yaml:3:5)') in out
    assert "      accepting flows decided by rule `slow_video`" in out
    assert "  invariant violated: video_untouched" in out        # the violation stays visible


def test_a_region_waives_only_what_it_contains_and_says_which_part_is_not_waived():
    code, out, _ = audit(waiver(scope='region: "app == youtube and proto == tcp"'))
    assert code == 1 and "clause video: violated" in out
    assert "  partly waived: invariant video_untouched" in out
    not_waived = out.split("these violating flows are outside every waiver (1 box):\n", 1)[1].splitlines()[0]
    assert "proto != tcp" in not_waived and "[decided by slow_video]" in not_waived
    code, out, _ = audit(waiver(scope='region: "app == youtube"'))
    assert code == 0 and "clause video: waived" in out


def test_rule_and_region_together_must_both_accept_a_flow():
    code, out, _ = audit(waiver(scope='rule: relay_only\n    region: "app == youtube"'))
    assert code == 1 and "clause video: violated" in out
    assert "MATCHES NO VIOLATION: waiver of clause video" in out


def test_an_expired_waiver_does_not_apply_and_is_reported_loudly():
    code, out, _ = audit(waiver(expires="2011-09-30"))
    assert code == 1 and "clause video: violated" in out
    assert "  EXPIRED on 2011-09-30, no longer applies: waiver of clause video, owner Video team" in out
    code, out, _ = audit(waiver(expires="2011-10-01"))           # the expiry day is the last it applies
    assert code == 0 and "clause video: waived" in out


def test_today_comes_from_the_environment_when_not_given(monkeypatch):
    Path("waivers.yaml").write_text(waiver(), encoding="utf-8")
    monkeypatch.setenv("DPIPOLICY_TODAY", "2012-01-01")
    code, out, _ = run_cli("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "waivers.yaml")
    assert code == 1 and "(today is 2012-01-01)" in out and "EXPIRED on 2011-12-31" in out
    monkeypatch.setenv("DPIPOLICY_TODAY", "soon")
    code, _, err = run_cli("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "waivers.yaml")
    assert code == 2 and "error[E636]: DPIPOLICY_TODAY must be a date written YYYY-MM-DD, not `soon`" in err


def test_a_waiver_that_matches_no_violation_is_a_finding():
    code, out, _ = audit(waiver(target="clause: mail", scope="rule: relay_only"))
    assert code == 1
    assert ("  MATCHES NO VIOLATION: waiver of clause mail, owner Video team, expires 2011-12-31: "
            '"the optimiser is being renegotiated" (waivers.yaml:3:5), '
            "accepting flows decided by rule `relay_only`") in out


def test_a_waiver_of_the_item_waives_its_clause():
    code, out, _ = audit(waiver(target="invariant: video_untouched"))
    assert code == 0 and "clause video: waived" in out


def _schema() -> dict:
    page = (ROOT / "docs/audit.md").read_text(encoding="utf-8")
    return json.loads(page.split("<!-- the JSON schema -->\n```json\n", 1)[1].split("```", 1)[0])


def test_every_format_shows_the_waivers_and_json_validates():
    _, out, _ = audit(waiver(scope='region: "app == youtube and proto == tcp"'), "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    (video,) = [c for c in data["clauses"] if c["id"] == "video"]
    (item,) = video["waivers"]
    assert item["waived"] is False and item["by"][0]["owner"] == "Video team"
    assert "proto != tcp" in item["not_waived"][0]["text"]
    _, out, _ = audit(waiver(), "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    assert data["summary"]["waived"] == 1 and data["waivers"]["today"] == "2011-10-01"
    _, md, _ = audit(waiver(), "--format", "markdown")
    assert "| `video` | ☑️ waived |" in md and "owner Video team" in md
    _, html, _ = audit(waiver(), "--format", "html")
    assert '<span class="verdict waived">waived</span>' in html and "owner Video team" in html


@pytest.mark.parametrize("text, code, location, message", [
    ("version: 1\nwaivers: [", "E630", "waivers.yaml:2:11", "invalid YAML"),
    ("version: 2\nwaivers: []\n", "E631", "waivers.yaml:1:10", "waiver file version `2` is not supported"),
    (waiver().replace("    owner: Video team\n", ""), "E632", "waivers.yaml:3:5", "a waiver has no `owner`"),
    (waiver().replace("owner:", "ownr:"), "E633", "waivers.yaml:5:5", "unknown key `ownr` in a waiver"),
    (waiver().replace("owner: Video team", "owner: [a]"), "E634", "waivers.yaml:5:12",
     "`owner` must be a non-empty string"),
    (waiver().replace("    owner: Video team\n", "    owner: Video team\n    owner: B\n"), "E635", "waivers.yaml:6:5",
     "`owner` appears twice in a waiver"),
    (waiver(expires="31/12/2011"), "E636", "waivers.yaml:7:14", "`expires` must be a date written YYYY-MM-DD"),
    (waiver(target="clause: vidoe"), "E637", "waivers.yaml:3:5", "a waiver names clause `vidoe`, which the audit"),
    (waiver(scope="rule: slow"), "E637", "waivers.yaml:3:5", "a waiver names rule `slow`, which the policy"),
    (waiver(scope="reason2: x").replace("    reason2: x\n", ""), "E638", "waivers.yaml:3:5",
     "a waiver says no flows it accepts"),
    (waiver(target="clause: video\n    test: x"), "E638", "waivers.yaml:3:5", "a waiver names more than one of"),
    (waiver(scope='region: "dst.prot == 25"'), "E101", "waivers.yaml:4:14", "unknown field `dst.prot`"),
    (waiver(scope='region: "dst.port == == 25"'), "E001", "waivers.yaml:4:26", "syntax error"),
])
def test_waiver_file_errors_have_codes_and_locations(text, code, location, message):
    rc, _, err = audit(text)
    assert rc == 2 and "Traceback" not in err
    assert f"error[{code}]: {message}" in err and f" --> {location}" in err, err


def test_a_missing_waiver_file_is_e630():
    rc, _, err = run_cli("audit", "policy.dpi", "--terms", "terms.yaml", "--waivers", "none.yaml")
    assert rc == 2 and "error[E630]: cannot read waiver file `none.yaml`: no such file or directory" in err


def binge_on(waivers: str, *extra: str):
    """The faulty Binge On policy (partner video free and fast, other video throttled) audited
    with `waivers`."""
    Path("w.yaml").write_text(waivers, encoding="utf-8")
    return run_cli("audit", ROOT / "examples/terms/tmobile-video-faulty.dpi",
                   "--terms", ROOT / "examples/terms/tmobile-video.terms.yaml", "--waivers", "w.yaml",
                   "--today", "2011-10-01", *extra)


def test_an_equal_treatment_violation_is_waived_when_every_pair_has_a_waived_flow():
    """Every violating pair is a partner's video and another video: excluding the partner rule's
    flows from both flows of a pair leaves only other video, all throttled alike."""
    code, out, _ = binge_on(waiver(target="clause: binge-on-speed", scope="rule: partner_video"))
    assert code == 0 and "clause binge-on-speed: waived" in out
    assert "  waived: invariant video_services_alike by the waiver of clause binge-on-speed" in out
    assert "  waived: invariant video_at_1_5_mbps by the waiver of clause binge-on-speed" in out
    # the other side of every pair waives the pairs, not the flows the other invariant forbids
    code, out, _ = binge_on(waiver(target="clause: binge-on-speed", scope="rule: other_video"))
    assert code == 1 and "clause binge-on-speed: violated" in out
    assert "  waived: invariant video_services_alike by the waiver of clause binge-on-speed" in out
    assert "  not waived: invariant video_at_1_5_mbps: no waiver is proved to accept any of its violations" in out
    assert "MATCHES NO VIOLATION" not in out


def test_an_equal_treatment_violation_partly_waived_shows_the_pairs_left():
    code, out, _ = binge_on(waiver(target="invariant: video_services_alike", scope='region: "app == netflix"'))
    assert code == 1 and "clause binge-on-speed: violated" in out
    assert "  partly waived: invariant video_services_alike by the waiver of invariant video_services_alike" in out
    assert "      accepting pairs with a flow where app == netflix" in out
    left = out.split("  not waived: invariant video_services_alike: these violating pairs are outside every waiver "
                     "(1 box):\n", 1)[1].splitlines()
    assert left[0] == ("      - every flow: first app == prime_video [decided by partner_video], second app in "
                       "{youtube, twitch, tiktok, rtsp} [decided by other_video]")
    first, second = (next(line for line in left if line.startswith(f"      {side} tcp "))
                     for side in ("first: ", "second:"))
    assert "app=prime_video" in first and "app=youtube" in second
    code, out, _ = binge_on(waiver(target="invariant: video_services_alike", scope='region: "app == netflix"'),
                            "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    item, other = data["clauses"][0]["waivers"]
    assert other["item"] == "video_at_1_5_mbps" and other["by"] == [] and "rest" not in other
    assert item["item"] == "video_services_alike" and item["waived"] is False and item["rest"]["status"] == "violated"
    assert item["not_waived"] == [{"first_rule": "partner_video", "second_rule": "other_video",
                                   "text": "every flow: first app == prime_video [decided by partner_video], second "
                                           "app in {youtube, twitch, tiktok, rtsp} [decided by other_video]"}]
    assert item["rest"]["pair"]["flow"]["app"] == "youtube"
    for fmt in ("markdown", "html"):
        _, shown, _ = binge_on(waiver(target="invariant: video_services_alike", scope='region: "app == netflix"'),
                               "--format", fmt)
        assert "not waived: invariant video_services_alike: these violating pairs are outside every waiver" in shown
        assert "first app == prime_video [decided by partner_video]" in shown


def test_a_waiver_accepts_a_pair_by_either_flow():
    """A waiver of the flows of one side only (the videos other than the partners') accepts every
    pair, each having such a flow; a waiver of flows no pair has (https is not video) none."""
    code, out, _ = binge_on(waiver(target="invariant: video_services_alike",
                                   scope='region: "app in {youtube, twitch, tiktok, rtsp}"'))
    assert code == 1 and "  waived: invariant video_services_alike by the waiver of" in out
    code, out, _ = binge_on(waiver(target="invariant: video_services_alike", scope='region: "app == https"'))
    assert code == 1 and "MATCHES NO VIOLATION: waiver of invariant video_services_alike" in out


PORTS = "".join(f"rule p{p} when dst.port == {p} and app == http then throttle {p}kbps\n" for p in range(1, 81))
WEB_TERMS = """version: 1
title: Web terms
specs: [web.spec.dpi]
clauses:
  - {id: web, text: Web browsing is never slowed., source: Terms 3, invariants: [web_untouched]}
"""


def test_a_violation_whose_list_is_capped_is_waived_by_proof():
    """80 rules slow the web, one port each: the list of violating boxes stops at 64, and the
    proof on the flows the waiver leaves decides without it."""
    write_policy(Path("."), "policy web version \"1\"\ndefault allow\n" + PORTS, "web.dpi")
    write_policy(Path("."), "invariant web_untouched when app == http require action == allow\n", "web.spec.dpi")
    write_policy(Path("."), WEB_TERMS, "web.terms.yaml")
    Path("w.yaml").write_text(waiver(target="clause: web", scope='region: "dst.port <= 100"'), encoding="utf-8")

    def web(*extra):
        return run_cli("audit", "web.dpi", "--terms", "web.terms.yaml", "--waivers", "w.yaml", "--today", "2011-10-01",
                       *extra)
    code, out, _ = web("--format", "json")
    result = json.loads(out)["clauses"][0]["results"][0]
    assert result["status"] == "violated" and len(result["region"]) == 64 and result["region_complete"] is False
    assert code == 0 and json.loads(out)["clauses"][0]["verdict"] == "waived"
    code, out, _ = web()
    assert code == 0 and ("      its list of violating flows is capped: the waivers are proved to accept all of them, "
                          "not only those listed") in out
    Path("w.yaml").write_text(waiver(target="clause: web", scope='region: "dst.port <= 5"'), encoding="utf-8")
    code, out, _ = web()
    assert code == 1 and ("  not waived: invariant web_untouched: these violating flows are outside every waiver "
                          "(64 boxes; list capped, more flows violate):") in out
    code, out, _ = web("--format", "json")
    (item,) = json.loads(out)["clauses"][0]["waivers"]
    assert len(item["not_waived"]) == 64 and item["rest"]["region_complete"] is False
    assert item["not_waived"][0] == {"rule": "p6", "text": "dst.port == 6 and app == http"}
    Path("w.yaml").write_text(waiver(target="clause: web", scope='region: "dst.port <= 70"'), encoding="utf-8")
    code, out, _ = web()
    assert code == 1 and "clause web: violated" in out
    assert "  not waived: invariant web_untouched: these violating flows are outside every waiver (10 boxes):" in out
    assert "      - dst.port == 71 and app == http  [decided by p71]" in out
    assert "      - dst.port == 80 and app == http  [decided by p80]" in out


UNSURE_POLICY = """policy web version "1"
default allow
rule tcp_open when proto == tcp and dst.port != 443 then allow
rule slow_video when app == youtube then throttle 1Mbps
"""
UNSURE_SPEC = """invariant submission_open "Mail submission is never blocked"
    when dst.port == 587 and app == submission require action == allow
invariant video_untouched "Video is never slowed"
    when app == youtube require action == allow
"""


def test_no_answer_from_the_solver_leaves_the_violation_not_waived_and_says_so(monkeypatch):
    """The violation is found without the solver (YouTube on 443 gets past the tcp rule); what
    the waiver of 443 leaves, and whether the waiver of 8080 meets a violation, only z3 can
    tell, and every query times out."""
    write_policy(Path("."), UNSURE_POLICY)
    write_policy(Path("."), UNSURE_SPEC, "spec.dpi")
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    text = waiver(target="clause: video", scope='region: "dst.port == 443"') + waiver(
        target="clause: video", scope='region: "dst.port == 8080"').split("waivers:\n", 1)[1]
    code, out, _ = audit(text)
    assert code == 1 and "clause video: violated" in out
    assert "  partly waived: invariant video_untouched by the waiver of clause video" in out
    assert ("  not waived: invariant video_untouched: not proved that the waivers accept every violation: the solver "
            "gave no answer: timeout on the flows rule slow_video (policy.dpi:4:1) decides; raise --timeout") in out
    assert "1 not known to match one" in out
    assert ("  NOT KNOWN TO MATCH A VIOLATION: waiver of clause video, owner Video team, expires 2011-12-31: "
            '"the optimiser is being renegotiated" (waivers.yaml:8:5), accepting flows where dst.port == 8080: the '
            "solver gave no answer on invariant video_untouched: timeout on the flows rule slow_video "
            "(policy.dpi:4:1) decides; raise --timeout") in out
    code, out, _ = audit(text, "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    assert data["waivers"]["unsure"][0]["waiver"]["region"] == "dst.port == 8080"
    (item,) = [c for c in data["clauses"] if c["id"] == "video"][0]["waivers"]
    assert item["waived"] is False and item["rest"]["status"] == "unknown" and item["why_not"].startswith("not proved")


def test_a_waiver_not_known_to_match_makes_the_run_unknown(monkeypatch):
    write_policy(Path("."), UNSURE_POLICY)
    write_policy(Path("."), UNSURE_SPEC, "spec.dpi")
    text = waiver(target="clause: video", scope="rule: slow_video") + waiver(
        target="clause: video", scope='region: "dst.port == 8080"').split("waivers:\n", 1)[1]
    code, out, _ = audit(text)
    assert code == 0 and "clause video: waived" in out
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    code, out, _ = audit(text)
    assert code == 3 and "clause video: waived" in out and "NOT KNOWN TO MATCH A VIOLATION" in out


def test_under_a_profile_regions_read_the_engine_label():
    """nDPI 4.2 labels BitTorrent on UDP `unknown`, so the August policy breaks fair use under it;
    a waiver of `dpi.app == unknown` accepts it there, one of `app == unknown` (the real
    application) matches none of it."""
    def run(region: str):
        Path("w.yaml").write_text(waiver(target="clause: fair-use", scope=f'region: "{region}"'), encoding="utf-8")
        return run_cli("audit", ROOT / "examples/uk-mobile/policy-2011-08.dpi", "--terms",
                       ROOT / "examples/uk-mobile/terms.yaml", "--profile", "ndpi-4.2", "--waivers", "w.yaml",
                       "--today", "2011-10-01")
    code, out, _ = run("dpi.app == unknown")
    assert code == 0 and "clause fair-use: waived" in out
    code, out, _ = run("app == unknown")
    assert code == 1 and "clause fair-use: violated" in out and "MATCHES NO VIOLATION: waiver of clause fair-use" in out
