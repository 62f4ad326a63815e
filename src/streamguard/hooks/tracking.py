"""Run-start checks that turn slow or misleading failures into a clear error before anything runs.

* ``TrackingProbeHooks``: kedro-mlflow connects in its own ``after_context_created`` hook; against a
  server that is down, mlflow's request retries keep a run silent for about four minutes before it
  fails. This hook runs first (``tryfirst``) and fails in seconds with a message naming the URI.
* ``OutputLocationHooks``: a dataset whose directory cannot be created or written (``data`` is a
  regular file, a read-only mount) fails at its first save, after the nodes before it ran, and
  Kedro words it as a versioning clash ("Cannot save versioned dataset ... because a file with the
  same name already exists"). This hook checks every file output of the pipeline up front.
* ``TrackingProbeHooks`` also closes what a killed run left open: a ``kedro run`` that is killed
  leaves its MLflow run RUNNING forever. Each run tags itself with its host and process id; the
  next run marks RUNNING runs of the experiment whose process on this host is gone as KILLED,
  with a ``streamguard.killed`` tag saying so (runs of other hosts or of live processes are left
  alone). Resume is unaffected: it reads the training states on disk, not MLflow.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from streamguard.tracking.runs import probe_tracking_uri

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


PID_TAG, HOST_TAG, KILLED_TAG = "streamguard.pid", "streamguard.host", "streamguard.killed"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_killed_runs(client: Any, experiment_id: str, current_run_id: str | None = None) -> list[str]:
    """Mark RUNNING runs whose process (per their host/pid tags) is gone from this host as KILLED; returns their ids."""
    host = socket.gethostname()
    killed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if run.info.run_id == current_run_id or tags.get(HOST_TAG) != host or not str(tags.get(PID_TAG, "")).isdigit():
            continue
        pid = int(tags[PID_TAG])
        if pid == os.getpid() or process_alive(pid):
            continue
        client.set_tag(run.info.run_id, KILLED_TAG, f"process {pid} on {host} ended without closing this run; marked KILLED by the next run")
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
    if killed:
        logger.warning(
            "marked %d MLflow run(s) left RUNNING by a killed `kedro run` as KILLED: %s (a re-run resumes from the saved training states)",
            len(killed), ", ".join(killed),
        )
    return killed


class TrackingProbeHooks:
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and mlflow.active_run() is not None:
            return  # kedro-mlflow reuses the caller's run and ignores mlflow.yml
        probe_tracking_uri(tracking_uri_from_context(context))

    @hook_impl(trylast=True)  # after kedro-mlflow's hook has started this run
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        try:
            mark_killed_runs(mlflow.MlflowClient(), run.info.experiment_id, run.info.run_id)
        except Exception as error:  # tidying up old runs must never stop this one
            logger.warning("could not check for MLflow runs left RUNNING by killed runs: %s", error)
        mlflow.set_tags({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})


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

