"""Each seed's per-epoch curves become a PNG and an MLflow artifact (issue 16, item 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from streamguard.datasets import FiguresDataset

CATALOG = Path(__file__).resolve().parents[2] / "conf" / "base" / "catalog.yml"
HISTORY = [
    {"epoch": 1, "train_loss": 0.69, "valid_loss": 0.68, "valid_f1": 0.40, "valid_roc_auc": 0.55, "best_epoch": 1},
    {"epoch": 2, "train_loss": 0.60, "valid_loss": 0.64, "valid_f1": 0.52, "valid_roc_auc": 0.63, "best_epoch": 2},
]


def _pipeline(track: str):
    from importlib import import_module

    return import_module(f"streamguard.pipelines.{track}").create_pipeline(seeds=[1])


@pytest.mark.parametrize("track", ["transformer", "gnn", "fusion"])
def test_every_track_plots_each_seeds_curves_into_mlflow(track, tmp_path):
    import mlflow

    pipeline = _pipeline(track).only_nodes(f"{track}.seed_1.plot_curves")
    assert pipeline.outputs() == {f"{track}.seed_1.training_curves"}
    catalog = DataCatalog(
        {
            f"{track}.seed_1.history": MemoryDataset(HISTORY),
            f"{track}.seed_1.training_curves": FiguresDataset(str(tmp_path / "figures"), mlflow_dir=f"{track}/seed_1"),
        }
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment_id = mlflow.create_experiment("curves", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            SequentialRunner().run(pipeline, catalog)
        artifacts = [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, f"{track}/seed_1")]
    finally:
        mlflow.set_tracking_uri(None)
    png = tmp_path / "figures" / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert artifacts == [f"{track}/seed_1/training_curves.png"]


def test_the_catalog_writes_curves_next_to_the_seeds_metrics():
    entry = yaml.safe_load(CATALOG.read_text())["{track}.seed_{seed}.training_curves"]
    assert entry["type"] == "streamguard.datasets.FiguresDataset"
    assert entry["filepath"] == "data/08_reporting/{track}/seed_{seed}/figures"
    assert entry["mlflow_dir"] == "{track}/seed_{seed}"


def test_the_figure_draws_the_selection_metric_and_best_epoch():
    from streamguard.evaluation.figures import training_curves_figures

    figure = training_curves_figures(HISTORY, "gnn", 1)["training_curves"]
    labels = {line.get_label() for axes in figure.axes for line in axes.get_lines()}
    assert {"train loss", "valid loss", "valid f1", "valid roc auc", "best epoch (2)"} <= labels
    assert figure.axes[0].get_title() == "gnn seed 1: training curves"
