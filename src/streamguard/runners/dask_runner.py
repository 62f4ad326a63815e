"""``DaskRunner``: run a Kedro pipeline's nodes as tasks on a ``dask.distributed`` cluster.

Built on the runner of Kedro's Dask deployment guide, adapted to Kedro 1.x's ``Task``: each node
is one Dask task whose dependencies are the futures of the nodes it needs; independent seeds and
tracks run side by side: a node is submitted once its inputs exist, to a worker thread that is free
(cheap results first, then the ready node with the longest chain of nodes behind it), since the
scheduler's data locality alone would queue every chain behind the data nodes' worker. With GPU
workers, Dask's resource-aware scheduler places every task instead.

* Persisted datasets (parquet, checkpoints, metrics files) are read and written by the workers
  themselves, so every worker must see the project's files (one machine, or a shared folder) and
  run from the project root. In-memory datasets travel as task results, worker to worker.
* Nodes matching ``gpu_nodes`` (default: every seed's ``train`` node) ask for ``gpus_per_node``
  units of the workers' ``GPU`` resource when some worker advertises one
  (``dask worker ... --resources GPU=1``); without such a worker they run anywhere.
* MLflow: parameters are logged by kedro-mlflow in this process as usual; each worker attaches to
  the same MLflow run (tracking URI and run id travel with the task), so per-epoch curves, metrics
  and artefacts land in the one run of the ``kedro run``. Workers need the same MLflow credentials
  (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``) in their environment.

Use::

    kedro run --runner streamguard.runners.DaskRunner                                     # local cluster
    kedro run --runner streamguard.runners.DaskRunner --runner-params address=tcp://host:8786
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kedro.io import MemoryDataset
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import AbstractRunner
from kedro.runner.task import Task

from streamguard.training.distributed import attached_mlflow_run

logger = logging.getLogger(__name__)

#: Scheduler address used when ``address`` is not given (unset: a LocalCluster is started).
ADDRESS_ENV = "STREAMGUARD_DASK_ADDRESS"
#: Dask settings for the runner's own LocalCluster. Two defaults cost a CPU training loop dearly: the
#: nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` (glibc hands memory back after freed tensors, so the next
#: step's allocations fault their pages in again) and the worker's statistical profiler (a stack
#: sample every 10 ms, under the GIL). With them a tiny model's training step ran 1.6-1.8x slower in a
#: worker than in a plain process, and the main job on 2 workers took 1.46x the sequential time.
LOCAL_WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    # The workers' start-up INFO lines (addresses, memory, threads): set before they spawn, as their
    # logging is set up when they import distributed.
    "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": "warning",
    # Book-keeping the main job does not need, which wakes the driver (scheduler) and every worker
    # many times a second: the event-loop tick (20 ms), system monitor (0.5 s), worker memory monitor
    # (0.1 s), and work stealing (tasks are pinned to free workers here). Measured over 15 s of
    # sleeping tasks: driver CPU 0.89 s -> 0.15 s, each worker 0.37 s -> 0.07 s.
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


class DaskRunner(AbstractRunner):
    """Distribute a pipeline's nodes over a Dask cluster, honouring their dependencies."""

    def __init__(
        self,
        address: str | None = None,
        n_workers: int | str = 2,
        threads_per_worker: int | str = 1,
        dashboard_address: str | None = ":8787",
        gpu_nodes: str = "*.train",
        gpus_per_node: float | str = 1,
        is_async: bool = False,
        warm_start: bool | str = False,
    ) -> None:
        """``address``: an existing scheduler (else ``$STREAMGUARD_DASK_ADDRESS``, else a LocalCluster
        of ``n_workers`` processes on loopback with ``threads_per_worker`` threads each).

        ``warm_start`` (own LocalCluster only; what ``scripts/run.sh`` asks for): start the cluster and
        the workers' imports in a background thread as soon as the runner exists: ``kedro run`` builds
        it before its session sets up (hooks, MLflow, catalog: about 8 s), so the first node starts
        on warm workers instead of waiting for the cluster and then for its worker's imports."""
        super().__init__(is_async=is_async)
        self.address = address or os.environ.get(ADDRESS_ENV) or None
        self.n_workers = int(n_workers)
        self.threads_per_worker = int(threads_per_worker)
        self.dashboard_address = dashboard_address or None
        self.gpu_nodes = [pattern for pattern in str(gpu_nodes).split(";") if pattern]
        self.gpus_per_node = float(gpus_per_node)
        #: node name -> address of the worker that ran it (for logs and tests).
        self.placements: dict[str, str] = {}
        #: torch threads of each task on the runner's own LocalCluster (None: an external cluster's workers decide).
        self.torch_threads: int | None = None
        self._warming: threading.Thread | None = None
        self._warm: dict[str, Any] = {}
        if str(warm_start).lower() in {"1", "true", "yes", "on"} and not self.address:
            self._warming = threading.Thread(target=self._start_warm, name="streamguard-dask-warm-start", daemon=True)
            self._warming.start()

    def _start_local_cluster(self) -> Any:
        from distributed import LocalCluster

        import dask

        _quiet_distributed()
        # The machine's cores split between the tasks that run at once (Dask's nanny would give every
        # worker one thread; the run's own cpu_threads is for one process).
        self.torch_threads = max(1, (os.cpu_count() or 1) // (self.n_workers * self.threads_per_worker))
        with dask.config.set(LOCAL_WORKER_CONFIG):
            return LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=self.dashboard_address,
            )

    def _start_warm(self) -> None:
        """Background thread: the LocalCluster, then one warm-up task per worker (see ``warm_start``)."""
        try:
            from distributed import Client
            from kedro.framework.project import LOGGING, PACKAGE_NAME

            cluster = self._warm["cluster"] = self._start_local_cluster()
            with Client(cluster) as client:
                workers = sorted(client.scheduler_info().get("workers", {}))
                futures = [
                    client.submit(_warm_worker, PACKAGE_NAME, LOGGING, self.torch_threads, workers=[w], pure=False, key=f"warm-{w}")
                    for w in workers
                ]
                client.gather(futures)
        except Exception as error:  # the run starts a cluster the usual way and says why
            self._warm["error"] = error

    def _get_executor(self, max_workers: int) -> None:  # the Dask client replaces the executor
        return None

    @contextmanager
    def _client(self) -> Iterator[Any]:
        from distributed import Client

        _quiet_distributed()

        if self.address:
            with Client(self.address) as client:
                yield client
            return
        cluster = None
        if self._warming is not None:
            self._warming.join()
            self._warming = None
            cluster = self._warm.pop("cluster", None)
            if "error" in self._warm:
                logger.warning("warm start failed (%s): starting the Dask cluster now", self._warm.pop("error"))
                if cluster is not None:
                    cluster.close()
                cluster = None
        if cluster is None:
            cluster = self._start_local_cluster()
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()

    def _resources_for(self, node: Node, has_gpu_workers: bool) -> dict[str, float] | None:
        if not has_gpu_workers or not any(fnmatch.fnmatchcase(node.name, pattern) for pattern in self.gpu_nodes):
            return None
        return {"GPU": self.gpus_per_node}

    def _dispatch_order(self, pipeline: Pipeline) -> list[Node]:
        """The order ready nodes start in: what the pipeline lists before its first long node (the
        ``gpu_nodes`` patterns, the seeds' training) first, so cheap results (data report, baseline,
        graphs) are written before any training starts, as with the sequential runner; then the node
        with the longest chain of nodes still behind it (the critical path: a seed's fusion training
        before another seed's plots); pipeline order among equals."""
        nodes = pipeline.nodes
        long_nodes = [i for i, node in enumerate(nodes) if any(fnmatch.fnmatchcase(node.name, p) for p in self.gpu_nodes)]
        first_long = min(long_nodes, default=len(nodes))
        behind = _nodes_behind(pipeline)
        position = {node: i for i, node in enumerate(nodes)}
        return sorted(nodes, key=lambda n: (position[n] >= first_long, -behind[n], position[n]))

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        from distributed import as_completed
        from kedro.framework.project import LOGGING, PACKAGE_NAME

        nodes = pipeline.nodes
        produced = set(pipeline.all_outputs())
        # Outputs the catalog keeps in memory cannot be shared through files: they travel as task results.
        in_memory = {name for name in produced if isinstance(catalog.get(name, fallback_to_runtime_pattern=True), MemoryDataset)}
        tracking = _mlflow_run_to_join()
        with self._client() as client:
            info = client.scheduler_info()
            workers = info.get("workers", {})
            has_gpu_workers = any(worker.get("resources", {}).get("GPU", 0) > 0 for worker in workers.values())
            logger.info(
                "Dask cluster %s: %d worker(s)%s; dashboard %s",
                client.scheduler.address, len(workers), " with a GPU resource" if has_gpu_workers else "",
                client.dashboard_link,
            )
            futures: dict[Node, Any] = {}
            node_of: dict[str, Node] = {}

            def submit(node: Node, worker: str | None = None) -> Any:
                dependencies = [futures[dependency] for dependency in pipeline.node_dependencies[node]]
                if hook_manager is not None:
                    # kedro-mlflow logs a node's parameters here, in the process that owns the run.
                    params = {name: catalog.load(name) for name in node.inputs if name.startswith("params:") or name == "parameters"}
                    hook_manager.hook.before_node_run(node=node, catalog=catalog, inputs=params, is_async=self._is_async, run_id=run_id)
                future = client.submit(
                    _run_node,
                    node,
                    catalog,
                    in_memory & set(node.outputs),
                    PACKAGE_NAME,
                    LOGGING,
                    tracking,
                    self._is_async,
                    run_id,
                    self.torch_threads,
                    *dependencies,
                    key=f"{node.name}-{run_id or os.getpid()}",
                    resources=self._resources_for(node, has_gpu_workers),
                    workers=[worker] if worker else None,
                    # Pinned: a loose preference let Dask's data locality pull every task back to one worker.
                    allow_other_workers=False,
                    pure=False,
                )
                futures[node], node_of[future.key] = future, node
                return future

            # GPU resources: Dask's resource-aware scheduler places every task. Otherwise a node is
            # submitted once its inputs exist, to a free worker thread, in ``_dispatch_order``: by data
            # locality alone Dask queued every seed's chain on the worker holding the shared data
            # nodes' results, and a fixed chain-to-worker deal left one worker idle while the other
            # still had a seed to train.
            slots = [] if has_gpu_workers else [
                address for address, worker in sorted(workers.items()) for _ in range(max(1, int(worker.get("nthreads", 1))))
            ]
            pending = self._dispatch_order(pipeline) if slots else []
            waiting = as_completed([submit(node) for node in nodes] if not slots else [])
            finished: set[Node] = set()
            slot_of: dict[Node, str] = {}

            def dispatch() -> None:
                for node in [n for n in pending if all(d in finished for d in pipeline.node_dependencies[n])]:
                    if not slots:
                        return
                    pending.remove(node)
                    slot_of[node] = slots.pop(0)
                    waiting.add(submit(node, slot_of[node]))

            dispatch()
            done = 0
            for future in waiting:
                node = node_of[future.key]
                try:
                    result = future.result()
                except Exception:
                    self._suggest_resume_scenario(pipeline, finished, catalog)
                    raise
                done += 1
                finished.add(node)
                if node in slot_of:
                    slots.append(slot_of.pop(node))
                self.placements[node.name] = result["worker"]
                for name, value in result["outputs"].items():
                    if name in pipeline.outputs():  # free outputs come back to the caller
                        _hold(catalog, name, value)
                self._logger.info("Completed node: %s (on %s)", node.name, result["worker"])
                self._logger.info("Completed %d out of %d tasks", done, len(nodes))
                dispatch()


