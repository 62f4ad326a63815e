"""How many CPU threads a run uses: torch's default of one per core oversubscribes a shared machine.

With one other CPU-bound job on 2 cores, torch's two threads per op mostly wait for each other: the
main job took over 50 minutes instead of 8, and a tiny-model step ran 25x slower with 2 threads than
with 1. ``cpu_threads`` (conf/base/parameters.yml) chooses the count once per run:

* ``auto``: the cores the machine has left, ``max(1, cores - round(busy cores))``, where the busy
  cores are measured over half a second when the run starts (psutil; the 1-minute load average
  lags: right after another run it still counts that run's cores): all of them on an idle
  machine, one when another job keeps a core busy;
* an integer: exactly that many; ``0``: torch's own choice (one per core).

It sets torch's intra-op and inter-op threads, and OMP/MKL/OpenBLAS variables for the processes the
run starts (data-loader and Dask workers, Accelerate processes).
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores other work keeps busy right now (system-wide CPU use over ``seconds``)."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100.0 * (psutil.cpu_count() or 1)


def resolve_cpu_threads(setting: Any, cores: int | None = None, load: float | None = None) -> tuple[int, str]:
    """(threads, why) for ``setting`` (``auto``, an int, or 0 = torch's choice: returned as 0); ``load``: the busy
    cores (measured when not given)."""
    cores = int(cores if cores is not None else (os.cpu_count() or 1))
    if setting in (None, "auto"):
        load = float(load if load is not None else busy_cores())
        threads = max(1, cores - round(load))
        return threads, f"auto: {cores} cores, {load:.1f} busy"
    try:
        threads = int(setting)
    except (TypeError, ValueError):
        raise ValueError(f"cpu_threads must be 'auto', 0 (torch's choice) or a positive integer, got {setting!r}") from None
    if threads < 0:
        raise ValueError(f"cpu_threads must be 'auto', 0 (torch's choice) or a positive integer, got {setting!r}")
    return threads, "torch's own choice" if threads == 0 else "set"


def apply_cpu_threads(setting: Any) -> int:
    """Apply ``setting`` to torch and to the environment of child processes; returns torch's thread count."""
    import torch

    threads, why = resolve_cpu_threads(setting)
    if threads > 0:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(threads)
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only settable before the first inter-op parallel work in the process
            pass
    logger.info("cpu_threads=%s (%s): %d torch thread(s)", setting, why, torch.get_num_threads())
    return torch.get_num_threads()
