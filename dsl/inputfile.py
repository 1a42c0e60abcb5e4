"""Reading the files a command is given, bounded: regular files only, at most MAX_BYTES each.

A named pipe would make the read wait for a writer forever, and a device such as /dev/zero
never ends; a file far larger than any policy would take minutes and gigabytes to parse.
Both are refused before reading, in words the callers' diagnostics quote (as `strerror`).
Paths are resolved here too, since a symbolic-link loop or an over-long name raises from
pathlib (RuntimeError, OSError) where a caller only expects an answer.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_BYTES = 32 << 20        # 32 MiB: over twenty times the 10k-rule benchmark policy (1.4 MB), ten times its table


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(mode: int, size: int) -> OSError | None:
    if stat.S_ISDIR(mode):
        return IsADirectoryError(errno.EISDIR, "it is a folder, not a file")
    if not stat.S_ISREG(mode):
        return OSError(errno.EINVAL, f"it is {_kind(mode)}, not a file")
    if size > MAX_BYTES:
        return OSError(errno.EFBIG, f"it is larger than {MAX_BYTES:,} bytes, the most dpipolicy reads from one file")
    return None


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES; OSError otherwise (its strerror says why)."""
    # O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        problem = _refuse(info.st_mode, info.st_size)
        if problem is not None:
            raise problem
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:       # it grew while being read
        raise _refuse(stat.S_IFREG, len(data))
    return data


def read_text(path: Path) -> str:
    """read_bytes as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_bytes(path).decode("utf-8")


def problem(path: Path) -> str | None:
    """Why `path` cannot be read as an input file, in words (`there is no such file`), or None."""
    try:
        info = path.stat()
    except OSError as exc:
        return "there is no such file" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else \
            (exc.strerror or str(exc)).lower()
    refused = _refuse(info.st_mode, info.st_size)
    return None if refused is None else refused.strerror


def resolved(path: Path) -> tuple[Path | None, str | None]:
    """The absolute path with symbolic links followed, or None and why it cannot be."""
    try:
        return path.resolve(), None
    except RuntimeError:                 # Python 3.11-3.12: a symbolic-link loop
        return None, "its symbolic links form a loop"
    except OSError as exc:               # a name too long, a loop (Python 3.13)
        return None, (exc.strerror or str(exc)).lower()
    except ValueError:                   # the operating system takes no NUL byte in a name
        return None, "a file name cannot hold a NUL byte"
