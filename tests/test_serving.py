"""The servable MLflow model: logged at the end of training, loaded back, served over HTTP, scanned with."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BAD = "int copy(char *src)\n{\n    char buf[8];\n    strcpy(buf, src);\n    return buf[0];\n}\n"
GOOD = "int copy(char *src, int n)\n{\n    char buf[8];\n    if (n >= 8) return -1;\n    memcpy(buf, src, n);\n    return buf[0];\n}\n"


@contextmanager
def tracking_uri(project: Path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(previous)


def latest_run_id(mlflow, project: Path) -> str:
    experiment = mlflow.get_experiment_by_name("streamguard")
    runs = mlflow.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return runs.iloc[0]["run_id"]


def project_scorer(project: Path, track: str):
    from streamguard.serving.scorer import load_scorer

    return load_scorer(project, track)


def test_input_codes_accepts_frames_lists_and_records() -> None:
    from streamguard.serving.model import input_codes

    assert input_codes(pd.DataFrame({"func": [BAD, GOOD]})) == [BAD, GOOD]
    assert input_codes(pd.DataFrame({"source": [BAD]})) == [BAD]  # one unnamed column is the source
    assert input_codes([BAD, {"func": GOOD}]) == [BAD, GOOD]
    assert input_codes({"func": [BAD]}) == [BAD]
    assert input_codes(BAD) == [BAD]


@pytest.mark.parametrize(
    "bad_input, message",
    [
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), "needs a 'func' column"),
        (pd.DataFrame({"func": ["int f(){}", 3]}), "rows [1]"),
        (42, "cannot read function source from a int"),
    ],
)
def test_input_codes_rejects_what_is_not_source(bad_input, message: str) -> None:
    from streamguard.serving.model import input_codes

    with pytest.raises(ValueError, match=r".*" + message.replace("[", r"\[").replace("]", r"\]")):
        input_codes(bad_input)


@pytest.mark.parametrize("track", ["transformer", "gnn", "fusion"])
def test_training_logs_each_track_as_a_pyfunc_model_that_predicts_like_the_project(full_run: Path, track: str) -> None:
    metrics = json.loads((full_run / f"data/08_reporting/{track}/ensemble_metrics.json").read_text())
    expected = project_scorer(full_run, track).score_codes([BAD, GOOD])
    with tracking_uri(full_run) as mlflow:
        model = mlflow.pyfunc.load_model(f"runs:/{latest_run_id(mlflow, full_run)}/{track}_model")
    predictions = model.predict(pd.DataFrame({"func": [BAD, GOOD]}))
    assert list(predictions.columns) == ["probability", "label", "threshold"]
    np.testing.assert_allclose(predictions["probability"], expected, rtol=1e-5)
    assert (predictions["threshold"] == metrics["best_threshold_by_f1"]).all()
    assert (predictions["label"] == (predictions["probability"] >= metrics["best_threshold_by_f1"])).all()
    overridden = model.predict(pd.DataFrame({"func": [BAD, GOOD]}), params={"threshold": 0.0})
    assert overridden["label"].tolist() == [1, 1]
    # The model carries only inference state: no optimizer or scheduler from training.
    assert model.unwrap_python_model().scorer.track == track
    assert model.metadata.metadata["seeds"] == len(metrics["seeds_used"])


def test_local_model_directory_is_written_beside_the_checkpoints(full_run: Path) -> None:
    import mlflow.pyfunc

    from streamguard.training.checkpoint import safe_torch_load

    directory = full_run / "data/06_models/fusion/servable_model"
    bundle = safe_torch_load(next((directory / "artifacts").glob("*.pt")))
    assert bundle["track"] == "fusion" and len(bundle["checkpoints"]) == 2
    assert all("training_state" not in checkpoint for checkpoint in bundle["checkpoints"])
    assert (directory / "code" / "streamguard" / "serving" / "model.py").exists()  # self-contained: the package travels along
    loaded = mlflow.pyfunc.load_model(str(directory))
    assert loaded.predict(pd.DataFrame({"func": [BAD]}))["probability"].between(0, 1).all()


def test_scan_with_a_model_uri_scores_like_the_project(full_run: Path, tmp_path: Path) -> None:
    from streamguard.serving.scan.cli import main

    source = tmp_path / "code" / "copy.c"
    source.parent.mkdir()
    source.write_text(BAD + "\n" + GOOD.replace("copy", "copy_checked"))
    reports = {}
    for name, extra in {
        "project": ["--project-dir", str(full_run)],
        "model": ["--model-uri", str(full_run / "data/06_models/fusion/servable_model")],
    }.items():
        output = tmp_path / f"{name}.json"
        code = main([str(source.parent), "--format", "json", "--threshold", "1.0", "--no-progress", "--output", str(output), *extra])
        assert code == 0  # nothing reaches a probability over 1.0
        reports[name] = json.loads(output.read_text())
    scores = {name: sorted((f["name"], round(f["score"], 5)) for f in report["functions"]) for name, report in reports.items()}
    assert scores["project"] == scores["model"] and len(scores["model"]) == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_models_serve_answers_a_request(full_run: Path, tmp_path: Path) -> None:
    """`mlflow models serve` (local env manager: no network) answers one scoring request."""
    port = free_port()
    model_dir = full_run / "data/06_models/fusion/servable_model"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = (tmp_path / "serve.log").open("w")
    # mlflow runs `exec uvicorn ...`: the virtualenv's bin/ must be on PATH even when it is not activated.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:
                    if ping.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not come up: " + (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        def invoke(payload: dict) -> tuple[int, dict]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:  # the README's claims about bad requests
                return error.code, json.loads(error.read())

        status, answer = invoke({"dataframe_records": [{"func": BAD}, {"func": GOOD}]})
        predictions = answer["predictions"]
        missing_status, missing = invoke({"dataframe_records": [{"code": BAD}]})
        _, overridden = invoke({"dataframe_records": [{"func": BAD}, {"func": GOOD}], "params": {"threshold": 0.999}})
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert status == 200 and len(predictions) == 2
    assert all(0.0 <= row["probability"] <= 1.0 and row["label"] in (0, 1) for row in predictions)
    validation_threshold = json.loads((full_run / "data/08_reporting/fusion/ensemble_metrics.json").read_text())["best_threshold_by_f1"]
    assert all(row["threshold"] == pytest.approx(validation_threshold) for row in predictions)
    assert all(row["label"] == int(row["probability"] >= validation_threshold) for row in predictions)
    # README: a request without a string "func" column gets HTTP 400 naming the missing input.
    assert missing_status == 400 and "Model is missing inputs ['func']" in missing["message"]
    # README: {"params": {"threshold": t}} overrides the threshold for that request.
    assert all(row["threshold"] == 0.999 and row["label"] == int(row["probability"] >= 0.999) for row in overridden["predictions"])
    expected = project_scorer(full_run, "fusion").score_codes([BAD, GOOD])
    np.testing.assert_allclose([row["probability"] for row in predictions], expected, rtol=1e-5)


@pytest.mark.parametrize("track", ["transformer", "fusion"])
def test_scorer_reproduces_the_pipelines_ensemble_and_builds_each_model_once(full_run: Path, track: str, monkeypatch) -> None:
    """Length-sorted, chunked, cached scoring gives the ensemble's own test probabilities."""
    import streamguard.models.transformer as transformer_models

    test = pd.read_parquet(full_run / "data/03_primary/test_functions.parquet")
    ensemble = pd.read_parquet(full_run / f"data/07_model_output/{track}/ensemble_test_logits.parquet")
    scorer = project_scorer(full_run, track)  # warmed up: every seed's model is built
    scorer.chunk_size = 17  # several chunks, each sorted by length
    builds = []
    original = transformer_models.rebuild_transformer
    monkeypatch.setattr(transformer_models, "rebuild_transformer", lambda *a, **k: builds.append(1) or original(*a, **k))
    scores = scorer.score_codes(test["func"].tolist())
    scores_again = scorer.score_codes(test["func"].tolist()[::-1])
    expected = ensemble.set_index("idx").loc[test["idx"], "prob"].to_numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores_again, scores[::-1], rtol=1e-6)
    assert builds == []  # no model rebuilt after the first use, whatever the batch
    import streamguard.serving.scorer

    monkeypatch.setattr(streamguard.serving.scorer, "MIN_CODES_FOR_PARALLEL_SEEDS", 1)
    scorer.seed_workers = 1 if scorer.seed_workers > 1 else 2  # seeds one after another vs side by side
    np.testing.assert_allclose(scorer.score_codes(test["func"].tolist()), scores, rtol=1e-5)
