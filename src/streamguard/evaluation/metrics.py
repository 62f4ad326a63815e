"""The one metrics module every track and the ensemble use.

Why one module: the original scripts computed metrics three different ways (different sweep grids, unrounded
thresholds, no AUCs, thresholds tuned and reported on the same split). Here every ``metrics.json`` comes from
:func:`compute_metrics`, which picks the threshold on the validation split and only *applies* it to the test split.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

# scikit-learn's metrics are imported inside the functions that compute them: importing them costs
# about 1.3 s (scipy), which `streamguard scan` would pay just to turn logits into probabilities.

__all__ = [
    "SweepSpec",
    "threshold_grid",
    "probabilities_from_logits",
    "validate_split",
    "confusion_at",
    "threshold_sweep",
    "compute_metrics",
    "flatten_for_mlflow",
    "mean_std",
]

logger = logging.getLogger(__name__)

_DECIMALS = 6  # every float written to metrics.json
_THRESHOLD_DECIMALS = 2  # thresholds are stored as 0.43, never 0.43000000000000005
_DEFAULT_THRESHOLD = 0.5


CHOOSE_FROM = ("sweep", "full_range")


@dataclass(frozen=True)
class SweepSpec:
    """The threshold grid, shared by all tracks so that F1@best is comparable across them.

    Bounds are inclusive and must lie on a 0.01 grid inside [0, 1], because thresholds are stored with 2 decimals.
    ``choose_from`` says where the chosen threshold comes from: ``"sweep"`` (this grid, as the original system) or
    ``"full_range"`` (the 0.01-0.99 grid, for models whose best threshold lies outside the sweep).
    """

    start: float = 0.30
    stop: float = 0.70
    step: float = 0.01
    choose_from: str = "sweep"

    def __post_init__(self) -> None:
        if self.choose_from not in CHOOSE_FROM:
            raise ValueError(f"sweep choose_from must be one of {CHOOSE_FROM}, got {self.choose_from!r}")
        for name in ("start", "stop", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"sweep {name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"sweep {name} must be finite, got {value!r}")
            if abs(value * 100 - round(value * 100)) > 1e-6:
                raise ValueError(f"sweep {name}={value} is not a multiple of 0.01 (thresholds are stored with 2 decimals)")
            object.__setattr__(self, name, round(value, _THRESHOLD_DECIMALS))
        if not 0.0 <= self.start <= self.stop <= 1.0:
            raise ValueError(f"sweep needs 0 <= start <= stop <= 1, got start={self.start}, stop={self.stop}")
        if self.step <= 0:
            raise ValueError(f"sweep step must be positive, got {self.step}")


#: The widest grid a threshold can sit on (thresholds have 2 decimals; 0 and 1 predict one class only).
FULL_RANGE = SweepSpec(0.01, 0.99, 0.01)


def threshold_grid(spec: SweepSpec = SweepSpec()) -> np.ndarray:
    """Thresholds from ``start`` to ``stop`` inclusive (when ``step`` reaches it), 2 decimals; the default gives 41."""
    # Count in whole hundredths so floating-point steps cannot add or drop the last value.
    start, stop, step = (round(value * 100) for value in (spec.start, spec.stop, spec.step))
    return np.round(np.arange(start, stop + 1, step, dtype=np.int64) / 100.0, _THRESHOLD_DECIMALS)


def probabilities_from_logits(logits: np.ndarray) -> np.ndarray:
    """P(vulnerable) from [N, 2] logits (softmax of class 1) or [N] logits (sigmoid).

    A two-class softmax equals the sigmoid of ``logit_1 - logit_0``; the sigmoid is evaluated so that ``exp``
    never overflows, even for logits of +-1000.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 2 and logits.shape[1] == 2:
        margin = logits[:, 1] - logits[:, 0]
    elif logits.ndim == 1:
        margin = logits
    else:
        raise ValueError(f"logits must have shape [N, 2] or [N], got {list(logits.shape)}")
    if not np.all(np.isfinite(margin)):
        raise ValueError("logits contain NaN or infinite values (or +inf and -inf in the same row); check the model outputs")
    exp_neg_abs = np.exp(-np.abs(margin))  # in (0, 1]: no overflow
    return np.where(margin >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))


