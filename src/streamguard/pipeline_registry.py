"""Project pipelines: data_processing, baseline, transformer, gnn, fusion, ensemble and the default (all)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from streamguard.pipelines import baseline, data_processing, ensemble, fusion, gnn, pretraining, transformer
from streamguard.config.project import DEFAULT_SEEDS, configured_ensemble_tracks, configured_seeds

__all__ = ["DEFAULT_SEEDS", "configured_ensemble_tracks", "configured_seeds", "register_pipelines"]


def register_pipelines() -> dict[str, Pipeline]:
    seeds = configured_seeds()
    pipelines = {
        "data_processing": data_processing.create_pipeline(),
        "baseline": baseline.create_pipeline(),  # deterministic: one run (baseline.seed_0) whatever the seeds
        "transformer": transformer.create_pipeline(seeds=seeds),
        "gnn": gnn.create_pipeline(seeds=seeds),
        "fusion": fusion.create_pipeline(seeds=seeds),
        "ensemble": ensemble.create_pipeline(seeds=seeds, tracks=configured_ensemble_tracks()),
    }
    # One track's ensemble, servable model, stacking and report (the original's `--track`).
    for track in ("transformer", "gnn", "fusion"):
        pipelines[f"ensemble_{track}"] = ensemble.create_pipeline(seeds=seeds, tracks=[track])
    pipelines["__default__"] = sum(
        (pipeline for name, pipeline in pipelines.items() if not name.startswith("ensemble_")), Pipeline([])
    )
    # Run on request only (minutes to hours on real data); the transformer reads its output when it exists.
    pipelines["pretraining"] = data_processing.create_pipeline() + pretraining.create_pipeline()
    return pipelines
