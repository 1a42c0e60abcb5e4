"""Input number -> files and a command line, the same in every run for the same seed.

An input is drawn from its own random stream (`seed:number`), so any one of a million can be
made again alone (`python -m fuzz --seed S --replay N`). A quarter are generated policies
and specs; the rest start from a corpus seed with one to four mutations, given to a command
that reads that kind of file, in one of the formats the command writes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from . import corpus, generate, mutate

TIMEOUT = "5"       # z3's limit per query (--timeout): an unknown answer is an exit code, not a hang
FORMATS = {"check": ("text", "json", "sarif", "junit", "github"), "lint": ("text", "json", "sarif", "junit", "github"),
           "diff": ("text", "json", "markdown", "sarif", "junit", "github"), "compile": ("text", "json"),
           "explain": ("text", "json"), "audit": ("text", "markdown", "html", "json")}
FLOW = b"proto=tcp dst.ip=74.125.206.108 dst.port=587 app=submission tls=true subscriber.plan=payg"
OLD = "old"         # the unmutated version, beside the mutated one, for `diff`


@dataclass(frozen=True)
class Input:
    number: int
    label: str                          # where it came from and how it was changed
    kind: str                           # the corpus seed's kind, or `generated`
    files: dict[str, bytes]
    argv: list[str]

    @property
    def command(self) -> str:
        return self.argv[0]


def make(seed: int, number: int) -> Input:
    rng = random.Random(f"{seed}:{number}")
    if rng.random() < 0.25:
        return _generated(rng, number)
    return _mutated(rng, number)


def _generated(rng: random.Random, number: int) -> Input:
    policy, spec = generate.policy(rng)
    files = {"policy.dpi": policy.encode(), "spec.dpi": spec.encode(),
             "definitions.dpi": b"set shared_ports = { 25, 465 }\n"}
    files[f"{OLD}.dpi"] = _mutations(rng, files["policy.dpi"], "policy.dpi", "policy", files)[0] \
        if rng.random() < 0.7 else files["policy.dpi"]
    argv = _policy_command(rng, "policy.dpi", "spec.dpi" if spec or rng.random() < 0.5 else None, files)
    return Input(number, "generated", "generated", files, argv)


def _mutated(rng: random.Random, number: int) -> Input:
    seeds = corpus.seeds()
    seed = seeds[rng.randrange(len(seeds))]
    files = dict(seed.files)
    original = files[seed.target]
    files[seed.target], how = _mutations(rng, original, seed.target, seed.kind, files)
    stem, dot, suffix = seed.target.rpartition(".")
    files[f"{OLD}.{suffix}"] = original
    argv = _command(rng, seed, files)
    return Input(number, f"{seed.origin}: {how}", seed.kind, files, argv)


def _mutations(rng: random.Random, data: bytes, name: str, kind: str, files: dict) -> tuple[bytes, str]:
    """One to four mutations, each byte-, token- or (for a table) JSON-level; the other file a
    splice draws from is another of the folder's."""
    others = [v for k, v in files.items() if k != name] or [b""]
    done = []
    for _ in range(1 + min(3, int(rng.expovariate(1.2)))):
        level = rng.random()
        other = rng.choice(others)
        if kind == "table" and level < 0.5:
            data, what = mutate.json_level(rng, data), "json"
        elif level < 0.3:
            data, what = mutate.byte_level(rng, data, other), "byte"
        else:
            data, what = mutate.token_level(rng, data, other), "token"
        done.append(what)
    return data, "+".join(done)


def _fmt(rng: random.Random, command: str) -> list[str]:
    chosen = rng.choice(FORMATS[command])
    return [] if chosen == "text" and rng.random() < 0.5 else ["--format", chosen]


def _flow(rng: random.Random) -> str:
    flow = FLOW if rng.random() < 0.6 else mutate.token_level(rng, FLOW, b"")
    return flow.decode("utf-8", "replace")


def _policy_command(rng: random.Random, policy: str, spec: str | None, files: dict) -> list[str]:
    specs = ["--spec", spec] if spec else []
    command = rng.choice(("check", "check", "check", "compile", "lint", "fmt", "explain", "diff"))
    if command == "check":
        return ["check", policy, *specs, *_fmt(rng, "check"), "--jobs", "1", "--timeout", TIMEOUT]
    if command == "compile":
        nft = ["--target", "nftables", "--validate", "off"] if rng.random() < 0.3 else []
        return ["compile", policy, *nft, *_fmt(rng, "compile"), "--timeout", TIMEOUT]
    if command == "lint":
        return ["lint", policy, *specs, *_fmt(rng, "lint"), "--timeout", TIMEOUT]
    if command == "fmt":
        return ["fmt", rng.choice(("--check", "--diff")), policy, *([spec] if spec else [])]
    if command == "explain":
        return ["explain", policy, "--flow", _flow(rng), *_fmt(rng, "explain"), "--timeout", TIMEOUT]
    old = f"{OLD}.{policy.rpartition('.')[2]}"
    sides = [old, policy] if rng.random() < 0.7 else [policy, old]
    fail_on = ["--fail-on", "regression"] if rng.random() < 0.3 else []
    return ["diff", *sides, *specs, *fail_on, *_fmt(rng, "diff"), "--jobs", "1", "--timeout", TIMEOUT]


def _command(rng: random.Random, seed: corpus.Seed, files: dict) -> list[str]:
    """A command that reads the mutated file as what it is."""
    timeout = ["--timeout", TIMEOUT]
    if seed.kind == "policy":
        return _policy_command(rng, seed.target, seed.spec, files)
    if seed.kind == "spec":
        if rng.random() < 0.15:
            return ["fmt", "--check", seed.target]
        command = _policy_command(rng, seed.policy, seed.target, files)
        return command if command[0] not in ("fmt", "compile", "explain") else \
            ["check", seed.policy, "--spec", seed.target, "--jobs", "1", *timeout]
    if seed.kind == "table":
        specs = ["--spec", seed.spec] if seed.spec else []
        command = rng.choice(("check", "check", "explain", "diff"))
        if command == "check":
            return ["check", seed.target, *specs, *_fmt(rng, "check"), "--jobs", "1", *timeout]
        if command == "explain":
            return ["explain", seed.target, "--flow", _flow(rng), *_fmt(rng, "explain"), *timeout]
        return ["diff", f"{OLD}.json", seed.target, *specs, *_fmt(rng, "diff"), "--jobs", "1", *timeout]
    if seed.kind == "profile":
        if rng.random() < 0.3:
            return ["explain", seed.policy, "--profile", seed.target, "--flow", _flow(rng), *timeout]
        return ["check", seed.policy, "--spec", seed.spec, "--profile", seed.target, *_fmt(rng, "check"),
                "--jobs", "1", *timeout]
    if seed.kind == "catalogue":
        return ["check", seed.policy, "--spec", seed.spec, "--catalogue", seed.target, *_fmt(rng, "check"),
                "--jobs", "1", *timeout]
    if seed.kind == "terms":
        return ["audit", seed.policy, "--terms", seed.target, *_fmt(rng, "audit"), "--jobs", "1", *timeout]
    return ["audit", seed.policy, "--terms", seed.spec, "--waivers", seed.target, "--today", "2011-10-01",
            *_fmt(rng, "audit"), "--jobs", "1", *timeout]
