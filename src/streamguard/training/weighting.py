"""The original system's "triple weighting" guard (spec §1.8).

A weighted sampler, a vulnerable-class weight multiplier above 1 and the focal loss each push the
model towards the vulnerable class; all three at once over-predict it (the original's notebook
presets did this: 65-70 % of validation predicted vulnerable, accuracy 0.56). As the original
transformer trainer did, the guard then lowers the multiplier (x 0.8, not below 1.0) and clamps
the focal gamma to 1.5, says so in a warning, and records both original values (they land in the
checkpoint and in metrics.json through the loop's effective settings).
``triple_weighting_guard: error`` refuses to train instead.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

logger = logging.getLogger(__name__)

GUARD_MODES = ("adjust", "error")
MULTIPLIER_FACTOR = 0.8
MULTIPLIER_FLOOR = 1.0
MAX_FOCAL_GAMMA = 1.5


class TripleWeightingError(ValueError):
    """Sampler + multiplier > 1 + focal loss with ``triple_weighting_guard: error``."""


def is_triple_weighted(config: Any) -> bool:
    return bool(config.weighted_sampler) and config.vulnerable_weight_multiplier > 1.0 and config.loss == "focal"


def apply_triple_weighting_guard(config: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(config, None)`` when the three are not all on; else the adjusted config and a record of the change."""
    mode = config.triple_weighting_guard
    if not is_triple_weighted(config):
        return config, None
    what = (
        f"weighted_sampler=true, vulnerable_weight_multiplier={config.vulnerable_weight_multiplier} and "
        f"loss=focal (gamma {config.focal_gamma}) all correct the class imbalance"
    )
    if mode == "error":
        raise TripleWeightingError(
            f"{what}: together they over-predict the vulnerable class. Turn one off, or set "
            "triple_weighting_guard=adjust to apply the original's correction (multiplier x 0.8, gamma <= 1.5)."
        )
    multiplier = max(MULTIPLIER_FLOOR, config.vulnerable_weight_multiplier * MULTIPLIER_FACTOR)
    gamma = min(config.focal_gamma, MAX_FOCAL_GAMMA)
    record = {
        "applied": True,
        "original_vulnerable_weight_multiplier": config.vulnerable_weight_multiplier,
        "original_focal_gamma": config.focal_gamma,
        "vulnerable_weight_multiplier": round(multiplier, 6),
        "focal_gamma": gamma,
    }
    logger.warning(
        "triple weighting: %s. As the original did, vulnerable_weight_multiplier %s -> %s and focal_gamma %s -> %s "
        "(set triple_weighting_guard=error to stop instead).",
        what, config.vulnerable_weight_multiplier, record["vulnerable_weight_multiplier"], config.focal_gamma, gamma,
    )
    adjusted = dataclasses.replace(config, vulnerable_weight_multiplier=record["vulnerable_weight_multiplier"], focal_gamma=gamma)
    return adjusted, record
