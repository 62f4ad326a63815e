"""training.lr: auto runs a cached learning-rate range test (torch-lr-finder) for every track (issue 16, item 1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from toy_data import VectorRows, collate_rows

from streamguard.training import TrainConfig, fit
from streamguard.training import lr_finder
from streamguard.training.lr_finder import resolve_auto_lr

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def forward(self, batch):
        return self.layers(batch["x"])


def test_auto_is_a_valid_lr_and_fit_refuses_it_unresolved():
    assert TrainConfig.from_dict({"lr": "auto"}).lr == "auto"
    with pytest.raises(ValueError, match="lr must be > 0 or 'auto'"):
        TrainConfig.from_dict({"lr": -1})
    with pytest.raises(ValueError, match="is not a number"):
        TrainConfig.from_dict({"lr": "fast"})
    with pytest.raises(ValueError, match="resolved before fit"):
        fit(Net(), VectorRows(32, 6), VectorRows(16, 6), collate_rows, TrainConfig(lr="auto", epochs=1, progress=False))


def test_range_test_picks_a_rate_restores_the_model_and_caches(tmp_path, monkeypatch):
    config = TrainConfig(lr="auto", batch_size=8, lr_finder_iterations=60, lr_finder_cache_dir=str(tmp_path), device="cpu")
    model = Net()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    resolved, info = resolve_auto_lr(config, model, VectorRows(256, 6), collate_rows, {"track": "toy", "data": "a"}, label="toy.seed_0")
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # weights restored
    assert 1e-7 < resolved.lr < 1.0 and resolved.lr == info["lr"]
    assert info["cache_hit"] is False and info["iterations_run"] >= 17
    cached = json.loads(Path(info["cache_file"]).read_text())
    assert cached["lr"] == info["lr"] and len(cached["lrs"]) == len(cached["losses"]) == info["iterations_run"]
    assert cached["lrs"] == sorted(cached["lrs"])  # an exponential sweep upwards
    assert Path(info["plot"]).read_bytes()[:4] == b"\x89PNG"
    # Same key: the cache answers and no range test runs; another key runs one.
    monkeypatch.setattr(lr_finder, "range_test", lambda *a, **k: pytest.fail("range test ran despite a cache hit"))
    again, info_again = resolve_auto_lr(config, Net(), VectorRows(256, 6), collate_rows, {"track": "toy", "data": "a"}, label="toy.seed_1")
    assert again.lr == resolved.lr and info_again["cache_hit"] is True
    with pytest.raises(pytest.fail.Exception):
        resolve_auto_lr(config, Net(), VectorRows(256, 6), collate_rows, {"track": "toy", "data": "b"}, label="toy.seed_0")


def test_numeric_lr_is_left_alone(tmp_path):
    config = TrainConfig(lr=3e-3, lr_finder_cache_dir=str(tmp_path))
    assert resolve_auto_lr(config, Net(), VectorRows(16, 6), collate_rows, {}, label="x") == (config, None)
    assert list(tmp_path.iterdir()) == []


def test_gnn_track_with_lr_auto_trains_at_the_found_rate_and_logs_the_curve(tmp_path):
    import mlflow

    from streamguard.data.generator import generate_dataset
    from streamguard.pipelines.gnn import nodes
    from streamguard.tracks.gnn import build_split_graphs

    conf = yaml.safe_load((CONF / "parameters_gnn.yml").read_text())
    params = copy.deepcopy(conf["_gnn_defaults"])
    params.update({"hidden_dim": 8, "num_layers": 2})
    params["training"].update({"epochs": 1, "progress": False, "lr": "auto", "lr_finder_iterations": 30,
                               "lr_finder_cache_dir": str(tmp_path / "cache")})
    frames = generate_dataset(96, 32, 0, seed=5)
    graphs = {split: build_split_graphs(frames[split], conf["graphs"])[0] for split in ("train", "valid")}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment_id = mlflow.create_experiment("lr", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            checkpoint, _ = nodes.train(graphs["train"], frames["train"], graphs["valid"], frames["valid"], params, conf["graphs"],
                                        None, None, None, seed=0)
        artifacts = [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "gnn/seed_0/lr_finder")]
        logged = mlflow.get_run(run.info.run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    info = checkpoint["metrics_extra"]["lr_finder"]
    effective = checkpoint["metrics_extra"]["effective_hyperparameters"]
    assert effective["training"]["lr"] == info["lr"] and info["cache_hit"] is False
    assert checkpoint["training_state"]["effective"]["param_group_lrs"][0] == pytest.approx(info["lr"])
    assert float(logged["gnn.seed_0.effective.training.lr"]) == pytest.approx(info["lr"])
    assert artifacts == [f"gnn/seed_0/lr_finder/{Path(info['plot']).name}"]
