"""Data-parallel training of one seed on N processes, through Hugging Face Accelerate.

Two halves:

* :func:`fan_out` (the calling process, e.g. a Kedro node): starts N processes with torch's
  elastic launcher (what ``torchrun`` and ``accelerate launch`` use), runs the track's training
  function in each, and returns process 0's result. Per-epoch callbacks (MLflow curves) are
  replayed here from the returned history, so only the caller logs and writes datasets.
* :class:`DataParallel` (inside each process, used by :func:`streamguard.training.fit`): an
  ``accelerate.Accelerator`` that picks the process's device, wraps the model in DDP, shards each
  global batch across processes (``split_batches``: the global batch stays ``batch_size``, so N
  processes take the same optimizer steps as one), sets mixed precision, skips gradient
  synchronisation inside an accumulation group, and gathers validation outputs.

On CPU the processes talk through gloo (tests); on GPUs through NCCL, one process per GPU. The
same ``fit`` runs unchanged under ``accelerate launch`` / ``torchrun`` on several nodes, where
these variables are set by the launcher (README "Scaling out").
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: the track modules import this one
    import torch


def world_size() -> int:
    """Processes in this training (1 unless started by an elastic launcher / torchrun / accelerate)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def requested_processes(params: Mapping[str, Any]) -> int:
    """``training.num_processes`` of a track's params; 1 inside an already-launched process."""
    if world_size() > 1:
        return 1
    return int((params.get("training") or {}).get("num_processes", 1) or 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_in_process(function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Entry point of each launched process."""
    import torch

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        result = function(*args, **kwargs)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return result if int(os.environ.get("RANK", "0")) == 0 else None


def launch(function: Callable[..., Any], num_processes: int, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in ``num_processes`` local processes; process 0's return value.

    ``function`` and its arguments must be picklable (processes are spawned, which is safe after
    CUDA was initialised in the caller); like any spawning code, a script that calls it needs the
    ``if __name__ == "__main__":`` guard (Kedro's and pytest's entry points have it).
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=num_processes,
        run_id=f"streamguard-{uuid.uuid4().hex[:8]}",
        rdzv_backend="static",
        rdzv_endpoint=f"127.0.0.1:{_free_port()}",
        rdzv_configs={"rank": 0},
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    results = elastic_launch(config, _run_in_process)(function, args, kwargs)
    return results[0]


def fan_out(
    function: Callable[..., tuple[Any, list[dict]]],
    num_processes: int,
    *args: Any,
    on_epoch_end: Callable[[dict], None] | None = None,
    **kwargs: Any,
) -> tuple[Any, list[dict]]:
    """Train with ``function`` (a track's ``train_*`` returning ``(checkpoint, history)``) on
    ``num_processes`` processes; ``on_epoch_end`` sees each epoch record here, afterwards."""
    checkpoint, history = launch(function, num_processes, *args, **kwargs)
    if on_epoch_end is not None:
        for record in history:
            on_epoch_end(dict(record))
    return checkpoint, history


def data_parallel_track(train: Callable[..., tuple[Any, list[dict]]]) -> Callable[..., tuple[Any, list[dict]]]:
    """Decorate a track's ``train_*(..., params, ..., on_epoch_end=None, ...)``: with
    ``params.training.num_processes`` > 1 it trains in that many processes (see :func:`fan_out`)."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def train_maybe_in_parallel(*args: Any, **kwargs: Any) -> tuple[Any, list[dict]]:
        bound = signature.bind(*args, **kwargs)
        processes = requested_processes(bound.arguments["params"])
        if processes <= 1:
            return train(*args, **kwargs)
        on_epoch_end = bound.arguments.pop("on_epoch_end", None)  # a closure: it stays in this process
        # The module-level (decorated) function is what the processes import; inside them
        # WORLD_SIZE > 1, so it trains directly.
        return fan_out(train_maybe_in_parallel, processes, *bound.args, on_epoch_end=on_epoch_end, **bound.kwargs)

    return train_maybe_in_parallel


class DataParallel:
    """What :func:`streamguard.training.fit` asks of Accelerate in one of N processes."""

    def __init__(self, device: str = "auto", amp_dtype: str | None = None) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration

        on_cpu = device == "cpu" or not torch.cuda.is_available()
        mixed = "no"
        if not on_cpu and amp_dtype == "bf16":
            mixed = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif not on_cpu and amp_dtype == "fp16":
            mixed = "fp16"
        self.accelerator = Accelerator(
            cpu=on_cpu,
            mixed_precision=mixed,
            dataloader_config=DataLoaderConfiguration(split_batches=True, even_batches=True),
        )

    @classmethod
    def from_environment(cls, device: str = "auto", amp_dtype: str | None = None) -> DataParallel | None:
        """One per launched process; None when training runs in a single process."""
        return cls(device, amp_dtype) if world_size() > 1 else None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def num_processes(self) -> int:
        return int(self.accelerator.num_processes)

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP around ``model`` (same parameters: optimizer, EMA and checkpoints keep using ``model``)."""
        return self.accelerator.prepare_model(model)

    def shard(self, loader: Any) -> Any:
        """Each global batch of ``loader`` split across the processes (index-level, before collation)."""
        return self.accelerator.prepare_data_loader(loader)

    def shard_for_evaluation(self, loader: Any) -> _GatheringLoader:
        """:meth:`shard`, plus ``gather`` for the evaluation to collect every process's outputs."""
        return _GatheringLoader(self.shard(loader), self.gather)

    def no_sync(self, model: torch.nn.Module, skip: bool) -> contextlib.AbstractContextManager:
        """Inside an accumulation group, gradients are summed locally and synchronised on its last batch."""
        return self.accelerator.no_sync(model) if skip else contextlib.nullcontext()

    def gather(self, tensors: Any) -> Any:
        """Every process's validation outputs, in order, without the padding of the last batch."""
        return self.accelerator.gather_for_metrics(tensors)

    def sum(self, *values: float) -> list[float]:
        """Sums over processes (epoch loss and counts reported for the whole global batch)."""
        import torch

        tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(tensor, reduction="sum").tolist()


class _GatheringLoader:
    """A sharded evaluation loader whose ``gather`` collects what every process computed from it."""

    def __init__(self, loader: Any, gather: Callable[[Any], Any]) -> None:
        self.loader, self.gather = loader, gather

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


@contextlib.contextmanager
def attached_mlflow_run(tracking: tuple[str, str] | None) -> Iterator[None]:
    """Log into another process's MLflow run (tracking URI, run id), leaving it RUNNING for its owner to end."""
    if tracking is None:
        yield
        return
    import mlflow

    uri, run_id = tracking
    mlflow.set_tracking_uri(uri)
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    mlflow.start_run(run_id=run_id)
    try:
        yield
    finally:
        mlflow.end_run(status="RUNNING")
