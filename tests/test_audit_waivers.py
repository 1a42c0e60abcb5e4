"""`dpipolicy audit --waivers`: waived clauses (shown with who, why and until when), partial
coverage, expired and unmatched waivers as findings, the date used for today, every format,
and the errors of waiver files (docs/audit.md, "Waivers"; E630-E638)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from helpers import AUDIT_INVARIANTS, AUDIT_POLICY, ROOT, run_cli, write_policy

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


def test_an_equal_treatment_violation_is_not_waived_and_says_why(tmp_path):
    Path("w.yaml").write_text(waiver(target="clause: binge-on-speed", scope="rule: other_video"), encoding="utf-8")
    code, out, _ = run_cli("audit", ROOT / "examples/terms/tmobile-video-faulty.dpi",
                           "--terms", ROOT / "examples/terms/tmobile-video.terms.yaml", "--waivers", "w.yaml",
                           "--today", "2011-10-01")
    assert code == 1 and "clause binge-on-speed: violated" in out
    assert ("  not waived: invariant video_services_alike: a violated equal-treatment invariant is a pair of flows: "
            "it cannot be waived") in out
