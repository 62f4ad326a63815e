"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from streamguard.training import FocalLoss, TrainConfig, build_loss, class_weights_from_labels


def test_class_weights_are_inverse_frequency():
    # 6 safe, 2 vulnerable: N/(2 n_c) = 8/12 and 8/4
    weights = class_weights_from_labels([0, 0, 0, 0, 0, 0, 1, 1])
    assert torch.allclose(weights, torch.tensor([8 / 12, 2.0]))


def test_class_weights_multiplier_and_cap():
    weights = class_weights_from_labels([0, 0, 0, 0, 0, 0, 1, 1], multiplier=1.5, cap=2.5)
    assert torch.allclose(weights, torch.tensor([8 / 12, 2.5]))  # 2.0 * 1.5 = 3.0 capped at 2.5
    weights = class_weights_from_labels([0, 0, 0, 0, 0, 0, 1, 1], multiplier=1.2, cap=5.0)
    assert torch.allclose(weights, torch.tensor([8 / 12, 2.4]))


def test_class_weights_zero_count_is_safe():
    weights = class_weights_from_labels([0, 0, 0])
    assert torch.isfinite(weights).all()
    assert torch.allclose(weights, torch.tensor([0.5, 1.0]))
    assert torch.allclose(class_weights_from_labels([]), torch.ones(2))


def test_focal_loss_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    targets = torch.tensor([1, 0])
    # sample 1: p_t = 0.5, CE = ln 2, factor (0.5)^2; sample 2: p_t = e^2/(e^2+1)
    p2 = math.exp(2) / (math.exp(2) + 1)
    expected = (math.log(2) * 0.25 + (-math.log(p2)) * (1 - p2) ** 2) / 2
    assert FocalLoss(gamma=2.0)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # alpha multiplies by the target's class weight, then a plain mean
    expected_alpha = (math.log(2) * 0.25 * 3.0 + (-math.log(p2)) * (1 - p2) ** 2 * 0.5) / 2
    alpha = torch.tensor([0.5, 3.0])
    assert FocalLoss(2.0, alpha)(logits, targets).item() == pytest.approx(expected_alpha, rel=1e-6)


def test_focal_gamma_zero_is_cross_entropy():
    logits = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    assert FocalLoss(0.0)(logits, targets).item() == pytest.approx(nn.functional.cross_entropy(logits, targets).item(), rel=1e-6)


def test_focal_negative_gamma_rejected():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-0.5)


def test_build_loss_ce_with_weights_and_smoothing():
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    loss = build_loss(TrainConfig(class_weighting="balanced", label_smoothing=0.05), labels)
    assert isinstance(loss, nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.05
    assert torch.allclose(loss.weight, torch.tensor([8 / 12, 2.0]))
    plain = build_loss(TrainConfig(), labels)
    assert isinstance(plain, nn.CrossEntropyLoss) and plain.weight is None


def test_build_loss_focal_uses_class_weights_as_alpha():
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    focal = build_loss(TrainConfig(loss="focal", focal_gamma=1.5, class_weighting="balanced"), labels)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5
    assert torch.allclose(focal.alpha, torch.tensor([8 / 12, 2.0]))
    assert build_loss(TrainConfig(loss="focal"), None).alpha is None
