"""The team MLflow server of scripts/mlflow_server.sh: PostgreSQL backend, proxied artifacts, basic-auth.

Starts a throwaway PostgreSQL cluster and MLflow server on loopback (PostgreSQL is installed from
Debian's packages by scripts/install_postgres.sh when missing), then checks it as a team would use it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, TINY_LOCAL_PARAMETERS, make_project_copy

pytestmark = pytest.mark.slow

SCRIPT = PROJECT_ROOT / "scripts" / "mlflow_server.sh"
# The smallest run that trains, scores, ensembles and logs a servable model: one transformer seed.
LAST_NODES = "ensemble.transformer_servable_model,transformer.seed_0.score"
BAD = "int copy(char *src)\n{\n    char buf[8];\n    strcpy(buf, src);\n    return buf[0];\n}\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class TeamServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.admin_password = secrets.token_urlsafe(16)
        self.env = {
            **os.environ,
            "STREAMGUARD_MLFLOW_HOME": str(home),
            "MLFLOW_PORT": str(self.port),
            "STREAMGUARD_PG_PORT": str(free_port()),
            "MLFLOW_WORKERS": "1",
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
            "STREAMGUARD_PYTHON": sys.executable,
        }

    def script(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", str(SCRIPT), *args], env={**self.env, **extra_env}, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"mlflow_server.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def add_user(self, name: str) -> tuple[str, str]:
        password = secrets.token_urlsafe(12)
        self.script("add-user", name, STREAMGUARD_USER_PASSWORD=password)
        return name, password


@pytest.fixture(scope="module")
def server():
    # Not under pytest's private tmp folder: the 'postgres' user must reach the cluster's folder.
    base = Path(tempfile.mkdtemp(prefix="sg-mlflow-", dir="/tmp"))
    base.chmod(0o755)
    team = TeamServer(base / "home")
    try:
        team.script("start")
        yield team
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=team.env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def users(server: TeamServer) -> dict[str, tuple[str, str]]:
    return {name: server.add_user(name) for name in ("alice", "bob")}


@pytest.fixture(scope="module")
def alice_run(server: TeamServer, users, tmp_path_factory) -> tuple[Path, str]:
    """``kedro run`` as alice against the team server, from the command line as a user runs it."""
    project = make_project_copy(
        tmp_path_factory.mktemp("team_run"), TINY_LOCAL_PARAMETERS.replace("seeds: [0, 1]", "seeds: [0]")
    )
    name, password = users["alice"]
    env = {
        **server.env,
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_TRACKING_USERNAME": name,
        "MLFLOW_TRACKING_PASSWORD": password,
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", f"--to-nodes={LAST_NODES}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert not (project / "mlflow.db").exists()  # nothing went to the local store
    client = client_as(server, users["alice"])
    experiment = client.get_experiment_by_name("streamguard")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return project, runs[0].info.run_id


def client_as(server: TeamServer, user: tuple[str, str]):
    """An MlflowClient sending ``user``'s credentials (MLflow reads them from the environment)."""
    import mlflow

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user
    return mlflow.MlflowClient(tracking_uri=server.uri)


@pytest.fixture(autouse=True)
def _forget_credentials():
    yield
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)


def test_requests_without_valid_credentials_are_refused(server: TeamServer, users) -> None:
    search = f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 401
    assert http_status(search, ("alice", "not-her-password")) == 401
    assert http_status(search, users["alice"]) == 200
    # No secret is kept in the repository: the generated ones live in the server's home, mode 600.
    assert (server.home / "secrets" / "pgpass").stat().st_mode & 0o077 == 0
    assert not any(line.startswith("admin_password") for line in (server.home / "basic_auth.ini").read_text().splitlines())


def test_authenticated_kedro_run_lands_its_metrics_params_artifacts_and_model(server: TeamServer, users, alice_run) -> None:
    import mlflow

    project, run_id = alice_run
    client = client_as(server, users["alice"])
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    on_disk = json.loads((project / "data/08_reporting/transformer/seed_0/metrics.json").read_text())
    assert run.data.metrics["transformer.seed_0.test.f1"] == pytest.approx(on_disk["test"]["f1"])
    assert run.data.metrics["transformer.seed_0.roc_auc"] == pytest.approx(on_disk["roc_auc"])
    assert float(run.data.params["transformer.training.lr"]) > 0
    assert run.data.params["transformer.preset"] == on_disk["preset"]

    downloaded = Path(client.download_artifacts(run_id, "transformer/seed_0/metrics.json", str(project / "dl")))
    assert json.loads(downloaded.read_text())["test"] == on_disk["test"]
    # Artifacts went through the server into its artifact store, not into the project.
    assert list((server.home / "artifacts").rglob("metrics.json"))

    ensemble = json.loads((project / "data/08_reporting/transformer/ensemble_metrics.json").read_text())
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.uri)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/transformer_model")
    finally:
        mlflow.set_tracking_uri(previous)
    local = mlflow.pyfunc.load_model(str(project / "data/06_models/transformer/servable_model"))
    frame = pd.DataFrame({"func": [BAD]})
    predicted = model.predict(frame)
    np.testing.assert_allclose(predicted["probability"], local.predict(frame)["probability"], rtol=1e-5)
    assert predicted["threshold"].iloc[0] == ensemble["best_threshold_by_f1"]


def test_a_user_cannot_write_to_another_users_experiment(server: TeamServer, users, alice_run) -> None:
    from mlflow.exceptions import MlflowException

    _, run_id = alice_run
    bob = client_as(server, users["bob"])
    experiment = bob.get_experiment_by_name("streamguard")  # reading is the server's default permission
    with pytest.raises(MlflowException, match="Permission denied"):
        bob.create_run(experiment.experiment_id)
    with pytest.raises(MlflowException, match="Permission denied"):
        bob.log_metric(run_id, "transformer.seed_0.test.f1", 1.0)
    alice = client_as(server, users["alice"])
    assert len(alice.get_metric_history(run_id, "transformer.seed_0.test.f1")) == 1  # bob's value never landed
