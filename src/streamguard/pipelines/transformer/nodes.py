"""transformer nodes: thin wrappers over streamguard.tracks.transformer."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamguard.tracking.runs import epoch_logger


def train(
    train_functions: pd.DataFrame,
    valid_functions: pd.DataFrame,
    params: dict[str, Any],
    training_state: Any,
    collapse_report: Any = None,
    pretrained_encoder: Any = None,
    *,
    seed: int,
):
    """Train one seed (resuming from ``training_state``, a ResumeStore); returns the checkpoint dict and the history.

    A collapsed seed (one class predicted for consecutive epochs) writes ``collapse_report`` and fails.
    """
    from streamguard.tracks.common import train_seed
    from streamguard.tracks.transformer import train_transformer

    return train_seed(
        f"transformer.seed_{seed}",
        lambda: train_transformer(
            train_functions,
            valid_functions,
            params,
            seed=seed,
            on_epoch_end=epoch_logger(f"transformer.seed_{seed}"),
            resume=training_state,
            # A loader (the catalog reads the checkpoint on demand): called only when it is used.
            pretrained=pretrained_encoder() if params.get("init_from") == "pretraining" and pretrained_encoder else None,
        ),
        collapse_report,
    )


def predict(checkpoint: dict, valid_functions: pd.DataFrame, test_functions: pd.DataFrame):
    """Logits tables for valid and test from the best checkpoint."""
    from streamguard.tracks.transformer import transformer_logits

    return transformer_logits(checkpoint, valid_functions), transformer_logits(checkpoint, test_functions)


def plot_curves(history: list[dict], *, seed: int) -> dict:
    """This seed's per-epoch curves as a figure (saved as PNG and logged to MLflow by the catalog)."""
    from streamguard.evaluation.figures import training_curves_figures

    return training_curves_figures(history, "transformer", seed)
