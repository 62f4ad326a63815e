"""Stacking across tracks and the paired bootstrap against the baseline."""

import logging

import numpy as np
import pandas as pd
import pytest

from streamguard.evaluation.scoring import compare_to_reference, logits_frame, paired_bootstrap_auc_delta
from streamguard.evaluation.stacking import StackingError, stack_tracks, stacking_settings


def noisy_view(labels: np.ndarray, noise: np.ndarray, idx: np.ndarray | None = None) -> pd.DataFrame:
    """A track whose log-odds are the label plus its own noise (AUC well below 1)."""
    margin = (2 * labels - 1) * 0.6 + noise
    return logits_frame(np.arange(len(labels)) if idx is None else idx, labels, np.stack([np.zeros_like(margin), margin], axis=1))


@pytest.fixture(scope="module")
def two_views():
    """Two tracks with independent noise: each alone is mediocre, their combination is better."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("valid", 600), ("test", 1500)):
        labels = rng.integers(0, 2, n)
        out[split] = {name: noisy_view(labels, rng.normal(0, 1.5, n)) for name in ("baseline", "gnn")}
    return out


def test_stacking_two_independent_views_beats_each_and_says_by_how_much(two_views):
    metrics, valid, test = stack_tracks(two_views["valid"], two_views["test"], folds=5)
    assert metrics["inputs"] == ["baseline", "gnn"]
    alone = {name: _auc(frame) for name, frame in two_views["test"].items()}
    assert metrics["test"]["roc_auc"] > max(alone.values()) + 0.02
    vs = metrics["vs_baseline"]
    assert vs["delta"] == pytest.approx(metrics["test"]["roc_auc"] - alone["baseline"])
    assert 0 < vs["low"] <= vs["delta"] <= vs["high"]
    # Both views carry the same information: the meta-model weighs them about equally.
    coefficients = metrics["coefficients"]
    assert set(coefficients) == {"baseline", "gnn"} and all(value > 0 for value in coefficients.values())
    assert 0.5 < coefficients["baseline"] / coefficients["gnn"] < 2
    assert list(valid["idx"]) == list(two_views["valid"]["baseline"]["idx"])
    assert len(test) == len(two_views["test"]["gnn"])


def _auc(frame: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(frame["label"], frame["prob"])


def test_valid_scores_are_out_of_fold():
    """Pure-noise inputs: an in-sample meta-model would still rank valid better than chance on
    average; out-of-fold scores must not (and test is at chance too)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    aucs = []
    for trial in range(8):
        valid = {name: noisy_view(labels, rng.normal(0, 1, 200)) for name in ("a", "b", "c")}
        for frame in valid.values():  # no signal at all
            frame["logit_1"] = rng.normal(0, 1, 200)
        metrics, _, _ = stack_tracks(valid, valid, folds=5, reference=None, seed=trial)
        aucs.append(metrics["roc_auc"])
    assert np.mean(aucs) < 0.53


def test_rows_are_aligned_on_idx_and_mismatches_are_refused(two_views):
    valid, test = dict(two_views["valid"]), dict(two_views["test"])
    shuffled = test["gnn"].sample(frac=1.0, random_state=0).reset_index(drop=True)
    metrics_shuffled, _, _ = stack_tracks(valid, {**test, "gnn": shuffled})
    metrics_plain, _, _ = stack_tracks(valid, test)
    assert metrics_shuffled["test"]["roc_auc"] == pytest.approx(metrics_plain["test"]["roc_auc"])
    with pytest.raises(StackingError, match="cover different rows"):
        stack_tracks(valid, {**test, "gnn": test["gnn"].iloc[:-5]})
    flipped = test["gnn"].assign(label=1 - test["gnn"]["label"])
    with pytest.raises(StackingError, match="labels of 'gnn' and 'baseline' differ"):
        stack_tracks(valid, {**test, "gnn": flipped})


def test_missing_inputs_are_left_out_with_a_warning_and_two_are_needed(two_views, caplog):
    valid = {**two_views["valid"], "fusion": None}
    test = {**two_views["test"], "fusion": None}
    with caplog.at_level(logging.WARNING):
        metrics, _, _ = stack_tracks(valid, test)
    assert metrics["inputs_missing"] == ["fusion"] and "leaving out fusion" in caplog.text
    with pytest.raises(StackingError, match="at least two tracks"):
        stack_tracks({"baseline": two_views["valid"]["baseline"], "gnn": None}, {"baseline": two_views["test"]["baseline"], "gnn": None})


def test_settings_refuse_unknown_keys():
    assert stacking_settings({"folds": 3})["folds"] == 3
    with pytest.raises(ValueError, match="unknown ensemble.stacking keys"):
        stacking_settings({"fold": 3})


def test_paired_bootstrap_of_identical_and_of_better_predictions():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    weak = labels + rng.normal(0, 1.5, 400)
    strong = labels + rng.normal(0, 0.5, 400)
    same = paired_bootstrap_auc_delta(labels, weak, weak, rounds=200)
    assert same["delta"] == same["low"] == same["high"] == 0.0
    better = paired_bootstrap_auc_delta(labels, weak, strong, rounds=200)
    assert 0 < better["low"] < better["delta"] < better["high"]
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_auc_delta(labels, weak, strong[:-1])


def test_the_bootstrap_auc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from streamguard.evaluation.scoring import _rank_auc

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels + rng.normal(0, 1, 300), 1)  # rounded: plenty of ties
    assert _rank_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
