"""The triple-weighting guard (spec §1.8): sampler + multiplier > 1 + focal loss gets the original's adjustment."""

from __future__ import annotations

import logging

import pytest
import torch
from toy_data import VectorRows, collate_rows

from streamguard.tracks.common import build_checkpoint
from streamguard.training import TrainConfig, fit
from streamguard.training.weighting import TripleWeightingError, apply_triple_weighting_guard

TRIPLE = dict(weighted_sampler=True, vulnerable_weight_multiplier=1.8, loss="focal", focal_gamma=2.0, class_weighting="balanced")


def test_all_three_on_lowers_the_multiplier_and_clamps_gamma(caplog):
    with caplog.at_level(logging.WARNING, logger="streamguard.training.weighting"):
        config, record = apply_triple_weighting_guard(TrainConfig(**TRIPLE))
    assert config.vulnerable_weight_multiplier == pytest.approx(1.44)  # the original's high_recall: 1.8 -> 1.44
    assert config.focal_gamma == 1.5
    assert record == {"applied": True, "original_vulnerable_weight_multiplier": 1.8, "original_focal_gamma": 2.0,
                      "vulnerable_weight_multiplier": 1.44, "focal_gamma": 1.5}
    assert "vulnerable_weight_multiplier 1.8 -> 1.44 and focal_gamma 2.0 -> 1.5" in caplog.text


def test_floor_small_gamma_and_partial_combinations():
    config, record = apply_triple_weighting_guard(TrainConfig(**{**TRIPLE, "vulnerable_weight_multiplier": 1.1, "focal_gamma": 1.0}))
    assert config.vulnerable_weight_multiplier == 1.0 and config.focal_gamma == 1.0  # floor 1.0; gamma already <= 1.5
    assert record["original_vulnerable_weight_multiplier"] == 1.1
    for off in ({"weighted_sampler": False}, {"vulnerable_weight_multiplier": 1.0}, {"loss": "ce"}):
        unchanged = TrainConfig(**{**TRIPLE, **off})
        assert apply_triple_weighting_guard(unchanged) == (unchanged, None)


def test_error_mode_refuses_to_train():
    with pytest.raises(TripleWeightingError, match="triple_weighting_guard=adjust"):
        apply_triple_weighting_guard(TrainConfig(**TRIPLE, triple_weighting_guard="error"))
    with pytest.raises(ValueError, match="triple_weighting_guard must be one of"):
        TrainConfig(triple_weighting_guard="ignore")


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, batch):
        return self.linear(batch["x"])


def _rows(n: int) -> VectorRows:
    return VectorRows(n, 3, labels=[int(i % 3 == 0) for i in range(n)])


def test_fit_trains_with_the_adjusted_values_and_records_the_originals_in_checkpoint_and_metrics():
    config = TrainConfig(**TRIPLE, epochs=1, progress=False, device="cpu", collapse_check_from_epoch=0)
    result = fit(Linear(), _rows(30), _rows(12), collate_rows, config)
    assert result.state["config"]["focal_gamma"] == 1.5
    assert result.state["config"]["vulnerable_weight_multiplier"] == pytest.approx(1.44)
    # The loss really used the adjusted weights: safe 30/(2*20) = 0.75, vulnerable 30/(2*10) * 1.44 = 2.16.
    assert result.state["effective"]["class_weights"] == pytest.approx([0.75, 2.16])
    checkpoint = build_checkpoint("gnn", 0, {"training": config.to_dict()}, {}, result)
    guard = checkpoint["training_state"]["effective"]["triple_weighting_guard"]
    assert guard["original_focal_gamma"] == 2.0 and guard["original_vulnerable_weight_multiplier"] == 1.8
    effective = checkpoint["metrics_extra"]["effective_hyperparameters"]  # what the scoring node puts in metrics.json
    assert effective["derived"]["triple_weighting_guard"] == guard
    assert effective["training"]["focal_gamma"] == 1.5
