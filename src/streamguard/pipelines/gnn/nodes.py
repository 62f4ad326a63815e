"""gnn nodes: thin wrappers over streamguard.tracks.gnn."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamguard.tracking.runs import epoch_logger


def build_graphs(train_functions: pd.DataFrame, valid_functions: pd.DataFrame, test_functions: pd.DataFrame, graph_params: dict[str, Any]):
    """Code graphs for every split, built once and shared by all seeds and by fusion."""
    from streamguard.tracks.gnn import build_split_graphs

    outputs, report = [], {}
    for split, frame in (("train", train_functions), ("valid", valid_functions), ("test", test_functions)):
        graphs, stats = build_split_graphs(frame, graph_params)
        outputs.append(graphs)
        report[split] = stats
    return (*outputs, report)


def train(
    train_graphs: list,
    train_functions: pd.DataFrame,
    valid_graphs: list,
    valid_functions: pd.DataFrame,
    params: dict[str, Any],
    graph_params: dict[str, Any],
    transformer_checkpoint: dict | None,
    training_state: Any,
    collapse_report: Any = None,
    *,
    seed: int,
):
    """Train one seed (resuming from ``training_state``, a ResumeStore); returns the checkpoint dict and the history.

    A collapsed seed (one class predicted for consecutive epochs) writes ``collapse_report`` and fails.
    """
    from streamguard.tracks.common import train_seed
    from streamguard.tracks.gnn import train_gnn

    return train_seed(
        f"gnn.seed_{seed}",
        lambda: train_gnn(
            train_graphs,
            train_functions,
            valid_graphs,
            valid_functions,
            params,
            graph_params,
            seed=seed,
            transformer_checkpoint=transformer_checkpoint,
            on_epoch_end=epoch_logger(f"gnn.seed_{seed}"),
            resume=training_state,
        ),
        collapse_report,
    )


def predict(
    checkpoint: dict,
    valid_graphs: list,
    valid_functions: pd.DataFrame,
    test_graphs: list,
    test_functions: pd.DataFrame,
    transformer_checkpoint: dict | None,
):
    from streamguard.tracks.gnn import gnn_logits

    return (
        gnn_logits(checkpoint, valid_graphs, valid_functions, transformer_checkpoint),
        gnn_logits(checkpoint, test_graphs, test_functions, transformer_checkpoint),
    )


def plot_curves(history: list[dict], *, seed: int) -> dict:
    """This seed's per-epoch curves as a figure (saved as PNG and logged to MLflow by the catalog)."""
    from streamguard.evaluation.figures import training_curves_figures

    return training_curves_figures(history, "gnn", seed)
