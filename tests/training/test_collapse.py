"""Collapse detection: one class predicted for consecutive epochs stops the seed with a report (issue 16, item 2)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from toy_data import VectorRows, collate_rows
from torch import nn

from streamguard.training import TrainConfig, fit
from streamguard.training.collapse import RATE_KEY, TrainingCollapseError, check_collapse

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def _history(*rates):
    return [{"epoch": epoch, "train_loss": 0.7, "valid_loss": 0.69, "valid_f1": 0.0, "valid_roc_auc": 0.5, RATE_KEY: rate}
            for epoch, rate in enumerate(rates, start=1)]


def test_two_consecutive_one_class_epochs_from_epoch_two_raise_with_a_report():
    config = TrainConfig(epochs=5)
    check_collapse(_history(0.0, 0.0)[:1], config)  # epoch 1 alone: too early
    check_collapse(_history(0.0, 0.4, 0.0), config)  # not consecutive
    with pytest.raises(TrainingCollapseError, match=r"epochs 2, 3 predicted 'safe' only") as caught:
        check_collapse(_history(0.3, 0.0, 0.0), config)
    report = caught.value.report
    assert report["epochs"] == [2, 3] and report["predicted_class"] == "safe"
    assert report["remedies"][0].startswith("correct the class imbalance")
    assert report["settings"]["collapse_check_from_epoch"] == 2


def test_epoch_one_does_not_count_and_a_class_flip_still_does():
    config = TrainConfig(epochs=5)
    check_collapse(_history(0.0, 0.0), config)  # epochs 1 and 2: epoch 1 is before the start
    check_collapse(_history(1.0, 0.2), config)
    with pytest.raises(TrainingCollapseError, match="one class per epoch"):
        check_collapse(_history(0.5, 0.0, 1.0), config)  # the original counts any one-class epoch as a signal


def test_parameters_move_the_start_and_turn_it_off():
    check_collapse(_history(0.0, 0.0, 0.0), TrainConfig(collapse_check_from_epoch=0))  # off
    check_collapse(_history(0.3, 0.0, 0.0), TrainConfig(collapse_check_from_epoch=3))  # epoch 2 is before the start
    with pytest.raises(TrainingCollapseError):
        check_collapse(_history(0.3, 0.0, 0.0, 0.0), TrainConfig(collapse_check_from_epoch=3))
    with pytest.raises(TrainingCollapseError):
        check_collapse(_history(0.3, 0.0), TrainConfig(collapse_consecutive_epochs=1))


def _rows(n: int) -> VectorRows:
    return VectorRows(n, 4, labels=[i % 2 for i in range(n)])


class AlwaysSafe(nn.Module):
    """A model whose bias keeps every prediction 'safe' (lr too small to move it)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.bias.copy_(torch.tensor([50.0, -50.0]))

    def forward(self, batch):
        return self.linear(batch["x"])


def test_fit_stops_at_the_second_collapsed_epoch():
    config = TrainConfig(epochs=6, lr=1e-9, early_stopping_patience=0, progress=False, device="cpu")
    epochs_seen = []
    with pytest.raises(TrainingCollapseError) as caught:
        fit(AlwaysSafe(), _rows(32), _rows(16), collate_rows, config, on_epoch_end=lambda record: epochs_seen.append(record["epoch"]))
    assert epochs_seen == [1, 2, 3]
    assert caught.value.report["epochs"] == [2, 3]
    result = fit(AlwaysSafe(), _rows(32), _rows(16), collate_rows, TrainConfig(**{**config.to_dict(), "collapse_check_from_epoch": 0}))
    assert len(result.history) == 6 and result.history[-1][RATE_KEY] == 0.0


def test_the_node_writes_the_report_logs_it_and_names_it(tmp_path, monkeypatch):
    import mlflow

    from streamguard.datasets.collapse_dataset import CollapseReportDataset
    from streamguard.pipelines.gnn import nodes
    from streamguard.tracks.gnn import build_split_graphs

    conf = yaml.safe_load((CONF / "parameters_gnn.yml").read_text())
    params = copy.deepcopy(conf["_gnn_defaults"])
    params.update({"hidden_dim": 8, "num_layers": 2})
    params["training"].update({"epochs": 4, "progress": False, "collapse_check_from_epoch": 2})
    from streamguard.data.generator import generate_dataset

    frames = generate_dataset(32, 16, 0, seed=5)
    graphs = {split: build_split_graphs(frames[split], conf["graphs"])[0] for split in ("train", "valid")}
    # Make the GNN collapse for sure: every validation prediction 'safe'.
    from streamguard.models.gnn import GNNClassifier

    original_forward = GNNClassifier.forward
    monkeypatch.setattr(GNNClassifier, "forward", lambda self, batch: original_forward(self, batch) + torch.tensor([100.0, -100.0]))
    dataset = CollapseReportDataset(str(tmp_path / "gnn" / "seed_0"), mlflow_dir="gnn/seed_0")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment_id = mlflow.create_experiment("collapse", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            with pytest.raises(TrainingCollapseError, match=r"gnn\.seed_0: training collapsed.*collapse_report\.json") as caught:
                nodes.train(graphs["train"], frames["train"], graphs["valid"], frames["valid"], params, conf["graphs"], None, None,
                            dataset.load(), seed=0)
        artifacts = sorted(item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "gnn/seed_0"))
    finally:
        mlflow.set_tracking_uri(None)
    report = json.loads((tmp_path / "gnn" / "seed_0" / "collapse_report.json").read_text())
    assert report["run"] == "gnn.seed_0" and report["epochs"] == [2, 3] and report["predicted_class"] == "safe"
    text = (tmp_path / "gnn" / "seed_0" / "collapse_report.txt").read_text()
    assert "Remedies:" in text and "change the learning rate" in text
    assert str(tmp_path / "gnn" / "seed_0" / "collapse_report.txt") in str(caught.value)
    assert artifacts == ["gnn/seed_0/collapse_report.json", "gnn/seed_0/collapse_report.txt"]
    # A later run of the seed that trains normally removes the stale report.
    monkeypatch.setattr(GNNClassifier, "forward", original_forward)
    params["training"]["collapse_check_from_epoch"] = 0
    nodes.train(graphs["train"], frames["train"], graphs["valid"], frames["valid"], params, conf["graphs"], None, None, dataset.load(), seed=0)
    assert not (tmp_path / "gnn" / "seed_0" / "collapse_report.json").exists()
