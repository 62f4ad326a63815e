"""Resumable training: per-epoch states on disk, fingerprinted, with fallbacks (plain Python, no Kedro).

A :class:`ResumeStore` owns one folder (one track and seed) holding up to three states written by
:func:`streamguard.training.fit`'s ``save_state`` callback:

* ``last.pt``: the state after the latest finished epoch (written atomically every epoch);
* ``previous.pt``: the one before it (``last.pt`` is renamed to it before the new one is written);
* ``best.pt``: the state after the best epoch so far (a copy of ``last.pt`` when that epoch is best).

Each file carries an *identity*: the track, seed, model and training config, fingerprints of the
data the model trains on, of the training code and the torch version. A state whose identity
differs from the current run's is never resumed: a warning names the file and what differs and
training starts from scratch (the stale files are removed at the first save). A truncated or
corrupt file is reported (named, with what to do) and the newest good one of the others is used.
Stray temp files of a killed atomic save are removed whenever the folder is read or written.

A state saved after the last epoch (or after early stopping) is *finished*: resuming it trains no
further epoch and returns the same result as the run that wrote it, so re-running a completed
``kedro run`` reproduces it without retraining. ``resume=False`` ignores every saved state (fresh
training, states still written).

Configurations live apart: when a run with another config (a preset switch) starts training, the
states of the previous config are moved to ``configs/<identity>/`` beside the current ones instead
of being deleted, and a later run with that config again moves them back and reuses them, so
switching presets back and forth never retrains what was trained. The ``MAX_KEPT_CONFIGS`` most
recently used other configs are kept per track and seed; older ones are deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from streamguard.runtime.atomic import atomic_write, remove_stale_temp_files
from streamguard.training.checkpoint import CheckpointError, atomic_torch_save, safe_torch_load
from streamguard.config.presets import plain
from streamguard.training.config import config_hash

logger = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
STATE_KIND = "streamguard-training-state"
LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"
STATE_FILES = (LAST, PREVIOUS, BEST)
EXPORT = "export.pt"  # a finished run's (checkpoint, history): reused before anything is prepared
EXPORT_KIND = "streamguard-finished-export"
ALL_FILES = (*STATE_FILES, EXPORT)
KEPT_CONFIGS_DIR = "configs"  # states of the other configurations this seed was trained with
MAX_KEPT_CONFIGS = 4  # per track and seed: a state holds weights and optimizer moments, so this bounds the disk

# Training keys that change speed or logging, never the result: a different value still resumes.
RESULT_NEUTRAL_TRAINING_KEYS = frozenset(
    {"progress", "num_workers", "prefetch_factor", "persistent_workers", "device", "eval_batch_size"}
)
# Param keys that only name or describe a config (the effective values are what count).
RESULT_NEUTRAL_PARAM_KEYS = frozenset({"preset", "description"})
# The packages whose source decides what a training run computes.
CODE_PACKAGES = ("training", "models", "tracks", "graphs")


# --------------------------------------------------------------------------- fingerprints


def _feed(digest: Any, value: Any) -> None:
    """Feed a canonical byte form of ``value`` to ``digest`` (nested plain data, arrays, tensors, frames)."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        digest.update(repr((type(value).__name__, value)).encode("utf-8"))
    elif isinstance(value, bytes):
        digest.update(b"bytes:%d:" % len(value))
        digest.update(value)
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=str):
            _feed(digest, str(key))
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[%d:" % len(value))
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        digest.update(f"nd:{array.dtype.str}:{array.shape}:".encode())
        if array.dtype.hasobject:
            _feed(digest, array.tolist())
        else:
            digest.update(memoryview(array).cast("B"))
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        import torch

        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"t:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        if tensor.numel():
            digest.update(memoryview(tensor.view(-1).view(torch.uint8).numpy()))
    elif type(value).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            digest.update(f"df:{list(map(str, value.columns))}:".encode())
        hashed = pd.util.hash_pandas_object(value, index=False).to_numpy()
        digest.update(memoryview(np.ascontiguousarray(hashed)).cast("B"))
    elif dataclasses.is_dataclass(value):
        _feed(digest, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    elif hasattr(value, "__dict__"):
        _feed(digest, {type(value).__name__: vars(value)})
    else:
        digest.update(repr(value).encode("utf-8"))


def fingerprint(*values: Any) -> str:
    """A stable sha256 (first 16 hex digits) of data: frames, arrays, tensors, graphs, nested dicts."""
    digest = hashlib.sha256()
    for value in values:
        _feed(digest, value)
    return digest.hexdigest()[:16]


def code_fingerprint(packages: Iterable[str] = CODE_PACKAGES) -> str:
    """Fingerprint of the python sources of ``streamguard.<package>`` (training loop, models, recipes, graphs)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode("utf-8"))
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def result_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """A track's params without the keys that cannot change the result (preset name, progress bars, workers)."""
    config = {key: plain(value) for key, value in params.items() if key not in RESULT_NEUTRAL_PARAM_KEYS}
    training = config.get("training")
    if isinstance(training, Mapping):
        config["training"] = {k: v for k, v in training.items() if k not in RESULT_NEUTRAL_TRAINING_KEYS}
    return config


def training_identity(
    track: str, seed: int, config: Mapping[str, Any], data: Mapping[str, str]
) -> dict[str, Any]:
    """What a saved state must match to be resumed: track, seed, config, data fingerprints, code, torch."""
    import torch

    return {
        "track": str(track),
        "seed": int(seed),
        "config": plain(dict(config)),
        "data": {str(key): str(value) for key, value in data.items()},
        "code": code_fingerprint(),
        "torch": str(torch.__version__),
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any], limit: int = 8) -> list[str]:
    """Human-readable differences between two identities (``config.training.lr: 0.001 -> 0.0001``)."""
    old, new = _flatten(saved), _flatten(current)
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<absent>") == new.get(key, "<absent>"):
            continue
        if key.startswith("data."):
            lines.append(f"{key[5:]} data changed")
        elif key == "code":
            lines.append("training code changed (streamguard." + "/".join(CODE_PACKAGES) + ")")
        else:
            lines.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def is_finished(state: Mapping[str, Any], epochs: int, patience: int) -> bool:
    """True when :func:`fit` would train no further epoch from ``state`` (last epoch or early stop)."""
    return int(state["epoch"]) >= epochs or (patience > 0 and int(state["epochs_without_improvement"]) >= patience)


# --------------------------------------------------------------------------- the store


class ResumeStore:
    """The resumable states of one training run (one track, one seed) in ``directory``.

    ``resume=False`` never loads a saved state (each run starts fresh) but still saves them.
    """

    def __init__(self, directory: str | os.PathLike, resume: bool = True) -> None:
        self.directory = Path(directory)
        self.resume = bool(resume)
        self._replace_all_on_save = False
        self._archive_on_save: str | None = None  # identity hash of the other config's states to keep apart
        self._unusable: set[str] = set()
        self._identity: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ResumeStore({str(self.directory)!r}, resume={self.resume})"

    def path(self, name: str) -> Path:
        return self.directory / name

    def cleanup_temp_files(self) -> list[Path]:
        """Remove temp files left by an atomic save that was killed (``.last.pt.<random>.tmp``)."""
        removed = []
        for name in ALL_FILES:
            removed += remove_stale_temp_files(self.path(name))
        return removed

    # ---- loading

    def kept_config_dir(self, identity_hash: str) -> Path:
        return self.directory / KEPT_CONFIGS_DIR / identity_hash[:16]

    def kept_configs(self) -> list[Path]:
        """Folders of the other configurations' states, most recently used first."""
        root = self.directory / KEPT_CONFIGS_DIR
        folders = [folder for folder in root.iterdir() if folder.is_dir()] if root.is_dir() else []
        return sorted(folders, key=lambda folder: folder.stat().st_mtime_ns, reverse=True)

    def _move_states(self, source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for name in ALL_FILES:
            if (source / name).is_file():
                os.replace(source / name, target / name)
        os.utime(target)  # most recently used first when pruning

    def _keep_apart(self, identity_hash: str) -> None:
        """Move the current states (another config's) to their ``configs/`` folder; prune the oldest ones."""
        target = self.kept_config_dir(identity_hash)
        shutil.rmtree(target, ignore_errors=True)
        self._move_states(self.directory, target)
        for old in self.kept_configs()[MAX_KEPT_CONFIGS:]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore_kept(self, wanted: str, current_hash: str | None, label: str) -> bool:
        """Bring this config's kept states back into place (keeping the current ones apart); False if none."""
        kept = self.kept_config_dir(wanted)
        if not (kept / LAST).is_file() and not (kept / BEST).is_file():
            return False
        if current_hash is not None:
            self._keep_apart(current_hash)
        else:  # unusable leftovers only
            for name in ALL_FILES:
                self.path(name).unlink(missing_ok=True)
        self._move_states(kept, self.directory)
        shutil.rmtree(kept, ignore_errors=True)
        logger.info("%s: this configuration was trained before: its states are back from %s.", label, kept)
        return True

    def load(self, identity: Mapping[str, Any], label: str = "training") -> dict[str, Any] | None:
        """The ``fit`` state to resume from, or None (nothing saved, resume off, stale or corrupt states)."""
        self._identity = dict(identity)
        self.cleanup_temp_files()
        present = [name for name in (LAST, BEST, PREVIOUS) if self.path(name).is_file()]
        if not present:
            if self.resume and self._restore_kept(config_hash(identity), None, label):
                return self.load(identity, label)
            return None
        if not self.resume:
            logger.info("%s: resume is off: ignoring the saved state in %s and training from scratch.", label, self.directory)
            self._replace_all_on_save = True
            return None
        wanted = config_hash(identity)
        good: list[tuple[int, str, dict]] = []
        stale_reported = False
        other_hash: str | None = None
        for name in present:
            path = self.path(name)
            try:
                payload = safe_torch_load(path)
                _check_payload(payload, path)
            except CheckpointError as exc:
                self._unusable.add(name)
                cause = exc.__cause__
                reason = f"truncated or corrupt ({type(cause).__name__}: {cause})" if cause is not None else str(exc)
                others = ", ".join(n for n in present if n != name)
                logger.warning(
                    "%s: resume state %s is unusable: %s. It is ignored (and deleted at the next save); %s",
                    label, path, reason,
                    f"falling back to the newest good one of {others}." if others else "no other state to fall back to.",
                )
                continue
            if payload["identity_hash"] != wanted:
                other_hash = other_hash or str(payload["identity_hash"])
                if not stale_reported and not (self.kept_config_dir(wanted) / LAST).is_file():
                    differences = identity_differences(payload.get("identity", {}), identity)
                    logger.warning(
                        "%s: resume state %s was saved by a run with a different config or data (%s): not resuming, "
                        "training from scratch. The old states are kept apart in %s at the end of the first epoch "
                        "(a run with that config again reuses them).",
                        label, path, "; ".join(differences) or "identity hash differs", self.directory / KEPT_CONFIGS_DIR,
                    )
                    stale_reported = True
                continue
            good.append((int(payload["epoch"]), name, payload))
            if name == LAST:
                break  # written last: nothing else can be newer
        if not good:
            if other_hash is not None and self._restore_kept(wanted, other_hash, label):
                return self.load(identity, label)
            if other_hash is not None:
                self._archive_on_save = other_hash
            else:
                self._replace_all_on_save = True
            return None
        epoch, name, payload = max(good, key=lambda item: item[0])
        state = payload["state"]
        if payload.get("finished"):
            logger.info(
                "%s: training already finished (epoch %d) with this config and data (%s): reusing that state, no "
                "epoch is trained again. Pass `--params resume=false` or delete %s to retrain from scratch.",
                label, epoch, self.path(name), self.directory,
            )
        else:
            logger.warning("%s: resuming from %s (epoch %d done).", label, self.path(name), epoch)
        return state

    # ---- saving

    def save(self, state: Mapping[str, Any], identity: Mapping[str, Any] | None = None, finished: bool = False) -> None:
        """Write ``state`` as ``last.pt`` (the old one becomes ``previous.pt``) and as ``best.pt`` on a best epoch."""
        identity = dict(identity if identity is not None else self._identity or {})
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cleanup_temp_files()
        for name in self._unusable:  # corrupt files: dropped, never rotated over the good previous one
            self.path(name).unlink(missing_ok=True)
        self._unusable.clear()
        if self._archive_on_save is not None:  # another config's states: kept apart, never mixed with this one
            self._keep_apart(self._archive_on_save)
            self._archive_on_save = None
        if self._replace_all_on_save:  # unusable states, or resume off: never mix them with this run's
            for name in ALL_FILES:
                self.path(name).unlink(missing_ok=True)
            self._replace_all_on_save = False
        self.path(EXPORT).unlink(missing_ok=True)  # training again: the export is rewritten when it finishes
        payload = {
            "kind": STATE_KIND,
            "format_version": STATE_FORMAT_VERSION,
            "epoch": int(state["epoch"]),
            "finished": bool(finished),
            "identity": identity,
            "identity_hash": config_hash(identity),
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "state": dict(state),
        }
        last = self.path(LAST)
        if last.is_file():
            os.replace(last, self.path(PREVIOUS))
        atomic_torch_save(payload, last)
        if int(state.get("best_epoch", -1)) == int(state["epoch"]):
            _atomic_copy(last, self.path(BEST))
        if finished:  # a fallback is only worth its disk space while training is still going
            self.path(PREVIOUS).unlink(missing_ok=True)

    # ---- the finished run's export

    def save_export(self, checkpoint: Mapping[str, Any], history: list[dict]) -> None:
        """Keep a finished run's (checkpoint, history), under the identity its states were saved with."""
        if not self._identity:
            return  # no state was loaded or saved through this store: nothing to tie the export to
        payload = {"kind": EXPORT_KIND, "identity_hash": config_hash(self._identity), "checkpoint": dict(checkpoint),
                   "history": list(history)}
        atomic_torch_save(payload, self.path(EXPORT))

    def load_export(self, identity: Mapping[str, Any], label: str = "training") -> tuple[dict, list[dict]] | None:
        """The finished run's (checkpoint, history) for ``identity`` (also from a kept other config), or None."""
        if not self.resume:
            return None
        self.cleanup_temp_files()
        wanted = config_hash(identity)
        payload = self._read_export(self.path(EXPORT), label)
        if payload is None or payload["identity_hash"] != wanted:
            if not (self.kept_config_dir(wanted) / EXPORT).is_file():
                return None
            current = payload["identity_hash"] if payload is not None else self._state_identity_hash()
            if not self._restore_kept(wanted, current, label):
                return None
            payload = self._read_export(self.path(EXPORT), label)
            if payload is None or payload["identity_hash"] != wanted:
                return None
        self._identity = dict(identity)
        logger.info(
            "%s: finished before with this config, data and code: reusing its checkpoint from %s without preparing "
            "data or models (no epoch is trained). Pass `--params resume=false` or delete %s to retrain from scratch.",
            label, self.path(EXPORT), self.directory,
        )
        return payload["checkpoint"], payload["history"]

    def _read_export(self, path: Path, label: str) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            payload = safe_torch_load(path)
        except CheckpointError as exc:
            logger.warning("%s: %s is unreadable (%s): ignored; the seed's training states decide.", label, path, exc.__cause__ or exc)
            return None
        if not isinstance(payload, Mapping) or payload.get("kind") != EXPORT_KIND:
            return None
        return dict(payload)

    def _state_identity_hash(self) -> str | None:
        for name in (LAST, BEST, PREVIOUS):
            try:
                return str(safe_torch_load(self.path(name))["identity_hash"])
            except (CheckpointError, KeyError, TypeError):
                continue
        return None

    def saved_epoch(self) -> int | None:
        """Epoch of the newest readable state (for messages); None when there is none."""
        epochs = []
        for name in STATE_FILES:
            try:
                epochs.append(int(safe_torch_load(self.path(name))["epoch"]))
            except (CheckpointError, KeyError, TypeError, ValueError):
                continue
        return max(epochs) if epochs else None


def _check_payload(payload: Any, path: Path) -> None:
    required = ("kind", "format_version", "epoch", "identity_hash", "state")
    if not isinstance(payload, Mapping) or any(key not in payload for key in required) or payload["kind"] != STATE_KIND:
        raise CheckpointError(f"{path} is not a StreamGuard training state. Delete it.")
    if int(payload["format_version"]) != STATE_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has state format {payload['format_version']}, this version reads {STATE_FORMAT_VERSION}. Delete it."
        )


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy through a temp file and ``os.replace`` (a kill leaves the old ``target`` or the new one)."""
    atomic_write(target, lambda temp: shutil.copyfile(source, temp))


# --------------------------------------------------------------------------- fit with a store


def resumable_fit(
    run_fit: Callable[..., Any],
    *,
    store: ResumeStore | None,
    identity: Mapping[str, Any],
    epochs: int,
    patience: int,
    label: str,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> Any:
    """Call ``run_fit(resume_state=..., save_state=..., on_epoch_end=...)`` with ``store`` wired in.

    Without a store this is a plain fit. With one, training continues from the newest good state
    that matches ``identity``, every epoch's state is saved, the resumed epochs' records are
    replayed to ``on_epoch_end`` (so MLflow curves are complete), and a non-finite failure says
    which saved state was kept.
    """
    from streamguard.training.loop import NonFiniteLossError

    if store is None:
        return run_fit(resume_state=None, save_state=None, on_epoch_end=on_epoch_end)
    resume_state = store.load(identity, label)
    if resume_state is not None and on_epoch_end is not None:
        for record in resume_state.get("history", []):
            on_epoch_end(dict(record))

    def save_state(state: dict) -> None:
        store.save(state, identity, finished=is_finished(state, epochs, patience))

    try:
        return run_fit(resume_state=resume_state, save_state=save_state, on_epoch_end=on_epoch_end)
    except NonFiniteLossError as exc:
        epoch = store.saved_epoch()
        kept = (
            f"The last good training state (after epoch {epoch}) is kept in {store.directory}; re-running the same "
            "command resumes from it (and meets the same failure), changing the config starts from scratch."
            if epoch is not None
            else "No epoch finished, so no training state was saved."
        )
        raise NonFiniteLossError(f"{label}: {exc} {kept}") from exc
