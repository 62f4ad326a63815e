"""Seed ensembles: alignment checks, skipped and recomputed seeds, averaged logits, seed statistics."""

import logging

import numpy as np
import pandas as pd
import pytest

from streamguard.evaluation.ensemble import EnsembleError, average_logits, ensemble_track, recompute_missing_logits
from streamguard.evaluation.scoring import logits_frame

LABELS = np.array([0, 1, 0, 1, 1, 0, 0, 1])


def seed_logits(shift: float, idx=None, labels=LABELS) -> pd.DataFrame:
    margin = np.linspace(-2, 2, len(labels)) * (2 * labels - 1) + shift
    logits = np.stack([np.zeros_like(margin), margin], axis=1)
    return logits_frame(np.arange(len(labels)) if idx is None else idx, labels, logits)


def splits(shift: float) -> dict:
    return {"valid": seed_logits(shift), "test": seed_logits(-shift)}


def test_average_of_logits_and_seed_statistics():
    per_seed = {0: splits(0.5), 1: splits(-0.5), 2: splits(0.1)}
    metrics, valid, _ = ensemble_track("gnn", per_seed)
    expected = np.mean([per_seed[s]["valid"][["logit_0", "logit_1"]].to_numpy() for s in per_seed], axis=0)
    np.testing.assert_allclose(valid[["logit_0", "logit_1"]].to_numpy(), expected)
    assert metrics["num_seeds"] == metrics["num_seeds_with_logits"] == 3
    f1s = [row["f1_at_best_threshold"] for row in metrics["per_seed_f1_at_best"]]
    assert metrics["per_seed_mean_f1"] == pytest.approx(np.mean(f1s))
    assert metrics["per_seed_std_f1"] == pytest.approx(np.std(f1s, ddof=1))  # sample std, not population
    assert {"f1_at_best_threshold", "test", "threshold_sweep", "roc_auc"} <= set(metrics)


def test_probabilities_can_be_averaged_instead():
    frames = {0: seed_logits(1.0), 1: seed_logits(-1.0)}
    averaged = average_logits(frames, "probabilities")
    np.testing.assert_allclose(averaged["prob"], (frames[0]["prob"] + frames[1]["prob"]) / 2)


def test_missing_seed_is_skipped_with_a_warning_and_counted(caplog):
    per_seed = {0: splits(0.2), 1: {"valid": None, "test": seed_logits(0.0)}}
    with caplog.at_level(logging.WARNING):
        metrics, _, _ = ensemble_track("fusion", per_seed)
    assert metrics["num_seeds"] == 2 and metrics["num_seeds_with_logits"] == 1
    assert "skipping seed 1" in caplog.text and "kedro run --pipeline fusion" in caplog.text
    assert "ensemble.recompute=true" in caplog.text


def test_no_usable_seed_is_a_clear_error():
    with pytest.raises(EnsembleError, match=r"none of the seeds \[0, 1\] has valid and test logits"):
        ensemble_track("transformer", {0: {"valid": None, "test": None}, 1: {"valid": None, "test": None}})


def test_misaligned_seeds_are_named():
    shuffled = seed_logits(0.0, idx=np.arange(len(LABELS))[::-1])
    with pytest.raises(EnsembleError, match="seed 1 and seed 0 cover different rows"):
        ensemble_track("gnn", {0: splits(0.0), 1: {"valid": shuffled, "test": seed_logits(0.0)}})
    flipped = seed_logits(0.0, labels=1 - LABELS)
    with pytest.raises(EnsembleError, match="labels of seed 1 and seed 0 differ"):
        ensemble_track("gnn", {0: splits(0.0), 1: {"valid": flipped, "test": seed_logits(0.0)}})


def test_recompute_reads_only_the_checkpoints_it_needs():
    calls = []

    def predict(track, ckpt, frame, graphs):
        return seed_logits(ckpt["shift"])

    def loader(seed, checkpoint):
        def load():
            calls.append(seed)
            return checkpoint
        return load

    per_seed = {0: splits(0.3), 1: {"valid": None, "test": None}, 2: {"valid": None, "test": seed_logits(0.0)}}
    checkpoints = {0: loader(0, {"shift": 9.0}), 1: loader(1, {"shift": 0.4}), 2: loader(2, None)}
    frames = {"valid": pd.DataFrame(), "test": pd.DataFrame()}
    filled = recompute_missing_logits("gnn", per_seed, checkpoints, frames, {}, predict)
    assert calls == [1, 2]  # seed 0 had its logits: its checkpoint was never read
    pd.testing.assert_frame_equal(filled[1]["valid"], seed_logits(0.4))
    assert filled[2]["valid"] is None  # no checkpoint either: still missing, skipped later
    metrics, _, _ = ensemble_track("gnn", filled)
    assert metrics["num_seeds_with_logits"] == 2
