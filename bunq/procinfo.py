"""This process: its resident memory, for the stats, the health reply and the memory thresholds, and its
tie to its parent.

On Linux the memory is read from `/proc/self/statm` (one small read); psutil, which costs every process that
imports it about 1 MB of resident memory, is loaded only where `/proc` is missing.
"""

from __future__ import annotations

import os
import signal

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
STATM = "/proc/self/statm"


def rss_bytes() -> int:
    try:
        with open(STATM, "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        import psutil

        return int(psutil.Process().memory_info().rss)


def die_with_parent() -> None:
    """SIGTERM to this process when its parent dies (Linux's PR_SET_PDEATHSIG; elsewhere nothing), so that
    a parent killed with SIGKILL leaves no child running unsupervised."""
    import ctypes  # here: most processes never tie themselves, and the module costs each resident memory

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


FRONT_MANAGER = "BUNQ_FRONT_MANAGER_PID"  # set by a front running several workers, for them to read
# what `bunq serve` sends the aggregator before it stops the fronts: publish `server:shutdown` now, while
# the fronts still have clients to hand it to (SIGTERM comes after them, since they need the aggregator)
SHUTDOWN_COMING = signal.SIGUSR1
ANNOUNCE_S = 0.3  # how long the fronts are given to pass the announcement on


def tie_front_worker() -> None:
    """In a worker of a front that runs several (uvicorn's manager spawns them): die with the manager, and
    leave at once if it is already gone. Without this, a manager killed with SIGKILL left its workers
    serving the port outside the supervisor, routing by a shard count that a restart may have changed."""
    manager = int(os.environ.get(FRONT_MANAGER) or 0)
    if not manager or manager == os.getpid():
        return
    die_with_parent()
    if os.getppid() != manager:  # it died before the tie was made
        os.kill(os.getpid(), signal.SIGTERM)
