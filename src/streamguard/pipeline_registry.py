"""Project pipelines: data_processing, baseline, transformer, gnn, fusion, ensemble and the default (all)."""

from __future__ import annotations

from pathlib import Path

import yaml
from kedro.pipeline import Pipeline

from streamguard.pipelines import baseline, data_processing, ensemble, fusion, gnn, transformer

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
        "ensemble": ensemble.create_pipeline(seeds=seeds),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
