"""Engine profiles: the shipped ones agree with every labelled flow of the fixtures, and the
loader reports each kind of mistake with its code and location."""
from __future__ import annotations

import fnmatch
import textwrap
import tomllib

import pytest

from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.diagnostics import DiagnosticError
from dpipolicy.dsl.profiles import SHIPPED, load_profile, parse_profile
from dpipolicy.dsl.schema import PROTOCOLS

from fixture_flows import TRUTH, VERSIONS, fixture_flows
from helpers import ROOT

CATALOGUE = load_catalogue()
FLOWS = fixture_flows()


def profile(name: str):
    return load_profile(name, CATALOGUE)


def flow_fields(f) -> dict[str, int]:
    """What a profile's `when` may test: the server's port as dst.port, and tls where known."""
    flow = {"proto": PROTOCOLS[f.proto], "dst.port": f.server_port}
    if f.truth.tls is not None:
        flow["tls"] = int(f.truth.tls)
    return flow


# ----- the shipped profiles against the project's fixtures ----------------------------------
# (the evidence of nDPI's regression suite, and each entry's witness: test_suite_profiles.py)
@pytest.mark.parametrize("name", VERSIONS)
def test_every_observed_label_is_allowed(name):
    p = profile(name)
    wrong = []
    for f in FLOWS:
        label = p.catalogue_label(f.labels[name])
        allowed = p.possible_labels(f.truth.app, flow_fields(f))
        if label is None or label not in allowed:
            wrong.append(f"{f.describe()}: nDPI said {f.labels[name]!r} -> {label}; "
                         f"{f.truth.app} may be {allowed}")
    assert not wrong, "\n".join(wrong)


def test_every_truth_entry_claims_flows():
    from dpipolicy.dsl.truth import read_truth
    used = {f.truth for f in FLOWS}
    assert [r.location for r in read_truth(TRUTH, CATALOGUE).rows if r not in used] == []


def test_the_firmware_upgrade_facts():
    old, new = profile("ndpi-4.2"), profile("ndpi-5.0")
    tcp, udp = PROTOCOLS["tcp"], PROTOCOLS["udp"]
    assert "imaps" in old.possible_labels("openvpn", {"proto": tcp, "dst.port": 993})
    assert "imaps" not in new.possible_labels("openvpn", {"proto": tcp, "dst.port": 993})
    assert "smtps" in old.possible_labels("openvpn", {"proto": tcp, "dst.port": 587})
    assert "imaps" not in old.possible_labels("openvpn", {"proto": tcp, "dst.port": 1194})
    assert old.possible_labels("smtp", {"proto": tcp, "dst.port": 25, "tls": 1}) == ("smtp",)
    assert new.possible_labels("smtp", {"proto": tcp, "dst.port": 25, "tls": 1}) == ("smtps",)
    assert "unknown" in old.possible_labels("openvpn", {"proto": udp})
    assert "unknown" not in new.possible_labels("openvpn", {"proto": udp})
    assert "nordvpn" in new.possible_labels("openvpn", {"proto": udp, "dst.port": 1214})
    assert old.unobservable == new.unobservable == {"smtp.auth"}


def test_exact_labels_everything_as_itself():
    exact = profile("exact")
    assert exact.is_exact and exact.unobservable == frozenset() and exact.ndpi_names == ()
    assert all(exact.possible_labels(app) == (app,) for app in CATALOGUE.app_names)


def test_ndpi_names_fall_back_to_the_master_protocol():
    p = profile("ndpi-5.0")
    assert p.catalogue_label("TLS.ntop") == "tls"
    assert p.catalogue_label("OpenVPN.NordVPN") == "openvpn"
    assert p.catalogue_label("DNS.Facebook") == "dns"


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "exact"])
def test_tls_and_quic_labels_name_the_service_inside(name):
    p = profile(name)
    assert p.catalogue_label("TLS.Facebook") == "facebook"
    assert p.catalogue_label("QUIC.YouTube") == p.catalogue_label("TLS.YouTubeUpload") == "youtube"
    assert p.catalogue_label("QUIC.GMail") == "quic"           # a service the catalogue lacks: the carrier
    assert p.catalogue_label("STUN.WhatsAppCall") == "stun"    # STUN is no carrier: the master
    assert p.catalogue_label("") == p.catalogue_label("Unknown") == "unknown"
    assert p.catalogue_label("Skype_Teams") is None


