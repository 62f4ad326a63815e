"""``streamguard scan`` start-up: the project's catalog is read without a Kedro session, so MLflow
(and kedro-mlflow's tracking-store set-up) is not loaded for a scan that logs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
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


# After the first scan of a project, the catalog is not resolved again: the scan reads the files that
# data/06_models/.scan_index.json names, so neither Kedro (with dynaconf and Flask) nor anything
# else the scan does not need is imported. Each module here is seconds of a 2-core start-up.
# The models are the plain-torch twins (streamguard.models.roberta_lite / tokenizer_lite / gnn_lite):
# no transformers (with torch._dynamo, sympy, scipy, accelerate), no PyG, no Captum for the default
# line scores, and no pandas (the scorer passes tracks.common.FunctionRows).
NOT_ON_THE_SCAN_PATH = (
    "kedro", "omegaconf", "dynaconf", "flask", "mlflow", "kedro_mlflow", "sklearn",
    "transformers", "torch_geometric", "sympy", "scipy", "captum", "accelerate", "torch._dynamo", "pandas",
)

SCAN_PROBE = """
import json, sys
from streamguard.serving.scan.cli import main
code = main([sys.argv[1], "--project-dir", sys.argv[2], "--track", sys.argv[3], "--format", "json", "--output", sys.argv[4]])
functions = json.load(open(sys.argv[4]))["functions"]
scores, lines = [f["score"] for f in functions], [f.get("lines") for f in functions]
print(json.dumps({"exit": code, "scores": scores, "lines": lines, "imported": sorted(m for m in sys.argv[5].split(",") if m in sys.modules)}))
"""


def _scan_in_a_subprocess(project: Path, source: Path, track: str, output: Path, **env: str) -> dict:
    import json

    completed = subprocess.run(
        [sys.executable, "-c", SCAN_PROBE, str(source), str(project), track, str(output), ",".join(NOT_ON_THE_SCAN_PATH)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("track", ["fusion", "transformer", "gnn"])
def test_scans_after_the_first_import_no_kedro_and_score_the_same(full_run: Path, tmp_path: Path, track: str) -> None:
    from streamguard.serving.scan_index import INDEX_PATH

    source = tmp_path / "a.c"
    source.write_text("int a(char *s) {\n    char b[4];\n    strcpy(b, s);\n    return b[0];\n}\n\nint ok(int x) { return x + 1; }\n")
    (full_run / INDEX_PATH).unlink(missing_ok=True)
    first = _scan_in_a_subprocess(full_run, source, track, tmp_path / "first.json")  # resolves the catalog with Kedro
    assert (full_run / INDEX_PATH).is_file()
    assert "kedro" in first["imported"]
    later = _scan_in_a_subprocess(full_run, source, track, tmp_path / "later.json")
    assert later["imported"] == [], f"the scan imported {later['imported']}"
    assert later["exit"] == first["exit"] and later["scores"] == first["scores"]
    # The library models (transformers, PyG), as training built them, score and rank lines the same.
    library = _scan_in_a_subprocess(full_run, source, track, tmp_path / "library.json", STREAMGUARD_LITE_MODELS="0")
    assert library["imported"]  # it did take the library path
    assert library["exit"] == later["exit"] and later["scores"] == pytest.approx(library["scores"], abs=1e-5)

    def ranked(scan: dict) -> list[tuple[int, float]]:
        return [(line["line"], line["score"]) for lines in scan["lines"] for line in lines or []]

    assert [line for line, _ in ranked(later)] == [line for line, _ in ranked(library)] and ranked(later)
    assert [score for _, score in ranked(later)] == pytest.approx([score for _, score in ranked(library)], abs=1e-5)


def test_an_index_for_another_conf_or_a_missing_file_is_not_used(tmp_path: Path) -> None:
    """The index only names paths; a conf edit or a file gone sends the scan back to the catalog."""
    import json

    from streamguard.serving import scan_index

    project = make_project_copy(tmp_path / "project")
    (project / "data" / "06_models").mkdir(parents=True)
    checkpoint = project / "data" / "06_models" / "gnn" / "seed_0" / "checkpoint.pt"
    entry = {
        "fingerprint": scan_index.conf_fingerprint(project),
        "seeds": [0],
        "checkpoints": [{"path": str(checkpoint.relative_to(project)), "how_to_produce": ""}],
        "metrics": {"path": "data/08_reporting/gnn/ensemble_metrics.json", "where": "gnn.ensemble_metrics"},
    }
    (project / scan_index.INDEX_PATH).write_text(json.dumps({"version": scan_index.INDEX_VERSION, "tracks": {"gnn": entry}}))
    assert scan_index.load_indexed(project, "gnn") is None  # the checkpoint file does not exist
    assert scan_index.load_indexed(project, "fusion") is None  # no entry for the track
    fingerprint = entry["fingerprint"]
    (project / "conf" / "local" / "catalog.yml").write_text("# moved somewhere else\n")
    assert scan_index.conf_fingerprint(project) != fingerprint
