import json

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from streamguard.datasets import LogitsDataset, MetricsDataset, TorchCheckpointDataset


def logits_table(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {"idx": np.arange(n), "label": [0, 1] * (n // 2), "logit_0": np.zeros(n), "logit_1": np.ones(n), "prob": np.full(n, 0.73)}
    )


def test_metrics_dataset_round_trip_without_mlflow_run(tmp_path):
    dataset = MetricsDataset(str(tmp_path / "a" / "metrics.json"), mlflow_prefix="gnn.seed_0")
    dataset.save({"f1_at_0_5": np.float64(0.5), "confusion_matrix_at_0_5": {"tp": 1}})
    assert dataset.load() == {"f1_at_0_5": 0.5, "confusion_matrix_at_0_5": {"tp": 1}}
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_metrics_dataset_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="metrics.json is not valid JSON"):
        MetricsDataset(str(path)).load()


def test_metrics_dataset_logs_to_an_active_mlflow_run(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment_id = mlflow.create_experiment("datasets")  # not the experiment a Kedro test left active
        with mlflow.start_run(experiment_id=experiment_id) as run:
            MetricsDataset(str(tmp_path / "m.json"), mlflow_prefix="fusion.seed_2").save({"f1_at_best_threshold": 0.75, "test": {"f1": 0.5}})
        logged = mlflow.get_run(run.info.run_id).data.metrics
    finally:
        mlflow.set_tracking_uri(None)
    assert logged == {"fusion.seed_2.f1_at_best_threshold": 0.75, "fusion.seed_2.test.f1": 0.5}


def test_logits_dataset_round_trip_and_schema_check(tmp_path):
    dataset = LogitsDataset(str(tmp_path / "valid_logits.parquet"))
    dataset.save(logits_table())
    pd.testing.assert_frame_equal(dataset.load(), logits_table())
    with pytest.raises(DatasetError, match="lack columns"):
        dataset.save(logits_table().drop(columns=["idx"]))


def test_truncated_logits_file_is_reported_with_its_path(tmp_path):
    path = tmp_path / "test_logits.parquet"
    LogitsDataset(str(path)).save(logits_table(8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetError, match="test_logits.parquet is unreadable"):
        LogitsDataset(str(path)).load()


def test_missing_artefacts_load_as_none_only_when_allowed(tmp_path):
    assert TorchCheckpointDataset(str(tmp_path / "c.pt"), allow_missing=True).load() is None
    assert LogitsDataset(str(tmp_path / "l.parquet"), allow_missing=True).load() is None
    with pytest.raises(DatasetError, match="does not exist"):
        LogitsDataset(str(tmp_path / "l.parquet"), how_to_produce="Run kedro run --pipeline gnn.").load()


def test_checkpoint_dataset_round_trip(tmp_path):
    import torch

    dataset = TorchCheckpointDataset(str(tmp_path / "seed_0" / "checkpoint.pt"))
    dataset.save({"state": {"w": torch.ones(2)}, "epoch": 3, "config": {"lr": 0.1, "name": "tiny"}})
    loaded = dataset.load()
    assert loaded["epoch"] == 3 and loaded["config"] == {"lr": 0.1, "name": "tiny"}
    assert torch.equal(loaded["state"]["w"], torch.ones(2))


def test_atomic_writes_keep_the_usual_file_mode(tmp_path):
    import os
    import stat

    import torch

    umask = os.umask(0o022)
    try:
        MetricsDataset(str(tmp_path / "m.json"), log_to_mlflow=False).save({"f1": 0.5})
        TorchCheckpointDataset(str(tmp_path / "c.pt")).save({"w": torch.ones(1)})
    finally:
        os.umask(umask)
    for name in ("m.json", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644  # not mkstemp's 0o600