def _nodes_behind(pipeline: Pipeline) -> dict[Node, int]:
    """For every node, the length of the longest chain of nodes that depends on it (0 for an end node)."""
    children: dict[Node, list[Node]] = {node: [] for node in pipeline.nodes}
    for node, dependencies in pipeline.node_dependencies.items():
        for dependency in dependencies:
            children[dependency].append(node)
    behind: dict[Node, int] = {}
    for node in reversed(pipeline.nodes):  # topologically sorted: children come first in reverse
        behind[node] = max((1 + behind[child] for child in children[node]), default=0)
    return behind


def _run_node(
    node: Node,
    catalog: Any,
    memory_outputs: set[str],
    package_name: str | None,
    logging_config: Mapping[str, Any] | None,
    tracking: tuple[str, str] | None,
    is_async: bool,
    run_id: str | None,
    torch_threads: int | None,
    *upstream: Mapping[str, Any],
) -> dict[str, Any]:
    """On a worker: run one node with the project's hooks, inside the caller's MLflow run.

    ``upstream`` are the results of the nodes this one depends on; their in-memory outputs become
    this node's inputs; ``torch_threads`` (when given) sets the task's torch threads. Returns this
    node's in-memory outputs and the worker's address.
    """
    from distributed import get_worker
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks
    from kedro.framework.project import settings

    _prepare_worker(package_name, logging_config, torch_threads)
    for result in upstream:
        for name, value in result["outputs"].items():
            if name in node.inputs:
                _hold(catalog, name, value)
    # The project's own hooks only: plugin hooks (kedro-mlflow) hold the run's state in the
    # calling process, which does their part (parameters) before submitting the node.
    hook_manager = _create_hook_manager()
    _register_hooks(hook_manager, settings.HOOKS)
    with attached_mlflow_run(tracking):
        Task(node=node, catalog=catalog, is_async=is_async, hook_manager=hook_manager, run_id=run_id).execute()
    outputs = {name: catalog.load(name) for name in node.outputs if name in memory_outputs}
    return {"outputs": outputs, "worker": get_worker().address}


