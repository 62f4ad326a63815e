"""``DaskRunner``: run a Kedro pipeline's nodes as tasks on a ``dask.distributed`` cluster.

Built on the runner of Kedro's Dask deployment guide, adapted to Kedro 1.x's ``Task``: each node
is one Dask task whose dependencies are the futures of the nodes it needs, so Dask's scheduler
(not this module) decides when things run; independent seeds and tracks run side by side: each
seed's chain of nodes prefers one worker, the chains dealt round-robin (``spread_chains``), since
the scheduler's data locality alone would queue every chain behind the data nodes' worker.

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
    ) -> None:
        """``address``: an existing scheduler (else ``$STREAMGUARD_DASK_ADDRESS``, else a LocalCluster
        of ``n_workers`` processes on loopback with ``threads_per_worker`` threads each)."""
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

    def _get_executor(self, max_workers: int) -> None:  # the Dask client replaces the executor
        return None

    @contextmanager
    def _client(self) -> Iterator[Any]:
        from distributed import Client, LocalCluster

        _quiet_distributed()

        if self.address:
            with Client(self.address) as client:
                yield client
            return
        import dask

        # The machine's cores split between the tasks that run at once (Dask's nanny would give every
        # worker one thread; the run's own cpu_threads is for one process).
        self.torch_threads = max(1, (os.cpu_count() or 1) // (self.n_workers * self.threads_per_worker))
        with dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=self.dashboard_address,
            )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()

    def _resources_for(self, node: Node, has_gpu_workers: bool) -> dict[str, float] | None:
        if not has_gpu_workers or not any(fnmatch.fnmatchcase(node.name, pattern) for pattern in self.gpu_nodes):
            return None
        return {"GPU": self.gpus_per_node}

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
            preferred = spread_chains(nodes, sorted(workers)) if not has_gpu_workers else {}
            futures: dict[Node, Any] = {}
            for node in nodes:  # topologically sorted: a node's dependencies were submitted before it
                dependencies = [futures[dependency] for dependency in pipeline.node_dependencies[node]]
                if hook_manager is not None:
                    # kedro-mlflow logs a node's parameters here, in the process that owns the run.
                    params = {name: catalog.load(name) for name in node.inputs if name.startswith("params:") or name == "parameters"}
                    hook_manager.hook.before_node_run(node=node, catalog=catalog, inputs=params, is_async=self._is_async, run_id=run_id)
                futures[node] = client.submit(
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
                    workers=[preferred[node]] if node in preferred else None,
                    allow_other_workers=node in preferred,  # a preference: any worker may take it if that one leaves
                    pure=False,
                )
            node_of = {future.key: node for node, future in futures.items()}
            done = 0
            for future in as_completed(list(futures.values())):
                node = node_of[future.key]
                try:
                    result = future.result()
                except Exception:
                    self._suggest_resume_scenario(pipeline, {n for n, f in futures.items() if f.status == "finished"}, catalog)
                    raise
                done += 1
                self.placements[node.name] = result["worker"]
                for name, value in result["outputs"].items():
                    if name in pipeline.outputs():  # free outputs come back to the caller
                        _hold(catalog, name, value)
                self._logger.info("Completed node: %s (on %s)", node.name, result["worker"])
                self._logger.info("Completed %d out of %d tasks", done, len(nodes))


def spread_chains(nodes: list[Node], workers: list[str]) -> dict[Node, str]:
    """A preferred worker per node: each chain (the nodes of one namespace, e.g. ``transformer.seed_1``)
    on one worker, the chains dealt round-robin in pipeline order; nodes outside a namespace get none.

    Dask's scheduler runs a task where the results it depends on are; every seed's chain starts from
    the same data nodes, so without a preference all seeds queued on the worker that ran those and
    the other worker idled (the main job took as long on 2 workers as on one thread).
    """
    if len(workers) < 2:
        return {}
    chains: dict[str, str] = {}
    for node in nodes:
        if node.namespace and node.namespace not in chains:
            chains[node.namespace] = workers[len(chains) % len(workers)]
    return {node: chains[node.namespace] for node in nodes if node.namespace}


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
    from kedro.framework.project import configure_logging, configure_project, settings

    if package_name and os.environ.get("STREAMGUARD_DASK_CONFIGURED") != package_name:
        configure_project(package_name)
        if logging_config:
            configure_logging(dict(logging_config))
        _quiet_distributed()
        os.environ["STREAMGUARD_DASK_CONFIGURED"] = package_name
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
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
