"""Training objectives for the imbalanced binary task: (weighted, smoothed) CE and focal loss."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from streamguard.training.config import TrainConfig

logger = logging.getLogger(__name__)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): CE scaled by (1 - p_t)^gamma to focus on hard examples.

    Per sample: CE(logits, target) * (1 - p_t)^gamma * alpha[target]; then a plain mean (as the
    original system did: not normalised by the alpha sum). gamma = 0 and alpha = None is plain CE.
    """

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        alpha_tensor = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        self.register_buffer("alpha", alpha_tensor)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=-1)
        target_log_prob = log_probs.gather(1, targets.view(-1, 1)).squeeze(1)
        ce = -target_log_prob
        loss = ce * (1.0 - target_log_prob.exp()).clamp(min=0.0).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * self.alpha.to(loss.device)[targets]
        return loss.mean()


def class_weights_from_labels(
    labels: Sequence[int] | torch.Tensor, multiplier: float = 1.0, cap: float = 5.0
) -> torch.Tensor:
    """Inverse-frequency weights N / (2 * n_c), vulnerable (class 1) times ``multiplier``, each capped.

    A class with no examples gets weight 1.0 (then the multiplier and cap), instead of a division by zero.
    """
    labels_tensor = torch.as_tensor(labels, dtype=torch.long).flatten()
    counts = torch.bincount(labels_tensor, minlength=2)[:2].double()
    total = float(labels_tensor.numel())
    weights = torch.where(counts > 0, total / (2.0 * counts.clamp(min=1.0)), torch.ones_like(counts))
    weights[1] = weights[1] * multiplier
    return weights.clamp(max=cap).float()


def build_loss(config: TrainConfig, train_labels: Sequence[int] | torch.Tensor | None) -> nn.Module:
    """The training criterion the config asks for; class weights come from the training labels."""
    weights = None
    if config.class_weighting == "balanced":
        if train_labels is None:
            raise ValueError("class_weighting='balanced' needs the training labels")
        weights = class_weights_from_labels(train_labels, config.vulnerable_weight_multiplier, config.max_class_weight)
        logger.info("class weights (safe, vulnerable): %s", [round(float(w), 4) for w in weights])
    elif config.vulnerable_weight_multiplier != 1.0:
        logger.warning(
            "vulnerable_weight_multiplier=%s has no effect with class_weighting='none'",
            config.vulnerable_weight_multiplier,
        )
    if config.loss == "focal":
        if config.label_smoothing > 0:
            logger.warning("label_smoothing=%s is ignored by the focal loss", config.label_smoothing)
        return FocalLoss(config.focal_gamma, weights)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)


def split_output(output: torch.Tensor | Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, auxiliary loss or None) of a model's forward.

    A model gives its logits, or, while training with an auxiliary objective, a mapping
    ``{"logits", "auxiliary_loss"}`` (the transformer's token-level line supervision): the one
    training loop adds that loss to the classification loss, so an extra objective needs no second loop.
    """
    if isinstance(output, Mapping):
        return output["logits"], output.get("auxiliary_loss")
    return output, None


class WithAuxiliaryLoss(nn.Module):
    """``criterion(logits, labels)`` plus the model's auxiliary loss, for callers that hand a model's
    raw output to a criterion (the learning-rate range test)."""

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion

    def forward(self, output: torch.Tensor | Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        logits, auxiliary = split_output(output)
        loss = self.criterion(logits.float(), targets)
        return loss if auxiliary is None else loss + auxiliary.float()
