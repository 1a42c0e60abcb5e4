"""The files mutations start from: every shipped and test `.dpi` file, the JSON rule tables the
shipped policies compile to (and the shipped JSON files), the shipped engine profiles, terms,
waivers and application catalogue.

Each seed carries the other files of its folder unchanged, so imports, the specs a terms file
names and a spec's policy are there when the mutated file is read.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FOLDERS = ("examples", "tests", "dsl/data")
_POLICY = re.compile(r"^\s*default\b", re.M)
_SPEC = re.compile(r"^\s*(invariant|test)\b", re.M)
MINIMAL_POLICY = b"default allow\n"


@dataclass(frozen=True)
class Seed:
    """One file to mutate (`target`, a name in `files`), what it is, and its companions.
    `kind`: policy, spec, table, profile, terms, waivers or catalogue. `policy` names the
    policy a spec, profile, terms or waivers file is checked with."""
    kind: str
    target: str
    files: tuple[tuple[str, bytes], ...]
    policy: str | None = None
    spec: str | None = None
    origin: str = ""


def _shipped(pattern: str) -> list[Path]:
    found = []
    for folder in _FOLDERS:
        found += sorted(p for p in (ROOT / folder).rglob(pattern) if ".venv" not in p.parts)
    return found


def _folder_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())
            if p.is_file() and p.suffix in (".dpi", ".yaml", ".json")}


def _role(text: bytes) -> str:
    """policy (it has a default), spec (invariants or tests) or library (definitions only)."""
    words = text.decode("utf-8", "replace")
    if _POLICY.search(words):
        return "policy"
    return "spec" if _SPEC.search(words) else "library"


def _partner(files: dict[str, bytes], name: str, role: str) -> str | None:
    """The file of `role` beside `name` whose name starts most like it (at least its first
    word): `ee-p2p-peak.spec.dpi` for `ee-p2p-peak-faulty.dpi`."""
    def shared(other: str) -> int:
        return len(os.path.commonprefix([name, other]))
    names = [n for n, text in files.items() if n.endswith(".dpi") and n != name and _role(text) == role]
    first_word = len(re.split(r"[-_.]", name)[0])
    best = max(names, key=shared, default=None)
    return best if best is not None and shared(best) >= max(1, first_word) else None


def _first_policy(files: dict[str, bytes]) -> str | None:
    return next((n for n, text in files.items() if n.endswith(".dpi") and _role(text) == "policy"), None)


def _dpi_seeds() -> list[Seed]:
    seeds = []
    for path in _shipped("*.dpi"):
        files = _folder_files(path)
        origin = str(path.relative_to(ROOT))
        if _role(files[path.name]) == "policy":
            spec = _partner(files, path.name, "spec") or ("spec.dpi" if "spec.dpi" in files else None)
            seeds.append(Seed("policy", path.name, tuple(files.items()), path.name, spec, origin))
            continue
        # a spec, or definitions a policy imports: read as a spec of the policy beside it
        policy = _partner(files, path.name, "policy") or _first_policy(files)
        if policy is None:
            policy, files = "policy.dpi", {**files, "policy.dpi": MINIMAL_POLICY}
        seeds.append(Seed("spec", path.name, tuple(files.items()), policy, path.name, origin))
    return seeds


def _table_seeds(policies: list[Seed]) -> list[Seed]:
    """Rule tables: each shipped policy that compiles, as `compile` writes it, with its spec;
    and the shipped JSON files (a contract, a diff report), which are no tables at all."""
    from dpipolicy import api
    from dpipolicy.compiler.tablefile import table_text
    from dpipolicy.dsl.diagnostics import DiagnosticError
    seeds = []
    for seed in policies:
        if seed.kind != "policy" or not seed.origin.startswith("examples"):
            continue
        try:
            table = api.load(ROOT / seed.origin).table
        except DiagnosticError:
            continue
        spec = seed.spec if seed.spec and "firmware" not in seed.spec else None
        files = dict(seed.files, **{"table.json": table_text(table).encode()})
        seeds.append(Seed("table", "table.json", tuple(files.items()), None, spec, seed.origin + " (compiled)"))
    for path in _shipped("*.json"):
        files = dict(_folder_files(path), **{"table.json": path.read_bytes()})
        seeds.append(Seed("table", "table.json", tuple(files.items()), None, None, str(path.relative_to(ROOT))))
    return seeds


def _yaml_seeds() -> list[Seed]:
    uk = ROOT / "examples" / "uk-mobile"
    uk_files = _folder_files(uk / "spec.dpi")
    seeds = []
    for path in _shipped("*.yaml"):
        origin, text = str(path.relative_to(ROOT)), path.read_bytes()
        if "profiles" in path.parts:
            files = dict(uk_files, **{"profile.yaml": text})
            seeds.append(Seed("profile", "profile.yaml", tuple(files.items()), "policy-2011-08.dpi",
                              "firmware-spec.dpi", origin))
        elif path.name == "applications.yaml":
            files = dict(uk_files, **{"catalogue.yaml": text})
            seeds.append(Seed("catalogue", "catalogue.yaml", tuple(files.items()), "policy-2011-09.dpi",
                              "spec.dpi", origin))
        elif path.name == "waivers.yaml":
            seeds.append(Seed("waivers", path.name, tuple(_folder_files(path).items()), "policy-2011-09.dpi",
                              "terms.yaml", origin))
        elif path.name.endswith("terms.yaml") or path.parent.name == "terms":
            files = _folder_files(path)
            policy = _partner(files, path.name, "policy") or _first_policy(files)
            if path.parent.parent.name == "data":          # the shipped terms: with an example's policy
                policy, files = "policy.dpi", dict(files, **{"policy.dpi": (ROOT / "examples" / "terms" /
                                                                             "eu-zero-rating-cap.dpi").read_bytes()})
            seeds.append(Seed("terms", path.name, tuple(files.items()), policy, None, origin))
    return seeds


@functools.cache
def seeds() -> tuple[Seed, ...]:
    """Every seed, in a fixed order (so an input's number names the same input in every run)."""
    dpi = _dpi_seeds()
    return tuple(dpi + _table_seeds(dpi) + _yaml_seeds())
