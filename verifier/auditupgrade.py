"""An engine upgrade, clause by clause: the same policy audited under the old engine's profile and
under the new one's (`audit --profile-old A --profile-new B`). A clause the upgrade breaks held
under the old engine and is violated under the new one; the new engine's audit carries its
counterexample. Rendered by dpipolicy/auditsections.py."""
from __future__ import annotations

from dataclasses import dataclass

from .results import HOLDS, VIOLATED


@dataclass(frozen=True)
class Upgrade:
    old: str                          # the profiles' names
    new: str
    before: dict[str, str]            # clause id -> its verdict under the old engine


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


def upgrade(old_name: str, new_name: str, before) -> Upgrade:
    """The upgrade of an audit under the old engine (`before`, an audit.Audit) to another engine."""
    return Upgrade(old_name, new_name, {c.clause.id: c.verdict for c in before.clauses})


def changes(up: Upgrade, after) -> tuple[ClauseChange, ...]:
    """Each clause of the audit under the new engine (`after`), with its verdict under the old one."""
    return tuple(ClauseChange(c.clause.id, up.before[c.clause.id], c.verdict) for c in after.clauses)
