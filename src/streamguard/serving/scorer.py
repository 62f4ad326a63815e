"""Score arbitrary C functions with a trained track: every seed's checkpoint, logits averaged.

Used by ``streamguard scan`` and the MLflow model. Each seed's model is built once per scorer
(``tracks.common.reuse_loaded_models``) and functions are scored in batches, so nothing is
rebuilt per function or per request.

The scorer builds the plain-torch inference twins of the models where they exist (RoBERTa
encoder and tokenizer without ``transformers``, the ``gcn`` GNN without PyG: ``lite``), which
score the same and spare a scan seconds of imports; ``STREAMGUARD_LITE_MODELS=0`` (or
``lite=False``) makes it build the library models, as training does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TRACKS = ("fusion", "transformer", "gnn")
MIN_CODES_FOR_PARALLEL_SEEDS = 64
LITE_ENV = "STREAMGUARD_LITE_MODELS"


def lite_by_default() -> bool:
    """Whether scorers build the plain-torch models: yes unless ``STREAMGUARD_LITE_MODELS`` is 0/false/no/off."""
    return os.environ.get(LITE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class ScorerUnavailableError(RuntimeError):
    """No trained artefacts for the requested track; the message says how to produce them."""


def default_seed_workers() -> int:
    """Seeds scored in parallel: one per usable CPU core (1 with a GPU, where the device is shared)."""
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class EnsembleScorer:
    """P(vulnerable) from the mean logits of a track's seed checkpoints."""

    def __init__(
        self,
        track: str,
        checkpoints: Sequence[Mapping[str, Any]],
        threshold: float,
        description: str = "",
        chunk_size: int = 2048,
        seed_workers: int | None = None,
        lite: bool | None = None,
    ) -> None:
        if track not in TRACKS:
            raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
        if not checkpoints:
            raise ScorerUnavailableError(f"no {track} checkpoints to score with")
        self.track, self.checkpoints, self.threshold = track, list(checkpoints), float(threshold)
        self.description = description or f"{track} ensemble of {len(self.checkpoints)} seed(s)"
        self.chunk_size = chunk_size
        self.seed_workers = default_seed_workers() if seed_workers is None else int(seed_workers)
        self.lite = lite_by_default() if lite is None else bool(lite)
        self._models: dict = {}  # each seed's model, built on first use and reused by every later call

    def score_codes(self, codes: Sequence[str]) -> np.ndarray:
        """P(vulnerable) per code, in input order.

        Each chunk is scored in order of source length (batches then pad to similar lengths:
        about 1.5x fewer transformer tokens on the generated data) and its graphs are built once
        for all seeds that share a graph configuration.
        """
        from streamguard.evaluation.metrics import probabilities_from_logits

        if not codes:
            return np.zeros(0)
        scores = np.zeros(len(codes))
        for start in range(0, len(codes), self.chunk_size):
            chunk = list(codes[start : start + self.chunk_size])
            order = np.argsort([len(code) for code in chunk], kind="stable")
            ordered = [chunk[i] for i in order]
            logits = np.mean(self._all_seed_logits(ordered), axis=0)
            scores[start + order] = probabilities_from_logits(logits)
        return scores

    def _all_seed_logits(self, codes: list[str]) -> list[np.ndarray]:
        """Every seed's logits for ``codes``; on CPU the seeds run side by side, one core each.

        Small models split poorly over cores op by op, so ``seed_workers`` threads with one torch
        thread each use the cores better than one seed after another on all of them (torch
        releases the GIL inside its ops).
        """
        import torch

        from streamguard.tracks.common import reuse_loaded_models

        graphs_by_config: dict[str, list] = {}
        graphs = [  # built before any worker starts; seeds with the same graph config share them
            self._graphs(checkpoint, codes, graphs_by_config) if self.track != "transformer" else None
            for checkpoint in self.checkpoints
        ]
        workers = min(self.seed_workers, len(self.checkpoints) * len(codes))
        # The first call runs seed after seed: it builds the models and does first-use imports,
        # which are not thread-safe (transformers' lazy modules).
        # Small calls (a served request of a few functions) are not worth the threads.
        parallel = workers > 1 and bool(self._models) and len(codes) >= MIN_CODES_FOR_PARALLEL_SEEDS
        # Each seed's (length-sorted) codes in contiguous parts, so that every core stays busy
        # to the end even when the seeds do not divide evenly over the workers.
        parts = np.array_split(np.arange(len(codes)), 2 * workers if parallel else 1)
        tasks = [(seed, part[0], part[-1] + 1) for seed in range(len(self.checkpoints)) for part in parts if len(part)]

        def run(task: tuple[int, int, int]) -> np.ndarray:
            seed, begin, end = task
            seed_graphs = graphs[seed][begin:end] if graphs[seed] is not None else None
            with reuse_loaded_models(self._models, lite=self.lite):
                return self._seed_logits(self.checkpoints[seed], codes[begin:end], seed_graphs)

        if parallel:
            from concurrent.futures import ThreadPoolExecutor

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamguard-seed") as pool:
                    results = list(pool.map(run, tasks))
            finally:
                torch.set_num_threads(threads)
        else:
            results = [run(task) for task in tasks]
        by_seed: dict[int, list[np.ndarray]] = {}
        for (seed, _, _), logits in zip(tasks, results):
            by_seed.setdefault(seed, []).append(logits)
        return [np.concatenate(by_seed[seed]) for seed in range(len(self.checkpoints))]

    def warm_up(self) -> EnsembleScorer:
        """Score one tiny function: first-call imports and allocations happen here, not in the timed scan."""
        self.score_codes(["int warm_up(int a) { return a + 1; }"])
        return self

    def score(self, functions: Sequence[Any]) -> np.ndarray:
        """Scores for objects with a ``code`` attribute (scan's FunctionRecord)."""
        return self.score_codes([function.code for function in functions])

    @property
    def default_line_method(self) -> str:
        from streamguard.explain import default_method

        return default_method(self.track, self.checkpoints)

    def line_scores(self, codes: Sequence[str], method: str | None = None) -> list[np.ndarray]:
        """Per function, a score per source line (``streamguard.explain``; NaN: no evidence), from
        every seed with the models this scorer already built."""
        from streamguard.explain import ensemble_line_scores
        from streamguard.tracks.common import reuse_loaded_models

        with reuse_loaded_models(self._models, lite=self.lite):
            return ensemble_line_scores(self.checkpoints, list(codes), method)

    def _seed_logits(self, checkpoint: Mapping[str, Any], codes: list[str], graphs: list | None) -> np.ndarray:
        from streamguard.tracks.common import FunctionRows
        from streamguard.tracks.logits import checkpoint_predictions

        idx, _, logits = checkpoint_predictions(self.track, checkpoint, FunctionRows(codes), graphs)
        return np.asarray(logits, dtype=np.float64)[np.argsort(idx, kind="stable")]

    @staticmethod
    def _graphs(checkpoint: Mapping[str, Any], codes: list[str], cache: dict[str, list]) -> list:
        """The chunk's graphs for this checkpoint's graph configuration (built once per configuration)."""
        import json

        from streamguard.graphs import GraphConfig, build_graphs

        model = checkpoint["model"]
        graph_config = model.get("graph_config") or model["branch_checkpoints"].get("gnn", {}).get("model", {}).get("graph_config")
        key = json.dumps(dict(graph_config or {}), sort_keys=True, default=str)
        if key not in cache:
            cache[key] = build_graphs(codes, GraphConfig.from_dict(dict(graph_config or {})))
        return cache[key]