def test_profiles_ship_in_the_wheel():
    """Every shipped profile matches a package-data glob, so the wheel carries it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["dpipolicy.dsl.data"]
    for name in SHIPPED:
        assert any(fnmatch.fnmatch(f"profiles/{name}.yaml", g) for g in globs), name
        assert (ROOT / "dsl" / "data" / "profiles" / f"{name}.yaml").is_file()


# ----- loader errors ------------------------------------------------------------------------
def errors(text: str) -> list[tuple[str, str, str, str | None]]:
    with pytest.raises(DiagnosticError) as info:
        parse_profile(textwrap.dedent(text), "engine.yaml", CATALOGUE)
    return [(d.code, d.location(), d.message, d.help) for d in info.value.diagnostics]


def test_E400_invalid_yaml():
    [(code, where, message, _)] = errors("version: 1\nlabels: [\n")
    assert code == "E400" and where == "engine.yaml:3:1" and message.startswith("invalid YAML")


def test_E400_unknown_profile_name(tmp_path):
    with pytest.raises(DiagnosticError) as info:
        load_profile("ndpi-42", CATALOGUE)
    [d] = info.value.diagnostics
    assert d.code == "E400" and d.location() == "ndpi-42" and d.help == "did you mean `ndpi-4.2`?"


def test_a_profile_file_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("version: 1\nname: mine\nlabels:\n  ssh:\n    - {label: unknown, how: undetected, "
                    "evidence: lab test}\n", encoding="utf-8")
    p = load_profile(path, CATALOGUE)
    assert p.possible_labels("ssh") == ("unknown",) and p.entries("ssh")[0].location == f"{path}:5:7"


def test_E401_version():
    assert errors("version: 2\nname: x\n") == [
        ("E401", "engine.yaml:1:10", "profile version `2` is not supported", "this dpipolicy reads version 1")]


def test_E402_missing_keys():
    found = errors("""\
        version: 1
        labels:
          openvpn:
            - {label: imaps, how: port}
        """)
    assert [(c, w, m) for c, w, m, _ in found] == [
        ("E402", "engine.yaml:1:1", "the profile has no `name`"),
        ("E402", "engine.yaml:4:7", "a label of `openvpn` has no `evidence`")]


def test_E403_unknown_key():
    [(code, where, message, help)] = errors("version: 1\nname: x\nlables: {}\n")
    assert (code, where, message, help) == ("E403", "engine.yaml:3:1", "unknown key `lables` in the profile",
                                            "did you mean `labels`?")


def test_E404_unknown_field():
    found = errors("""\
        version: 1
        name: x
        unobservable: [smtp.authh, subscriber.plan]
        labels:
          openvpn:
            - {label: imaps, how: port, when: {dst.prot: [993]}, evidence: e}
        """)
    assert [(c, w, h) for c, w, _, h in found] == [
        ("E404", "engine.yaml:3:16", "did you mean `smtp.auth`?"),
        ("E404", "engine.yaml:3:28", "fields: " + ", ".join(
            ["proto", "src.ip", "src.port", "dst.ip", "dst.port", "direction", "tls", "smtp.auth", "tls.sni",
             "flow.tethered"])),
        ("E404", "engine.yaml:6:40", "did you mean `dst.port`?")]


def test_E405_bad_values():
    found = errors("""\
        version: 1
        name: [x]
        labels:
          openvpn:
            - {label: imaps, how: port, when: {proto: tcpp, dst.port: [993]}, evidence: e}
            - {label: smtps, how: port, when: {dst.port: [587, 70000]}, evidence: e}
            - {label: tls, how: port, when: {dst.port: "443-80"}, evidence: e}
            - {label: tls, how: other, when: {tls: 1}, evidence: ""}
          ssh: []
        """)
    assert [(c, w, m) for c, w, m, _ in found] == [
        ("E405", "engine.yaml:2:7", "`name` must be a non-empty string"),
        ("E405", "engine.yaml:5:47", "`tcpp` is not a protocol"),
        ("E405", "engine.yaml:6:56", "`70000` is not a port or a port range"),
        ("E405", "engine.yaml:7:48", "`443-80` is not a port or a port range"),
        ("E405", "engine.yaml:8:44", "`tls` must be true or false, not `1`"),
        ("E405", "engine.yaml:8:58", "`evidence` must be a non-empty string"),
        ("E405", "engine.yaml:9:8", "`ssh` is listed with no labels")]


def test_E406_unknown_application_or_label():
    found = errors("""\
        version: 1
        name: x
        ndpi_names: {IMAPS: imap5}
        labels:
          openvnp:
            - {label: imaps, how: port, evidence: e}
          openvpn:
            - {label: imap5, how: port, evidence: e}
        """)
    assert [(c, w, m, h) for c, w, m, h in found] == [
        ("E406", "engine.yaml:3:21", "nDPI name `IMAPS`: `imap5` is not in the application catalogue",
         "did you mean `imap`?"),
        ("E406", "engine.yaml:5:3", "application `openvnp` is not in the application catalogue",
         "did you mean `openvpn`?"),
        ("E406", "engine.yaml:8:15", "label `imap5` is not in the application catalogue", "did you mean `imap`?")]


def test_E407_how():
    found = errors("""\
        version: 1
        name: x
        labels:
          openvpn:
            - {label: imaps, how: guessed, evidence: e}
            - {label: imaps, how: undetected, evidence: e}
            - {label: unknown, how: port, evidence: e}
        """)
    assert [(c, w) for c, w, _, _ in found] == [("E407", "engine.yaml:5:27"), ("E407", "engine.yaml:6:27"),
                                                ("E407", "engine.yaml:7:29")]
    assert found[0][3] == "one of: detected, other, port, undetected"


def test_E408_duplicates():
    found = errors("""\
        version: 1
        name: x
        unobservable: [smtp.auth, smtp.auth]
        labels:
          openvpn:
            - {label: imaps, how: port, when: {dst.port: 993}, evidence: one}
            - {label: imaps, how: port, when: {dst.port: [993]}, evidence: two}
          openvpn:
            - {label: tls, how: port, evidence: e}
        """)
    assert [(c, w) for c, w, _, _ in found] == [("E408", "engine.yaml:3:27"), ("E408", "engine.yaml:7:7"),
                                                ("E408", "engine.yaml:8:3")]
    assert found[2][2] == "`openvpn` appears twice in `labels`"


def test_all_errors_of_a_file_are_reported_together():
    found = errors("version: 3\nname: x\nlabels:\n  foo:\n    - {label: bar, how: baz, evidence: e}\n")
    assert [c for c, _, _, _ in found] == ["E401", "E406", "E406", "E407"]


def test_only_safe_yaml_is_read():
    found = errors("version: 1\nname: !!python/name:os.system\n")
    assert found[0][:3] == ("E405", "engine.yaml:2:7", "cannot read this value: could not determine a "
                            "constructor for the tag 'tag:yaml.org,2002:python/name:os.system'")


def test_where_no_entry_applies_the_application_is_labelled_as_itself():
    p = parse_profile("version: 1\nname: x\nlabels:\n  openvpn:\n    - {label: imaps, how: port, "
                      "when: {dst.port: 993}, evidence: e}\n", "engine.yaml", CATALOGUE)
    assert p.possible_labels("openvpn", {"dst.port": 993}) == ("imaps",)
    assert p.possible_labels("openvpn", {"dst.port": 1194}) == ("openvpn",)
