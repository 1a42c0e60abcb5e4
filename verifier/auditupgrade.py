"""An upgrade, clause by clause: the policy audited under the old engine's profile and under the
new one's (`audit --profile-old A --profile-new B`), and, when the upgrade also brings new rules
(`--policy-old`, a firmware's own rule set), the old policy under the old engine against the new
policy under the new engine. A clause the upgrade breaks held before and is violated after; the
audit after carries its counterexample. Rendered by dpipolicy/auditsections.py."""
from __future__ import annotations

from dataclasses import dataclass

from .results import HOLDS, VIOLATED


@dataclass(frozen=True)
class Upgrade:
    old_profile: str                  # the profiles' names ("exact" for none)
    new_profile: str
    before: dict[str, str]            # clause id -> its verdict before the upgrade
    old_policy: str | None = None     # with --policy-old: the two policies' files, as given
    new_policy: str | None = None

    @property
    def what(self) -> str:
        return "engine upgrade" if self.old_policy is None else "upgrade"

    @property
    def old(self) -> str:
        """What ran before, in words: the profile, or the policy under it."""
        return self.old_profile if self.old_policy is None else f"{_file_name(self.old_policy)} under {self.old_profile}"

    @property
    def new(self) -> str:
        return self.new_profile if self.new_policy is None else f"{_file_name(self.new_policy)} under {self.new_profile}"


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ClauseChange:
    clause: str
    before: str
    after: str

    @property
    def broken(self) -> bool:
        return self.before == HOLDS and self.after == VIOLATED

    @property
    def fixed(self) -> bool:
        return self.before == VIOLATED and self.after == HOLDS


def upgrade(old_profile: str, new_profile: str, before, policies: tuple[str, str] | None = None) -> Upgrade:
    """The upgrade from an audit under the old engine (`before`, an audit.Audit) to another engine,
    and from one policy to another when `policies` (old, new) are given."""
    old_policy, new_policy = policies or (None, None)
    return Upgrade(old_profile, new_profile, {c.clause.id: c.verdict for c in before.clauses}, old_policy, new_policy)


def changes(up: Upgrade, after) -> tuple[ClauseChange, ...]:
    """Each clause of the audit under the new engine (`after`), with its verdict under the old one."""
    return tuple(ClauseChange(c.clause.id, up.before[c.clause.id], c.verdict) for c in after.clauses)
