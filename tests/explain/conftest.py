"""Tiny models trained once per test session on the planted-token task (tests/explain/planted.py)."""

from __future__ import annotations

import pytest

from .planted import planted_frame, train_planted_models


@pytest.fixture(scope="session")
def planted_models() -> dict[str, dict]:
    """One checkpoint per track (transformer, gnn, fusion) that only the planted call makes 'vulnerable'."""
    return train_planted_models(planted_frame(240, seed=1), planted_frame(60, seed=2))


@pytest.fixture(scope="session")
def planted_test():
    return planted_frame(12, seed=3)
