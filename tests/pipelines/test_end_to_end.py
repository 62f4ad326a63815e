"""The default pipeline through a real KedroSession on tiny settings, checked as a user would."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_project_copy, run_kedro

pytestmark = pytest.mark.slow

TRACKS = ("transformer", "gnn", "fusion")
REQUIRED_KEYS = {
    "f1_at_0_5",
    "f1_at_best_threshold",
    "best_threshold_by_f1",
    "balanced_accuracy_at_best_threshold",
    "confusion_matrix_at_0_5",
    "confusion_matrix_at_best",
    "threshold_sweep",
    "timestamp",
    "roc_auc",
    "pr_auc",
    "test",
}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def mlflow_runs(project: Path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("streamguard")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


def test_data_processing_outputs_and_report(full_run: Path):
    for split in ("train", "valid", "test"):
        frame = pd.read_parquet(full_run / f"data/03_primary/{split}_functions.parquet")
        assert {"idx", "func", "target"} <= set(frame.columns)
        assert set(frame["target"].unique()) == {0, 1}
    report = read_json(full_run / "data/08_reporting/data_processing/data_report.json")
    assert report["rows"] == {"train": 160, "valid": 60, "test": 60}
    assert "cross_split" in json.dumps(report["duplicates"]) or report["duplicates"]


def test_every_seed_of_every_track_writes_metrics_and_aligned_logits(full_run: Path):
    valid = pd.read_parquet(full_run / "data/03_primary/valid_functions.parquet")
    for track in TRACKS:
        for seed in (0, 1):
            metrics = read_json(full_run / f"data/08_reporting/{track}/seed_{seed}/metrics.json")
            assert REQUIRED_KEYS <= set(metrics), track
            assert len(metrics["threshold_sweep"]) == 41
            assert metrics["test"]["threshold"] == metrics["best_threshold_by_f1"]
            assert metrics["seed"] == seed and metrics["track"] == track
            logits = pd.read_parquet(full_run / f"data/07_model_output/{track}/seed_{seed}/valid_logits.parquet")
            assert logits["idx"].tolist() == valid["idx"].tolist()
            assert (full_run / f"data/06_models/{track}/seed_{seed}/checkpoint.pt").stat().st_size > 0
            history = read_json(full_run / f"data/08_reporting/{track}/seed_{seed}/history.json")
            assert history and {"train_loss", "valid_loss", "valid_f1"} <= set(history[0])


def test_fusion_records_its_branches(full_run: Path):
    metrics = read_json(full_run / "data/08_reporting/fusion/seed_0/metrics.json")
    assert metrics["branches_used"] == ["transformer", "gnn"]
    assert metrics["branches_missing"] == []
    assert metrics["preset"] == "fusion_balanced"


def test_ensembles_have_the_single_run_keys_plus_seed_statistics(full_run: Path):
    for track in TRACKS:
        metrics = read_json(full_run / f"data/08_reporting/{track}/ensemble_metrics.json")
        assert REQUIRED_KEYS <= set(metrics)
        assert metrics["num_seeds"] == 2 and metrics["num_seeds_with_logits"] == 2
        assert [row["seed"] for row in metrics["per_seed_f1_at_best"]] == [0, 1]
        assert {"per_seed_mean_f1", "per_seed_std_f1"} <= set(metrics)


def test_mlflow_run_has_the_same_numbers(full_run: Path):
    client, runs = mlflow_runs(full_run)
    run = runs[-1]  # the first run of the session is the full one
    metrics = run.data.metrics
    on_disk = read_json(full_run / "data/08_reporting/gnn/seed_1/metrics.json")
    assert metrics["gnn.seed_1.f1_at_best_threshold"] == pytest.approx(on_disk["f1_at_best_threshold"])
    assert metrics["gnn.seed_1.test.f1"] == pytest.approx(on_disk["test"]["f1"])
    assert "fusion.ensemble.per_seed_mean_f1" in metrics
    assert "data.rows.train" in metrics
    assert run.data.params["fusion.preset"] == "fusion_balanced"
    history = client.get_metric_history(run.info.run_id, "transformer.seed_0.curve.valid_f1")
    assert len(history) >= 1
    artifacts = [item.path for item in client.list_artifacts(run.info.run_id, "fusion/seed_0")]
    assert "fusion/seed_0/metrics.json" in artifacts
    line_report = {item.path for item in client.list_artifacts(run.info.run_id, "line_report")}
    assert "line_report/line_report.html" in line_report and "line_report/function_0.png" in line_report
    page = (full_run / "data/08_reporting/line_report.html").read_text(encoding="utf-8")
    assert page.count('<table class="sg-lines">') == 3 and "fusion / " in page  # fusion's default line method


def test_fusion_degrades_to_one_branch_when_a_checkpoint_is_missing(full_run: Path, tmp_path: Path, caplog):
    project = make_project_copy(tmp_path / "degraded")
    shutil.copytree(full_run / "data", project / "data")
    (project / "data/06_models/gnn/seed_1/checkpoint.pt").unlink()
    with caplog.at_level("WARNING"):
        run_kedro(project, pipeline="fusion")
    assert "gnn.seed_1.checkpoint is missing" in caplog.text
    assert "kedro run --pipeline gnn" in caplog.text
    degraded = read_json(project / "data/08_reporting/fusion/seed_1/metrics.json")
    assert degraded["branches_used"] == ["transformer"]
    assert degraded["branches_missing"] == ["gnn"]
    assert read_json(project / "data/08_reporting/fusion/seed_0/metrics.json")["branches_used"] == ["transformer", "gnn"]

    (project / "data/06_models/transformer/seed_1/checkpoint.pt").unlink()
    with pytest.raises(Exception, match="both transformer.seed_1.checkpoint and gnn.seed_1.checkpoint are missing"):
        run_kedro(project, pipeline="fusion")


def test_unknown_preset_fails_before_running(tmp_path: Path):
    from streamguard.config.presets import UnknownPresetError

    project = make_project_copy(tmp_path / "p")
    with pytest.raises(UnknownPresetError, match="fusion_balanced"):
        run_kedro(project, pipeline="data_processing", runtime_params={"preset": "no_such_preset"})
    assert not (project / "data/03_primary").exists()


def test_baseline_runs_once_and_writes_the_shared_metrics(full_run: Path):
    valid = pd.read_parquet(full_run / "data/03_primary/valid_functions.parquet")
    test = pd.read_parquet(full_run / "data/03_primary/test_functions.parquet")
    metrics = read_json(full_run / "data/08_reporting/baseline/seed_0/metrics.json")
    assert REQUIRED_KEYS <= set(metrics)
    assert metrics["track"] == "baseline" and metrics["seed"] == 0
    assert metrics["test"]["threshold"] == metrics["best_threshold_by_f1"]
    assert metrics["baseline"]["C"] in [row["C"] for row in metrics["baseline"]["c_grid"]]
    assert metrics["baseline"]["select_by"] == "roc_auc" and metrics["baseline"]["vocabulary_size"] > 0
    for split, frame in (("valid", valid), ("test", test)):
        logits = pd.read_parquet(full_run / f"data/07_model_output/baseline/seed_0/{split}_logits.parquet")
        assert list(logits.columns) == ["idx", "label", "logit_0", "logit_1", "prob"]
        assert logits["idx"].tolist() == frame["idx"].tolist()
    assert not (full_run / "data/08_reporting/baseline/seed_1").exists()  # deterministic: one run, not one per seed


def test_final_report_puts_the_baseline_beside_the_deep_tracks(full_run: Path):
    baseline = read_json(full_run / "data/08_reporting/baseline/seed_0/metrics.json")
    table = pd.read_csv(full_run / "data/08_reporting/final_report.csv")
    row = table[table["track"] == "baseline"]
    assert len(row) == 1
    assert row.iloc[0]["test_roc_auc"] == pytest.approx(baseline["test"]["roc_auc"])
    assert row.iloc[0]["test_f1"] == pytest.approx(baseline["test"]["f1"])
    ensembles = table[table["model"] == "ensemble"].set_index("track")
    for track in TRACKS:
        expected = ensembles.loc[track, "test_roc_auc"] > baseline["test"]["roc_auc"]
        assert bool(ensembles.loc[track, "beats_baseline_roc_auc"]) == expected
    markdown = (full_run / "data/08_reporting/final_report.md").read_text()
    assert "| baseline | tf-idf + logreg |" in markdown
    assert "beats baseline (ROC-AUC / F1)" in markdown
    assert all(f"- {track} (ensemble)" in markdown or f"**{track} (ensemble)" in markdown for track in TRACKS)
    client, runs = mlflow_runs(full_run)
    assert runs[-1].data.metrics["baseline.seed_0.test.f1"] == pytest.approx(baseline["test"]["f1"])


def test_ensemble_report_without_baseline_logits_says_how_to_add_them(full_run: Path, tmp_path: Path, caplog):
    project = make_project_copy(tmp_path / "no_baseline")
    shutil.copytree(full_run / "data", project / "data")
    shutil.rmtree(project / "data/07_model_output/baseline")
    with caplog.at_level("WARNING"):
        run_kedro(project, pipeline="ensemble")
    assert "kedro run --pipeline baseline" in caplog.text
    table = pd.read_csv(project / "data/08_reporting/final_report.csv")
    assert "baseline" not in set(table["track"]) and set(TRACKS) <= set(table["track"])
    assert "beats baseline" not in (project / "data/08_reporting/final_report.md").read_text()


def test_final_report_has_a_stacked_row_and_intervals_against_the_baseline(full_run: Path):
    stacked = read_json(full_run / "data/08_reporting/stacked/ensemble_metrics.json")
    assert stacked["enabled"] and stacked["inputs"] == ["baseline", *TRACKS]
    assert set(stacked["coefficients"]) == {"baseline", *TRACKS}
    vs = stacked["vs_baseline"]
    assert vs["low"] <= vs["delta"] <= vs["high"]
    table = pd.read_csv(full_run / "data/08_reporting/final_report.csv").set_index(["track", "model"])
    assert table.loc[("stacked", "ensemble"), "test_roc_auc"] == pytest.approx(stacked["test"]["roc_auc"])
    assert table.loc[("stacked", "ensemble"), "roc_auc_delta"] == pytest.approx(vs["delta"])
    for track in TRACKS:
        low, delta, high = (table.loc[(track, "ensemble"), key] for key in ("roc_auc_delta_low", "roc_auc_delta", "roc_auc_delta_high"))
        assert low <= delta <= high
    markdown = (full_run / "data/08_reporting/final_report.md").read_text()
    assert "ROC-AUC - baseline [95 % CI]" in markdown and "| stacked | ensemble |" in markdown
    assert "paired-bootstrap 95 % interval" in markdown


def test_one_track_ensemble_refreshes_that_track_and_reports_what_exists(full_run: Path, tmp_path: Path, caplog):
    project = make_project_copy(tmp_path / "one_track")
    shutil.copytree(full_run / "data", project / "data")
    for track in ("transformer", "fusion"):  # never trained nor ensembled in this copy
        for layer in ("07_model_output", "08_reporting", "06_models"):
            shutil.rmtree(project / f"data/{layer}/{track}")
    (project / "data/08_reporting/gnn/ensemble_metrics.json").unlink()
    with caplog.at_level("WARNING"):
        run_kedro(project, pipeline="ensemble_gnn")
    assert read_json(project / "data/08_reporting/gnn/ensemble_metrics.json")["test"] == read_json(
        full_run / "data/08_reporting/gnn/ensemble_metrics.json"
    )["test"]
    table = pd.read_csv(project / "data/08_reporting/final_report.csv")
    assert set(table["track"]) == {"baseline", "gnn", "stacked"}
    assert "leaves out transformer" in caplog.text and "leaves out fusion" in caplog.text
    assert read_json(project / "data/08_reporting/stacked/ensemble_metrics.json")["inputs"] == ["baseline", "gnn"]
    with pytest.raises(Exception, match="ensemble_<track>"):
        run_kedro(project, pipeline="ensemble_gnn", runtime_params={"ensemble": {"tracks": "fusion"}})


def test_ensemble_recompute_rebuilds_missing_logits_from_the_checkpoint(full_run: Path, tmp_path: Path, caplog):
    project = make_project_copy(tmp_path / "recompute")
    shutil.copytree(full_run / "data", project / "data")
    original = read_json(full_run / "data/08_reporting/gnn/ensemble_metrics.json")
    for split in ("valid", "test"):
        (project / f"data/07_model_output/gnn/seed_1/{split}_logits.parquet").unlink()

    with caplog.at_level("WARNING"):
        run_kedro(project, pipeline="ensemble")
    skipped = read_json(project / "data/08_reporting/gnn/ensemble_metrics.json")
    assert skipped["num_seeds_with_logits"] == 1 and "skipping seed 1" in caplog.text

    run_kedro(project, pipeline="ensemble", runtime_params={"ensemble": {"recompute": True}})  # --params ensemble.recompute=true
    recomputed = read_json(project / "data/08_reporting/gnn/ensemble_metrics.json")
    assert recomputed["num_seeds_with_logits"] == 2
    assert recomputed["test"] == original["test"]  # same checkpoint, same logits, same ensemble


def test_scan_with_the_trained_project_writes_clean_sarif_to_stdout(full_run: Path, tmp_path: Path):
    import os
    import subprocess
    import sys

    source = tmp_path / "src" / "f.c"
    source.parent.mkdir()
    source.write_text("int f(char *d, const char *s, int n)\n{\n    int i;\n    for (i = 0; i <= n; i++)\n        d[i] = s[i];\n    return i;\n}\n")
    command = [sys.executable, "-m", "streamguard.console", "scan", str(source.parent), "--project-dir", str(full_run),
               "--format", "sarif", "--threshold", "0.0", "--no-progress"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{full_run / 'mlflow.db'}"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # threshold 0: the function is flagged, the CI gate trips
    sarif = json.loads(done.stdout)  # nothing but the report on stdout (Kedro logs would break this)
    result = sarif["runs"][0]["results"][0]
    # The region points at the top-scored line inside the function; the function itself is related location 0.
    assert sarif["version"] == "2.1.0" and 1 <= result["locations"][0]["physicalLocation"]["region"]["startLine"] <= 7
    function_location = next(location for location in result["relatedLocations"] if location["id"] == 0)
    assert function_location["physicalLocation"]["region"]["startLine"] == 1
    assert 0.0 <= result["properties"]["score"] <= 1.0
