"""Smoke test of benchmarks/quality.py: the --quick run goes through `kedro run` and writes the table.

No quality is asserted (one epoch of tiny models on 160 rows); this checks the script still drives
the project end to end and that the report holds the baseline, every deep track, the published
Devign numbers, the duplicate report and the wall time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_benchmark_script

PROJECT_ROOT = Path(__file__).resolve().parents[1]
QUALITY = PROJECT_ROOT / "benchmarks" / "quality.py"


@pytest.mark.slow
def test_quality_quick_runs_and_reports_baseline_and_published_numbers(tmp_path: Path):
    out = tmp_path / "quality.md"
    # cwd: nothing may land in the caller's folder or the repository
    kept = tmp_path / "kept"
    completed = run_benchmark_script(QUALITY, "--quick", "--jobs", "2", "--keep", str(kept), "--out", str(out), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = out.read_text()
    assert report in completed.stdout
    assert "| baseline: TF-IDF + logistic regression (C=" in report
    for track in ("transformer", "gnn", "fusion"):
        assert f"| {track}, per seed (mean ± std) | 1 |" in report
        assert f"| {track}, seed ensemble | 1 |" in report
        assert f"{track} (ensemble)" in report  # the beats-the-baseline sentence
    for name, accuracy in (("BiLSTM", "59.37"), ("TextCNN", "60.69"), ("RoBERTa", "61.05"), ("CodeBERT", "62.08"), ("CoTexT", "66.62")):
        assert f"| {name} (CodeXGLUE Devign, published" in report and f"| {accuracy} |" in report
    assert "lexical baseline" in report
    assert "## Duplicates" in report and "train → test" in report
    assert "**Wall time:" in report and "## Model settings" in report and "transformer: preset `transformer_cpu_fast`" in report
    assert not list(tmp_path.glob("data")) and not (tmp_path / "mlflow.db").exists()

    # The stacked model and the paired-bootstrap column, in the Markdown and the JSON beside it.
    assert "| stacked (baseline+transformer+gnn+fusion), meta-model fitted on valid |" in report
    assert "ROC-AUC − baseline [95 % CI]" in report
    import json

    numbers = json.loads(out.with_suffix(".json").read_text())
    assert set(numbers["ensembles"]) == {"transformer", "gnn", "fusion", "stacked"}
    for track, delta in numbers["ensembles_vs_baseline"].items():
        assert delta["low"] <= delta["delta"] <= delta["high"]
        # metrics.json rounds ROC-AUC to 6 decimals; the bootstrap's point estimate is exact
        assert delta["delta"] == pytest.approx(numbers["ensembles"][track]["roc_auc"] - numbers["baseline"]["roc_auc"], abs=2e-6)
    assert [row["seed"] for row in numbers["per_seed"]["gnn"]] == [0]

    # An interrupted run reports what it finished: fusion's outputs gone, the rest still reported.
    import shutil

    for layer in ("07_model_output", "08_reporting"):
        shutil.rmtree(kept / "data" / layer / "fusion")
    partial = tmp_path / "partial.md"
    again = run_benchmark_script(QUALITY, "--quick", "--keep", str(kept), "--report-only", "--out", str(partial), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    text = partial.read_text()
    assert "| fusion | 0 | not finished in this run" in text and "| gnn, seed ensemble | 1 |" in text
    assert "## The kedro runs of this benchmark" in text


def test_node_times_are_summed_per_stage():
    import importlib.util
    import sys

    sys.path.insert(0, str(QUALITY.parent))
    spec = importlib.util.spec_from_file_location("quality_under_test", QUALITY)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    seconds = {"load_and_validate": 2.0, "gnn.build_graphs": 5.0, "pretraining.pretrain": 60.0,
               "transformer.seed_0.train": 30.0, "transformer.seed_1.train": 10.0, "ensemble.final_report": 1.0}
    assert quality.stage_seconds(seconds) == {"data_processing": 2.0, "gnn": 5.0, "pretraining": 60.0,
                                              "transformer": 40.0, "ensemble": 1.0}
