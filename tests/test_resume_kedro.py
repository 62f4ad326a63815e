"""Faults during a real `kedro run` on a tiny project: SIGKILL mid-training, then a non-finite loss.

* A `kedro run --pipeline transformer` subprocess is killed (SIGKILL) once its first epoch's state
  is on disk; re-running the same command resumes from that state and writes exactly the metrics
  of an uninterrupted run.
* A loss that turns NaN in epoch 2 fails the run with a message naming the kept state, the MLflow
  run is marked FAILED, and the epoch-1 state stays on disk.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from torch import nn

from conftest import make_project_copy, run_kedro
from streamguard.training import NonFiniteLossError, safe_torch_load
from streamguard.training.loop import TIMING_KEYS

pytestmark = pytest.mark.slow

EPOCHS = 2
STEPS_PER_EPOCH = 10  # 160 training rows, batch 16
LOCAL_PARAMETERS = f"""
seeds: [0]
cpu_threads: 1
data_processing:
  generator: {{n_train: 160, n_valid: 60, n_test: 60, seed: 3}}
transformer:
  max_length: 64
  vocab_size: 400
  training: {{epochs: {EPOCHS}, batch_size: 16, progress: false, early_stopping_patience: 0}}
"""
STATE = Path("data/06_models/transformer/seed_0/state")
METRICS = Path("data/08_reporting/transformer/seed_0/metrics.json")
HISTORY = Path("data/08_reporting/transformer/seed_0/history.json")
KEDRO_RUN = [sys.executable, "-m", "kedro", "run", "--pipeline", "transformer"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A tiny project whose data_processing already ran (each test works on a copy)."""
    project = make_project_copy(tmp_path_factory.mktemp("resume_project"), LOCAL_PARAMETERS)
    run_kedro(project, "data_processing")
    return project


def clone(prepared: Path, destination: Path) -> Path:
    shutil.copytree(prepared, destination)
    return destination


def subprocess_env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "1000",  # rich logging: one log record per line
    }


def comparable_metrics(project: Path) -> dict:
    metrics = json.loads((project / METRICS).read_text())
    metrics.pop("timestamp")
    return metrics


def learning_history(project: Path) -> list[dict]:
    history = json.loads((project / HISTORY).read_text())
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def test_kedro_run_killed_after_an_epoch_resumes_to_the_uninterrupted_metrics(prepared: Path, tmp_path: Path, caplog):
    reference = clone(prepared, tmp_path / "reference")
    run_kedro(reference, "transformer")  # uninterrupted, same seed and settings
    expected = comparable_metrics(reference)
    # A completed run leaves a finished state: running again reproduces the same numbers, nothing crashes.
    with caplog.at_level("INFO", logger="streamguard.training.resume"):
        run_kedro(reference, "transformer")
    assert "transformer.seed_0: finished before with this config, data and code" in caplog.text
    assert comparable_metrics(reference) == expected

    project = clone(prepared, tmp_path / "killed")
    state = project / STATE
    log_path = tmp_path / "killed_run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            KEDRO_RUN, cwd=project, env=subprocess_env(project), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while not (state / "last.pt").exists():
                assert process.poll() is None, f"kedro run ended before its first epoch state:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no epoch state after 240 s"
                time.sleep(0.02)
            time.sleep(0.3)  # well into epoch 2 (an epoch takes seconds)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (project / METRICS).exists(), "the run finished before the kill: the test proves nothing"
    killed_at = safe_torch_load(state / "last.pt")
    assert 1 <= killed_at["epoch"] < EPOCHS and not killed_at["finished"]
    (state / ".last.pt.k1ll3d.tmp").write_bytes(b"half of a state")  # debris of a save cut short

    rerun = subprocess.run(
        KEDRO_RUN, cwd=project, env=subprocess_env(project), capture_output=True, text=True, timeout=400
    )
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-4000:]
    assert f"transformer.seed_0: resuming from {STATE / 'last.pt'} (epoch {killed_at['epoch']} done)" in output
    assert comparable_metrics(project) == expected
    assert learning_history(project) == learning_history(reference)
    assert not list(state.glob(".*.tmp"))


class NaNAfter(nn.Module):
    """The real loss for ``good_calls`` training steps, then NaN."""

    def __init__(self, criterion: nn.Module, good_calls: int) -> None:
        super().__init__()
        self.criterion, self.good_calls, self.calls = criterion, good_calls, 0

    def forward(self, logits, labels):
        self.calls += 1
        loss = self.criterion(logits, labels)
        return loss * math.nan if self.calls > self.good_calls else loss


def test_nonfinite_loss_fails_the_run_marks_mlflow_failed_and_keeps_the_last_good_state(
    prepared: Path, tmp_path: Path, monkeypatch, caplog
):
    import mlflow

    import streamguard.training.loop as loop

    project = clone(prepared, tmp_path / "nan")
    real_build_loss = loop.build_loss
    monkeypatch.setattr(loop, "build_loss", lambda config, labels: NaNAfter(real_build_loss(config, labels), STEPS_PER_EPOCH))

    with pytest.raises(NonFiniteLossError) as error:
        run_kedro(project, "transformer")
    message = str(error.value)
    assert "transformer.seed_0: non-finite loss at epoch 2, optimizer step 1/10" in message
    assert "Lower the learning rate" in message
    assert f"last good training state (after epoch 1) is kept in {STATE}" in message

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("streamguard")
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "FAILED"

    kept = safe_torch_load(project / STATE / "last.pt")
    assert kept["epoch"] == 1 and not kept["finished"]
    assert not (project / "data/06_models/transformer/seed_0/checkpoint.pt").exists()
    assert not (project / METRICS).exists()

    # The usual fix, a lower learning rate, is a different config: the kept state is named, not resumed.
    monkeypatch.undo()
    with caplog.at_level("WARNING", logger="streamguard.training.resume"):
        run_kedro(project, "transformer", {"transformer": {"training": {"lr": 5.0e-4}}})  # --params transformer.training.lr=5e-4
    assert f"resume state {STATE / 'last.pt'} was saved by a run with a different config or data" in caplog.text
    assert "config.training.lr: 0.001 -> 0.0005" in caplog.text and "training from scratch" in caplog.text
    assert [record["epoch"] for record in json.loads((project / HISTORY).read_text())] == [1, 2]
    assert safe_torch_load(project / STATE / "last.pt")["finished"]


def test_resume_param_reaches_the_training_state_dataset(prepared: Path):
    """`kedro run --params resume=false` turns resuming off (the catalog reads the runtime param)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(prepared)
    for runtime_params, expected in (({}, True), ({"resume": False}, False)):
        with KedroSession.create(project_path=prepared, runtime_params=runtime_params) as session:
            store = session.load_context().catalog.load("transformer.seed_0.training_state")
        assert store.resume is expected
        assert store.directory == Path("data/06_models/transformer/seed_0/state")