def validate_split(
    labels: Any, probs: Any, split: str = "valid", require_both_classes: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Checked copies (int64 labels, float64 probabilities), or a ValueError that names the split and the fix."""
    labels_array = np.asarray(labels)
    probs_array = np.asarray(probs)
    if labels_array.ndim != 1:
        raise ValueError(f"{split} labels must be 1-D, got shape {list(labels_array.shape)}")
    if probs_array.ndim != 1:
        hint = " (convert logits with probabilities_from_logits)" if probs_array.ndim == 2 else ""
        raise ValueError(f"{split} probabilities must be 1-D, got shape {list(probs_array.shape)}{hint}")
    if labels_array.size == 0 or probs_array.size == 0:
        raise ValueError(
            f"{split} split is empty ({labels_array.size} labels, {probs_array.size} probabilities); "
            "metrics need at least one row of each class"
        )
    if labels_array.size != probs_array.size:
        raise ValueError(
            f"{split} split has {labels_array.size} labels but {probs_array.size} probabilities; "
            "they must come from the same rows"
        )
    if labels_array.dtype.kind not in "biufO":  # bool, int, uint, float, object (a pandas column); not strings
        raise ValueError(f"{split} labels must be 0 or 1, got values of type {labels_array.dtype}")
    try:
        numeric_labels = labels_array.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{split} labels must be 0 or 1, got values of type {labels_array.dtype}") from None
    bad = ~np.isin(numeric_labels, (0.0, 1.0))
    if bad.any():
        examples = sorted({repr(value) for value in labels_array[bad][:5].tolist()})
        raise ValueError(f"{split} labels must be 0 or 1; {int(bad.sum())} rows are not (e.g. {', '.join(examples)})")
    if probs_array.dtype.kind not in "biufO":
        raise ValueError(f"{split} probabilities must be numbers, got values of type {probs_array.dtype}")
    try:
        probs_float = probs_array.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{split} probabilities must be numbers, got values of type {probs_array.dtype}") from None
    if not np.all(np.isfinite(probs_float)):
        count = int((~np.isfinite(probs_float)).sum())
        raise ValueError(f"{split} probabilities contain {count} NaN or infinite values; check the model outputs")
    if probs_float.min() < 0.0 or probs_float.max() > 1.0:
        raise ValueError(
            f"{split} probabilities must lie in [0, 1], got range [{probs_float.min():.6g}, {probs_float.max():.6g}]; "
            "pass probabilities, not logits (see probabilities_from_logits)"
        )
    labels_int = numeric_labels.astype(np.int64)
    if require_both_classes:
        present = np.unique(labels_int)
        if present.size < 2:
            raise ValueError(
                f"{split} split has only class {int(present[0])} ({labels_int.size} rows): ROC-AUC and F1 are "
                "undefined; check the split or the label column"
            )
    return labels_int, probs_float


def _predict(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted positive iff P(vulnerable) >= threshold (0.5 included, as in the original f1_at_0_5)."""
    return (probs >= threshold).astype(np.int64)


def _confusion(labels: np.ndarray, predictions: np.ndarray) -> dict[str, int]:
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(labels, predictions, labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def confusion_at(labels: Any, probs: Any, threshold: float) -> dict[str, int]:
    """Counts ``tn, fp, fn, tp`` when predicting vulnerable iff prob >= threshold."""
    labels_int, probs_float = validate_split(labels, probs, "input", require_both_classes=False)
    return _confusion(labels_int, _predict(probs_float, threshold))


def _scores(labels: np.ndarray, predictions: np.ndarray, with_accuracy: bool = True) -> dict[str, float]:
    """sklearn's scores for the vulnerable class (zero_division=0: no positive predictions gives precision 0)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    scores = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predictions)),
    }
    if with_accuracy:  # not needed per sweep row; skipping it saves a third of the sweep's time
        scores["accuracy"] = float(accuracy_score(labels, predictions))
    return scores


def _sweep_rows(labels: np.ndarray, probs: np.ndarray, spec: SweepSpec) -> list[dict[str, float]]:
    rows = []
    for threshold in threshold_grid(spec):
        scores = _scores(labels, _predict(probs, threshold), with_accuracy=False)
        rows.append(
            {
                "threshold": float(threshold),
                "precision": _round(scores["precision"]),
                "recall": _round(scores["recall"]),
                "f1": _round(scores["f1"]),
                "balanced_accuracy": _round(scores["balanced_accuracy"]),
            }
        )
    return rows


def threshold_sweep(labels: Any, probs: Any, spec: SweepSpec = SweepSpec()) -> list[dict[str, float]]:
    """One row per grid threshold: ``threshold, precision, recall, f1, balanced_accuracy`` (zero_division=0)."""
    labels_int, probs_float = validate_split(labels, probs, "input", require_both_classes=False)
    return _sweep_rows(labels_int, probs_float, spec)


def _f1_rows(labels: np.ndarray, probs: np.ndarray, spec: SweepSpec) -> list[dict[str, float]]:
    """``threshold, f1`` rows over a grid, vectorised (the 99-point full range costs no more than one sklearn call).

    F1 = 2 tp / (2 tp + fp + fn), 0 when nothing is predicted or present (sklearn's zero_division=0).
    """
    grid = threshold_grid(spec)
    predicted = probs[None, :] >= grid[:, None]
    positive = labels[None, :] == 1
    tp = (predicted & positive).sum(axis=1)
    fp = (predicted & ~positive).sum(axis=1)
    fn = (~predicted & positive).sum(axis=1)
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return [{"threshold": float(t), "f1": _round(value)} for t, value in zip(grid, f1, strict=True)]


def _best_row(rows: Sequence[Mapping[str, float]]) -> Mapping[str, float]:
    """The first row with the highest F1 (rows are in increasing threshold order, so ties keep the lowest)."""
    f1 = np.array([row["f1"] for row in rows])
    return rows[int(np.argmax(f1))]  # argmax returns the first maximum; F1 is already rounded, so ties are exact


def _round(value: float) -> float:
    return round(float(value), _DECIMALS)


def compute_metrics(
    valid_labels: Any,
    valid_probs: Any,
    test_labels: Any | None = None,
    test_probs: Any | None = None,
    spec: SweepSpec = SweepSpec(),
    name: str | None = None,
    warn_at_edge: bool = True,
) -> dict[str, Any]:
    """The metrics dict written to every metrics.json (JSON-serialisable; floats rounded to 6 decimals).

    The threshold is chosen on ``valid`` (first maximum of F1 over the grid, or over 0.01-0.99 when
    ``spec.choose_from == "full_range"``). When test arrays are given, the ``test`` block applies that same threshold
    to test, so the test numbers are an honest held-out estimate. A sweep optimum on the grid's edge means the real
    optimum may lie outside it: ``threshold_at_sweep_edge`` is then true (with a warning that starts with
    ``name``, the model it is about, unless ``warn_at_edge`` is false: a recomputation of metrics already
    reported), and ``best_threshold_full_range`` / ``f1_at_best_threshold_full_range`` always give the
    0.01-0.99 optimum beside it.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, probs = validate_split(valid_labels, valid_probs, "valid")
    if (test_labels is None) != (test_probs is None):
        raise ValueError("test split needs both test_labels and test_probs (or neither)")
    test = None if test_labels is None else validate_split(test_labels, test_probs, "test")  # fail before the sweep

    sweep = _sweep_rows(labels, probs, spec)
    sweep_best = _best_row(sweep)
    full_best = _best_row(_f1_rows(labels, probs, FULL_RANGE))
    at_edge = spec.start < spec.stop and sweep_best["threshold"] in (spec.start, spec.stop)
    if at_edge and warn_at_edge:
        better = full_best["f1"] > sweep_best["f1"]
        logger.warning(
            "%sthe validation-chosen threshold %.2f sits on the edge of the %.2f-%.2f sweep (F1 %.4f): %s %.2f (F1 %.4f). %s",
            f"{name}: " if name else "", sweep_best["threshold"], spec.start, spec.stop, sweep_best["f1"],
            "the optimum lies outside it, over 0.01-0.99 the best is" if better
            else "no threshold outside it does better (over 0.01-0.99 the first best is",
            full_best["threshold"], full_best["f1"],
            ("It is the one used (sweep.choose_from=full_range)." if spec.choose_from == "full_range"
             else "Set sweep.choose_from=full_range to use it.") if better else "",
        )
    best = full_best if spec.choose_from == "full_range" else sweep_best
    threshold = best["threshold"]
    at_half = _scores(labels, _predict(probs, _DEFAULT_THRESHOLD))
    at_best = _scores(labels, _predict(probs, threshold))
    confusion_best = _confusion(labels, _predict(probs, threshold))

    metrics: dict[str, Any] = {
        "num_samples": int(labels.size),
        "num_positive": int(labels.sum()),
        "f1_at_0_5": _round(at_half["f1"]),
        "precision_at_0_5": _round(at_half["precision"]),
        "recall_at_0_5": _round(at_half["recall"]),
        "accuracy_at_0_5": _round(at_half["accuracy"]),
        "f1_at_best_threshold": _round(at_best["f1"]),
        "best_threshold_by_f1": threshold,
        "precision_at_best_threshold": _round(at_best["precision"]),
        "recall_at_best_threshold": _round(at_best["recall"]),
        "accuracy_at_best_threshold": _round(at_best["accuracy"]),
        "balanced_accuracy_at_best_threshold": _round(at_best["balanced_accuracy"]),
        "confusion_matrix_at_0_5": _confusion(labels, _predict(probs, _DEFAULT_THRESHOLD)),
        "confusion_matrix_at_best": confusion_best,
        "threshold_sweep": sweep,
        "roc_auc": _round(roc_auc_score(labels, probs)),
        "pr_auc": _round(average_precision_score(labels, probs)),
        "predicted_positive_rate_at_best": _round((confusion_best["tp"] + confusion_best["fp"]) / labels.size),
        "threshold_at_sweep_edge": bool(at_edge),
        "best_threshold_in_sweep": sweep_best["threshold"],
        "f1_at_best_threshold_in_sweep": sweep_best["f1"],
        "best_threshold_full_range": full_best["threshold"],
        "f1_at_best_threshold_full_range": full_best["f1"],
        "sweep": asdict(spec),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if test is not None:
        metrics["test"] = _test_metrics(*test, threshold)
    return metrics


def _test_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """Test scores at the valid-chosen threshold; never re-tuned on test."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    predictions = _predict(probs, threshold)
    scores = _scores(labels, predictions)
    at_half = _scores(labels, _predict(probs, _DEFAULT_THRESHOLD))
    return {
        "threshold": threshold,
        "num_samples": int(labels.size),
        "num_positive": int(labels.sum()),
        "accuracy": _round(scores["accuracy"]),
        "precision": _round(scores["precision"]),
        "recall": _round(scores["recall"]),
        "f1": _round(scores["f1"]),
        "balanced_accuracy": _round(scores["balanced_accuracy"]),
        "confusion_matrix": _confusion(labels, predictions),
        "roc_auc": _round(roc_auc_score(labels, probs)),
        "pr_auc": _round(average_precision_score(labels, probs)),
        "f1_at_0_5": _round(at_half["f1"]),
        "accuracy_at_0_5": _round(at_half["accuracy"]),
    }


#: Boolean keys worth a metric (0/1), so runs can be filtered on them in the MLflow UI.
FLAG_METRICS = frozenset({"threshold_at_sweep_edge"})
#: Keys holding settings, not measurements (the effective hyperparameters): MLflow params, not metrics.
NOT_METRICS = frozenset({"effective_hyperparameters"})

_MLFLOW_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. ]")  # MLflow also allows / and :, but / makes names path-like


def flatten_for_mlflow(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric scalar as ``{dotted.name: float}`` for ``mlflow.log_metrics``.

    Nested mappings recurse (``confusion_matrix_at_best.tp``, ``test.f1``); lists (the sweep), strings
    (the timestamp), bools and None are skipped, except the flags of ``FLAG_METRICS`` (logged as 0/1), and so are
    the blocks of ``NOT_METRICS`` (settings, logged as MLflow params instead). Characters outside letters, digits,
    ``_ - . `` and space become ``_``.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = _MLFLOW_UNSAFE.sub("_", str(key))
        if prefix:
            name = f"{prefix}.{name}"
        if key in NOT_METRICS:
            continue
        if key in FLAG_METRICS and isinstance(value, (bool, np.bool_)):
            flat[name] = float(value)
        elif isinstance(value, Mapping):
            flat.update(flatten_for_mlflow(value, name))
        elif isinstance(value, (bool, np.bool_)) or value is None:
            continue
        elif isinstance(value, (int, float, np.integer, np.floating)):
            flat[name] = float(value)
    return flat


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) across seeds; the std is 0.0 for a single value.

    Sample std, not population std: a handful of seeds is a sample of all possible seeds (the original
    aggregation used population std, which understates the spread).
    """
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_std needs at least one value")
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return mean, std
