"""MLflow logging that works with or without an active run (plain scripts, tests, notebooks).

Nothing here imports Kedro: kedro-mlflow opens the run, these helpers only log into it.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

#: Seconds the pre-run probe waits for a tracking server (env ``STREAMGUARD_MLFLOW_PROBE_TIMEOUT``).
DEFAULT_PROBE_TIMEOUT = 3.0
#: Set to 1 to skip the probe (e.g. a server that is started after the run begins).
SKIP_PROBE_ENV = "STREAMGUARD_SKIP_MLFLOW_PROBE"
_LOCAL_STORE_HINT = "unset MLFLOW_TRACKING_URI to log to the project's local store (sqlite:///mlflow.db)"


class TrackingServerUnreachableError(RuntimeError):
    """The MLflow tracking URI names a server that does not answer; raised before any node runs.

    Without the probe, mlflow retries each request with exponential back-off and the run sits
    silent for about four minutes before failing on the first MLflow call.
    """


def redact_uri(uri: str) -> str:
    """The URI without a password (``http://user:***@host``), safe for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def probe_tracking_uri(uri: str | None, timeout: float | None = None) -> None:
    """Fail fast, naming the URI, when an http(s) MLflow tracking server cannot be reached.

    Local stores (sqlite, file paths, ``databricks``) are not probed. For a server: a TCP connect
    within ``timeout`` seconds, then ``GET /health``; a refused or timed-out connection raises
    ``TrackingServerUnreachableError``; an HTTP error status (a proxy without ``/health``) only
    logs a warning, since the server did answer.
    """
    if not uri or os.environ.get(SKIP_PROBE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    if timeout is None:
        try:
            timeout = float(os.environ.get("STREAMGUARD_MLFLOW_PROBE_TIMEOUT", DEFAULT_PROBE_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_PROBE_TIMEOUT
    shown = redact_uri(uri)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:  # e.g. a non-numeric port
        raise TrackingServerUnreachableError(f"MLflow tracking URI {shown} is malformed: {error}") from error
    if not host:
        raise TrackingServerUnreachableError(f"MLflow tracking URI {shown} has no host name")
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        elapsed = time.monotonic() - started
        cause = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {shown} is unreachable ({host}:{port}: {cause}, after {elapsed:.1f}s). "
            f"Start the server, fix MLFLOW_TRACKING_URI (or server.mlflow_tracking_uri in conf/*/mlflow.yml), "
            f"or {_LOCAL_STORE_HINT}."
        ) from error
    # urllib does not take user:password@ in the URL: send it as a header, as mlflow's requests would.
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    request = urllib.request.Request(health)
    if parts.username is not None:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - http(s) only, checked above
            pass
    except urllib.error.HTTPError as error:
        logger.warning("MLflow tracking server %s answered %s on /health; continuing", shown, error.code)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerUnreachableError(
            f"MLflow tracking server {shown} accepts connections but does not answer HTTP within {timeout:.0f}s "
            f"({reason}). Check the server, or {_LOCAL_STORE_HINT}."
        ) from error


def _active_mlflow():
    """The mlflow module when a run is active, else None (mlflow is imported lazily: ~3 s)."""
    import mlflow

    return mlflow if mlflow.active_run() is not None else None


def log_metrics_dict(
    metrics: Mapping[str, Any], prefix: str = "", artifact: str | os.PathLike | None = None
) -> None:
    """Log every numeric scalar of a metrics dict (dotted names) and the JSON file as an artifact."""
    from streamguard.evaluation.metrics import flatten_for_mlflow

    mlflow = _active_mlflow()
    if mlflow is None:
        return
    flat = flatten_for_mlflow(metrics, prefix)
    if flat:
        mlflow.log_metrics(flat)
    if artifact is not None:
        mlflow.log_artifact(str(artifact), artifact_path=artifact_dir_for(prefix))


def artifact_dir_for(prefix: str) -> str:
    """``transformer.seed_0`` -> ``transformer/seed_0`` so artifacts group like the reporting folder."""
    return prefix.replace(".", "/") if prefix else "reports"


def epoch_logger(prefix: str) -> Callable[[Mapping[str, Any]], None]:
    """A training-loop callback that logs each epoch record as MLflow metric history."""

    def log_epoch(record: Mapping[str, Any]) -> None:
        mlflow = _active_mlflow()
        if mlflow is None:
            return
        step = int(record.get("epoch", 0))
        values = {
            f"{prefix}.curve.{key}": float(value)
            for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        mlflow.log_metrics(values, step=step)

    return log_epoch


def log_artifact(path: str | os.PathLike, artifact_dir: str = "reports") -> None:
    """Log a file (a plot, a table) under ``artifact_dir`` when a run is active."""
    mlflow = _active_mlflow()
    if mlflow is not None and Path(path).exists():
        mlflow.log_artifact(str(path), artifact_path=artifact_dir)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow = _active_mlflow()
    if mlflow is not None:
        mlflow.set_tags({key: str(value) for key, value in tags.items()})


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"transformer": {"training": {"lr": 1e-4}}}`` -> ``["transformer.training.lr=0.0001"]`` (as typed on the CLI)."""
    items: list[str] = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += _flat_params(value, f"{name}.")
        else:
            items.append(f"{name}={value}")
    return items


def _joined(value: Any) -> str:
    """Lists and dicts as a human reads them in the MLflow UI (``a,b``, ``k=v``), not a Python repr."""
    if isinstance(value, Mapping):
        return ",".join(_flat_params(value))
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(item) for item in value)
    return str(value)


def runner_name(runner: Any) -> str:
    """``SequentialRunner`` from a runner class, instance, or the repr Kedro records (``<...SequentialRunner object at 0x..>``)."""
    import re

    if runner in (None, "", "None"):  # KedroSession.run(runner=None) records "None" and runs sequentially
        return "SequentialRunner"
    if isinstance(runner, type):
        return runner.__name__
    text = str(runner)
    match = re.search(r"(\w+) object at 0x", text)
    if match:
        return match.group(1)
    return text if not hasattr(runner, "run") else type(runner).__name__


def kedro_command(run_params: Mapping[str, Any]) -> str:
    """The ``kedro run`` command that reproduces the run, ``--params`` included (kedro-mlflow's tag drops them)."""
    import shlex

    parts = ["kedro", "run"]
    pipelines = [name for name in (run_params.get("pipeline_names") or []) if name != "__default__"]
    options = (
        ("--pipelines", pipelines),
        ("--env", run_params.get("env") if run_params.get("env") not in (None, "local") else None),
        ("--from-inputs", run_params.get("from_inputs")),
        ("--from-nodes", run_params.get("from_nodes")),
        ("--to-nodes", run_params.get("to_nodes")),
        ("--to-outputs", run_params.get("to_outputs")),
        ("--nodes", run_params.get("node_names")),
        ("--namespaces", run_params.get("namespaces")),
        ("--tags", run_params.get("tags")),
        ("--params", run_params.get("runtime_params")),
    )
    for flag, value in options:
        if value:
            parts.append(f"{flag}={shlex.quote(_joined(value))}")
    return " ".join(parts)


def run_identity(
    run_params: Mapping[str, Any], track_presets: Mapping[str, str], started: float | None = None
) -> tuple[str, dict[str, str]]:
    """An MLflow run name and tags that tell runs apart: ``fusion / fusion_high_recall / 09:12:31``.

    ``preset`` is the ``--params preset=`` value or ``default``; ``preset.<track>`` is the preset
    each track actually ran with; ``kedro_command`` is the full command (``--params`` included);
    list- and dict-valued Kedro run parameters become ``a,b`` / ``k=v`` text, and ``runner`` is the
    runner's class name instead of an object's repr.
    """
    pipelines = [name for name in (run_params.get("pipeline_names") or []) if name]
    pipeline = "+".join(name if name != "__default__" else "default" for name in pipelines) or "default"
    preset = str((run_params.get("runtime_params") or {}).get("preset") or "default")
    clock = time.strftime("%H:%M:%S", time.localtime(started if started is not None else time.time()))
    tags = {
        key: _joined(value)
        for key, value in run_params.items()
        if value and isinstance(value, (list, tuple, set, Mapping))
    }
    tags.update(
        {
            "preset": preset,
            "pipeline": pipeline,
            "kedro_command": kedro_command(run_params),
            "runner": runner_name(run_params.get("runner")),
            **{f"preset.{track}": str(name) for track, name in sorted(track_presets.items())},
        }
    )
    return f"{pipeline} / {preset} / {clock}", tags
