"""`dpipolicy audit`: terms files and their errors, clause verdicts, every output format, exit
codes, and the showcases (docs/audit.md)."""
from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser

import jsonschema
import pytest

from dpipolicy.verifier import properties

from pathlib import Path

from helpers import AUDIT_INVARIANTS, AUDIT_POLICY, ROOT, TimedOutScope, run_cli, write_policy

POLICY = AUDIT_POLICY
SPEC = AUDIT_INVARIANTS + "test relay_blocked given proto == tcp and dst.port == 25 expect block\n"
TERMS = """version: 1
title: Example terms
specs: [spec.dpi]
clauses:
  - id: mail
    text: We never block mail submission.
    source: Terms, section 1
    invariants: [submission_open]
    tests: [relay_blocked]
  - id: video
    text: "Video is <never> slowed & stays sharp."
    source: Terms, section 2
    invariants: [video_untouched]
"""
MAIL_ONLY = TERMS.split("  - id: video")[0]
ONE_TEST = """version: 1
title: T
specs: [spec.dpi]
clauses:
  - {id: c, text: words, source: here, tests: [other]}
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # locations read `terms.yaml:3:5`
    write_policy(tmp_path, POLICY)
    write_policy(tmp_path, SPEC, "spec.dpi")


def audit(*extra: str, terms: str = TERMS):
    write_policy(Path("."), terms, "terms.yaml")
    return run_cli("audit", "policy.dpi", "--terms", "terms.yaml", *extra)


# ----- verdicts and exit codes ----------------------------------------------------------------
def test_a_clause_is_violated_when_any_item_is_and_holds_when_all_are_proved():
    code, out, _ = audit("--format", "json")
    assert code == 1                       # as `check`: something violated
    data = json.loads(out)
    verdicts = {c["id"]: c["verdict"] for c in data["clauses"]}
    assert verdicts == {"mail": "holds", "video": "violated"}
    assert data["summary"] == {"clauses": 2, "holds": 1, "violated": 1, "unknown": 0}
    (video,) = data["clauses"][1]["results"]
    assert video["counterexample"]["rule"] == "slow_video"
    assert video["counterexample"]["because"] == "video is optimised"
    assert video["counterexample"]["rule_location"] == "policy.dpi:4:1"
    assert [r["text"] for r in video["region"]] == ["dst.port == 443 and app == youtube"]


def test_all_clauses_holding_exits_0():
    write_policy(Path("."), SPEC.split("invariant video_untouched")[0] + SPEC.split("\n")[-2] + "\n", "spec.dpi")
    code, out, _ = audit(terms=MAIL_ONLY)
    assert code == 0
    assert "summary: 1 clause: 1 held, 0 violated, 0 unknown" in out


def test_a_solver_timeout_makes_the_clause_unknown_never_held(monkeypatch):
    monkeypatch.setattr(properties, "Scope", TimedOutScope)
    write_policy(Path("."), """default allow
rule a when dst.port in 1..100 and tls then block
rule b when dst.port in 50..200 and not tls then block
rule c when dst.port in 1..200 then reset
""")
    write_policy(Path("."), "invariant covered when dst.port in 60..90 require action != reset\n",
                 "spec.dpi")
    code, out, _ = audit("--format", "json", terms="""version: 1
title: T
specs: [spec.dpi]
clauses:
  - {id: c, text: words, source: here, invariants: [covered]}
