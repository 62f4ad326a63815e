"""``training.lr: auto``: a learning-rate range test (torch-lr-finder) with a cache per data/config fingerprint.

The range test trains a copy of the run's optimizer set-up (AdamW over the same parameter groups,
the run's loss, no AMP) for ``lr_finder_iterations`` batches while the learning rate grows
exponentially from 1e-7 to 1, stopping once the smoothed loss exceeds 5x its minimum; the model
and optimizer are restored afterwards. The rate picked is torch-lr-finder's suggestion: the
steepest descent of the smoothed loss against log(lr). The result (rate, curve, PNG) is cached
under ``lr_finder_cache_dir`` keyed by a fingerprint of the track's settings (the seed and the lr
excluded: every seed shares one test) and of the training data, so later runs and seeds reuse it.

torch-lr-finder fits the shared loop's dict batches through its documented extension point
(``TrainDataLoaderIter.inputs_labels_from_batch``): the model gets the whole batch dict.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

START_LR = 1e-7
END_LR = 1.0
SMOOTHING = 0.05
DIVERGE_FACTOR = 5.0
SKIP_START, SKIP_END = 10, 5  # torch-lr-finder's defaults for its suggestion


def cache_key(parts: Mapping[str, Any]) -> str:
    from streamguard.training.config import config_hash

    return config_hash(dict(parts))


def range_test(
    model: Any,
    train_dataset: Any,
    collate_fn: Callable[[list], dict],
    config: Any,
    param_groups: list[dict] | None = None,
) -> dict[str, Any]:
    """Run the range test; returns ``{"lr", "lrs", "losses", "iterations_run"}`` (model and optimizer restored)."""
    import torch
    from torch.utils.data import DataLoader
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    from streamguard.training.components import dataset_labels, default_param_groups, resolve_device
    from streamguard.training.losses import WithAuxiliaryLoss, build_loss

    class DictBatches(TrainDataLoaderIter):
        def inputs_labels_from_batch(self, batch_data):
            return batch_data, batch_data["labels"]

    probe = _with_lr(config, START_LR)
    device = resolve_device(config.device)
    labels = dataset_labels(train_dataset, collate_fn) if config.class_weighting == "balanced" else None
    criterion = WithAuxiliaryLoss(build_loss(probe, labels)).to(device)  # a model may add an auxiliary loss
    groups = [dict(group, lr=START_LR) for group in (param_groups or default_param_groups(model, probe))]
    optimizer = torch.optim.AdamW(groups, lr=START_LR, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(int(config.seed))
    loader = DataLoader(train_dataset, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=collate_fn)
    model.to(device)
    finder = LRFinder(model, optimizer, criterion, device=device)
    try:
        finder.range_test(
            DictBatches(loader), end_lr=END_LR, num_iter=int(config.lr_finder_iterations),
            smooth_f=SMOOTHING, diverge_th=DIVERGE_FACTOR,
        )
        lrs = [float(value) for value in finder.history["lr"]]
        losses = [float(value) for value in finder.history["loss"]]
    finally:
        finder.reset()  # the model's and optimizer's state from before the test
    if len(lrs) < SKIP_START + SKIP_END + 2:
        raise ValueError(
            f"the learning-rate range test stopped after {len(lrs)} batches (the loss diverged), too few to pick a rate; "
            f"raise training.lr_finder_iterations (now {config.lr_finder_iterations}) or set training.lr to a number"
        )
    return {"lr": suggest(finder), "lrs": lrs, "losses": losses, "iterations_run": len(lrs)}


def suggest(finder: Any) -> float:
    """torch-lr-finder's own suggestion (steepest gradient), drawn on a throwaway Agg axis."""
    axes = _figure().add_subplot()
    _, lr = finder.plot(skip_start=SKIP_START, skip_end=SKIP_END, ax=axes, suggest_lr=True)
    return float(lr)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def curve_figure(result: Mapping[str, Any], title: str) -> Any:
    """Loss against learning rate (log scale), the chosen rate marked."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(result["lrs"], result["losses"], marker=".", linewidth=1)
    axes.axvline(result["lr"], color="red", linestyle="--", label=f"chosen lr {result['lr']:.2e}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    axes.set_title(title)
    axes.legend()
    axes.grid(True, alpha=0.3)
    return figure


def _with_lr(config: Any, lr: float) -> Any:
    import dataclasses

    return dataclasses.replace(config, lr=float(lr))


def resolve_auto_lr(
    config: Any,
    model: Any,
    train_dataset: Any,
    collate_fn: Callable[[list], dict],
    key_parts: Mapping[str, Any],
    *,
    label: str,
    param_groups: list[dict] | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """``(config, None)`` for a numeric lr; for ``lr: auto`` the config with the found rate and what was done.

    A cached result for the same ``key_parts`` (settings + data fingerprints) is reused; otherwise
    the range test runs and the result, with its curve as a PNG, is cached atomically.
    """
    if config.lr != "auto":
        return config, None
    from streamguard.runtime.atomic import atomic_write

    key = cache_key(key_parts)
    cache_dir = Path(config.lr_finder_cache_dir) if config.lr_finder_cache_dir else None
    json_path = cache_dir / f"{key}.json" if cache_dir else None
    cached = _read_cache(json_path)
    if cached is not None:
        logger.info("%s: lr=auto -> %.3g (cached range test %s)", label, cached["lr"], json_path)
        result, hit = cached, True
    else:
        probe = _with_lr(config, START_LR)
        result = range_test(model, train_dataset, collate_fn, probe, param_groups)
        result.update({"key": key, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "label": label, "key_parts": json.loads(json.dumps(dict(key_parts), default=str))})
        hit = False
        logger.info("%s: lr=auto -> %.3g (range test over %d batches)", label, result["lr"], result["iterations_run"])
        if json_path is not None:
            text = json.dumps(result, indent=1)
            atomic_write(json_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    plot_path = json_path.with_suffix(".png") if json_path is not None else None
    if plot_path is not None and not plot_path.exists():
        figure = curve_figure(result, f"{label}: learning-rate range test")
        atomic_write(plot_path, lambda tmp: figure.savefig(tmp, format="png"))
    info = {
        "lr": float(result["lr"]),
        "cache_hit": hit,
        "cache_file": str(json_path) if json_path else None,
        "plot": str(plot_path) if plot_path else None,
        "iterations_run": int(result["iterations_run"]),
    }
    return _with_lr(config, result["lr"]), info


def _read_cache(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        float(result["lr"])
        return result
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable lr finder cache %s (%s): running the range test again", path, error)
        return None
