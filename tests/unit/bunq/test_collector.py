"""A server process, once started, freezes what start-up made and collects its young generation less often."""

from __future__ import annotations

import subprocess
import sys

from bunq import collector


def test_settle_freezes_start_up_and_raises_the_young_threshold() -> None:
    probe = (
        "import gc; from bunq import collector; kept = [[i] for i in range(1000)]; collector.settle();"
        "print(gc.get_freeze_count() >= 1000, gc.get_threshold()[0])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", str(collector.YOUNG_THRESHOLD)]
