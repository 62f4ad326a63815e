"""Seed ensembles: align per-seed logits by idx and label, average, score with the shared metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from streamguard.evaluation.scoring import logits_frame, metrics_from_logits, sweep_spec
from streamguard.evaluation.metrics import compute_metrics, mean_std

logger = logging.getLogger(__name__)


class EnsembleError(ValueError):
    """Seeds cannot be ensembled (none usable, or rows misaligned)."""


def recompute_missing_logits(
    track: str,
    per_seed: Mapping[int, Mapping[str, pd.DataFrame | None]],
    checkpoints: Mapping[int, Callable[[], Mapping[str, Any] | None]],
    frames: Mapping[str, pd.DataFrame],
    graphs: Mapping[str, Any],
    predict: Callable[[str, Mapping[str, Any], pd.DataFrame, Any], pd.DataFrame],
) -> dict[int, dict[str, pd.DataFrame | None]]:
    """Rebuild the logits a seed lacks from that seed's checkpoint (the original's ``--recompute``).

    ``predict(track, checkpoint, frame, graphs)`` computes them (``streamguard.tracks.logits.checkpoint_logits``
    in the pipeline): passed in, so evaluation never imports the track recipes.

    ``checkpoints`` maps a seed to a loader, called only for seeds with missing logits, so
    checkpoints are never read when nothing is missing. A seed without a usable checkpoint keeps
    its gap (and is skipped by :func:`usable_seeds` with a warning).
    """
    filled = {seed: dict(splits) for seed, splits in per_seed.items()}
    for seed, splits in filled.items():
        missing = [split for split, frame in splits.items() if frame is None]
        if not missing:
            continue
        try:
            checkpoint = checkpoints[seed]() if seed in checkpoints else None
            if checkpoint is None:
                logger.warning("%s ensemble: cannot recompute seed %s, its checkpoint is missing too.", track, seed)
                continue
            for split in missing:
                splits[split] = predict(track, checkpoint, frames[split], graphs.get(split))
            logger.info("%s ensemble: recomputed %s logits of seed %s from its checkpoint", track, "/".join(missing), seed)
        except Exception as error:  # a corrupt checkpoint, a branch the checkpoint needs: skip the seed, say why
            logger.warning("%s ensemble: failed to recompute the logits of seed %s: %s", track, seed, error)
    return filled


def usable_seeds(track: str, per_seed: Mapping[int, Mapping[str, pd.DataFrame | None]]) -> list[int]:
    """Seeds whose valid and test logits both exist; the others are skipped with a warning."""
    usable = []
    for seed, splits in per_seed.items():
        missing = [split for split, frame in splits.items() if frame is None]
        if missing:
            logger.warning(
                "%s ensemble: skipping seed %s, its %s logits are missing. Produce them with "
                "`kedro run --pipeline %s`, or rebuild them from the seed's checkpoint with "
                "`kedro run --pipeline ensemble --params ensemble.recompute=true`.", track, seed, "/".join(missing), track,
            )
        else:
            usable.append(seed)
    if not usable:
        raise EnsembleError(
            f"{track} ensemble: none of the seeds {sorted(per_seed)} has valid and test logits. "
            f"Run `kedro run --pipeline {track}` first."
        )
    return usable


def check_alignment(track: str, split: str, frames: Mapping[int, pd.DataFrame]) -> None:
    """Every seed must score the same rows (idx) with the same labels, in the same order."""
    reference_seed, reference = next(iter(frames.items()))
    for seed, frame in frames.items():
        if len(frame) != len(reference) or not np.array_equal(frame["idx"].to_numpy(), reference["idx"].to_numpy()):
            raise EnsembleError(
                f"{track} ensemble: {split} logits of seed {seed} and seed {reference_seed} cover different rows "
                f"({len(frame)} vs {len(reference)}); retrain both on the same data_processing output."
            )
        if not np.array_equal(frame["label"].to_numpy(), reference["label"].to_numpy()):
            raise EnsembleError(f"{track} ensemble: {split} labels of seed {seed} and seed {reference_seed} differ for the same idx.")


def average_logits(frames: Mapping[int, pd.DataFrame], average: str = "logits") -> pd.DataFrame:
    """Mean logits across seeds (or mean probabilities, kept as log-odds in the logit columns)."""
    first = next(iter(frames.values()))
    if average == "logits":
        logits = np.mean([frame[["logit_0", "logit_1"]].to_numpy() for frame in frames.values()], axis=0)
    elif average == "probabilities":
        prob = np.clip(np.mean([frame["prob"].to_numpy() for frame in frames.values()], axis=0), 1e-7, 1 - 1e-7)
        logits = np.stack([np.zeros_like(prob), np.log(prob / (1 - prob))], axis=1)
    else:
        raise ValueError(f"ensemble.average must be 'logits' or 'probabilities', got {average!r}")
    return logits_frame(first["idx"].to_numpy(), first["label"].to_numpy(), logits)


def ensemble_track(
    track: str,
    per_seed: Mapping[int, Mapping[str, pd.DataFrame | None]],
    average: str = "logits",
    sweep: Mapping[str, float] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Ensemble metrics (same keys as one seed, plus per-seed statistics) and the averaged logits."""
    seeds = usable_seeds(track, per_seed)
    averaged = {}
    for split in ("valid", "test"):
        frames = {seed: per_seed[seed][split] for seed in seeds}
        check_alignment(track, split, frames)
        averaged[split] = average_logits(frames, average)
    per_seed_f1 = [
        {
            "seed": seed,
            # The seed's own score node already warned about a threshold on the sweep's edge.
            "f1_at_best_threshold": compute_metrics(
                per_seed[seed]["valid"]["label"].to_numpy(), per_seed[seed]["valid"]["prob"].to_numpy(), spec=sweep_spec(sweep),
                warn_at_edge=False,
            )["f1_at_best_threshold"],
        }
        for seed in seeds
    ]
    mean_f1, std_f1 = mean_std([row["f1_at_best_threshold"] for row in per_seed_f1])
    metrics = metrics_from_logits(
        averaged["valid"],
        averaged["test"],
        sweep,
        track=track,
        average=average,
        num_seeds=len(per_seed),
        num_seeds_with_logits=len(seeds),
        seeds_used=seeds,
        per_seed_f1_at_best=per_seed_f1,
        per_seed_mean_f1=mean_f1,
        per_seed_std_f1=std_f1,
    )
    return metrics, averaged["valid"], averaged["test"]
