"""What every track's recipe shares: checkpoint layout and the train/valid split handling."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from streamguard.config.presets import plain  # re-exported: the recipes import it from here

T = TypeVar("T")
# Models built from checkpoints inside ``reuse_loaded_models`` (inference only; None outside).
_LOADED_MODELS: ContextVar[dict | None] = ContextVar("streamguard_loaded_models", default=None)
# Whether models built inside ``reuse_loaded_models`` may be the plain-torch inference twins.
_LITE_MODELS: ContextVar[bool] = ContextVar("streamguard_lite_models", default=False)

CHECKPOINT_FORMAT_VERSION = 1


def train_config(params: Mapping[str, Any], seed: int):
    """The shared loop's TrainConfig from a track's ``training`` block, with the run's seed."""
    from streamguard.training import TrainConfig

    return TrainConfig.from_dict({**plain(params["training"]), "seed": seed})


def build_checkpoint(
    track: str, seed: int, params: Mapping[str, Any], model: Mapping[str, Any], result: Any, **extra: Any
) -> dict[str, Any]:
    """One checkpoint layout for every track: model export, config (+hash), training state, history."""
    import torch

    from streamguard.training.config import config_hash
    from streamguard.training.effective import effective_hyperparameters

    config = plain(params)
    # metrics.json gets these through the scoring node (it adds metrics_extra to the metrics).
    metrics_extra = {**extra.pop("metrics_extra", {}), "effective_hyperparameters": effective_hyperparameters(params, result.state)}
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "track": track,
        "seed": int(seed),
        "config": config,
        "config_hash": config_hash(config),
        "model": dict(model),
        "best_epoch": int(result.best_epoch),
        "best_valid_f1": float(result.best_valid_f1),
        "history": list(result.history),
        "training_state": result.state,
        "nonfinite_steps": int(result.nonfinite_steps),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "torch_version": str(torch.__version__),  # TorchVersion is not weights-only loadable
        "metrics_extra": metrics_extra,
        **extra,
    }


@contextmanager
def reuse_loaded_models(cache: dict, lite: bool = False) -> Iterator[None]:
    """Inside, ``load_transformer``/``load_gnn``/``load_fusion`` return the model built before from
    the same checkpoint object instead of rebuilding it.

    For inference only (the models must not be trained or modified): a scorer keeps ``cache``
    for its lifetime, so a scan or a served model builds each seed's model once, not per batch.
    With ``lite`` the loaders build the plain-torch twins of the library models where they exist
    (no ``transformers`` / PyG imports: :func:`lite_models`); training and the ensemble's
    recompute never ask for them.
    """
    token, lite_token = _LOADED_MODELS.set(cache), _LITE_MODELS.set(bool(lite))
    try:
        yield
    finally:
        _LITE_MODELS.reset(lite_token)
        _LOADED_MODELS.reset(token)


def lite_models() -> bool:
    """Whether the loaders may build the plain-torch inference models (inside ``reuse_loaded_models(..., lite=True)``)."""
    return _LITE_MODELS.get()


def cached_build(kind: str, checkpoint: Mapping[str, Any], build: Callable[[], T]) -> T:
    """``build()``, or the object it built for this checkpoint inside ``reuse_loaded_models``."""
    cache = _LOADED_MODELS.get()
    if cache is None:
        return build()
    key = (kind, id(checkpoint), lite_models())
    hit = cache.get(key)
    if hit is None or hit[0] is not checkpoint:  # holding the checkpoint keeps its id from being reused
        hit = cache[key] = (checkpoint, build())
    return hit[1]


def require_track(checkpoint: Mapping[str, Any], track: str) -> None:
    if checkpoint.get("track") != track:
        raise ValueError(f"expected a {track} checkpoint, got one for track {checkpoint.get('track')!r}")


FRAME_COLUMNS = ["idx", "func", "target"]


class FunctionRows:
    """Functions to score as the recipes read a function table (``rows["func"].tolist()``, ``len(rows)``,
    ``"flaw_lines" in rows``): ``idx`` 0..N-1, ``func``, ``target`` 0. The serving scorer's input,
    so that a scan does not import pandas for a table of three columns."""

    def __init__(self, codes: Sequence[str]) -> None:
        import numpy as np

        func = np.empty(len(codes), dtype=object)
        func[:] = [str(code) for code in codes]
        self._columns = {"idx": np.arange(len(codes), dtype=np.int64), "func": func, "target": np.zeros(len(codes), dtype=np.int64)}

    def __getitem__(self, column: str) -> Any:
        return self._columns[column]

    def __contains__(self, column: object) -> bool:
        return column in self._columns

    def __len__(self) -> int:
        return len(self._columns["idx"])


