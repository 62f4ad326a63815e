"""Resumable training states: rotation, identity checks, corrupt files, stray temp files, NaN failures.

Plain Python (no Kedro session): the ResumeStore and resumable_fit that every track's recipe uses,
on a tiny synthetic problem. The real `kedro run` kill/rerun test is tests/test_resume_kedro.py.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError
from torch import nn
from torch.utils.data import Dataset

from streamguard.datasets._files import atomic_write
from streamguard.datasets.checkpoint_dataset import TorchCheckpointDataset, TrainingStateDataset
from streamguard.training import NonFiniteLossError, TrainConfig, atomic_torch_save, fit, safe_torch_load
from streamguard.training.checkpoint import CheckpointError
from streamguard.training.loop import TIMING_KEYS
from streamguard.training.resume import (
    BEST,
    LAST,
    PREVIOUS,
    ResumeStore,
    fingerprint,
    identity_differences,
    result_config,
    resumable_fit,
    training_identity,
)

# --------------------------------------------------------------------------- a tiny problem


class Vectors(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=generator)
        self.labels = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long().tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index], "label": self.labels[index], "idx": index}


def collate(items: list[dict]) -> dict:
    return {
        "x": torch.stack([item["x"] for item in items]),
        "labels": torch.tensor([item["label"] for item in items]),
        "idx": torch.tensor([item["idx"] for item in items]),
    }


class Net(nn.Module):
    embedding_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(8, 2)

    def encode(self, batch: dict) -> torch.Tensor:
        return self.body(batch["x"])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.encode(batch))


TRAIN, VALID = Vectors(64, 0), Vectors(32, 1)
EPOCHS = 4


def config(**overrides) -> TrainConfig:
    # Collapse detection off: the toy model may predict one class for a few epochs (test_collapse.py covers it).
    values = dict(epochs=EPOCHS, batch_size=16, lr=1e-2, early_stopping_patience=0, progress=False, device="cpu",
                  collapse_check_from_epoch=0)
    return TrainConfig(**{**values, **overrides})


def make_model(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


IDENTITY = training_identity("toy", 0, {"training": config().to_dict()}, {"train": fingerprint(TRAIN.x)})


def learning(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def run(store: ResumeStore | None, cfg: TrainConfig | None = None, model_seed: int = 0, identity=IDENTITY, **kwargs):
    cfg = cfg or config()
    model = make_model(model_seed)
    return resumable_fit(
        lambda **resume_args: fit(model, TRAIN, VALID, collate, cfg, **resume_args),
        store=store,
        identity=identity,
        epochs=cfg.epochs,
        patience=cfg.early_stopping_patience,
        label="toy.seed_0",
        **kwargs,
    )


class Killed(Exception):
    pass


def kill_after_epoch(store: ResumeStore, epoch: int):
    """A store whose save raises after writing ``epoch`` (the process dies right after a save)."""
    original = store.save

    def save(state, identity=None, finished=False):
        original(state, identity, finished)
        if state["epoch"] == epoch:
            raise Killed

    store.save = save  # type: ignore[method-assign]
    return store


def epoch_of(path) -> int:
    return int(safe_torch_load(path)["epoch"])


@pytest.fixture(scope="module")
def uninterrupted():
    return run(None)


# --------------------------------------------------------------------------- resume


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 2))
    assert epoch_of(tmp_path / LAST) == 2 and epoch_of(tmp_path / PREVIOUS) == 1
    replayed: list[dict] = []
    resumed = run(ResumeStore(tmp_path), model_seed=99, on_epoch_end=replayed.append)
    assert learning(resumed.history) == learning(uninterrupted.history)
    assert resumed.best_epoch == uninterrupted.best_epoch
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    # the resumed epochs are replayed to the epoch callback (MLflow curves stay complete)
    assert [record["epoch"] for record in replayed] == list(range(1, EPOCHS + 1))


def test_every_epoch_writes_last_and_previous_and_best_on_a_best_epoch(tmp_path):
    store = ResumeStore(tmp_path)
    result = run(store, cfg=config(selection_metric="valid_loss"))
    last = safe_torch_load(tmp_path / LAST)
    assert last["epoch"] == EPOCHS and last["finished"] is True
    assert not (tmp_path / PREVIOUS).exists()  # dropped once training finished
    assert epoch_of(tmp_path / BEST) == result.best_epoch
    assert safe_torch_load(tmp_path / BEST)["state"]["best_epoch"] == result.best_epoch
    assert not list(tmp_path.glob("*.tmp"))


def test_rerun_after_a_finished_run_reuses_it_and_gives_the_same_result(tmp_path, uninterrupted, caplog):
    run(ResumeStore(tmp_path))
    before = {name: (tmp_path / name).stat().st_mtime_ns for name in (LAST, BEST)}
    with caplog.at_level(logging.INFO, logger="streamguard.training.resume"):
        again = run(ResumeStore(tmp_path), model_seed=7)
    assert "already finished" in caplog.text and "resume=false" in caplog.text
    assert learning(again.history) == learning(uninterrupted.history)
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in (LAST, BEST)} == before  # nothing retrained


def test_resume_off_ignores_saved_states_and_retrains(tmp_path, uninterrupted):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 1))
    store = ResumeStore(tmp_path, resume=False)
    assert store.load(IDENTITY) is None
    fresh = run(ResumeStore(tmp_path, resume=False))
    assert learning(fresh.history) == learning(uninterrupted.history)
    assert epoch_of(tmp_path / LAST) == EPOCHS


# --------------------------------------------------------------------------- identity


def test_state_of_another_config_is_reported_and_not_resumed(tmp_path, caplog):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 2))
    other_cfg = config(lr=5e-3)
    other = training_identity("toy", 0, {"training": other_cfg.to_dict()}, {"train": fingerprint(TRAIN.x)})
    with caplog.at_level(logging.WARNING):
        result = run(ResumeStore(tmp_path), cfg=other_cfg, identity=other)
    message = caplog.text
    assert str(tmp_path / LAST) in message
    assert "training.lr: 0.01 -> 0.005" in message and "training from scratch" in message
    assert [record["epoch"] for record in result.history] == list(range(1, EPOCHS + 1))  # all epochs trained
    assert safe_torch_load(tmp_path / LAST)["identity_hash"] == safe_torch_load(tmp_path / BEST)["identity_hash"]
    assert not (tmp_path / PREVIOUS).exists()  # the stale states were removed, never mixed with the new ones


def test_switching_config_and_back_reuses_the_kept_states(tmp_path, uninterrupted, caplog):
    run(ResumeStore(tmp_path))
    first_hash = safe_torch_load(tmp_path / LAST)["identity_hash"]
    other_cfg = config(lr=5e-3)
    other = training_identity("toy", 0, {"training": other_cfg.to_dict()}, {"train": fingerprint(TRAIN.x)})
    switched = run(ResumeStore(tmp_path), cfg=other_cfg, identity=other)
    assert [record["epoch"] for record in switched.history] == list(range(1, EPOCHS + 1))  # trained
    other_hash = safe_torch_load(tmp_path / LAST)["identity_hash"]
    assert (tmp_path / "configs" / first_hash[:16] / LAST).is_file()  # the first config's states, kept apart

    with caplog.at_level(logging.INFO, logger="streamguard.training.resume"):
        back = run(ResumeStore(tmp_path), model_seed=7)
    assert "states are back" in caplog.text and "already finished" in caplog.text
    assert learning(back.history) == learning(uninterrupted.history)
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[key], value), key
    assert safe_torch_load(tmp_path / LAST)["identity_hash"] == first_hash
    assert (tmp_path / "configs" / other_hash[:16] / LAST).is_file()
    assert not (tmp_path / "configs" / first_hash[:16]).exists()


def test_only_the_most_recent_other_configs_are_kept(tmp_path, monkeypatch):
    import streamguard.training.resume as resume

    monkeypatch.setattr(resume, "MAX_KEPT_CONFIGS", 1)
    hashes = []
    for lr in (1e-2, 5e-3, 2e-3):
        cfg = config(lr=lr, epochs=1)
        identity = training_identity("toy", 0, {"training": cfg.to_dict()}, {"train": fingerprint(TRAIN.x)})
        run(ResumeStore(tmp_path), cfg=cfg, identity=identity)
        hashes.append(safe_torch_load(tmp_path / LAST)["identity_hash"])
    kept = [folder.name for folder in (tmp_path / "configs").iterdir()]
    assert kept == [hashes[1][:16]]  # the oldest other config was deleted


def test_state_of_other_data_is_reported_and_not_resumed(tmp_path, caplog):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 1))
    changed = training_identity("toy", 0, {"training": config().to_dict()}, {"train": fingerprint(TRAIN.x + 1)})
    with caplog.at_level(logging.WARNING):
        assert ResumeStore(tmp_path).load(changed, "toy.seed_0") is None
    assert "train data changed" in caplog.text and str(tmp_path / LAST) in caplog.text


def test_identity_ignores_result_neutral_keys_and_sees_data_and_config():
    params = {"preset": "a", "hidden": 8, "training": {"lr": 1e-3, "progress": True, "num_workers": 2}}
    neutral = {"preset": "b", "hidden": 8, "training": {"lr": 1e-3, "progress": False, "num_workers": 0}}
    assert result_config(params) == result_config(neutral)
    frame = pd.DataFrame({"idx": [1, 2], "func": ["int f(){}", "void g(){}"], "target": [0, 1]})
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(frame.assign(target=[1, 1]))
    assert fingerprint(np.arange(3)) != fingerprint(np.arange(3).astype(np.int32))
    assert fingerprint({"w": torch.ones(2)}) != fingerprint({"w": torch.zeros(2)})
    before = training_identity("t", 0, result_config(params), {"train": fingerprint(frame)})
    after = training_identity("t", 0, {**result_config(params), "hidden": 16}, {"train": "other"})
    assert identity_differences(before, after) == ["config.hidden: 8 -> 16", "train data changed"]


# --------------------------------------------------------------------------- corrupt files, temp files


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_truncated_last_state_falls_back_to_the_newest_good_one(tmp_path, uninterrupted, caplog):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 3), cfg=config(selection_metric="valid_loss"))
    truncate(tmp_path / LAST)
    expected = max(epoch_of(tmp_path / BEST), epoch_of(tmp_path / PREVIOUS))  # best is a copy, not a link
    store = ResumeStore(tmp_path)
    with caplog.at_level(logging.WARNING):
        state = store.load(IDENTITY, "toy.seed_0")
    assert state is not None and state["epoch"] == expected
    assert f"{tmp_path / LAST} is unusable" in caplog.text and "truncated" in caplog.text
    assert f"resuming from {tmp_path}" in caplog.text
    # the full resumed run still equals the uninterrupted one (same config: valid_loss selection)
    reference = run(None, cfg=config(selection_metric="valid_loss"))
    resumed = run(ResumeStore(tmp_path), cfg=config(selection_metric="valid_loss"), model_seed=3)
    assert learning(resumed.history) == learning(reference.history)


def test_corrupt_last_is_dropped_not_rotated_over_the_good_previous(tmp_path):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 2))
    (tmp_path / LAST).write_bytes(b"not a torch file")
    store = ResumeStore(tmp_path)
    state = store.load(IDENTITY)
    assert state["epoch"] in (1, 2)  # previous (1) or best (<= 2)
    store.save({**state, "epoch": state["epoch"] + 1}, IDENTITY)
    assert epoch_of(tmp_path / LAST) == state["epoch"] + 1
    safe_torch_load(tmp_path / PREVIOUS)  # still a good file, not the corrupt one


def test_all_states_corrupt_means_a_fresh_start_with_warnings(tmp_path, caplog):
    with pytest.raises(Killed):
        run(kill_after_epoch(ResumeStore(tmp_path), 2))
    for name in (LAST, PREVIOUS, BEST):
        if (tmp_path / name).exists():
            (tmp_path / name).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert ResumeStore(tmp_path).load(IDENTITY) is None
    assert caplog.text.count("is unusable") >= 2


def test_stray_temp_files_of_a_killed_save_are_removed_on_load_and_save(tmp_path):
    stray = [tmp_path / ".last.pt.k1ll3d.tmp", tmp_path / ".best.pt.abc123.tmp"]
    for path in stray:
        path.write_bytes(b"half a checkpoint")
    ResumeStore(tmp_path).load(IDENTITY)
    assert not any(path.exists() for path in stray)
    (tmp_path / ".previous.pt.zz.tmp").write_bytes(b"x")
    run(ResumeStore(tmp_path), cfg=config(epochs=1))
    assert not list(tmp_path.glob(".*.tmp"))
    # every atomic save does the same beside its own target
    (tmp_path / ".checkpoint.pt.q.tmp").write_bytes(b"x")
    (tmp_path / ".other.pt.q.tmp").write_bytes(b"x")
    atomic_torch_save({"a": 1}, tmp_path / "checkpoint.pt")
    assert not (tmp_path / ".checkpoint.pt.q.tmp").exists() and (tmp_path / ".other.pt.q.tmp").exists()
    (tmp_path / ".valid_logits.parquet.q.tmp").write_bytes(b"x")
    atomic_write(tmp_path / "valid_logits.parquet", lambda tmp: tmp.write_bytes(b"data"))
    assert not (tmp_path / ".valid_logits.parquet.q.tmp").exists()


def test_corrupt_checkpoint_dataset_names_the_file_and_how_to_produce_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"weights": torch.ones(100)}, path)
    truncate(path)
    dataset = TorchCheckpointDataset(str(path), allow_missing=True, how_to_produce="Produce it with `kedro run --pipeline gnn`.")
    with pytest.raises(DatasetError, match=r"checkpoint\.pt is truncated.*Delete .*`kedro run --pipeline gnn`") as error:
        dataset.load()  # allow_missing covers an absent file, never a corrupt one
    assert isinstance(error.value.__cause__, CheckpointError)


def test_training_state_dataset_hands_over_a_store(tmp_path):
    store = TrainingStateDataset(str(tmp_path / "state")).load()
    assert isinstance(store, ResumeStore) and store.directory == tmp_path / "state" and store.resume
    assert TrainingStateDataset(str(tmp_path), resume="false").load().resume is False
    assert TrainingStateDataset(str(tmp_path), resume=False).load().resume is False
    with pytest.raises(Exception, match="not a node output"):
        TrainingStateDataset(str(tmp_path)).save({"epoch": 1})
    with pytest.raises(Exception, match="true or false"):
        TrainingStateDataset(str(tmp_path), resume="maybe")


# --------------------------------------------------------------------------- non-finite losses


class NaNAfter(nn.Module):
    """Cross-entropy that turns NaN after ``good_calls`` training steps."""

    def __init__(self, good_calls: int) -> None:
        super().__init__()
        self.good_calls, self.calls = good_calls, 0

    def forward(self, logits, labels):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, labels)
        return loss * math.nan if self.calls > self.good_calls else loss


def test_nonfinite_failure_names_the_kept_state_and_keeps_it(tmp_path, monkeypatch):
    import streamguard.training.loop as loop

    steps_per_epoch = math.ceil(len(TRAIN) / 16)
    monkeypatch.setattr(loop, "build_loss", lambda cfg, labels: NaNAfter(2 * steps_per_epoch))
    with pytest.raises(NonFiniteLossError) as error:
        run(ResumeStore(tmp_path))
    message = str(error.value)
    assert "toy.seed_0" in message and "non-finite loss at epoch 3" in message
    assert f"after epoch 2) is kept in {tmp_path}" in message
    assert epoch_of(tmp_path / LAST) == 2 and safe_torch_load(tmp_path / LAST)["finished"] is False
