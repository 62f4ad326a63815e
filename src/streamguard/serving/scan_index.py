"""Where a project's trained artefacts are, remembered between scans so that a scan need not import Kedro.

Resolving ``{track}.seed_{seed}.checkpoint`` and ``{track}.ensemble_metrics`` through the project's
catalog costs importing Kedro (its project settings pull in dynaconf and Flask) and parsing the
conf: about 0.6-0.9 s of a one-file scan on 2 cores. The answer depends on the conf only, so the
first scan of a project (``streamguard.serving.scorer.load_scorer``) resolves it with Kedro and
writes it to ``data/06_models/.scan_index.json``; a later scan whose conf is byte for byte the same
(every file under ``conf/``, ``pyproject.toml``, ``KEDRO_ENV`` and the environment variables the
conf reads with ``oc.env``) reads the same files directly.

It is only an index of paths: the checkpoints and metrics are read afresh by every scan and checked
as before (``validation_threshold``). Anything unexpected (no index, another conf, a file gone,
a dataset type other than the project's own) makes the scan take the Kedro path, which then
reports problems with its usual messages; an index that cannot be written is simply not written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INDEX_PATH = Path("data") / "06_models" / ".scan_index.json"
INDEX_VERSION = 1
_ENV_REFERENCE = re.compile(r"oc\.env\s*:\s*([A-Za-z_][A-Za-z0-9_]*)")
_CHECKPOINT_TYPE = "streamguard.datasets.checkpoint_dataset.TorchCheckpointDataset"
_METRICS_TYPE = "streamguard.datasets.metrics_dataset.MetricsDataset"


def conf_fingerprint(project_dir: Path) -> str:
    """A hash of everything the catalog and seeds are resolved from (a few ms: conf is small text)."""
    digest = hashlib.sha256(f"index v{INDEX_VERSION}\n".encode())
    texts: list[str] = []
    conf = project_dir / "conf"
    for path in sorted(p for p in conf.rglob("*") if p.is_file()):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(conf).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
        texts.append(data.decode("utf-8", errors="replace"))
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        digest.update(b"pyproject\0" + pyproject.read_bytes())
    referenced = sorted({name for text in texts for name in _ENV_REFERENCE.findall(text)} | {"KEDRO_ENV"})
    for name in referenced:
        digest.update(f"\0env {name}={os.environ.get(name)!r}".encode())
    return digest.hexdigest()


def _index_file(project_dir: Path) -> Path:
    return project_dir / INDEX_PATH


def _read_index(project_dir: Path) -> dict[str, Any]:
    try:
        index = json.loads(_index_file(project_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) and index.get("version") == INDEX_VERSION else {}


def _type_name(dataset: Any) -> str:
    return f"{type(dataset).__module__}.{type(dataset).__qualname__}"


def remember(project_dir: Path, track: str, catalog: Any, seeds: Sequence[int], loaded: int) -> None:
    """Write where ``track``'s artefacts are, as ``catalog`` resolved them (call it inside the project dir).

    Nothing is written when a seed's checkpoint was missing (its warning must show again), when a
    dataset is not the project's own type (its loading could differ) or when the file cannot be written.
    """
    if loaded != len(seeds) or not _index_file(project_dir).parent.is_dir():
        return
    try:
        checkpoints = []
        for seed in seeds:
            dataset = catalog.get(f"{track}.seed_{seed}.checkpoint")
            if _type_name(dataset) != _CHECKPOINT_TYPE or dataset.on_demand:
                return
            checkpoints.append({"path": str(dataset.filepath), "how_to_produce": str(dataset.how_to_produce or "")})
        name = f"{track}.ensemble_metrics"
        metrics_dataset = catalog.get(name)
        if _type_name(metrics_dataset) != _METRICS_TYPE:
            return
        filepath = metrics_dataset.filepath
        entry = {
            "fingerprint": conf_fingerprint(project_dir),
            "seeds": [int(seed) for seed in seeds],
            "checkpoints": checkpoints,
            "metrics": {"path": str(filepath), "where": f"{name} ({filepath})"},
        }
        index = _read_index(project_dir) or {"version": INDEX_VERSION, "tracks": {}}
        index.setdefault("tracks", {})[track] = entry
        target = _index_file(project_dir)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".scan_index.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(index, stream, indent=1)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except Exception:  # an index is an optimisation: never a reason for a scan to fail
        return


def load_indexed(project_dir: Path, track: str) -> tuple[list[dict], float] | None:
    """``track``'s checkpoints and validation threshold from the files the index names, or None to
    take the Kedro path (no index, another conf, a file missing or unreadable)."""
    entry = _read_index(project_dir).get("tracks", {}).get(track)
    if not isinstance(entry, dict):
        return None
    try:
        if entry["fingerprint"] != conf_fingerprint(project_dir):
            return None
        paths = [project_dir / item["path"] for item in entry["checkpoints"]]
        metrics_path = project_dir / entry["metrics"]["path"]
        if not paths or not all(path.is_file() for path in paths):
            return None
        from streamguard.training.checkpoint import safe_torch_load

        checkpoints = [
            safe_torch_load(path, how_to_produce=item["how_to_produce"]) for path, item in zip(paths, entry["checkpoints"])
        ]
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else None
        where = str(entry["metrics"]["where"])
    except Exception:  # the Kedro path reads the same files and reports what is wrong
        return None
    from streamguard.serving.scorer import validation_threshold

    return checkpoints, validation_threshold(track, checkpoints, metrics, where)
