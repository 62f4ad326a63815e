"""benchmarks/stacking_variants.py on fabricated logits: project ensembles plus another run's seeds as an extra input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stacking_variants.py"


def _logits(labels: np.ndarray, signal: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    margin = signal * (2 * labels - 1) + rng.normal(size=len(labels))
    prob = 1 / (1 + np.exp(-margin))
    return pd.DataFrame({"idx": np.arange(len(labels)), "label": labels, "logit_0": 0.0, "logit_1": margin, "prob": prob})


def _write(folder: Path, relative: str, frame: pd.DataFrame) -> None:
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / relative)


def test_an_extra_runs_seed_ensemble_joins_the_stacked_inputs(tmp_path: Path) -> None:
    labels = {"valid": np.tile([0, 1], 150), "test": np.tile([1, 0], 150)}
    project, other = tmp_path / "project", tmp_path / "other"
    for split, y in labels.items():
        _write(project, f"data/07_model_output/baseline/seed_0/{split}_logits.parquet", _logits(y, 0.8, 1))
        for number, track in enumerate(("transformer", "gnn", "fusion")):
            _write(project, f"data/07_model_output/{track}/ensemble_{split}_logits.parquet", _logits(y, 0.5, 10 + number))
        for seed in (0, 1):
            _write(other, f"data/07_model_output/gnn/seed_{seed}/{split}_logits.parquet", _logits(y, 1.5, 20 + seed))
    out = tmp_path / "variants.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--project", str(project), "--out", str(out), "--extra", f"gnn_other={other}:gnn"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(out.read_text())
    assert {"baseline+gnn_other", "baseline+fusion+gnn_other", "baseline+transformer+gnn+fusion+gnn_other"} <= set(results)
    # The strongest input (the other run's seed ensemble) gets the largest weight and lifts the stacked model.
    chosen = results["baseline+gnn_other"]
    assert max(chosen["coefficients"], key=chosen["coefficients"].get) == "gnn_other"
    assert chosen["test_roc_auc"] > results["baseline+gnn"]["test_roc_auc"]
    assert "| baseline + gnn_other |" in completed.stdout


def test_a_malformed_extra_is_refused(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--project", str(tmp_path), "--out", str(tmp_path / "x.json"), "--extra", "nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode != 0 and "NAME=FOLDER:TRACK" in completed.stderr
