"""benchmarks/gpu_check.py in its CPU quick mode, as on a bare box: Kedro and MLflow cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "benchmarks" / "gpu_check.py"
# Run the script with kedro, kedro_mlflow and mlflow made unimportable (what a bare GPU box lacks).
BARE_BOX = """
import importlib.machinery, runpy, sys
class HidingPathFinder(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in ("kedro", "kedro_mlflow", "kedro_datasets", "kedro_viz", "mlflow"):
            return None  # as if not installed
        return importlib.machinery.PathFinder.find_spec(name, path, target)
sys.meta_path = [HidingPathFinder if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BARE_BOX, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_quick_mode_runs_without_kedro_or_mlflow_from_a_prepared_bundle(tmp_path) -> None:
    bundle = tmp_path / "bundle"
    prepared = run("--quick", "--prepare", str(bundle), "--no-wheels", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert (bundle / "graphs.pt").stat().st_size > 0 and len((bundle / "sample.jsonl").read_text().splitlines()) == 64

    result = run("--quick", "--bundle", str(bundle), "--json", str(tmp_path / "gpu.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["device"] == "cpu" and report["functions"] == 64
    (fp32,) = report["transformer"]
    assert fp32["precision"] == "fp32" and fp32["functions_per_s"] > 0 and fp32["tokens_per_s"] > fp32["functions_per_s"]
    assert report["gnn_fusion"]["gnn_graphs_per_s"] > 0 and report["gnn_fusion"]["fusion_functions_per_s"] > 0
    losses = report["fine_tune"]["train_loss_per_epoch"]
    assert len(losses) == 2 and report["fine_tune"]["loss_fell"] == (losses[-1] < losses[0])
    assert 0.0 <= report["fine_tune"]["valid_roc_auc"] <= 1.0
    assert "functions/s" in result.stdout and "fine-tune" in result.stdout
    # The hiding works: in that interpreter kedro is not importable.
    probe = subprocess.run([sys.executable, "-c", BARE_BOX.replace("runpy.run_path(sys.argv[0], run_name=\"__main__\")", "import kedro"), "x"],
                           capture_output=True, text=True, timeout=120)
    assert "No module named 'kedro'" in probe.stderr
