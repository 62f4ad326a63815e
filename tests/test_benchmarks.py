"""Smoke test of benchmarks/speed.py: the --quick run finishes and prints every ratio line.

No timings are asserted (they depend on the machine); this only checks the script still runs
against the current training loop, graph builder, scan and inference code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.runtime.offline import OFFLINE_ENV

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPEED = PROJECT_ROOT / "benchmarks" / "speed.py"

EXPECTED_LINES = (
    "ratio training functions/s StreamGuard/classic:",
    "ratio training real tokens/s StreamGuard/classic:",
    "ratio graphs parse share:",
    "ratio scan transformer functions/s:",
    "ratio scan gnn functions/s:",
    "ratio scaling graph building time(",
    "ratio scaling transformer inference time(",
    "| training | ratio StreamGuard / classic |",
)


@pytest.mark.slow
def test_speed_quick_runs_and_prints_ratios(tmp_path):
    env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": "1"}
    # One torch thread: fast and stable on a shared CI machine (and the timings are not checked).
    command = [sys.executable, str(SPEED), "--quick", "--threads", "1"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    missing = [line for line in EXPECTED_LINES if line not in result.stdout]
    assert not missing, f"missing output lines {missing}\nstdout:\n{result.stdout[-3000:]}"
    assert "- command: `python " in result.stdout