def load_scorer(project_dir: str | Path = ".", track: str = "fusion", model_uri: str | None = None) -> EnsembleScorer:
    """The scorer for ``track`` from a Kedro project's catalog (or an MLflow model URI).

    The first scan of a project resolves the catalog with Kedro and remembers where the track's
    artefacts are (``streamguard.serving.scan_index``); later scans with the same conf read them
    directly, without importing Kedro. Either way the same files are read and checked.
    """
    if model_uri:
        import mlflow

        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().scorer  # warmed up by load_context
    from streamguard.serving import scan_index

    project_dir = Path(project_dir).resolve()
    if not (project_dir / "conf").is_dir():
        raise ScorerUnavailableError(f"{project_dir} is not a StreamGuard project (no conf/); pass --project-dir")
    loaded = scan_index.load_indexed(project_dir, track)
    if loaded is None:
        loaded = _load_with_kedro(project_dir, track)
    checkpoints, threshold = loaded
    return EnsembleScorer(
        track, checkpoints, threshold, description=f"{track} ensemble of {len(checkpoints)} seed(s) from {project_dir}"
    ).warm_up()


def _load_with_kedro(project_dir: Path, track: str) -> tuple[list[dict], float]:
    """The track's checkpoints and threshold through the project's catalog; remembers their paths for next time."""
    # Before Kedro is imported: its default logging prints INFO lines on stdout, where the report goes.
    os.environ.setdefault("KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("scan") / "quiet_logging.yml"))
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(kedro|kedro_mlflow|mlflow)(\.|$)")
    from kedro.framework.startup import bootstrap_project

    from streamguard.config.project import configured_seeds
    from streamguard.serving import scan_index

    bootstrap_project(project_dir)
    # From inside the project: its relative paths (data/) must resolve there, not in the directory
    # the user scans from.
    with contextlib.chdir(project_dir):
        catalog = _project_catalog(project_dir)
        seeds = configured_seeds(project_dir / "conf")
        checkpoints = [c for c in (catalog.load(f"{track}.seed_{seed}.checkpoint") for seed in seeds) if c is not None]
        if not checkpoints:
            raise ScorerUnavailableError(
                f"no trained {track} checkpoints in {project_dir}/data/06_models for seeds {seeds}. "
                f"Train them with `kedro run` (or `kedro run --pipeline {track}`) first."
            )
        name = f"{track}.ensemble_metrics"
        metrics = catalog.load(name) if catalog.exists(name) else None
        threshold = validation_threshold(track, checkpoints, metrics, f"{name} ({catalog.get(name)._describe().get('filepath')})")
        scan_index.remember(project_dir, track, catalog, seeds, len(checkpoints))
    return checkpoints, threshold


def _project_catalog(project_dir: Path) -> Any:
    """The project's data catalog from its conf, without a KedroSession.

    A session runs the project's hooks, and kedro-mlflow's imports MLflow and opens the tracking
    store (3-5 s, and a dead tracking server stalls it) for a scan that logs nothing.
    """
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project_dir / settings.CONF_SOURCE), env=None, **settings.CONFIG_LOADER_ARGS
    )
    return settings.DATA_CATALOG_CLASS.from_config(catalog=loader["catalog"])


def validation_threshold(track: str, checkpoints: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any] | None, where: str) -> float:
    """The ensemble's validation-chosen threshold; 0.5 (with a warning) before any ensemble run.

    Stops (``StaleArtefactError``) when the seeds' checkpoints mix configurations or the ensemble
    metrics predate them: their threshold would belong to other weights. ``where`` names the
    metrics artefact (catalog name and file) in that message.
    """
    from streamguard.serving.consistency import check_track_artefacts

    check_track_artefacts(track, checkpoints, metrics, where)
    if metrics is not None:
        return float(metrics["best_threshold_by_f1"])
    logger.warning("%s.ensemble_metrics not found: using threshold 0.5. Run `kedro run --pipeline ensemble` for a validation-chosen one.", track)
    return 0.5
