"""The shared metrics against hand-computed cases; every number below is worked out in the comments."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import warnings
from datetime import datetime, timedelta

import numpy as np
import pytest

from streamguard.evaluation.metrics import (
    SweepSpec,
    compute_metrics,
    confusion_at,
    flatten_for_mlflow,
    mean_std,
    probabilities_from_logits,
    threshold_grid,
    threshold_sweep,
)

# Valid: positives score 0.4 and 0.9, negatives 0.1 and 0.6.
#   threshold <= 0.40 -> predictions [0,1,1,1]: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8   (thresholds 0.30..0.40)
#   0.41..0.60        -> [0,1,0,1]: tp 1, fp 1, fn 1 -> F1 0.5
#   0.61..0.70        -> [0,0,0,1]: tp 1, fp 0, fn 1 -> P 1, R 0.5, F1 2/3
# So F1 peaks at 0.8 on the eleven thresholds 0.30..0.40 and the first one, 0.30, must be chosen (not 0.5).
# ROC-AUC: 3 of the 4 (positive, negative) pairs are ordered correctly -> 0.75.
# AP: ranked 0.9(+) 0.6(-) 0.4(+) 0.1(-): 0.5 * 1 + 0.5 * 2/3 = 0.833333.
VALID_LABELS = np.array([0, 0, 1, 1])
VALID_PROBS = np.array([0.1, 0.6, 0.4, 0.9])

# Test: at the valid-chosen 0.30 -> predictions [1,0,1,1]: tp 2, fp 1, fn 0, tn 1 -> F1 0.8, accuracy 0.75.
# Any threshold in 0.36..0.80 would give F1 1.0 on test; it must NOT be used.
TEST_LABELS = np.array([0, 0, 1, 1])
TEST_PROBS = np.array([0.35, 0.2, 0.8, 0.9])

REQUIRED_KEYS = {
    "num_samples", "num_positive", "f1_at_0_5", "precision_at_0_5", "recall_at_0_5", "accuracy_at_0_5",
    "f1_at_best_threshold", "best_threshold_by_f1", "precision_at_best_threshold", "recall_at_best_threshold",
    "accuracy_at_best_threshold", "balanced_accuracy_at_best_threshold", "confusion_matrix_at_0_5",
    "confusion_matrix_at_best", "threshold_sweep", "roc_auc", "pr_auc", "predicted_positive_rate_at_best",
    "sweep", "timestamp", "threshold_at_sweep_edge", "best_threshold_in_sweep", "f1_at_best_threshold_in_sweep",
    "best_threshold_full_range", "f1_at_best_threshold_full_range",
}
TEST_KEYS = {
    "threshold", "num_samples", "num_positive", "accuracy", "precision", "recall", "f1", "balanced_accuracy",
    "confusion_matrix", "roc_auc", "pr_auc", "f1_at_0_5", "accuracy_at_0_5",
}


def assert_plain_json(value, where="metrics"):
    """Only builtin JSON types, so json.dump never meets a numpy scalar."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, where
            assert_plain_json(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain_json(item, f"{where}[{index}]")
    else:
        assert type(value) in (int, float, str, bool), f"{where} is {type(value).__name__}"  # bool: the edge flag
        if type(value) is float:
            assert math.isfinite(value) and value == round(value, 6), where


# --- grid -------------------------------------------------------------------------------------------------------


def test_default_grid_has_41_exact_two_decimal_thresholds():
    grid = threshold_grid()
    assert len(grid) == 41
    assert grid[0] == 0.3 and grid[-1] == 0.7
    assert [repr(float(t)) for t in grid[:4]] == ["0.3", "0.31", "0.32", "0.33"]
    assert all(float(t) == round(float(t), 2) for t in grid)
    assert np.allclose(np.diff(grid), 0.01)


def test_custom_grid_is_inclusive_and_specs_are_validated():
    assert threshold_grid(SweepSpec(0.05, 0.95, 0.05)).tolist()[-1] == 0.95
    assert len(threshold_grid(SweepSpec(0.05, 0.95, 0.05))) == 19
    assert threshold_grid(SweepSpec(0.5, 0.5, 0.01)).tolist() == [0.5]
    assert len(threshold_grid(SweepSpec(start=0, stop=1, step=0.1))) == 11  # ints from YAML are fine
    with pytest.raises(dataclasses.FrozenInstanceError):
        SweepSpec().start = 0.1  # type: ignore[misc]
    for bad in ({"step": 0}, {"start": 0.8}, {"stop": 1.5}, {"step": 0.005}, {"start": float("nan")}):
        with pytest.raises(ValueError, match="sweep"):
            SweepSpec(**bad)


# --- logits -----------------------------------------------------------------------------------------------------


def test_probabilities_from_logits_softmax_and_sigmoid():
    two_class = np.array([[0.0, 0.0], [0.0, math.log(3.0)], [2.0, 1.0]])
    expected = [0.5, 0.75, 1.0 / (1.0 + math.e)]
    assert probabilities_from_logits(two_class) == pytest.approx(expected)
    assert probabilities_from_logits(np.array([0.0, 2.0, -2.0])) == pytest.approx(
        [0.5, 1.0 / (1.0 + math.exp(-2.0)), 1.0 / (1.0 + math.exp(2.0))]
    )


def test_probabilities_from_logits_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        probs = probabilities_from_logits(np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [800.0, 800.0]]))
    assert probs.tolist() == [0.0, 1.0, 0.5]