def fit_with_resume(
    run_fit: Callable[..., Any],
    config: Any,
    *,
    track: str,
    seed: int,
    params: Mapping[str, Any],
    data: Mapping[str, Any],
    resume: Any = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> Any:
    """Run ``run_fit(resume_state=, save_state=, on_epoch_end=)``, resuming from ``resume`` (a ResumeStore).

    ``data`` names what the model trains on (frames, graphs, branch checkpoints): their
    fingerprints, with the track's config and ``extra_config``, decide whether a saved state may
    be resumed. Nothing is fingerprinted when there is no store.
    """
    from streamguard.training.resume import resumable_fit

    identity = _identity(track, seed, params, data, extra_config) if resume is not None else {}
    return resumable_fit(
        run_fit,
        store=resume,
        identity=identity,
        epochs=config.epochs,
        patience=config.early_stopping_patience,
        label=f"{track}.seed_{seed}",
        on_epoch_end=on_epoch_end,
    )


def _identity(
    track: str, seed: int, params: Mapping[str, Any], data: Mapping[str, Any], extra_config: Mapping[str, Any] | None
) -> dict[str, Any]:
    from streamguard.training.resume import fingerprint, result_config, training_identity

    fingerprints = {name: fingerprint(_frame_columns(value)) for name, value in data.items()}
    return training_identity(track, seed, {**result_config(params), **plain(extra_config or {})}, fingerprints)


def reuse_finished(
    resume: Any,
    *,
    track: str,
    seed: int,
    params: Mapping[str, Any],
    data: Mapping[str, Any],
    extra_config: Mapping[str, Any] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> tuple[dict, list[dict]] | None:
    """The (checkpoint, history) a finished run with this config, data and code exported, or None.

    Checked before a recipe prepares anything (tokenizer, datasets, models, branch embeddings), so
    re-running a finished pipeline reuses each seed in seconds; the history is replayed to
    ``on_epoch_end`` so the MLflow curves are complete. ``fit_with_resume``'s arguments, same meaning.
    """
    if resume is None or not getattr(resume, "resume", False):
        return None
    found = resume.load_export(_identity(track, seed, params, data, extra_config), f"{track}.seed_{seed}")
    if found is None:
        return None
    checkpoint, history = found
    for record in history if on_epoch_end is not None else ():
        on_epoch_end(dict(record))
    return checkpoint, history


def keep_finished(resume: Any, checkpoint: dict, history: list[dict]) -> tuple[dict, list[dict]]:
    """Store the finished seed's (checkpoint, history) beside its training states, for :func:`reuse_finished`."""
    if resume is not None:
        resume.save_export(checkpoint, history)
    return checkpoint, history


def train_seed(label: str, train: Callable[[], tuple[dict, list]], collapse_report: Any = None) -> tuple[dict, list]:
    """``train()`` for one seed, as every training node runs it: a collapse writes its report through
    ``collapse_report`` (a CollapseReportDataset's writer) and fails naming it; a seed that trains
    clears a stale report; the effective hyperparameters become MLflow params ``<label>.effective.*``.
    """
    from streamguard.training.collapse import TrainingCollapseError, raise_with_report
    from streamguard.training.effective import log_effective_params

    try:
        checkpoint, history = train()
    except TrainingCollapseError as error:
        raise_with_report(error, collapse_report, label)
    if collapse_report is not None:
        collapse_report.clear()
    log_effective_params(label, checkpoint["metrics_extra"]["effective_hyperparameters"])
    return checkpoint, history


def resolve_lr(
    config: Any,
    model: Any,
    train_set: Any,
    collate: Callable[[list], dict],
    *,
    track: str,
    seed: int,
    params: Mapping[str, Any],
    data: Mapping[str, Any],
    extra_config: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """``training.lr: auto``: the config with the rate a (cached) range test picked, and ``{"lr_finder": info}``
    for the checkpoint's metrics; the curve is logged to MLflow under ``<track>/seed_<s>/lr_finder``.

    The cache key is the track's settings (without the seed, so seeds share one test) and the
    fingerprints of ``data``. A numeric lr returns ``(config, {})`` untouched.
    """
    if config.lr != "auto":
        return config, {}
    from streamguard.tracking.runs import log_artifact
    from streamguard.training.lr_finder import resolve_auto_lr
    from streamguard.training.resume import fingerprint, result_config

    settings = result_config(params)
    settings["training"] = {k: v for k, v in settings.get("training", {}).items() if k != "lr_finder_cache_dir"}
    key_parts = {
        "track": track,
        "settings": settings,
        "extra": plain(extra_config or {}),
        "data": {name: fingerprint(_frame_columns(value)) for name, value in data.items()},
    }
    config, info = resolve_auto_lr(config, model, train_set, collate, key_parts, label=f"{track}.seed_{seed}")
    if info and info.get("plot"):
        log_artifact(info["plot"], f"{track}/seed_{seed}/lr_finder")
    return config, {"lr_finder": info}


def _frame_columns(value: Any) -> Any:
    """A function table reduced to the columns training reads (extra columns do not change the model)."""
    columns = getattr(value, "columns", None)
    if columns is not None and set(FRAME_COLUMNS) <= set(columns):
        return value[FRAME_COLUMNS]
    return value
