"""Fresh network namespaces, for the commands that must meet a real kernel.

The kernel check loads a compiled script with `nft -f` and reads it back; `dpipolicy probe`
sends real traffic through it. Both run in a network namespace of their own, so that nothing
they load or send reaches the host's rules or interfaces: `unshare -n` as root, else
`unshare -rn` (a user namespace in which the caller is root, where the kernel allows it).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess


class NamespaceError(Exception):
    """A fresh network namespace could not be had, or a command in it could not finish."""


def unprivileged() -> bool:
    """Not root: the namespace is also a user namespace, where nft's netlink buffer is small."""
    return os.geteuid() != 0


def _unshare() -> list[str]:
    """The unshare command for this user: root needs no user namespace."""
    return ["unshare", "-rn"] if unprivileged() else ["unshare", "-n"]


def run_in_namespace(argv: list[str], input: bytes | None = None, timeout: float = 60,
                     env: dict | None = None) -> subprocess.CompletedProcess:
    """Run argv in a new network namespace, capturing its output (bytes).

    A failure of argv itself is the caller's to judge (its return code and stderr); a failure
    to make the namespace, or a command that outlives `timeout` seconds, is a NamespaceError.
    """
    command = _unshare() + ["--"] + list(argv)
    try:
        done = subprocess.run(command, input=input, capture_output=True, timeout=timeout, env=env)
    except FileNotFoundError as error:
        raise NamespaceError(f"cannot run {command[0]!r} ({error.strerror}): install util-linux, "
                             "which provides unshare") from None
    except subprocess.TimeoutExpired:
        raise NamespaceError(f"{' '.join(argv)!r} did not finish within {timeout:g} s in its "
                             "network namespace and was killed") from None
    # unshare exits 1 after `unshare: ...` when it cannot make the namespace or start argv
    if done.returncode != 0 and done.stderr.startswith(b"unshare: "):
        message = done.stderr.decode(errors="replace").strip()
        if "failed to execute" in message:
            hint = f"{argv[0]!r} must be on PATH"
        elif os.geteuid() != 0:
            hint = ("run as root, or allow unprivileged user namespaces (sysctl "
                    "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)")
        else:
            hint = "the kernel must support network namespaces (CONFIG_NET_NS)"
        raise NamespaceError(f"{' '.join(command)!r} failed: {message}; {hint}")
    return done


@functools.cache
def kernel_unavailable() -> str | None:
    """Why a fresh network namespace with nft cannot be had here, or None when it can.

    Asked once per process: the answer does not change while it runs.
    """
    if shutil.which("nft") is None:
        return "nft (nftables) is not on PATH"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not on PATH"
    try:
        done = run_in_namespace(["nft", "list", "ruleset"], timeout=20)
    except NamespaceError as error:
        return str(error)
    if done.returncode != 0:
        return ("nft cannot list the rules of a fresh network namespace: "
                + done.stderr.decode(errors="replace").strip())
    return None


def nft_failure(stderr: str) -> str:
    """nft's own message, with what to do when the cause is this module's namespace.

    nft sends a script as one netlink batch. In a user namespace (not root) it cannot enlarge
    its socket's buffer, so a batch of more than roughly net.core.wmem_default bytes
    (212,992 by default) is refused as "Message too long": the kernel check and `probe` load
    in batches there (nftables.batches), and only a part too big even alone meets this.
    """
    if "Message too long" in stderr and unprivileged():
        stderr += ("\n(nft could not send a batch of the script: without root, in a user namespace, "
                   "its netlink buffer is net.core.wmem_default bytes. Run as root (CI does), or "
                   "have root raise it, e.g. `sysctl -w net.core.wmem_default=67108864`, or skip "
                   "the kernel check with --validate=off)")
    return stderr
