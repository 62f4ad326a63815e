"""pretraining nodes: thin wrappers over streamguard.tracks.pretraining."""

from __future__ import annotations

from typing import Any

import pandas as pd

from streamguard.tracking.runs import epoch_logger


def pretrain(train_functions: pd.DataFrame, params: dict[str, Any], training_state: Any):
    """MLM-pretrain the encoder on the train split's functions (+ the configured corpora); resumable."""
    from streamguard.tracks.pretraining import pretrain_encoder

    checkpoint, history = pretrain_encoder(
        train_functions, params, seed=int(params.get("seed", 0)), on_epoch_end=epoch_logger("pretraining"), resume=training_state
    )
    summary = {
        "corpus": checkpoint["corpus"],
        "best_epoch": checkpoint["best_epoch"],
        "best_valid_loss": min(record["valid_loss"] for record in history),
        "best_valid_perplexity": min(record["valid_perplexity"] for record in history),
        "epochs_run": len(history),
        "config_hash": checkpoint["config_hash"],
    }
    return checkpoint, history, summary


def plot_curves(history: list[dict]) -> dict:
    """MLM loss and perplexity per epoch (PNG + MLflow artifact through the catalog)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [record["epoch"] for record in history]
    figure, (loss_axis, ppl_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(epochs, [record["train_loss"] for record in history], marker="o", label="train")
    loss_axis.plot(epochs, [record["valid_loss"] for record in history], marker="o", label="held-out")
    loss_axis.set(xlabel="epoch", ylabel="masked-token cross-entropy", title="MLM loss")
    loss_axis.legend()
    ppl_axis.plot(epochs, [record["valid_perplexity"] for record in history], marker="o", color="tab:green")
    ppl_axis.set(xlabel="epoch", ylabel="perplexity", title="held-out perplexity", yscale="log")
    figure.tight_layout()
    return {"pretraining_curves": figure}
