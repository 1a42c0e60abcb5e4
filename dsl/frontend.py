"""The front end in one call: files on disk to a checked policy."""
from __future__ import annotations

from pathlib import Path

from .catalogue import load_catalogue
from .checker import check_items
from .loader import load_items
from .typed import Policy


def load_policy(policy_path: Path, spec_paths: tuple[Path, ...] = (),
                catalogue_files: tuple[Path, ...] = ()) -> Policy:
    """Parse, import, resolve and type-check; raises DiagnosticError with every problem found."""
    catalogue = load_catalogue(catalogue_files)
    items, _files = load_items(policy_path, spec_paths)
    return check_items(items, catalogue)
