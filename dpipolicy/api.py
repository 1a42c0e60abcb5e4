"""The pipeline as functions: load (policy or table, with specs), compile, validate, check."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dpipolicy.compiler.importers import detect
from dpipolicy.compiler.lower import BoxesMemo, lower
from dpipolicy.compiler.retarget import retarget
from dpipolicy.compiler.table import RuleTable
from dpipolicy.compiler.tablefile import read_table
from dpipolicy.dsl.catalogue import Catalogue, load_catalogue
from dpipolicy.dsl.checker import RuleMemo, check_items, check_spec_items
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.loader import load_items
from dpipolicy.dsl.profiles import Profile
from dpipolicy.dsl.reuse import ParseMemo
from dpipolicy.dsl.typed import Policy
from dpipolicy.verifier.approximated import marked
from dpipolicy.verifier.labels import under_profile, unobservable_rules, without_profile
from dpipolicy.verifier.diff import Diff, diff_tables
from dpipolicy.verifier.parallel import beside, check_spec_parallel
from dpipolicy.verifier.properties import TableModel
from dpipolicy.verifier.results import Report, Result
from dpipolicy.verifier.solve import Limits
from dpipolicy.verifier.validate import Validation, relying_on, shared_obligations, validate


@dataclass(frozen=True)
class Loaded:
    """What a command works on: the table, the spec to check, and the policy when it was source."""
    table: RuleTable
    spec: Policy                 # invariants and tests (for a policy: the policy itself)
    policy: Policy | None        # None when the input was a rule table


@dataclass(frozen=True)
class Reading:
    """How to read an input that is a rule set exported from a real enforcement point
    (docs/import.md): its format if detection is not wanted, the hook the table describes, and
    whether approximations are accepted, and the engine contract of dpipolicy's own nftables
    table (`chain`, `approximate` and `contract` apply to rule sets only)."""
    format: str | None = None           # one of detect.FORMATS, or None: told by the content
    chain: str | None = None
    approximate: bool = False
    contract: Path | None = None        # the engine contract an nftables rule set was compiled with


def input_format(path: Path, reading: Reading = Reading()) -> str:
    """What `path` is (detect.FORMATS): a policy, a rule table, or a rule set of some kind."""
    return detect.input_format(path, reading.format)


def is_table(path: Path, reading: Reading = Reading()) -> bool:
    """Whether `path` is read as a rule table (a JSON table, or a rule set imported into one)."""
    return input_format(path, reading) != detect.POLICY


def import_table(path: Path, catalogue: Catalogue, reading: Reading = Reading()) -> RuleTable:
    """The rule table of the rule set in `path` at the hook `reading` names (or its only one)."""
    from dpipolicy.compiler.importers.imported import rule_table
    kind = input_format(path, reading)
    return rule_table(read_ruleset(path, kind, reading), catalogue, reading.chain, reading.approximate)


def read_ruleset(path: Path, kind: str, reading: Reading):
    """The rule set in `path`, under the contract `reading` names, if any."""
    from dpipolicy.compiler.backends.contractfile import read_contract
    contract = read_contract(reading.contract) if reading.contract is not None else None
    return detect.read_ruleset(path, kind, contract)


@dataclass
class Memo:
    """What loading one version of a policy leaves for loading the next (`dpipolicy diff`): each
    item's parse (reuse.py), each rule's checked body (checker.RuleMemo) and each condition's
    match boxes (lower.BoxesMemo). The next version comes out as it does loaded alone."""
    parse: ParseMemo = field(default_factory=ParseMemo)
    rules: RuleMemo = field(default_factory=RuleMemo)
    boxes: BoxesMemo = field(default_factory=BoxesMemo)


def load(path: Path, specs: tuple[Path, ...] = (), catalogues: tuple[Path, ...] = (),
         memo: Memo | None = None, extra: tuple = (), reading: Reading = Reading()) -> Loaded:
    """Read a `.dpi` policy (compiling it), a JSON rule table or a rule set (imported into a table
    as `reading` says), with spec files. Raises DiagnosticError.
    Loads sharing a `memo` parse, check and lower only what the earlier ones did not (two
    versions for a diff); one that finds errors after reusing items is done again without it,
    since a reused item keeps the spans of its first parse inside it (reuse.py), and errors
    must point here. `extra` are spec items parsed elsewhere (a waiver file's regions)."""
    catalogue = load_catalogue(catalogues)
    reused = memo.parse.reused if memo is not None else 0
    try:
        return _load(path, specs, catalogue, memo, extra, reading)
    except DiagnosticError:
        if memo is None or memo.parse.reused == reused:
            raise
    return _load(path, specs, catalogue, None, extra, reading)


def _load(path: Path, specs: tuple[Path, ...], catalogue: Catalogue, memo: Memo | None, extra: tuple = (),
          reading: Reading = Reading()) -> Loaded:
    parse = memo.parse if memo is not None else None
    kind = input_format(path, reading)
    if kind in (detect.POLICY, detect.TABLE) and (reading.chain is not None or reading.approximate
                                                   or reading.contract is not None):
        flag = "--chain" if reading.chain is not None else "--approximate" if reading.approximate else "--contract"
        raise DiagnosticError([Diagnostic("E703", f"{flag} applies to rule sets exported from an enforcement point, "
                                          f"and `{path}` is {detect.DESCRIBED[kind]}", None, location_text=flag,
                                          help=f"leave {flag} out, or name the format with --input-format")])
    if kind != detect.POLICY:
        table = read_table(path, catalogue) if kind == detect.TABLE else import_table(path, catalogue, reading)
        return with_spec(table, specs, catalogue, parse, extra)
    items, _ = load_items(path, specs, parse)
    policy = check_items(items + list(extra), catalogue, memo.rules if memo is not None else None)
    return Loaded(lower(policy, memo.boxes if memo is not None else None), policy, policy)


def with_spec(table: RuleTable, specs: tuple[Path, ...], catalogue: Catalogue, parse: ParseMemo | None = None,
              extra: tuple = ()) -> Loaded:
    """A rule table with spec files checked against it."""
    spec_items = load_items(specs[0], specs[1:], parse)[0] if specs else []
    spec = check_spec_items(spec_items + list(extra), catalogue, table.schema)
    # specs may add names and patterns (server names, interfaces): the table moves onto their schema
    return Loaded(table if spec.schema is table.schema else retarget(table, spec.schema), spec, None)


def lint_ruleset(path: Path, specs: tuple[Path, ...], catalogues: tuple[Path, ...], limits: Limits,
                 reading: Reading = Reading()):
    """Lint a rule set exported from an enforcement point: its rules on the table of one hook
    (verifier/rulesetlint.py), and its spec files."""
    from dpipolicy.compiler.importers.imported import judged_table
    from dpipolicy.verifier.rulesetlint import lint_imported
    catalogue = load_catalogue(catalogues)
    ruleset = read_ruleset(path, input_format(path, reading), reading)
    table, judged, assumed = judged_table(ruleset, catalogue, reading.chain, reading.approximate)
    loaded = with_spec(table, specs, catalogue)
    placed = load_items(specs[0], specs[1:])[0] if specs else []
    return lint_imported(loaded.table, judged, placed, loaded.spec, limits, assumed)


def translation_validation(loaded: Loaded, limits: Limits, shared: frozenset[int] = frozenset()) -> Validation | None:
    """Prove the compiled table equal to the policy (None for a table input: nothing to compare),
    but for the rules at the `shared` places, proved with another version (validate.py)."""
    return None if loaded.policy is None else validate(loaded.policy, loaded.table, limits, shared)


Proof = Callable[[], Validation | None]


def prove(loaded: Loaded, limits: Limits, jobs: int = 1) -> Proof:
    """Translation validation of `loaded`: with `jobs` above 1, started now in a process beside
    this one (which goes on, loading the next version or diffing); else run when asked for.
    Call the result for the validation."""
    return beside(_proof, (loaded, limits), jobs)


def _proof(state: tuple[Loaded, Limits], _) -> Validation | None:
    return translation_validation(*state)


def diff(old: Loaded, new: Loaded, tables: tuple[RuleTable, RuleTable], limits: Limits, jobs: int = 1,
         old_proof: Proof | None = None) -> tuple[Diff, list[Validation | None]]:
    """The diff of two versions' `tables` (as loaded, or as engines run them), and the proof that
    each version's table is its policy. `old_proof` is the old version's, if started before the
    new version was loaded (`prove`). The new version's leaves out the rules it shares with the
    old one (loaded through one api.Memo), so it needs no wait for the old proof: with `jobs`
    above 1 both run beside the diff."""
    new_proof = beside(_proof_of_next, (old, new, limits), jobs)
    result = diff_tables(*tables, limits, jobs)
    old_validation = (old_proof or prove(old, limits))()
    new_validation, shared = new_proof()
    if new_validation is not None and old_validation is not None:
        new_validation = relying_on(new_validation, shared, old_validation)
    return result, [old_validation, new_validation]


def _proof_of_next(state: tuple[Loaded, Loaded, Limits], _) -> tuple[Validation | None, frozenset[int]]:
    """The new version's proof, but for the rules whose obligations are the old version's (their
    places among its rules come back too)."""
    old, new, limits = state
    shared = frozenset() if old.policy is None or new.policy is None else \
        shared_obligations((old.policy, old.table), (new.policy, new.table))
    return translation_validation(new, limits, shared), shared


def as_deployed(loaded: Loaded, profile: Profile | None) -> tuple[RuleTable, Policy]:
    """The table and spec to verify: as an engine with `profile` runs them (None: the exact engine)."""
    if profile is not None:
        unobservable_rules(loaded.table, profile)
    if profile is None or profile.is_exact:
        return loaded.table, without_profile(loaded.spec)
    return under_profile(loaded.table, loaded.spec, profile)


def check_results(deployed: tuple[RuleTable, Policy], limits: Limits, jobs: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Every invariant and test, on the table as deployed (see `as_deployed`), checked by up to
    `jobs` processes (the same results as one); `progress(done, total)` as they finish. A
    table read with --approximate marks the results that depend on its approximations."""
    table, spec = deployed
    return marked(check_spec_parallel(TableModel(table), spec, limits, jobs, progress), table, spec)


def check(loaded: Loaded, limits: Limits, deployed: tuple[RuleTable, Policy] | None = None, jobs: int = 1,
          progress: Callable[[int, int], None] | None = None) -> Report:
    """Translation validation, then every invariant and test on the deployed table (by default,
    as the exact engine runs it); `jobs` and `progress` as for `check_results`."""
    validation = translation_validation(loaded, limits)
    deployed = deployed or as_deployed(loaded, None)
    results = check_results(deployed, limits, jobs, progress)
    return Report(loaded.table.policy_name, results, validation, deployed[0].approximations)


@dataclass(frozen=True)
class KernelSkipped:
    """The kernel check was not run, and why (no nft here, or `--validate=off`)."""
    reason: str
    status: str = "skipped"

    def text(self) -> str:
        return f"skipped: {self.reason}"


def kernel_check(compiled, limits: Limits, mode: str = "auto"):
    """Load `compiled` (an nftables script) into a fresh network namespace, read the kernel's copy
    back and prove it equal to the table the script means (verifier/kernel.py). `mode` auto runs
    it when the kernel can be had here, required makes that an error, off skips it."""
    from dpipolicy.compiler.netns import kernel_unavailable
    if mode == "off":
        return KernelSkipped("--validate=off")
    why = kernel_unavailable()
    if why is not None:
        if mode == "required":
            raise no_kernel(f"the kernel check cannot run here: {why}", "--validate=required",
                            "or drop `--validate=required`")
        return KernelSkipped(f"{why}; the script was not loaded into a kernel")
    from dpipolicy.verifier.kernel import kernel_copy, kernel_equivalence
    return kernel_equivalence(compiled.table, kernel_copy(compiled), limits)


def no_kernel(message: str, where: str, instead: str | None = None) -> DiagnosticError:
    """E503: a command needs nft and a fresh network namespace, and this machine has none."""
    from dpipolicy.dsl.diagnostics import Diagnostic
    help = "install nftables (`apt-get install nftables`) and run where `unshare -rn` works, or as root"
    return DiagnosticError([Diagnostic("E503", message, None, location_text=where,
                                       help=help + (f"; {instead}" if instead else ""))])
