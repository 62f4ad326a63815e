"""The few settings that shape the pipelines themselves (seeds, ensembled tracks), read from conf/.

Kedro builds pipelines before parameters are loaded, so these are read from the YAML files
directly (conf/local overriding conf/base). Plain Python, no Kedro: the pipeline registry and
library code (the scan's scorer) both read them here, so library code never imports the registry.
"""

from __future__ import annotations

from pathlib import Path

import yaml

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
    return cwd_conf if cwd_conf.is_dir() else Path(__file__).resolve().parents[3] / "conf"
