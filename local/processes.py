"""Child processes that must not outlive the local stack."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies, even by SIGKILL
    (``PR_SET_PDEATHSIG``). The signal follows the *thread* that started the child, so start
    children from the main thread. Other platforms: ``None`` (the stack stops children itself)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # loaded before the fork
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: follow it now
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    return int(process.returncode)
