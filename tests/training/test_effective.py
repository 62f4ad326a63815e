"""Effective hyperparameters (after preset, overrides and train-time adjustments) reach metrics.json and MLflow params."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from streamguard.data.generator import generate_dataset
from streamguard.evaluation.metrics import flatten_for_mlflow
from streamguard.training.effective import effective_hyperparameters, flatten_params

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def test_effective_values_come_from_the_loop_state_not_the_params():
    params = {"preset": "p", "dropout": 0.1, "training": {"lr": 1e-3, "focal_gamma": 2.0}}
    state = {"config": {"lr": 1e-3, "focal_gamma": 1.5}, "effective": {"device": "cpu", "warmup_steps": 3}}
    values = effective_hyperparameters(params, state)
    assert values == {"preset": "p", "dropout": 0.1, "training": {"lr": 1e-3, "focal_gamma": 1.5},
                      "derived": {"device": "cpu", "warmup_steps": 3}}
    flat = flatten_params(values, "gnn.seed_0.effective")
    assert flat["gnn.seed_0.effective.training.focal_gamma"] == "1.5"
    assert flat["gnn.seed_0.effective.derived.device"] == "cpu"
    # Settings are params, not metrics: the metrics flattening leaves them out.
    assert flatten_for_mlflow({"f1": 0.5, "effective_hyperparameters": values}) == {"f1": 0.5}


def test_gnn_seed_writes_effective_hyperparameters_to_metrics_and_mlflow(tmp_path):
    import mlflow

    from streamguard.pipelines.common import score
    from streamguard.pipelines.gnn.nodes import predict, train
    from streamguard.tracks.gnn import build_split_graphs

    conf = yaml.safe_load((CONF / "parameters_gnn.yml").read_text())
    params = copy.deepcopy(conf["_gnn_defaults"])
    params.update({"hidden_dim": 8, "num_layers": 2, "preset": "gnn_cpu_fast"})
    params["training"].update({"epochs": 1, "lr": 3.0e-3, "progress": False})  # an override
    frames = generate_dataset(64, 32, 32, seed=5)
    graphs = {split: build_split_graphs(frames[split], conf["graphs"])[0] for split in frames}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment_id = mlflow.create_experiment("effective", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            checkpoint, _ = train(graphs["train"], frames["train"], graphs["valid"], frames["valid"], params, conf["graphs"], None, None, seed=0)
        logged = mlflow.get_run(run.info.run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    valid_logits, test_logits = predict(checkpoint, graphs["valid"], frames["valid"], graphs["test"], frames["test"], None)
    metrics = score(valid_logits, test_logits, checkpoint, {"start": 0.3, "stop": 0.7, "step": 0.01})
    effective = metrics["effective_hyperparameters"]
    assert effective["training"]["lr"] == 3.0e-3 and effective["training"]["seed"] == 0
    assert effective["preset"] == "gnn_cpu_fast" and effective["arch"] == "gcn"
    assert effective["derived"]["steps_per_epoch"] == 2  # 64 rows in batches of 32
    assert logged["gnn.seed_0.effective.training.lr"] == "0.003"
    assert logged["gnn.seed_0.effective.derived.device"] == "cpu"
    assert logged["gnn.seed_0.effective.derived.steps_per_epoch"] == str(effective["derived"]["steps_per_epoch"])
