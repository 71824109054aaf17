"""This process's resident memory, for the stats, the health reply and the memory thresholds.

On Linux it is read from `/proc/self/statm` (one small read); psutil, which costs every process that imports
it about 1 MB of resident memory, is loaded only where `/proc` is missing.
"""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
STATM = "/proc/self/statm"


def rss_bytes() -> int:
    try:
        with open(STATM, "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        import psutil

        return int(psutil.Process().memory_info().rss)