def _prepare_worker(package_name: str | None, logging_config: Mapping[str, Any] | None, torch_threads: int | None) -> None:
    """A worker's once-per-process set-up (the project's settings and logging), and its torch threads."""
    from kedro.framework.project import configure_logging, configure_project

    if package_name and os.environ.get("STREAMGUARD_DASK_CONFIGURED") != package_name:
        configure_project(package_name)
        if logging_config:
            configure_logging(dict(logging_config))
        _quiet_distributed()
        os.environ["STREAMGUARD_DASK_CONFIGURED"] = package_name
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)


def _warm_worker(package_name: str | None, logging_config: Mapping[str, Any] | None, torch_threads: int | None) -> str:
    """A worker's first task, while the driver still sets up its Kedro session: the set-up and the
    imports every node needs (torch, the project's pipelines and hooks, MLflow), which otherwise
    delay the first node by seconds."""
    import importlib

    from distributed import get_worker

    _prepare_worker(package_name, logging_config, torch_threads)
    importlib.import_module("mlflow")  # every node attaches to the run's MLflow run
    if package_name:
        importlib.import_module(f"{package_name}.pipeline_registry").register_pipelines()
    return get_worker().address


def _quiet_distributed() -> None:
    """Dask's own INFO lines (workers and nannies starting and closing, the scheduler's comms: about 70
    per main job) under the project's log; its warnings and errors still show."""
    logging.getLogger("distributed").setLevel(logging.WARNING)


def _hold(catalog: Any, name: str, value: Any) -> None:
    """Keep ``value`` as the in-memory dataset ``name`` (saved into an existing one: replacing it
    would log a "Replacing dataset" warning per node)."""
    if name in catalog:
        catalog.save(name, value)
    else:
        catalog[name] = MemoryDataset(value)


def _mlflow_run_to_join() -> tuple[str, str] | None:
    """(tracking URI, run id) of the active MLflow run in this process, if any."""
    import sys

    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return None
    return mlflow.get_tracking_uri(), mlflow.active_run().info.run_id
