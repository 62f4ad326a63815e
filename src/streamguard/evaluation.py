"""From model outputs to the shared metrics dict: logits tables and validation-chosen thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from streamguard.metrics import SweepSpec, compute_metrics, probabilities_from_logits


def logits_frame(idx: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """The logits table every track writes: idx, label, logit_0, logit_1, prob (P(vulnerable))."""
    logits = np.asarray(logits, dtype=np.float64)
    return pd.DataFrame(
        {
            "idx": np.asarray(idx, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "logit_0": logits[:, 0],
            "logit_1": logits[:, 1],
            "prob": probabilities_from_logits(logits),
        }
    )


def sweep_spec(sweep: Mapping[str, float] | None) -> SweepSpec:
    return SweepSpec(**dict(sweep)) if sweep else SweepSpec()


def metrics_from_logits(
    valid: pd.DataFrame, test: pd.DataFrame | None, sweep: Mapping[str, float] | None = None, **extra: Any
) -> dict[str, Any]:
    """Metrics on valid, and on test at the threshold chosen on valid; ``extra`` keys are added first."""
    metrics = compute_metrics(
        valid["label"].to_numpy(),
        valid["prob"].to_numpy(),
        None if test is None else test["label"].to_numpy(),
        None if test is None else test["prob"].to_numpy(),
        spec=sweep_spec(sweep),
    )
    return {**extra, **metrics}
