"""Stacking across tracks: a logistic-regression meta-model over each track's ensemble logit.

Why: the deep tracks and the lexical baseline err on different functions, so a learned weighting
of their scores can beat each of them. The meta-model is fitted on the **validation** split only
(the tracks were trained on train, so their train scores are over-confident and useless for
stacking); test is never used for any choice:

* valid scores are out-of-fold (``folds``-fold cross-fitting on valid: every valid row is scored
  by a meta-model that did not see it), so the decision threshold chosen on them is honest;
* test scores come from one meta-model fitted on all of valid.

Features are the per-track margins ``logit_1 - logit_0`` (the baseline's ``logit_1``),
standardised; the fitted coefficients say how much each track contributes. Plain scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamguard.evaluation.scoring import compare_to_reference, logits_frame, metrics_from_logits

logger = logging.getLogger(__name__)

STACKED_TRACK = "stacked"
DEFAULT_STACKING = {"enabled": True, "inputs": ["baseline", "transformer", "gnn", "fusion"], "folds": 5, "C": 1.0, "seed": 0}


class StackingError(ValueError):
    """The tracks' logits cannot be stacked (too few inputs, rows that do not match)."""


def margins(frame: pd.DataFrame) -> np.ndarray:
    """The model's log-odds for the vulnerable class: ``logit_1 - logit_0``."""
    return (frame["logit_1"] - frame["logit_0"]).to_numpy(dtype=np.float64)


def _feature_matrix(frames: Mapping[str, pd.DataFrame], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = list(frames)
    reference = frames[names[0]]
    for name in names[1:]:
        frame = frames[name]
        if len(frame) != len(reference) or not np.array_equal(frame["idx"].to_numpy(), reference["idx"].to_numpy()):
            # Tracks may write rows in different orders: align on idx, refuse anything else.
            aligned = frame.set_index("idx").reindex(reference["idx"].to_numpy())
            if aligned["label"].isna().any():
                raise StackingError(
                    f"stacking: {split} logits of {name!r} and {names[0]!r} cover different rows; "
                    "retrain both on the same data_processing output."
                )
            frames = {**frames, name: aligned.reset_index()}
        if not np.array_equal(frames[name]["label"].to_numpy(dtype=np.int64), reference["label"].to_numpy(dtype=np.int64)):
            raise StackingError(f"stacking: {split} labels of {name!r} and {names[0]!r} differ for the same idx.")
    features = np.stack([margins(frames[name]) for name in names], axis=1)
    return reference["idx"].to_numpy(), reference["label"].to_numpy(dtype=np.int64), features


def _meta_model(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=1000, random_state=int(seed)))


def stack_tracks(
    valid: Mapping[str, pd.DataFrame | None],
    test: Mapping[str, pd.DataFrame | None],
    *,
    sweep: Mapping[str, float] | None = None,
    folds: int = 5,
    C: float = 1.0,
    seed: int = 0,
    reference: str | None = "baseline",
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Stacked metrics and logits tables (valid out-of-fold, test) from each input track's logits.

    Inputs whose valid or test logits are missing (None) are left out with a warning; at least
    two must remain. With ``reference`` among the inputs, the metrics carry the paired-bootstrap
    ROC-AUC difference to it on test (``vs_<reference>``).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    present = [name for name in valid if valid.get(name) is not None and test.get(name) is not None]
    missing = [name for name in valid if name not in present]
    if missing:
        logger.warning("stacking: leaving out %s (no valid/test logits); stacking %s.", ", ".join(missing), ", ".join(present) or "nothing")
    if len(present) < 2:
        raise StackingError(f"stacking needs the logits of at least two tracks; have {present or 'none'} (missing: {missing}).")
    valid_idx, valid_y, valid_x = _feature_matrix({name: valid[name] for name in present}, "valid")
    test_idx, test_y, test_x = _feature_matrix({name: test[name] for name in present}, "test")
    n_folds = int(min(folds, np.bincount(valid_y, minlength=2).min()))
    if n_folds < 2:
        raise StackingError("stacking: validation needs at least two rows of each class for cross-fitting.")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=int(seed))
    valid_margin = cross_val_predict(_meta_model(C, seed), valid_x, valid_y, cv=splitter, method="decision_function")
    final = _meta_model(C, seed).fit(valid_x, valid_y)
    test_margin = final.decision_function(test_x)
    as_logits = lambda margin: np.stack([np.zeros_like(margin), margin], axis=1)  # noqa: E731
    valid_frame = logits_frame(valid_idx, valid_y, as_logits(valid_margin))
    test_frame = logits_frame(test_idx, test_y, as_logits(test_margin))
    coefficients = dict(zip(present, (float(c) for c in final[-1].coef_[0])))
    extra: dict[str, Any] = {
        "inputs": present,
        "inputs_missing": missing,
        "meta_model": f"standardised logistic regression, C={float(C)}, fitted on valid ({n_folds}-fold out-of-fold valid scores)",
        "coefficients": coefficients,
    }
    metrics = metrics_from_logits(valid_frame, test_frame, sweep, track=STACKED_TRACK, **extra)
    if reference and reference in present:
        metrics[f"vs_{reference}"] = compare_to_reference(test[reference], test_frame)
    logger.info("stacking %s: coefficients %s", "+".join(present), {k: round(v, 3) for k, v in coefficients.items()})
    return metrics, valid_frame, test_frame


def stacking_settings(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``ensemble.stacking`` merged over :data:`DEFAULT_STACKING`, with unknown keys refused."""
    settings = {**DEFAULT_STACKING, **dict(params or {})}
    unknown = set(settings) - set(DEFAULT_STACKING)
    if unknown:
        raise ValueError(f"unknown ensemble.stacking keys {sorted(unknown)}; known: {sorted(DEFAULT_STACKING)}")
    return settings


def stack_inputs(settings: Mapping[str, Any]) -> Sequence[str]:
    return [str(name) for name in settings["inputs"]]
