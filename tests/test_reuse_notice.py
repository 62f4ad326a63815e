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


def test_a_finished_seed_is_reused_before_anything_is_prepared(tmp_path: Path, monkeypatch, caplog) -> None:
    """The second run of a finished seed returns its checkpoint without training a tokenizer or building a model."""
    import copy

    import streamguard.models.transformer as transformer_models
    from streamguard.data.generator import generate_dataset
    from streamguard.tracks.transformer import train_transformer
    from tests.explain.planted import TRANSFORMER_PARAMS

    frames = generate_dataset(64, 32, 0, seed=4)
    params = copy.deepcopy(TRANSFORMER_PARAMS)
    params["training"]["epochs"] = 1
    first, history = train_transformer(frames["train"], frames["valid"], params, seed=0, resume=ResumeStore(tmp_path / "s"))
    assert (tmp_path / "s" / "export.pt").is_file()

    def no_preparation(*args, **kwargs):
        raise AssertionError("a finished seed must not prepare its backbone again")

    monkeypatch.setattr(transformer_models, "load_backbone", no_preparation)
    replayed: list[dict] = []
    with caplog.at_level(logging.INFO, logger="streamguard.training.resume"):
        again, again_history = train_transformer(frames["train"], frames["valid"], params, seed=0,
                                                 resume=ResumeStore(tmp_path / "s"), on_epoch_end=replayed.append)
    assert "without preparing data or models" in caplog.text
    assert again["created_at"] == first["created_at"] and again["config_hash"] == first["config_hash"]
    assert again_history == history and [r["epoch"] for r in replayed] == [r["epoch"] for r in history]

    # Another config is not reused (it would prepare, which the patch refuses), and resume=false never reuses.
    changed = copy.deepcopy(params)
    changed["training"]["lr"] = 1.0e-3
    for store, run_params in ((ResumeStore(tmp_path / "s"), changed), (ResumeStore(tmp_path / "s", resume=False), params)):
        try:
            train_transformer(frames["train"], frames["valid"], run_params, seed=0, resume=store)
        except AssertionError as error:
            assert "must not prepare" in str(error)
        else:
            raise AssertionError("expected the run to prepare (and so to train)")
