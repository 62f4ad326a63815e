"""The hyperparameters a seed really trained with, for metrics.json and MLflow params.

"Effective" means after the preset, the dotted ``--params`` overrides and every adjustment made at
train time (the triple-weighting guard, an ``lr: auto`` range test), plus what the loop derived
(device, AMP dtype, steps, warm-up steps, per-group learning rates, class weights). The log line
"training: {...}" says the same; this puts it where runs are compared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from streamguard.config.presets import plain

logger = logging.getLogger(__name__)

#: MLflow refuses longer param values (6,000 characters in MLflow 2.x and 3.x).
_MAX_PARAM_CHARS = 6000


def effective_hyperparameters(params: Mapping[str, Any], state: Mapping[str, Any] | None) -> dict[str, Any]:
    """The track's resolved params with ``training`` replaced by the TrainConfig the loop ran with, plus ``derived``.

    ``state`` is the loop's snapshot (``FitResult.state``): its ``config`` is the TrainConfig after
    train-time adjustments, its ``effective`` the values the loop derived.
    """
    values = {key: value for key, value in plain(params).items() if key != "training"}
    state = state or {}
    values["training"] = plain(state.get("config") or params.get("training") or {})
    values["derived"] = plain(state.get("effective") or {})
    return values


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a.b": "value"}`` strings for ``mlflow.log_params`` (lists and None as JSON)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:_MAX_PARAM_CHARS]
    return flat


def log_effective_params(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Log ``values`` as MLflow params ``<prefix>.effective.<key>`` when a run is active; returns what was logged.

    A param already logged with another value in this run (a seed trained twice in one run) is kept
    and a warning says so: MLflow params cannot change.
    """
    import mlflow

    if mlflow.active_run() is None:
        return {}
    flat = flatten_params(values, f"{prefix}.effective")
    try:
        mlflow.log_params(flat)
    except mlflow.exceptions.MlflowException as error:
        logger.warning("effective hyperparameters of %s not logged as MLflow params: %s", prefix, error)
        return {}
    return flat
