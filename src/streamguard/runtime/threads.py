"""How many CPU threads a run uses: torch's default of one per core oversubscribes a shared machine.

With one other CPU-bound job on 2 cores, torch's two threads per op mostly wait for each other: the
main job took over 50 minutes instead of 8, and a tiny-model step ran 25x slower with 2 threads than
with 1. ``cpu_threads`` (conf/base/parameters.yml) chooses the count once per run:

* ``auto``: the cores the machine has left, ``max(1, cores - round(1-minute load average))``: all of
  them on an idle machine, one when another job keeps a core busy;
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


def resolve_cpu_threads(setting: Any, cores: int | None = None, load: float | None = None) -> tuple[int, str]:
    """(threads, why) for ``setting`` (``auto``, an int, or 0 = torch's choice: returned as 0)."""
    cores = int(cores if cores is not None else (os.cpu_count() or 1))
    if setting in (None, "auto"):
        load = float(load if load is not None else os.getloadavg()[0])
        threads = max(1, cores - round(load))
        return threads, f"auto: {cores} cores, 1-minute load {load:.1f}"
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
