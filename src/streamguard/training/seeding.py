"""Reproducible runs: one call seeds every RNG; RNG state can be saved in a checkpoint and restored."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return a seeded generator for DataLoaders.

    With ``deterministic`` torch prefers deterministic kernels (warning, not failing, where none
    exists), so a CPU run repeats bit for bit and a GPU run as closely as the kernels allow.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed seed for one epoch (and one use, ``stream``), independent of the epochs before it.

    That is what lets a resumed run shuffle exactly like an uninterrupted one.
    """
    entropy = [int(seed) % 2**63, int(epoch), int(stream)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker seeds python/numpy from its torch seed (set by the loader)."""
    del worker_id  # torch.initial_seed() already differs per worker
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG's state as plain lists/ints/tensors (loadable with ``torch.load(weights_only=True)``)."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": [int(value) for value in numpy_state["state"]["key"]],
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`; CUDA state is restored only when CUDA is present."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states][: torch.cuda.device_count()])
