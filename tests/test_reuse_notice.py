"""A re-run says at a training node's start what saved state it is about to reuse."""

from __future__ import annotations

import logging
from pathlib import Path

from streamguard.hooks.run import ReuseNoticeHooks
from streamguard.training.reuse_notice import reuse_notice
from streamguard.training.resume import ResumeStore

IDENTITY = {"track": "gnn", "seed": 0, "config": {"lr": 0.001}}


def test_finished_interrupted_ignored_and_missing_states(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "state")
    assert reuse_notice("gnn.seed_0", store) is None  # nothing saved yet

    store.save({"epoch": 2, "best_epoch": 2}, IDENTITY, finished=False)
    assert reuse_notice("gnn.seed_0", store).startswith("gnn.seed_0: an interrupted training state (epoch 2, saved ")

    store.save({"epoch": 5, "best_epoch": 4}, IDENTITY, finished=True)
    notice = reuse_notice("gnn.seed_0", store)
    assert notice.startswith("gnn.seed_0: a finished training state (epoch 5, saved ")
    assert "no epoch is trained again" in notice and str(tmp_path / "state") in notice

    assert "trains from scratch" in reuse_notice("gnn.seed_0", ResumeStore(tmp_path / "state", resume=False))


def test_the_hook_logs_before_the_node_prepares_anything(tmp_path: Path, caplog) -> None:
    store = ResumeStore(tmp_path / "state")
    store.save({"epoch": 3, "best_epoch": 3}, IDENTITY, finished=True)
    with caplog.at_level(logging.INFO, logger="streamguard.training.reuse_notice"):
        ReuseNoticeHooks().before_node_run(None, None, {"train_functions": None, "gnn.seed_0.training_state": store}, False)
    assert [record.getMessage()[:52] for record in caplog.records] == ["gnn.seed_0: a finished training state (epoch 3, save"]
