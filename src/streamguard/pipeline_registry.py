"""Project pipelines: data_processing, baseline, transformer, gnn, fusion, ensemble and the default (all)."""

from __future__ import annotations

from pathlib import Path

import yaml
from kedro.pipeline import Pipeline

from streamguard.pipelines import baseline, data_processing, ensemble, fusion, gnn, pretraining, transformer

DEFAULT_SEEDS = (0, 1, 2)


def configured_seeds(conf_dir: Path | None = None) -> list[int]:
    """Seeds from conf/base/parameters.yml (conf/local overrides): pipelines are built per seed."""
    conf_dir = conf_dir or _conf_dir()
    seeds: list[int] = list(DEFAULT_SEEDS)
    for env in ("base", "local"):
        path = conf_dir / env / "parameters.yml"
        if path.exists():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if "seeds" in loaded:
                seeds = [int(seed) for seed in loaded["seeds"]]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` in conf/*/parameters.yml must be a non-empty list of distinct ints, got {seeds}")
    return seeds


def configured_ensemble_tracks(conf_dir: Path | None = None) -> list[str]:
    """``ensemble.tracks`` from conf/base/parameters_ensemble.yml (conf/local overrides): what ``ensemble`` covers."""
    conf_dir = conf_dir or _conf_dir()
    tracks: list[str] = ["transformer", "gnn", "fusion"]
    for env in ("base", "local"):
        for path in sorted((conf_dir / env).glob("parameters*.yml")):
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            section = loaded.get("ensemble")
            if isinstance(section, dict) and "tracks" in section:
                tracks = [str(track) for track in section["tracks"]]
    return tracks


def _conf_dir() -> Path:
    cwd_conf = Path.cwd() / "conf"
    return cwd_conf if cwd_conf.is_dir() else Path(__file__).resolve().parents[2] / "conf"


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
