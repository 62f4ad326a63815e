"""The default pipeline on a Dask cluster on loopback gives the sequential runner's metrics files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_project_copy

pytestmark = pytest.mark.slow


def is_clock_reading(key: str) -> bool:
    """Keys that measure when or how fast, not what was learnt: they differ between identical runs."""
    return key == "timestamp" or key.endswith(("seconds", "_per_s"))


def without_clock_readings(value):
    if isinstance(value, dict):
        return {key: without_clock_readings(item) for key, item in value.items() if not is_clock_reading(key)}
    if isinstance(value, list):
        return [without_clock_readings(item) for item in value]
    return value


def metrics_files(project: Path) -> dict[str, dict]:
    """Every metrics file of a run (per seed, per ensemble, baseline, data report) without clock readings."""
    root = project / "data" / "08_reporting"
    return {
        path.relative_to(root).as_posix(): without_clock_readings(json.loads(path.read_text()))
        for path in sorted(root.rglob("*.json"))
        if path.name != "history.json"  # per-epoch curves: wall-clock timings mostly
    }


def assert_same(left, right, where: str) -> None:
    if isinstance(left, dict):
        assert isinstance(right, dict) and set(left) == set(right), where
        for key in left:
            assert_same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list):
        assert isinstance(right, list) and len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(left, float):
        assert right == pytest.approx(left, rel=1e-6, abs=1e-9), where
    else:
        assert left == right, where


def start_gpu_worker(address: str, cwd: Path) -> subprocess.Popen:
    """A second worker, started as on another machine (`dask worker`), advertising one GPU."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
         "--resources", "GPU=1", "--host", "127.0.0.1", "--no-dashboard", "--name", "gpu-worker"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def test_local_dask_cluster_reproduces_the_sequential_metrics(full_run: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from streamguard.runners import DaskRunner

    project = make_project_copy(tmp_path / "dask")  # the same tiny settings as full_run
    previous = Path.cwd()
    os.chdir(project)  # workers resolve the catalog's relative paths from their working directory
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    worker = start_gpu_worker(cluster.scheduler_address, project)
    try:
        with Client(cluster) as client:
            deadline = time.monotonic() + 120
            while len(client.scheduler_info()["workers"]) < 2:
                assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read() if worker.poll() is not None else "timeout"
                time.sleep(0.5)
            gpu_address = next(a for a, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU"))
        runner = DaskRunner(address=cluster.scheduler_address)
        bootstrap_project(project)
        with KedroSession.create(project_path=project) as session:
            session.run(runner=runner)
    finally:
        worker.terminate()
        worker.wait(30)
        cluster.close()
        os.chdir(previous)
        os.environ.pop("MLFLOW_TRACKING_URI", None)

    sequential, distributed = metrics_files(full_run), metrics_files(project)
    assert len(sequential) >= 10 and set(distributed) == set(sequential)
    for name in sequential:
        assert_same(sequential[name], distributed[name], name)

    # Both workers took nodes; every training node asked for, and got, the GPU worker.
    train_nodes = {name for name in runner.placements if name.endswith(".train")}
    assert len(train_nodes) == 6  # 3 tracks x 2 seeds
    assert {runner.placements[name] for name in train_nodes} == {gpu_address}
    assert len(set(runner.placements.values())) == 2

    # The workers logged into the run's MLflow run, like a sequential run does.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("streamguard").experiment_id])[0]
    assert run.info.status == "FINISHED"
    seed_metrics = json.loads((project / "data/08_reporting/gnn/seed_1/metrics.json").read_text())
    assert run.data.metrics["gnn.seed_1.test.f1"] == pytest.approx(seed_metrics["test"]["f1"])
    assert client.get_metric_history(run.info.run_id, "transformer.seed_0.curve.valid_f1")
    assert run.data.params["fusion.preset"] == "fusion_balanced"  # logged by kedro-mlflow in the driver


def _identity(value):
    return value


def _torch_threads(_):
    import torch

    return torch.get_num_threads()


def _first_of(first, _):
    return first


def _timed(value):
    import time

    started = time.time()
    time.sleep(1.0)
    return (started, time.time())


def test_ready_nodes_go_to_free_workers_and_every_worker_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chain starts from one shared node; by data locality alone Dask queued them all on the
    worker holding its result, so two workers ran the main job no faster than one. Nodes are now
    submitted when their inputs exist, one per free worker thread: never more at once than threads,
    every worker busy. The runner's own local cluster splits the cores between its workers' torch threads."""
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node, pipeline

    from streamguard.runners import DaskRunner

    # Each chain also waits for "threads", so that both workers have done their first task (which
    # imports torch: seconds) before the timed nodes start.
    chain = Pipeline([node(_first_of, ["data", "threads"], "first", name="first"), node(_timed, "first", "result", name="last")])
    seeds = [pipeline(chain, namespace=f"track.seed_{seed}", inputs={"data": "data", "threads": "threads"}) for seed in range(4)]
    whole = Pipeline([
        node(_identity, "raw", "data", name="load"),
        node(_torch_threads, "raw", "threads", name="threads"),
        node(_identity, "threads", "torch_threads", name="report_threads"),
    ])
    whole += sum(seeds, Pipeline([]))

    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # a bigger machine: 4 torch threads for each of the 2 workers
    runner = DaskRunner(n_workers=2, threads_per_worker=1, dashboard_address=None)  # its own LocalCluster
    outputs = runner.run(whole, DataCatalog({"raw": MemoryDataset(1)}))
    assert set(outputs) == {"torch_threads"} | {f"track.seed_{seed}.result" for seed in range(4)}
    assert outputs["torch_threads"].load() == 4  # not Dask's default of one (its nanny sets OMP_NUM_THREADS=1)
    worker_of = {name.split(".last")[0]: address for name, address in runner.placements.items() if name.endswith(".last")}
    assert len(worker_of) == 4 and len(set(worker_of.values())) == 2
    spans = [outputs[f"track.seed_{seed}.result"].load() for seed in range(4)]
    for started, _ in spans:  # at most two of the sleeping nodes overlap at any moment
        assert sum(begin <= started < end for begin, end in spans) <= 2
    assert max(end for _, end in spans) - min(begin for begin, _ in spans) < 4 * 1.0  # ... and they did overlap


def test_longest_chain_behind_a_node_orders_the_ready_ones() -> None:
    """A seed's training (with predict, score and the ensemble behind it) goes before a plot nobody waits for."""
    from kedro.pipeline import Pipeline, node

    from streamguard.runners.dask_runner import _nodes_behind

    pipe = Pipeline([
        node(_identity, "raw", "model", name="train"),
        node(_identity, "model", "logits", name="predict"),
        node(_identity, "logits", "metrics", name="score"),
        node(_identity, "model", "curves", name="plot"),
        node(_identity, "raw", "other", name="unrelated"),
    ])
    behind = {n.name: count for n, count in _nodes_behind(pipe).items()}
    assert behind == {"train": 2, "predict": 1, "score": 0, "plot": 0, "unrelated": 0}


def test_dispatch_starts_cheap_results_before_training_then_follows_the_critical_path() -> None:
    """The main job's baseline and graphs before any seed trains (as the sequential runner does)."""
    from streamguard.pipeline_registry import register_pipelines
    from streamguard.runners import DaskRunner

    pipe = register_pipelines()["__default__"]
    order = [node.name for node in DaskRunner(dashboard_address=None)._dispatch_order(pipe)]
    first_training = min(i for i, name in enumerate(order) if name.endswith(".train"))
    for cheap in ("load_and_validate", "deduplicate", "build_graphs", "baseline.seed_0.fit_and_score"):
        assert order.index(cheap) < first_training, order[: first_training + 1]
    # After them: a training node (a long chain behind it) before any plot (nothing behind it).
    assert order.index("fusion.seed_2.train") < min(order.index(name) for name in order if name.endswith(".plot_curves"))
    assert sorted(order) == sorted(node.name for node in pipe.nodes)


def test_warm_start_prepares_the_workers_before_the_run_and_falls_back_when_it_fails(monkeypatch, caplog) -> None:
    """scripts/run.sh's warm_start: the cluster and the workers' imports start with the runner (kedro run
    builds it before its session sets up); a failed warm start still runs, on a cluster started then."""
    import logging

    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from streamguard.runners import DaskRunner
    from streamguard.runners import dask_runner

    pipe = Pipeline([node(_identity, "raw", "data", name="load"), node(_torch_threads, "data", "threads", name="threads")])
    runner = DaskRunner(n_workers=2, threads_per_worker=1, dashboard_address=None, warm_start="true")
    assert runner._warming is not None
    runner._warming.join(timeout=120)
    assert "cluster" in runner._warm and "error" not in runner._warm  # started and warmed before run()
    outputs = runner.run(pipe, DataCatalog({"raw": MemoryDataset(1)}))
    assert outputs["threads"].load() == max(1, (os.cpu_count() or 1) // 2)
    assert runner._warm == {} and runner._warming is None

    calls = []
    real = DaskRunner._start_local_cluster

    def fail_first(self):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no ports")
        return real(self)

    monkeypatch.setattr(DaskRunner, "_start_local_cluster", fail_first)
    with caplog.at_level(logging.WARNING, logger=dask_runner.__name__):
        runner = DaskRunner(n_workers=2, threads_per_worker=1, dashboard_address=None, warm_start=True)
        outputs = runner.run(pipe, DataCatalog({"raw": MemoryDataset(1)}))
    assert outputs["threads"].load() >= 1 and len(calls) == 2
    assert "warm start failed (no ports)" in caplog.text
