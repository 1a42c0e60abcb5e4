"""Counts in words (`1 invariant`, `2 invariants`), so that every summary line agrees in number."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
