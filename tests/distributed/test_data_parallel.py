"""Data-parallel training of one seed: 2 CPU processes (gloo, through Accelerate) vs 1 process.

With the same global batch (``split_batches``: each process gets half of every batch) and no
dropout, the two runs take the same optimizer steps on the same examples; they differ only by
float summation order (per-process partial gradients averaged by DDP). Stated tolerance: 1e-4 on
every per-epoch metric and on the final logits.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
GRAPH_PARAMS = {"edge_types": ["ast", "next_token", "control_flow", "data_flow"], "max_nodes": 128,
                "oversize_policy": "truncate", "token_buckets": 256}


def gnn_params(num_processes: int) -> dict:
    return {
        "arch": "gcn", "hidden_dim": 16, "num_layers": 2, "dropout": 0.0, "pooling": "mean_max",
        "encoder_features": "none",
        "training": {
            "epochs": 3, "batch_size": 16, "eval_batch_size": 16, "lr": 3e-3, "scheduler": "linear",
            "warmup_ratio": 0.0, "gradient_accumulation_steps": 2, "early_stopping_patience": 0,
            "progress": False, "device": "cpu", "num_processes": num_processes,
        },
    }


@pytest.fixture(scope="module")
def data():
    from streamguard.data.generator import generate_dataset
    from streamguard.tracks.gnn import build_split_graphs

    frames = generate_dataset(96, 48, 0, seed=11)
    graphs = {split: build_split_graphs(frames[split], GRAPH_PARAMS)[0] for split in ("train", "valid")}
    return frames, graphs


def train(data, num_processes: int):
    from streamguard.tracks.gnn import train_gnn

    frames, graphs = data
    epochs = []
    checkpoint, history = train_gnn(
        graphs["train"], frames["train"], graphs["valid"], frames["valid"], gnn_params(num_processes), GRAPH_PARAMS,
        seed=3, on_epoch_end=epochs.append,
    )
    return checkpoint, history, epochs


def test_two_gloo_processes_train_like_one(data, tmp_path) -> None:
    from streamguard.tracks.gnn import gnn_logits
    from streamguard.training import atomic_torch_save, safe_torch_load

    single, single_history, _ = train(data, 1)
    parallel, parallel_history, replayed = train(data, 2)

    assert parallel["training_state"]["effective"]["data_parallel_processes"] == 2
    assert "data_parallel_processes" not in single["training_state"]["effective"]
    assert len(parallel_history) == len(single_history) == 3
    for one, two in zip(single_history, parallel_history):
        assert two["optimizer_steps"] == one["optimizer_steps"]  # 6 batches / accumulation 2 = 3 steps per epoch
        for key in ("train_loss", "valid_loss", "valid_roc_auc", "valid_f1", "lr"):
            assert two[key] == pytest.approx(one[key], abs=TOLERANCE), key
        assert two["samples_per_s"] > 0
    # The caller's callback (MLflow curves in a Kedro node) saw every epoch, once, in this process.
    assert [record["epoch"] for record in replayed] == [1, 2, 3]
    # Training moved the weights: equality is not two untouched models.
    assert single_history[-1]["train_loss"] < single_history[0]["train_loss"]

    # The 2-process checkpoint loads and predicts in one process, like the 1-process one.
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save(parallel, path)
    frames, graphs = data
    reloaded = gnn_logits(safe_torch_load(path), graphs["valid"], frames["valid"])
    reference = gnn_logits(single, graphs["valid"], frames["valid"])
    np.testing.assert_allclose(reloaded[["logit_0", "logit_1"]].to_numpy(), reference[["logit_0", "logit_1"]].to_numpy(), atol=TOLERANCE)
    assert reloaded["idx"].tolist() == frames["valid"]["idx"].tolist()


def test_num_processes_is_validated() -> None:
    from streamguard.training import TrainConfig

    assert TrainConfig.from_dict({"num_processes": "2"}).num_processes == 2
    with pytest.raises(ValueError, match="num_processes must be >= 1"):
        TrainConfig(num_processes=0)
