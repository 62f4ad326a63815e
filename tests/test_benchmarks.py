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


@pytest.mark.slow
def test_main_job_quick_times_each_setting_and_prints_ratios(tmp_path):
    """benchmarks/main_job.py --quick: the default pipeline timed per stage, and its re-run reusing every seed."""
    import json

    out = tmp_path / "main_job.md"
    env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": "1"}
    # One setting and its re-run (the Dask runner's metrics equal the sequential runner's: tests/distributed).
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "main_job.py"), "--quick", "--settings", "auto", "--rerun", "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "ratio main job auto (re-run)/auto:" in result.stdout and "| `auto` |" in out.read_text()
    runs = json.loads(out.with_suffix(".json").read_text())
    assert [run["setting"] for run in runs] == ["auto", "auto (re-run)"]
    assert runs[0]["nodes"] > 30 and runs[0]["stages"]["transformer"] > 0
    assert runs[1]["roc_auc"] == runs[0]["roc_auc"]  # the re-run reuses the same models
    assert set(runs[0]["roc_auc"]) == {"transformer", "gnn", "fusion", "baseline"}
    assert runs[1]["stages"]["transformer"] < runs[0]["stages"]["transformer"]  # finished seeds are reused, not retrained
    assert not list(tmp_path.glob("data"))  # project copies live in a temp folder, removed


def test_main_job_compares_ensembles_with_an_earlier_run_on_the_same_rows(tmp_path):
    """--compare-with: per track, this run's ensemble test ROC-AUC minus the other project's, paired bootstrap."""
    import importlib.util

    import numpy as np
    import pandas as pd

    spec = importlib.util.spec_from_file_location("main_job_bench", PROJECT_ROOT / "benchmarks" / "main_job.py")
    main_job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main_job)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    for project, noise in (("new", 0.5), ("old", 3.0)):  # the new run separates the classes better
        folder = tmp_path / project / "data" / "07_model_output" / "fusion"
        folder.mkdir(parents=True)
        prob = 1 / (1 + np.exp(-(labels * 2 - 1 + rng.normal(0, noise, 300))))
        pd.DataFrame({"idx": np.arange(300)[::-1], "label": labels[::-1], "prob": prob[::-1]}).to_parquet(folder / "ensemble_test_logits.parquet")
    deltas = main_job.compare_ensembles(tmp_path / "new", tmp_path / "old")
    assert set(deltas) == {"fusion"}
    assert deltas["fusion"]["low"] > 0 and deltas["fusion"]["low"] < deltas["fusion"]["delta"] < deltas["fusion"]["high"]
    assert main_job.compare_ensembles(tmp_path / "new", tmp_path / "new")["fusion"]["delta"] == 0.0
