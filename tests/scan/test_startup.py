"""``streamguard scan`` start-up: the project's catalog is read without a Kedro session, so MLflow
(and kedro-mlflow's tracking-store set-up) is not loaded for a scan that logs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_project_copy

PROBE = """
import sys
from streamguard.serving.scan.cli import main
code = main([sys.argv[1], "--project-dir", sys.argv[2], "--track", "gnn"])
print("exit", code, "mlflow" in sys.modules, "kedro_mlflow" in sys.modules)
"""


def test_scan_reads_the_catalog_without_mlflow(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    source = tmp_path / "a.c"
    source.write_text("int a(void) { return 0; }\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # would be probed by a session
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(source), str(project)], capture_output=True, text=True, timeout=300, env=env
    )
    # No checkpoints in the copy: exit 4 with the project's own reason, and neither mlflow nor kedro_mlflow imported.
    assert completed.stdout.split() == ["exit", "4", "False", "False"], completed.stdout + completed.stderr
    assert "no trained gnn checkpoints" in completed.stderr


def test_turning_logits_into_probabilities_does_not_import_scikit_learn() -> None:
    """The scan's scoring path needs a softmax, not scikit-learn (about 1.3 s of imports)."""
    probe = (
        "import sys, numpy as np\n"
        "from streamguard.evaluation.metrics import probabilities_from_logits\n"
        "print(probabilities_from_logits(np.array([[0.0, 0.0]])).tolist(), 'sklearn' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.stdout.split() == ["[0.5]", "False"], completed.stdout + completed.stderr
