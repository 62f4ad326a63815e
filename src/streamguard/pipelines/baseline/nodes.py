"""baseline nodes: thin wrappers over streamguard.tracks.baseline (TF-IDF + logistic regression)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def fit(
    train_functions: pd.DataFrame,
    valid_functions: pd.DataFrame,
    test_functions: pd.DataFrame,
    params: dict[str, Any],
    *,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Fit on train, choose C on valid; the logits tables and a checkpoint-like summary for ``score``."""
    from streamguard.tracks.baseline import fit_baseline

    valid_logits, test_logits, info = fit_baseline(train_functions, valid_functions, test_functions, params)
    summary = {
        "track": "baseline",
        "seed": seed,
        "config": {"preset": None},
        "metrics_extra": {"baseline": info},
    }
    return valid_logits, test_logits, summary


def fit_and_score(
    train_functions: pd.DataFrame,
    valid_functions: pd.DataFrame,
    test_functions: pd.DataFrame,
    params: dict[str, Any],
    sweep: dict,
    *,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``fit`` then the shared ``score`` in one node.

    One node puts the baseline's metrics.json in the same topological layer as the first training
    nodes (Kedro's sequential runner runs layer by layer), so a run stopped during transformer
    training still has the baseline's results: it takes seconds.
    """
    from streamguard.pipelines.common import score

    valid_logits, test_logits, summary = fit(train_functions, valid_functions, test_functions, params, seed=seed)
    return valid_logits, test_logits, score(valid_logits, test_logits, summary, sweep)
