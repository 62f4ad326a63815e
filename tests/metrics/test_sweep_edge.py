"""A validation-chosen threshold on the edge of the sweep is flagged, and the 0.01-0.99 optimum is reported beside it."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from streamguard.evaluation.scoring import sweep_spec
from streamguard.evaluation.metrics import SweepSpec, compute_metrics, flatten_for_mlflow

# Positives 0.4 and 0.9, negatives 0.1 and 0.6 (see test_metrics.py): F1 0.8 on 0.30..0.40 of the default sweep,
# so 0.30, its lower edge, is chosen. Over 0.01..0.99, thresholds 0.01..0.10 also flag the 0.1 negative (F1 2/3)
# and 0.11..0.40 give F1 0.8: the full-range optimum is 0.11.
EDGE_LABELS = np.array([0, 0, 1, 1])
EDGE_PROBS = np.array([0.1, 0.6, 0.4, 0.9])
# Positives 0.45 and 0.9, negatives 0.1 and 0.35: every threshold in 0.36..0.45 separates them (F1 1.0); the first
# maximum, 0.36, is inside the sweep.
INSIDE_PROBS = np.array([0.1, 0.35, 0.45, 0.9])


def test_threshold_on_the_lower_edge_is_flagged_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="streamguard.evaluation.metrics"):
        metrics = compute_metrics(EDGE_LABELS, EDGE_PROBS)
    assert metrics["best_threshold_by_f1"] == 0.3 == metrics["best_threshold_in_sweep"]
    assert metrics["threshold_at_sweep_edge"] is True
    assert metrics["best_threshold_full_range"] == 0.11
    assert metrics["f1_at_best_threshold_full_range"] == 0.8 == metrics["f1_at_best_threshold_in_sweep"]
    # Same F1 outside the sweep: flagged, but the warning does not claim a better optimum.
    assert "edge of the 0.30-0.70 sweep" in caplog.text and "no threshold outside it does better" in caplog.text
    flat = flatten_for_mlflow(metrics, "transformer.seed_0")
    assert flat["transformer.seed_0.threshold_at_sweep_edge"] == 1.0  # a 0/1 metric, filterable in the MLflow UI
    assert flat["transformer.seed_0.best_threshold_full_range"] == 0.11


def test_upper_edge_is_flagged_and_an_inside_optimum_is_not(caplog):
    # Negatives 0.695 and 0.75, positives 0.8 and 0.9: up to 0.69 everything is flagged (F1 2/3); 0.70 drops the
    # first negative (F1 0.8), the last point of the sweep; 0.76..0.80 drop both (F1 1.0), outside it.
    upper = compute_metrics([0, 0, 1, 1], [0.695, 0.75, 0.8, 0.9])
    assert upper["best_threshold_by_f1"] == 0.7
    assert upper["threshold_at_sweep_edge"] is True
    assert upper["best_threshold_full_range"] == 0.76 and upper["f1_at_best_threshold_full_range"] == 1.0
    assert "the optimum lies outside it" in caplog.text and "Set sweep.choose_from=full_range to use it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamguard.evaluation.metrics"):
        inside = compute_metrics(EDGE_LABELS, INSIDE_PROBS)
    assert inside["best_threshold_by_f1"] == 0.36 and inside["threshold_at_sweep_edge"] is False
    assert inside["best_threshold_full_range"] == 0.36
    assert "edge" not in caplog.text
    assert flatten_for_mlflow(inside)["threshold_at_sweep_edge"] == 0.0


def test_choose_from_full_range_picks_the_wider_optimum_and_applies_it_to_test():
    spec = sweep_spec({"start": 0.3, "stop": 0.7, "step": 0.01, "choose_from": "full_range"})
    metrics = compute_metrics(EDGE_LABELS, EDGE_PROBS, [0, 1], [0.2, 0.3], spec=spec)
    assert metrics["best_threshold_by_f1"] == 0.11
    assert metrics["test"]["threshold"] == 0.11
    assert metrics["test"]["confusion_matrix"] == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}  # 0.2 >= 0.11
    assert metrics["best_threshold_in_sweep"] == 0.3 and metrics["threshold_at_sweep_edge"] is True
    assert metrics["sweep"]["choose_from"] == "full_range"


def test_unknown_choose_from_is_rejected():
    with pytest.raises(ValueError, match="choose_from"):
        SweepSpec(choose_from="test")


def _frame(probs, labels=EDGE_LABELS):
    probs = np.asarray(probs, dtype=float)
    logits = np.stack([np.zeros_like(probs), np.log(probs / (1 - probs))], axis=1)
    from streamguard.evaluation.scoring import logits_frame

    return logits_frame(np.arange(len(labels)), np.asarray(labels), logits)


def test_the_warning_names_the_model_it_is_about(caplog):
    """A default run scores nine seeds, three ensembles and a stacked model: each warning must say which."""
    from streamguard.evaluation.scoring import metrics_from_logits

    with caplog.at_level(logging.WARNING, logger="streamguard.evaluation.metrics"):
        metrics_from_logits(_frame(EDGE_PROBS), None, track="gnn", seed=2)
        metrics_from_logits(_frame(EDGE_PROBS), None, track="fusion")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("gnn.seed_2: the validation-chosen threshold 0.30 sits on the edge")
    assert messages[1].startswith("fusion ensemble: the validation-chosen threshold 0.30")


def test_an_ensemble_warns_for_itself_not_again_for_its_seeds(caplog):
    """Each seed's score node has already warned; the ensemble's per-seed F1 recomputation stays quiet."""
    from streamguard.evaluation.ensemble import ensemble_track

    per_seed = {seed: {"valid": _frame(EDGE_PROBS), "test": _frame(EDGE_PROBS)} for seed in (0, 1, 2)}
    with caplog.at_level(logging.WARNING, logger="streamguard.evaluation.metrics"):
        metrics, _, _ = ensemble_track("transformer", per_seed)
    edge = [record.getMessage() for record in caplog.records if "edge of the" in record.getMessage()]
    assert metrics["threshold_at_sweep_edge"] is True
    assert len(edge) == 1 and edge[0].startswith("transformer ensemble: ")
    # Quiet is only the warning: the metrics are the same as with it.
    quiet, loud = compute_metrics(EDGE_LABELS, EDGE_PROBS, warn_at_edge=False), compute_metrics(EDGE_LABELS, EDGE_PROBS)
    quiet.pop("timestamp"), loud.pop("timestamp")
    assert quiet == loud and quiet["threshold_at_sweep_edge"] is True