@pytest.mark.parametrize("shape", [(4, 3), (4, 1), (2, 2, 2), ()])
def test_probabilities_from_logits_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"shape \[N, 2\] or \[N\]"):
        probabilities_from_logits(np.zeros(shape))


def test_probabilities_from_logits_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        probabilities_from_logits(np.array([[0.0, np.nan]]))


# --- confusion and sweep ----------------------------------------------------------------------------------------


def test_confusion_at_half():
    assert confusion_at([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5) == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    counts = confusion_at([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
    assert all(type(value) is int for value in counts.values())


def test_threshold_is_inclusive():
    assert confusion_at([0, 1], [0.5, 0.5], 0.5) == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}


def test_threshold_sweep_rows():
    rows = threshold_sweep(VALID_LABELS, VALID_PROBS)
    assert len(rows) == 41
    assert set(rows[0]) == {"threshold", "precision", "recall", "f1", "balanced_accuracy"}
    by_threshold = {row["threshold"]: row for row in rows}
    assert by_threshold[0.4] == {"threshold": 0.4, "precision": 0.666667, "recall": 1.0, "f1": 0.8, "balanced_accuracy": 0.75}
    assert by_threshold[0.41]["f1"] == 0.5
    assert by_threshold[0.6]["f1"] == 0.5
    assert by_threshold[0.61] == {"threshold": 0.61, "precision": 1.0, "recall": 0.5, "f1": 0.666667, "balanced_accuracy": 0.75}


def test_threshold_sweep_zero_division_is_zero():
    rows = threshold_sweep([0, 1], [0.1, 0.2])  # nothing predicted positive anywhere on the grid
    assert all(row["precision"] == 0.0 and row["f1"] == 0.0 for row in rows)


# --- compute_metrics --------------------------------------------------------------------------------------------


def test_compute_metrics_valid_only():
    metrics = compute_metrics(VALID_LABELS, VALID_PROBS)
    assert set(metrics) == REQUIRED_KEYS
    assert metrics["num_samples"] == 4 and metrics["num_positive"] == 2
    assert metrics["confusion_matrix_at_0_5"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert metrics["f1_at_0_5"] == 0.5
    assert metrics["precision_at_0_5"] == 0.5 and metrics["recall_at_0_5"] == 0.5 and metrics["accuracy_at_0_5"] == 0.5
    # Best: F1 0.8 on 0.30..0.40; the first maximum is 0.30.
    assert metrics["best_threshold_by_f1"] == 0.3
    assert metrics["f1_at_best_threshold"] == 0.8
    assert metrics["precision_at_best_threshold"] == 0.666667
    assert metrics["recall_at_best_threshold"] == 1.0
    assert metrics["accuracy_at_best_threshold"] == 0.75
    assert metrics["balanced_accuracy_at_best_threshold"] == 0.75
    assert metrics["confusion_matrix_at_best"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert metrics["predicted_positive_rate_at_best"] == 0.75
    assert metrics["roc_auc"] == 0.75
    assert metrics["pr_auc"] == 0.833333
    assert len(metrics["threshold_sweep"]) == 41
    assert metrics["sweep"] == {"start": 0.3, "stop": 0.7, "step": 0.01, "choose_from": "sweep"}
    assert "test" not in metrics
    assert_plain_json(metrics)
    json.dumps(metrics)


def test_auc_matches_the_scikit_learn_documentation_example():
    # roc_auc_score / average_precision_score docs: y=[0,0,1,1], scores=[0.1,0.4,0.35,0.8] -> 0.75 and 0.8333...
    metrics = compute_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert metrics["roc_auc"] == 0.75
    assert metrics["pr_auc"] == 0.833333


def test_perfect_and_tied_scores_give_known_aucs():
    assert compute_metrics([0, 1, 0, 1], [0.2, 0.8, 0.1, 0.9])["roc_auc"] == 1.0
    tied = compute_metrics([0, 1], [0.5, 0.5])
    assert tied["roc_auc"] == 0.5 and tied["pr_auc"] == 0.5


def test_test_metrics_use_the_threshold_chosen_on_valid():
    metrics = compute_metrics(VALID_LABELS, VALID_PROBS, TEST_LABELS, TEST_PROBS)
    test = metrics["test"]
    assert set(test) == TEST_KEYS
    assert test["threshold"] == metrics["best_threshold_by_f1"] == 0.3
    assert test["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert test["f1"] == 0.8  # not the 1.0 that re-tuning on test would report
    assert max(row["f1"] for row in threshold_sweep(TEST_LABELS, TEST_PROBS)) == 1.0  # the better test threshold exists
    assert test["accuracy"] == 0.75 and test["precision"] == 0.666667 and test["recall"] == 1.0
    assert test["balanced_accuracy"] == 0.75
    assert test["num_samples"] == 4 and test["num_positive"] == 2
    assert test["roc_auc"] == 1.0 and test["pr_auc"] == 1.0
    assert test["f1_at_0_5"] == 1.0 and test["accuracy_at_0_5"] == 1.0
    # The valid block is unchanged by adding test.
    assert {k: v for k, v in metrics.items() if k not in ("test", "timestamp")} == {
        k: v for k, v in compute_metrics(VALID_LABELS, VALID_PROBS).items() if k != "timestamp"
    }
    assert_plain_json(metrics)


def test_custom_sweep_is_recorded_and_used():
    metrics = compute_metrics(VALID_LABELS, VALID_PROBS, spec=SweepSpec(0.05, 0.95, 0.05))
    assert len(metrics["threshold_sweep"]) == 19
    assert metrics["sweep"] == {"start": 0.05, "stop": 0.95, "step": 0.05, "choose_from": "sweep"}
    # 0.15..0.40 give F1 0.8 (0.05 and 0.10 also predict the 0.1 negative: F1 2/3); first maximum 0.15.
    assert metrics["best_threshold_by_f1"] == 0.15


def test_bool_and_float_labels_are_accepted():
    as_bool = compute_metrics(np.array([False, False, True, True]), VALID_PROBS)
    as_float = compute_metrics([0.0, 0.0, 1.0, 1.0], VALID_PROBS)
    assert as_bool["f1_at_best_threshold"] == as_float["f1_at_best_threshold"] == 0.8


def test_timestamp_is_utc_iso8601():
    stamp = compute_metrics(VALID_LABELS, VALID_PROBS)["timestamp"]
    assert stamp.endswith("+00:00")
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


# --- input errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        ([], [], "valid split is empty"),
        ([0, 1, 1], [0.2, 0.8], "valid split has 3 labels but 2 probabilities"),
        ([0, 1, 2], [0.2, 0.8, 0.5], "valid labels must be 0 or 1; 1 rows"),
        ([0, 1, -1], [0.2, 0.8, 0.5], "valid labels must be 0 or 1"),
        ([0, 1, 0.5], [0.2, 0.8, 0.5], "valid labels must be 0 or 1"),
        (["0", "1"], [0.2, 0.8], "valid labels must be 0 or 1"),
        ([0, 1], [0.2, np.nan], "valid probabilities contain 1 NaN or infinite"),
        ([0, 1], [0.2, np.inf], "valid probabilities contain 1 NaN or infinite"),
        ([0, 1], [0.2, 1.2], r"valid probabilities must lie in \[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"valid probabilities must lie in \[0, 1\]"),
        ([0, 1], [[0.2, 0.8], [0.4, 0.6]], "valid probabilities must be 1-D.*probabilities_from_logits"),
        ([[0, 1]], [0.2], "valid labels must be 1-D"),
    ],
)
def test_bad_valid_inputs(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(labels, probs)


def test_single_class_valid_split_is_explained():
    with pytest.raises(ValueError) as error:
        compute_metrics(np.zeros(25, dtype=int), np.full(25, 0.3))
    assert str(error.value) == (
        "valid split has only class 0 (25 rows): ROC-AUC and F1 are undefined; check the split or the label column"
    )


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        ([1, 1, 1], [0.2, 0.8, 0.9], r"test split has only class 1 \(3 rows\)"),
        ([], [], "test split is empty"),
        ([0, 1], [0.5], "test split has 2 labels but 1 probabilities"),
        ([0, 3], [0.5, 0.5], "test labels must be 0 or 1"),
        ([0, 1], [0.5, 2.0], r"test probabilities must lie in \[0, 1\]"),
    ],
)
def test_bad_test_inputs_name_the_test_split(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(VALID_LABELS, VALID_PROBS, labels, probs)


def test_test_labels_without_probs_is_an_error():
    with pytest.raises(ValueError, match="both test_labels and test_probs"):
        compute_metrics(VALID_LABELS, VALID_PROBS, TEST_LABELS, None)


# --- MLflow flattening ------------------------------------------------------------------------------------------


def test_flatten_for_mlflow_names_and_skips():
    metrics = compute_metrics(VALID_LABELS, VALID_PROBS, TEST_LABELS, TEST_PROBS)
    flat = flatten_for_mlflow(metrics)
    assert flat["f1_at_best_threshold"] == 0.8
    assert flat["confusion_matrix_at_best.tp"] == 2.0
    assert flat["test.f1"] == 0.8
    assert flat["test.confusion_matrix.fp"] == 1.0
    assert flat["sweep.step"] == 0.01
    assert not any(name.startswith(("threshold_sweep", "timestamp")) for name in flat)
    assert all(type(value) is float for value in flat.values())

    prefixed = flatten_for_mlflow(metrics, "gnn.seed_1")
    assert prefixed["gnn.seed_1.f1_at_best_threshold"] == 0.8
    assert prefixed["gnn.seed_1.test.f1"] == 0.8
    assert len(prefixed) == len(flat)


def test_flatten_for_mlflow_types_and_unsafe_names():
    flat = flatten_for_mlflow(
        {
            "seed": np.int64(3),
            "loss": np.float32(0.5),
            "collapsed": True,
            "flag": np.bool_(False),
            "missing": None,
            "seeds_used": [0, 1],
            "per_seed_f1_at_best": [{"seed": 0, "f1_at_best_threshold": 0.5}],
            "track": "gnn",
            "rows": {"train": 160, "by@class": {"0": 80}},
            "f1 (vuln)": 0.25,
        },
        prefix="data",
    )
    assert flat == {
        "data.seed": 3.0,
        "data.loss": 0.5,
        "data.rows.train": 160.0,
        "data.rows.by_class.0": 80.0,
        "data.f1 _vuln_": 0.25,
    }


# --- seed statistics --------------------------------------------------------------------------------------------


def test_mean_std_is_the_sample_std():
    mean, std = mean_std([0.6, 0.62, 0.67])
    assert mean == pytest.approx(statistics.mean([0.6, 0.62, 0.67]))
    assert std == pytest.approx(statistics.stdev([0.6, 0.62, 0.67]))
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # population std would be 0.816
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(type(value) is float for value in mean_std((1, 2)))
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])
