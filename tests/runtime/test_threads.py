"""cpu_threads: torch / BLAS threads chosen once per run so a busy machine does not multiply the time."""

from __future__ import annotations

import os

import pytest

from streamguard.runtime.threads import THREAD_VARIABLES, apply_cpu_threads, resolve_cpu_threads


def test_auto_leaves_the_busy_cores_alone():
    assert resolve_cpu_threads("auto", cores=2, load=0.1)[0] == 2  # idle: every core
    assert resolve_cpu_threads("auto", cores=2, load=1.2)[0] == 1  # one competing job: one thread
    assert resolve_cpu_threads("auto", cores=2, load=7.0)[0] == 1  # never fewer than one
    assert resolve_cpu_threads(None, cores=8, load=2.0)[0] == 6
    assert resolve_cpu_threads(3)[0] == 3 and resolve_cpu_threads("2")[0] == 2
    assert resolve_cpu_threads(0) == (0, "torch's own choice")
    for bad in (-1, "many", 1.5j):
        with pytest.raises(ValueError, match="cpu_threads must be"):
            resolve_cpu_threads(bad)


def test_apply_sets_torch_and_the_environment_of_child_processes(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    try:
        assert apply_cpu_threads(2) == 2 and torch.get_num_threads() == 2
        assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
        assert apply_cpu_threads(1) == 1
        assert apply_cpu_threads(0) == 1  # 0: left as it is
        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_the_run_hook_reads_the_parameter(monkeypatch):
    from kedro.io import DataCatalog, MemoryDataset

    import streamguard.runtime.threads as threads
    from streamguard.hooks.run import CpuThreadsHooks

    seen = []
    monkeypatch.setattr(threads, "apply_cpu_threads", seen.append)
    catalog = DataCatalog({"parameters": MemoryDataset({"cpu_threads": 3, "seeds": [0]})})
    CpuThreadsHooks().before_pipeline_run({}, None, catalog)
    CpuThreadsHooks().before_pipeline_run({}, None, DataCatalog({"parameters": MemoryDataset({})}))
    assert seen == [3, "auto"]


def test_busy_cores_is_measured_now_not_averaged():
    from streamguard.runtime.threads import busy_cores

    busy = busy_cores(0.1)
    assert 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
    threads, why = resolve_cpu_threads("auto", cores=os.cpu_count())
    assert 1 <= threads <= (os.cpu_count() or 1) and "busy" in why
