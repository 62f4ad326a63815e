"""Run-start checks that turn slow or misleading failures into a clear error before anything runs.

* ``TrackingProbeHooks``: kedro-mlflow connects in its own ``after_context_created`` hook; against a
  server that is down, mlflow's request retries keep a run silent for about four minutes before it
  fails. This hook runs first (``tryfirst``) and fails in seconds with a message naming the URI.
* ``OutputLocationHooks``: a dataset whose directory cannot be created or written (``data`` is a
  regular file, a read-only mount) fails at its first save, after the nodes before it ran, and
  Kedro words it as a versioning clash ("Cannot save versioned dataset ... because a file with the
  same name already exists"). This hook checks every file output of the pipeline up front.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from streamguard.tracking import probe_tracking_uri

logger = logging.getLogger(__name__)

_MLFLOW_CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]  # what kedro-mlflow registers


def tracking_uri_from_context(context: Any) -> str | None:
    """The tracking URI kedro-mlflow will use: conf mlflow.yml ``server.mlflow_tracking_uri``, else the env var."""
    try:
        loader = context.config_loader
        if "mlflow" not in loader.config_patterns:
            loader.config_patterns.update({"mlflow": list(_MLFLOW_CONFIG_PATTERNS)})
        uri = ((loader["mlflow"] or {}).get("server") or {}).get("mlflow_tracking_uri")
    except Exception as error:  # no or unreadable mlflow.yml: kedro-mlflow reports that itself
        logger.debug("could not read the mlflow config (%s); using MLFLOW_TRACKING_URI", error)
        uri = None
    return str(uri) if uri else os.environ.get("MLFLOW_TRACKING_URI")


class TrackingProbeHooks:
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and mlflow.active_run() is not None:
            return  # kedro-mlflow reuses the caller's run and ignores mlflow.yml
        probe_tracking_uri(tracking_uri_from_context(context))


class OutputLocationError(OSError):
    """Some outputs of the pipeline cannot be written where the catalog puts them."""


def _local_path(dataset: Any) -> Path | None:
    """Where a dataset writes on the local disk (file or directory), or None (memory, remote, unknown)."""
    try:
        described = dataset._describe() or {}
    except Exception:
        described = {}
    raw = described.get("filepath") or described.get("directory") or getattr(dataset, "_filepath", None)
    if raw is None:
        return None
    protocol = str(described.get("protocol") or getattr(dataset, "_protocol", "file") or "file")
    text = str(raw)
    if protocol not in ("file", "local") or ("://" in text and not text.startswith("file://")):
        return None
    return Path(text.removeprefix("file://"))


def why_unwritable(path: Path) -> str | None:
    """Why ``path`` (a file or directory to be written) cannot be, or None when it can (best effort, no writes)."""
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable (permission denied)"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a regular file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable (permission denied)"
    return None


def unwritable_outputs(names: Iterable[str], catalog: Any) -> list[tuple[str, Path, str]]:
    """(dataset, path, reason) for every named output whose local path cannot be written."""
    found = []
    for name in sorted(names):
        try:
            dataset = catalog.get(name)
        except Exception:  # an unresolvable entry fails later with Kedro's own message
            continue
        path = _local_path(dataset) if dataset is not None else None
        if path is None:
            continue
        reason = why_unwritable(path)
        if reason is not None:
            found.append((name, path, reason))
    return found


class OutputLocationHooks:
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        problems = unwritable_outputs(pipeline.all_outputs(), catalog)  # memory datasets are skipped
        if not problems:
            return
        reasons = sorted({reason for _, _, reason in problems})
        shown = [f"  {name} -> {path}" for name, path, _ in problems[:5]]
        more = [f"  ... and {len(problems) - 5} more"] if len(problems) > 5 else []
        raise OutputLocationError(
            f"{len(problems)} output(s) of this run cannot be written; nothing was run. "
            + "; ".join(reasons)
            + ":\n"
            + "\n".join(shown + more)
            + "\nFix the permissions or the path (run from the project directory), or point the catalog elsewhere."
        )