""")
    assert code == 3
    (clause,) = json.loads(out)["clauses"]
    assert clause["verdict"] == "unknown"
    assert clause["results"][0]["reason"] == "timeout on the flows rule c (policy.dpi:4:1) decides"


def test_invariants_no_clause_names_are_reported_and_count_as_in_check():
    code, out, _ = audit(terms=MAIL_ONLY)
    assert code == 1                       # video_untouched is violated, named by a clause or not
    assert "summary: 1 clause: 1 held, 0 violated, 0 unknown" in out
    assert "not named by any clause:\n  invariant violated: video_untouched" in out


def test_translation_validation_unknown_makes_held_clauses_unknown(monkeypatch):
    from dpipolicy.verifier import validate
    monkeypatch.setattr(validate, "Scope", TimedOutScope)
    write_policy(Path("."), "default allow\nrule r when dst.port != 25 and dst.port != 80 then block\n")
    write_policy(Path("."), "test other given dst.port == 25 expect allow\n", "spec.dpi")
    code, out, _ = audit("--format", "json", terms=ONE_TEST)
    assert code == 3
    (clause,) = json.loads(out)["clauses"]
    assert clause["verdict"] == "unknown"
    assert clause["reason"].startswith("compiled table not proved equal to the policy")


# ----- terms-file errors ------------------------------------------------------------------------
@pytest.mark.parametrize("terms, code, location, message", [
    ("version: 1\ntitle: [\n", "E600", "terms.yaml:3:1", "invalid YAML"),
    (TERMS.replace("version: 1", "version: 2"), "E601", "terms.yaml:1:10", "terms file version `2` is not supported"),
    (TERMS.replace("title: Example terms\n", ""), "E602", "terms.yaml:1:1", "the terms file has no `title`"),
    (TERMS.replace("    source: Terms, section 2\n", ""), "E602", "terms.yaml:10:5", "a clause has no `source`"),
    (TERMS.replace("    invariants: [video_untouched]", "    invariant: [video_untouched]"), "E603", "terms.yaml:13:5",
     "unknown key `invariant` in a clause"),
    (TERMS.replace("specs: [spec.dpi]", "specs: spec.dpi"), "E604", "terms.yaml:3:8", "`specs` must be a list"),
    (TERMS.replace("id: video", "id: mail"), "E605", "terms.yaml:10:5", "clause id `mail` is used twice"),
    (TERMS.replace("[video_untouched]", "[video_untouchd]"), "E606", "terms.yaml:13:18",
     "clause `video`: no invariant `video_untouchd` in the listed specs"),
    (TERMS.replace("[spec.dpi]", "[../spec.dpi]"), "E607", "terms.yaml:3:9",
     "spec file `../spec.dpi` is outside the terms file's folder"),
    (TERMS.replace("[spec.dpi]", "[specs.dpi]"), "E607", "terms.yaml:3:9", "spec file `specs.dpi` does not exist"),
    (TERMS.replace("    invariants: [video_untouched]\n", ""), "E608", "terms.yaml:10:5",
     "clause `video` names no invariant or test"),
])
def test_terms_file_errors_have_codes_and_locations(terms, code, location, message):
    exit_code, out, err = audit(terms=terms)
    assert exit_code == 2 and out == ""
    assert f"error[{code}]: {message}" in err
    assert f" --> {location}\n" in err
    assert "Traceback" not in err


def test_a_test_listed_as_an_invariant_says_where_it_belongs():
    _, _, err = audit(terms=TERMS.replace("[video_untouched]", "[relay_blocked]"))
    assert "help: `relay_blocked` is a test: list it under `tests`" in err


def test_every_problem_of_a_terms_file_is_reported_in_file_order():
    _, _, err = audit(terms=TERMS.replace("version: 1", "version: 3").replace("id: video", "id: mail"))
    assert err.index("E601") < err.index("E605") and "2 errors" in err


# ----- formats ----------------------------------------------------------------------------------
class _Page(HTMLParser):
    """Collects the text and the tags of an HTML page, and anything that would reach out."""

    def __init__(self):
        super().__init__()
        self.text, self.tags, self.outside = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and not (value or "").startswith("#"):
                self.outside.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_one_self_contained_page_with_every_clause():
    code, _, err = audit("-o", "report.html")
    assert code == 1
    assert err == "wrote the audit to report.html: 2 clauses: 1 held, 1 violated, 0 unknown\n"
    page = _Page()
    page.feed(Path("report.html").read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert "script" not in page.tags and "link" not in page.tags and page.outside == []
    assert "style" in page.tags
    for words in ("We never block mail submission.", "Video is <never> slowed & stays sharp.", "Terms, section 2",
                  "video is optimised", "policy.dpi:4:1", "dst.port == 443 and app == youtube [decided by slow_video]"):
        assert words in text
    assert re.search(r"1\s*held.*1\s*violated.*0\s*unknown", text, re.S)


def test_markdown_has_a_summary_table_and_the_evidence():
    _, out, _ = audit("--format", "markdown")
    assert "**2 clauses: 1 held, 1 violated, 0 unknown**" in out
    assert "| `video` | ❌ violated | ❌ `video_untouched` |" in out
    assert "> We never block mail submission." in out
    assert '       because "video is optimised"' in out


def test_json_validates_against_the_schema_of_docs_audit_md():
    schema = json.loads(_schema_block())
    for terms in (TERMS, ONE_TEST):
        _, out, _ = audit("--format", "json", "-o", "report.json", terms=terms)
        jsonschema.validate(json.loads(Path("report.json").read_text(encoding="utf-8")), schema)


def test_json_of_an_equal_treatment_clause_has_the_pair_and_validates(tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples)
    code, out, _ = run_cli("audit", examples / "terms/tmobile-video-faulty.dpi",
                           "--terms", examples / "terms/tmobile-video.terms.yaml", "--format", "json")
    assert code == 1
    data = json.loads(out)
    jsonschema.validate(data, json.loads(_schema_block()))
    (alike,) = [r for r in data["clauses"][0]["results"] if r["name"] == "video_services_alike"]
    assert {alike["counterexample"]["rule"], alike["pair"]["rule"]} == {"partner_video", "other_video"}


def _schema_block() -> str:
    page = (ROOT / "docs/audit.md").read_text(encoding="utf-8")
    return page.split("<!-- the JSON schema -->\n```json\n", 1)[1].split("```", 1)[0]


# ----- the showcases ------------------------------------------------------------------------------
def test_uk_mobile_september_2011_breaks_the_email_submission_clause():
    code, out, _ = run_cli("audit", ROOT / "examples/uk-mobile/policy-2011-09.dpi",
                           "--terms", ROOT / "examples/uk-mobile/terms.yaml", "--format", "json")
    assert code == 1
    data = json.loads(out)
    verdicts = {c["id"]: c["verdict"] for c in data["clauses"]}
    assert verdicts["email-submission"] == "violated"
    assert verdicts["imaps"] == verdicts["vpn-addon"] == verdicts["fair-use"] == "holds"
    (clause,) = [c for c in data["clauses"] if c["id"] == "email-submission"]
    broken = clause["results"][0]
    assert broken["name"] == "auth_smtp_third_party_never_blocked"
    assert broken["counterexample"]["rule"] == "antispam_smtp_family"
    assert broken["counterexample"]["because"].startswith("firmware 2011-09")


def test_uk_mobile_august_2011_keeps_every_clause():
    code, out, _ = run_cli("audit", ROOT / "examples/uk-mobile/policy-2011-08.dpi",
                           "--terms", ROOT / "examples/uk-mobile/terms.yaml")
    assert code == 0
    assert "summary: 5 clauses: 5 held, 0 violated, 0 unknown" in out


TERMS_CASES = ("ee-p2p-peak", "three-tethering", "three-eu-roaming", "eu-zero-rating-cap", "tmobile-video")


@pytest.mark.parametrize("case", TERMS_CASES)
def test_examples_terms_hold_for_the_policy_and_are_violated_by_the_faulty_one(case):
    terms = ROOT / f"examples/terms/{case}.terms.yaml"
    code, out, _ = run_cli("audit", ROOT / f"examples/terms/{case}.dpi", "--terms", terms, "--format", "json")
    assert code == 0 and all(c["verdict"] == "holds" for c in json.loads(out)["clauses"])
    code, out, _ = run_cli("audit", ROOT / f"examples/terms/{case}-faulty.dpi", "--terms", terms, "--format", "json")
    assert code == 1 and any(c["verdict"] == "violated" for c in json.loads(out)["clauses"])


@pytest.mark.parametrize("case", TERMS_CASES)
def test_examples_terms_quote_what_their_policies_quote(case):
    """Each clause's words are in the policy's header comment (joined across its lines), or are
    said to be paraphrased."""
    import yaml
    terms = yaml.safe_load((ROOT / f"examples/terms/{case}.terms.yaml").read_text(encoding="utf-8"))
    comment = " ".join(line.lstrip("# ").strip() for line in
                       (ROOT / f"examples/terms/{case}.dpi").read_text(encoding="utf-8").splitlines()
                       if line.startswith("#"))
    for clause in terms["clauses"]:
        words = " ".join(clause["text"].split())
        assert "aphrased" in words or words in comment, clause["id"]


def test_html_of_an_equal_treatment_clause_shows_both_flows_and_their_rules():
    code, out, _ = run_cli("audit", ROOT / "examples/terms/eu-zero-rating-cap-faulty.dpi",
                           "--terms", ROOT / "examples/terms/eu-zero-rating-cap.terms.yaml", "--format", "html")
    assert code == 1
    page = _Page()
    page.feed(out)
    text = " ".join(page.text)
    for words in ("Two flows that differ only in app are treated differently", "First flow", "Second flow",
                  "rule music_free", "rule over_cap", "after the 20GB allowance every service is slowed to 64kbps",
                  "« tarif nul »"):
        assert words in text


def test_several_jobs_give_the_same_audit():
    argv = ("audit", ROOT / "examples/uk-mobile/policy-2011-09.dpi", "--terms", ROOT / "examples/uk-mobile/terms.yaml",
            "--format", "json")
    assert run_cli(*argv, "--jobs", "1") == run_cli(*argv, "--jobs", "2")


def test_the_format_follows_the_output_suffix_unless_given():
    audit("-o", "report.md")
    assert Path("report.md").read_text(encoding="utf-8").startswith("## Audit: Example terms\n")
    audit("-o", "report.json")
    assert json.loads(Path("report.json").read_text(encoding="utf-8"))["format"] == "dpipolicy-audit"
    audit("-o", "report.txt", "--format", "html")
    assert Path("report.txt").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
