"""Shared by the track pipelines: per-seed namespacing and the scoring node."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from kedro.pipeline import Pipeline

from streamguard.evaluation.scoring import metrics_from_logits


class bind:  # noqa: N801 - used like functools.partial
    """``func`` with some keyword arguments fixed, for a node.

    Unlike ``functools.partial`` it keeps the function's name, docstring, type hints and a
    signature without the bound arguments, so Kedro's parameter-type check reads it (a partial
    logs "Could not extract type hints" once per node and run) and Kedro-Viz and logs show the
    function's name. Picklable when ``func`` is a module-level function.
    """

    def __init__(self, func: Callable[..., Any], /, **bound: Any) -> None:
        functools.update_wrapper(self, func)
        self.func, self.bound = func, bound
        signature = inspect.signature(func)
        self.__signature__ = signature.replace(parameters=[p for n, p in signature.parameters.items() if n not in bound])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **self.bound, **kwargs)


def bind_seed(func: Callable[..., Any], seed: int) -> Callable[..., Any]:
    """``func`` with ``seed`` bound (see ``bind``)."""
    return bind(func, seed=seed)


def per_seed(track: str, seeds: Iterable[int], build: Callable[[int], Pipeline]) -> Pipeline:
    """One copy of ``build(seed)`` per seed, namespaced ``<track>.seed_<s>``.

    Every free input of a template is external (shared splits, graphs, another track's
    checkpoint of the same seed), so inputs and parameters keep their global names and only
    the template's own outputs (checkpoint, logits, metrics, history) get the namespace.
    """
    pipelines = []
    for seed in seeds:
        template = build(seed)
        params = {name for name in template.inputs() if name.startswith("params:")}
        pipelines.append(
            Pipeline(template, namespace=f"{track}.seed_{seed}", inputs=template.inputs() - params, parameters=params)
        )
    return sum(pipelines, Pipeline([]))


def score(valid_logits: Any, test_logits: Any, checkpoint: dict, sweep: dict) -> dict:
    """The shared metrics dict of a seed: threshold chosen on valid, applied to test.

    ``checkpoint`` is a trained track's checkpoint, or any dict with ``track``, ``seed`` and
    ``config`` (the baseline's summary): the training-loop keys are added when it has them.
    """
    training = {}
    if "best_epoch" in checkpoint:
        training["best_epoch"] = checkpoint["best_epoch"]
    if "best_valid_f1" in checkpoint:
        training["best_valid_f1_during_training"] = checkpoint["best_valid_f1"]
    return metrics_from_logits(
        valid_logits,
        test_logits,
        sweep,
        track=checkpoint["track"],
        seed=checkpoint["seed"],
        preset=checkpoint["config"].get("preset"),
        **training,
        **checkpoint.get("metrics_extra", {}),
    )
