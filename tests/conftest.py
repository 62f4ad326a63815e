"""Shared fixtures: keep tests offline, single-threaded and fast."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streamguard.runtime.offline import enforce_offline

enforce_offline()
os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Small enough for seconds per pipeline on 2 CPU cores, big enough for every class in every split.
TINY_LOCAL_PARAMETERS = """
seeds: [0, 1]
cpu_threads: 1
data_processing:
  generator: {n_train: 160, n_valid: 60, n_test: 60, seed: 3}
transformer:
  max_length: 128
  vocab_size: 600
  training: {epochs: 1, batch_size: 16, progress: false}
gnn:
  hidden_dim: 16
  num_layers: 2
  training: {epochs: 2, batch_size: 32, progress: false}
fusion:
  hidden_dim: 16
  training: {epochs: 2, progress: false}
"""


def make_project_copy(destination: Path, local_parameters: str = TINY_LOCAL_PARAMETERS) -> Path:
    """A throwaway copy of the project's conf (data, mlflow.db and mlruns land inside it)."""
    shutil.copytree(PROJECT_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    (destination / "conf" / "local" / "parameters.yml").write_text(local_parameters)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", destination / "pyproject.toml")
    # Kedro's bootstrap checks that the source dir exists; the package itself is installed (-e).
    (destination / "src").mkdir()
    return destination


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory) -> Path:
    return make_project_copy(tmp_path_factory.mktemp("project"))


def run_kedro(project: Path, pipeline: str | None = None, runtime_params: dict | None = None) -> dict:
    """Run a pipeline through a real KedroSession inside ``project`` (cwd and MLflow store there)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    previous = Path.cwd()
    os.chdir(project)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    try:
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=runtime_params or {}) as session:
            return session.run(pipeline_names=[pipeline] if pipeline else None)
    finally:
        os.chdir(previous)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def full_run(project_copy: Path) -> Path:
    """The default pipeline (data -> transformer -> gnn -> fusion -> ensemble) once per test session."""
    run_kedro(project_copy)
    return project_copy


def run_benchmark_script(script: Path, *args: str, cwd: Path, timeout: int = 600):
    """Run a ``benchmarks/`` script as a user would: its own process, one torch thread, the
    default (project-local) MLflow store, ``cwd`` outside the repository."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def single_torch_thread():
    """One torch thread for the test, restored after: tiny models run fastest (and reproducibly) on one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
