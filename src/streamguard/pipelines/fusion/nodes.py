"""fusion nodes: thin wrappers over streamguard.tracks.fusion."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamguard.tracking.runs import epoch_logger


def train(
    transformer_checkpoint: dict | None,
    gnn_checkpoint: dict | None,
    train_functions: pd.DataFrame,
    valid_functions: pd.DataFrame,
    train_graphs: list,
    valid_graphs: list,
    params: dict[str, Any],
    baseline_params: dict[str, Any],
    training_state: Any,
    collapse_report: Any = None,
    *,
    seed: int,
):
    """Train the fusion head for one seed from that seed's branch checkpoints (either may be missing).

    ``baseline_params`` configure the lexical branch's TF-IDF model (used with ``fusion.lexical_branch``).

    ``training_state`` (a ResumeStore) is where per-epoch resumable states go and are resumed from.
    A collapsed seed (one class predicted for consecutive epochs) writes ``collapse_report`` and fails.
    """
    from streamguard.tracks.common import train_seed
    from streamguard.tracks.fusion import train_fusion

    return train_seed(
        f"fusion.seed_{seed}",
        lambda: train_fusion(
            transformer_checkpoint,
            gnn_checkpoint,
            {"train": train_functions, "valid": valid_functions},
            {"train": train_graphs, "valid": valid_graphs},
            params,
            seed=seed,
            on_epoch_end=epoch_logger(f"fusion.seed_{seed}"),
            resume=training_state,
            baseline_params=baseline_params,
        ),
        collapse_report,
    )


def predict(checkpoint: dict, valid_functions: pd.DataFrame, valid_graphs: list, test_functions: pd.DataFrame, test_graphs: list):
    from streamguard.tracks.fusion import fusion_logits

    return fusion_logits(checkpoint, valid_functions, valid_graphs), fusion_logits(checkpoint, test_functions, test_graphs)


def plot_curves(history: list[dict], *, seed: int) -> dict:
    """This seed's per-epoch curves as a figure (saved as PNG and logged to MLflow by the catalog)."""
    from streamguard.evaluation.figures import training_curves_figures

    return training_curves_figures(history, "fusion", seed)
