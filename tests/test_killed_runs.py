"""A killed `kedro run` leaves its MLflow run RUNNING; the next run marks it KILLED with a tag (issue 16, item 11)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project_copy, run_kedro

from streamguard.hooks.tracking import HOST_TAG, KILLED_TAG, PID_TAG, mark_killed_runs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_runs_of_gone_processes_on_this_host_are_marked(tmp_path: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("runs", artifact_location=(tmp_path / "mlruns").as_uri())
    host, dead = socket.gethostname(), _dead_pid()

    def running(**tags):
        return client.create_run(experiment, tags={key: str(value) for key, value in tags.items()}).info.run_id

    orphan = running(**{HOST_TAG: host, PID_TAG: dead})
    alive = running(**{HOST_TAG: host, PID_TAG: os.getppid()})  # pytest's parent: alive
    elsewhere = running(**{HOST_TAG: "another-host", PID_TAG: dead})
    untagged = running()
    finished = running(**{HOST_TAG: host, PID_TAG: dead})
    client.set_terminated(finished, status="FINISHED")
    assert mark_killed_runs(client, experiment) == [orphan]
    assert client.get_run(orphan).info.status == "KILLED"
    assert "ended without closing this run" in client.get_run(orphan).data.tags[KILLED_TAG]
    for run_id in (alive, elsewhere, untagged):
        assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_run(finished).info.status == "FINISHED"


@pytest.mark.slow
def test_a_killed_kedro_run_is_marked_killed_by_the_next_run(tmp_path: Path) -> None:
    import mlflow

    project = make_project_copy(tmp_path / "project")
    uri = f"sqlite:///{project / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    kedro = Path(sys.executable).with_name("kedro")
    victim = subprocess.Popen([str(kedro), "run"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = mlflow.MlflowClient(tracking_uri=uri)
    deadline = time.monotonic() + 240
    killed_run = None
    try:
        while killed_run is None and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(1)
            experiment = client.get_experiment_by_name("streamguard") if (project / "mlflow.db").exists() else None
            if experiment is not None:
                runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
                tagged = [run for run in runs if run.data.tags.get(PID_TAG) == str(victim.pid)]
                killed_run = tagged[0].info.run_id if tagged else None
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert killed_run is not None, "the kedro run never showed up as a RUNNING MLflow run"
    assert client.get_run(killed_run).info.status == "RUNNING"  # what a kill leaves behind

    run_kedro(project, pipeline="data_processing")
    orphan = client.get_run(killed_run)
    assert orphan.info.status == "KILLED"
    assert f"process {victim.pid}" in orphan.data.tags[KILLED_TAG]
    experiment = client.get_experiment_by_name("streamguard")
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert latest.info.status == "FINISHED" and latest.data.tags[PID_TAG] == str(os.getpid())
