"""The shared loop on tiny synthetic data: learning, determinism, resume, EMA, AMP fallback, NaNs;
plus its config, seeding and checkpoint helpers."""

from __future__ import annotations

import io
import logging
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from streamguard.training import (
    TIMING_KEYS,
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
    atomic_torch_save,
    capture_rng_state,
    config_hash,
    embed,
    fit,
    predict_logits,
    restore_rng_state,
    safe_torch_load,
    seed_everything,
)
from streamguard.training.components import build_scheduler, resolve_amp


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# --------------------------------------------------------------------------- tiny tracks


class VectorDataset(Dataset):
    """Linearly separable-ish 2-class vectors with label noise; ``labels`` attribute like the real datasets."""

    def __init__(self, n: int, seed: int, dim: int = 8) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=generator)
        direction = torch.linspace(-1, 1, dim)
        score = self.x @ direction + 0.3 * torch.randn(n, generator=generator)
        self.labels = (score > 0.4).long().tolist()  # imbalanced: fewer positives

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "label": self.labels[i], "idx": 1000 + i}


def collate_vectors(items: list[dict]) -> dict:
    return {
        "x": torch.stack([item["x"] for item in items]),
        "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
        "idx": torch.tensor([item["idx"] for item in items], dtype=torch.long),
    }


class MLP(nn.Module):
    def __init__(self, dim: int = 8, hidden: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.LayerNorm(hidden))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 2))
        self.embedding_dim = hidden

    def encode(self, batch: dict) -> torch.Tensor:
        return self.encoder(batch["x"])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.encode(batch))


class TokenDataset(Dataset):
    """Variable-length token sequences; label = whether token 7 occurs."""

    def __init__(self, n: int, seed: int) -> None:
        rng = random.Random(seed)
        self.sequences = [[rng.randrange(2, 20) for _ in range(rng.randrange(3, 40))] for _ in range(n)]
        self.labels = [int(7 in seq) for seq in self.sequences]
        self.lengths = [len(seq) for seq in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.sequences[i], "label": self.labels[i], "idx": i}


def collate_tokens(items: list[dict]) -> dict:
    from streamguard.training import pad_token_batch

    input_ids, attention_mask = pad_token_batch([item["input_ids"] for item in items], pad_id=0, pad_to_multiple_of=8)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([item["label"] for item in items]),
        "idx": torch.tensor([item["idx"] for item in items]),
    }


class BagOfTokens(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(dim, 2)
        self.embedding_dim = dim

    def encode(self, batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (self.embedding(batch["input_ids"]) * mask).max(dim=1).values

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.dropout(self.encode(batch)))


TRAIN, VALID = VectorDataset(96, seed=1), VectorDataset(48, seed=2)


def make_model(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP()


def cfg(**overrides) -> TrainConfig:
    # Collapse detection off: these toy models predict one class for epochs on end, which it would stop
    # (tests/training/test_collapse.py covers it).
    base = dict(epochs=3, batch_size=16, lr=1e-2, progress=False, early_stopping_patience=0, warmup_ratio=0.1,
                collapse_check_from_epoch=0)
    return TrainConfig.from_dict({**base, **overrides})


def learning(history: list[dict]) -> list[dict]:
    """History without wall-clock measurements (those differ between identical runs)."""
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- learning + determinism


def test_loss_decreases_and_model_learns():
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=6))
    losses = [record["train_loss"] for record in result.history]
    assert losses[-1] < losses[0]
    assert result.best_valid_f1 > 0.6
    assert 1 <= result.best_epoch <= 6
    record = result.history[0]
    for key in ("epoch", "train_loss", "valid_loss", "valid_f1", "lr", "seconds", "samples_per_s", "optimizer_steps"):
        assert key in record
    assert "tokens_per_s" not in record  # no attention_mask in these batches
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"
    assert result.state["epoch"] == 6 and result.nonfinite_steps == 0


@pytest.mark.parametrize("metric", ["valid_roc_auc", "valid_f1", "valid_loss"])
def test_best_epoch_follows_the_selection_metric(metric):
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=4, selection_metric=metric, early_stopping_patience=0))
    values = [record[metric] for record in result.history]
    best = (values.index(min(values)) if metric == "valid_loss" else values.index(max(values))) + 1
    assert result.best_epoch == best == result.history[-1]["best_epoch"]
    assert result.best_valid_f1 == result.history[best - 1]["valid_f1"]
    assert all(0.0 <= record["valid_roc_auc"] <= 1.0 for record in result.history)


def test_selection_metric_is_validated():
    with pytest.raises(ValueError, match="selection_metric must be one of"):
        TrainConfig(selection_metric="accuracy")


def test_same_seed_is_identical_different_seed_differs():
    first = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(seed=3))
    second = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(seed=3))
    assert learning(first.history) == learning(second.history)
    assert same_tensors(first.model.state_dict(), second.model.state_dict())
    other = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(seed=4))
    assert learning(other.history) != learning(first.history)


def test_early_stopping_keeps_earliest_best_on_ties():
    class Constant(nn.Module):
        """Always predicts 'vulnerable' (F1 cannot change): the run must stop after `patience` epochs."""

        embedding_dim = 1

        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.tensor([0.0, 5.0]))

        def encode(self, batch):
            return self.bias.expand(batch["x"].shape[0], 2)[:, :1]

        def forward(self, batch):
            return self.bias.expand(batch["x"].shape[0], 2)

    result = fit(Constant(), TRAIN, VALID, collate_vectors, cfg(epochs=6, lr=1e-4, early_stopping_patience=2))
    assert len(result.history) == 3
    assert result.best_epoch == 1
    assert result.state["epochs_without_improvement"] == 2


def test_accumulation_step_count_and_no_leak_across_epochs():
    # 96 examples / batch 16 = 6 micro-batches; accumulation 4 -> 2 optimizer steps per epoch (4 + a flushed 2)
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=2, gradient_accumulation_steps=4))
    assert [record["optimizer_steps"] for record in result.history] == [2, 4]
    effective = result.state["effective"]
    assert effective["steps_per_epoch"] == 2 and effective["total_steps"] == 4
    assert result.state["scheduler_state"]["last_epoch"] == 4
    assert all(p.grad is None for p in result.model.parameters())  # flushed and zeroed at epoch end


def test_warmup_ratio_is_honoured():
    # 96 / 16 = 6 steps per epoch, 2 epochs = 12 steps; warmup 0.5 -> 6 steps: lr reaches base lr after epoch 1
    for scheduler in ("linear", "cosine", "constant"):
        result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=2, lr=3e-3, warmup_ratio=0.5, scheduler=scheduler))
        assert result.state["effective"]["warmup_steps"] == 6
        assert result.history[0]["lr"] == pytest.approx(3e-3, rel=1e-12)
        final_lr = result.history[1]["lr"]
        assert final_lr == pytest.approx(3e-3) if scheduler == "constant" else final_lr == pytest.approx(0.0, abs=1e-12)


def test_build_scheduler_warmup_exact():
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=0.1)
    scheduler = build_scheduler(optimizer, "linear", warmup_steps=4, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    assert lrs[5] < 0.1


def test_ema_validates_and_returns_ema_weights():
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=3, ema=True, ema_decay=0.9))
    state = result.state
    assert state["ema_state"] is not None
    assert int(state["ema_state"]["n_averaged"]) == state["optimizer_steps"] == 18
    ema_weights = {k[len("module.") :]: v for k, v in state["ema_state"].items() if k.startswith("module.")}
    assert not same_tensors(ema_weights, state["model_state"])  # raw and EMA are both stored, and differ
    assert same_tensors(result.model.state_dict(), state["best_model_state"])
    if result.best_epoch == 3:
        assert same_tensors(state["best_model_state"], ema_weights)
    # the optimizer state belongs to the raw weights (same parameter count/shapes as the model)
    assert len(state["optimizer_state"]["state"]) == len(list(make_model().parameters()))


def test_ema_decay_zero_tracks_raw_weights():
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=1, ema=True, ema_decay=0.0))
    ema_weights = {k[len("module.") :]: v for k, v in result.state["ema_state"].items() if k.startswith("module.")}
    assert same_tensors(ema_weights, result.state["model_state"])


def test_focal_loss_and_class_weights_train():
    result = fit(
        make_model(), TRAIN, VALID, collate_vectors,
        cfg(loss="focal", focal_gamma=2.0, class_weighting="balanced", vulnerable_weight_multiplier=1.2),
    )
    assert all(math.isfinite(record["train_loss"]) for record in result.history)
    weights = result.state["effective"]["class_weights"]
    assert weights is not None and weights[1] > weights[0]


def test_weighted_sampler_without_labels_attribute():
    class NoLabels(Dataset):
        def __len__(self):
            return len(TRAIN)

        def __getitem__(self, i):
            return TRAIN[i]

    result = fit(make_model(), NoLabels(), VALID, collate_vectors, cfg(epochs=1, weighted_sampler=True, class_weighting="balanced"))
    assert len(result.history) == 1


def test_nonfinite_loss_raises_after_allowed_skips():
    class NaNModel(MLP):
        def forward(self, batch):
            return super().forward(batch) * float("nan")

    with pytest.raises(NonFiniteLossError, match=r"3 step\(s\) skipped.*max_nonfinite_steps=2.*learning rate"):
        fit(NaNModel(), TRAIN, VALID, collate_vectors, cfg(max_nonfinite_steps=2))
    with pytest.raises(NonFiniteLossError, match="epoch 1, optimizer step 1/6"):
        fit(NaNModel(), TRAIN, VALID, collate_vectors, cfg())


def test_nonfinite_gradient_is_detected():
    class BadGradient(MLP):
        def forward(self, batch):
            logits = super().forward(batch)
            return logits + torch.sqrt(logits * 0.0)  # finite output, NaN gradient (inf * 0)

    with pytest.raises(NonFiniteLossError, match="non-finite gradient"):
        fit(BadGradient(), TRAIN, VALID, collate_vectors, cfg(grad_clip_norm=0.0))


def test_skipped_steps_within_budget_continue():
    class SometimesNaN(MLP):
        calls = 0

        def forward(self, batch):
            SometimesNaN.calls += 1
            logits = super().forward(batch)
            return logits * float("nan") if SometimesNaN.calls == 2 and self.training else logits

    result = fit(SometimesNaN(), TRAIN, VALID, collate_vectors, cfg(epochs=1, max_nonfinite_steps=1))
    assert result.nonfinite_steps == 1
    assert result.history[0]["optimizer_steps"] == 5


def test_param_groups_and_encoder_lr():
    model = make_model()
    groups = [{"params": list(model.head.parameters()), "lr": 1e-2}, {"params": list(model.encoder.parameters()), "lr": 1e-4}]
    result = fit(model, TRAIN, VALID, collate_vectors, cfg(epochs=1), param_groups=groups)
    assert result.state["effective"]["param_group_lrs"] == [1e-2, 1e-4]
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=1, encoder_lr=1e-4))
    names = [group["name"] for group in result.state["optimizer_state"]["param_groups"]]
    lrs = dict(zip(names, result.state["effective"]["param_group_lrs"]))
    assert lrs == {"encoder_decay": 1e-4, "encoder_no_decay": 1e-4, "model_decay": 1e-2, "model_no_decay": 1e-2}
    decay = {g["name"]: g["weight_decay"] for g in result.state["optimizer_state"]["param_groups"]}
    assert decay["model_no_decay"] == 0.0 and decay["model_decay"] == 0.01


def test_token_batches_length_grouping_and_tokens_per_s():
    train, valid = TokenDataset(64, seed=1), TokenDataset(32, seed=2)
    torch.manual_seed(0)
    result = fit(BagOfTokens(), train, valid, collate_tokens, cfg(epochs=4, lr=2e-2), train_lengths=train.lengths)
    assert result.history[-1]["tokens_per_s"] > 0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fp16_amp_is_off_on_cpu_with_a_warning(caplog, monkeypatch):
    from streamguard.training import components

    monkeypatch.setattr(components, "_warned", set())  # warn_once: earlier tests may have said it already
    with caplog.at_level(logging.WARNING):
        settings = resolve_amp("fp16", torch.device("cpu"))
    assert not settings.enabled and settings.dtype is None and not settings.use_scaler
    assert "AMP is off" in caplog.text
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=1, amp_dtype="fp16", device="cpu"))
    assert result.state["effective"]["amp_dtype"] is None


def test_bf16_on_cpu_only_where_the_cpu_has_native_bf16(monkeypatch, caplog):
    from streamguard.training import components

    monkeypatch.setattr(components, "cpu_has_native_bf16", lambda: True)
    settings = resolve_amp("bf16", torch.device("cpu"))
    assert settings.enabled and settings.dtype is torch.bfloat16 and not settings.use_scaler and settings.name == "bf16"
    result = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=1, amp_dtype="bf16", device="cpu"))
    assert result.state["effective"]["amp_dtype"] == "bf16"
    assert np.isfinite(result.history[0]["train_loss"])

    monkeypatch.setattr(components, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(components, "_warned", set())
    with caplog.at_level(logging.WARNING):
        settings = resolve_amp("bf16", torch.device("cpu"))
    assert not settings.enabled and settings.dtype is None
    assert "no native bf16" in caplog.text


def test_predict_logits_and_embed_in_dataset_order():
    model = make_model()
    idx, labels, logits = predict_logits(model, VALID, collate_vectors, batch_size=7, device="cpu")
    assert idx.tolist() == [1000 + i for i in range(len(VALID))]
    assert labels.tolist() == VALID.labels
    assert logits.shape == (len(VALID), 2) and logits.dtype == np.float32
    with torch.no_grad():
        expected = model.eval()(collate_vectors([VALID[i] for i in range(len(VALID))])).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    _, _, embeddings = embed(model, VALID, collate_vectors, batch_size=5, device="cpu")
    assert embeddings.shape == (len(VALID), model.embedding_dim)


def test_scoring_runs_shortest_first_and_returns_dataset_order():
    """Length-ordered scoring batches pad less; every per-row output still comes back in dataset order."""
    from streamguard.training.components import eval_order, make_eval_loader

    dataset = TokenDataset(40, seed=3)
    order = eval_order(dataset)
    assert [dataset.lengths[i] for i in order] == sorted(dataset.lengths) and order != list(range(40))
    batches = list(make_eval_loader(dataset, collate_tokens, 8, torch.device("cpu")))
    padded = sum(batch["input_ids"].numel() for batch in batches)
    in_dataset_order = sum(collate_tokens([dataset[i] for i in range(s, s + 8)])["input_ids"].numel() for s in range(0, 40, 8))
    assert padded < in_dataset_order
    torch.manual_seed(0)
    model = BagOfTokens().eval()
    idx, labels, logits = predict_logits(model, dataset, collate_tokens, batch_size=8, device="cpu")
    assert idx.tolist() == list(range(40)) and labels.tolist() == dataset.labels
    with torch.no_grad():
        one_by_one = np.concatenate([model(collate_tokens([dataset[i]])).numpy() for i in range(40)])
    np.testing.assert_allclose(logits, one_by_one, rtol=1e-5, atol=1e-6)
    _, _, embeddings = embed(model, dataset, collate_tokens, batch_size=8, device="cpu")
    with torch.no_grad():
        np.testing.assert_allclose(embeddings[5], model.encode(collate_tokens([dataset[5]]))[0].numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- resume


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(ema=True, ema_decay=0.8, gradient_accumulation_steps=4, scheduler="cosine", early_stopping_patience=2),
    ],
)
def test_resume_after_an_epoch_equals_an_uninterrupted_run(overrides, tmp_path):
    config = cfg(epochs=3, **overrides)
    full_states: list[dict] = []
    full = fit(make_model(), TRAIN, VALID, collate_vectors, config, save_state=full_states.append)
    assert [state["epoch"] for state in full_states] == [record["epoch"] for record in full.history]

    def stop_after_first_epoch(state: dict) -> None:
        atomic_torch_save(state, tmp_path / "latest.pt")  # a real on-disk round trip, weights-only
        raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(make_model(), TRAIN, VALID, collate_vectors, config, save_state=stop_after_first_epoch)
    saved = safe_torch_load(tmp_path / "latest.pt")
    assert saved["epoch"] == 1

    torch.manual_seed(12345)  # the resumed run starts from a different init and RNG state
    resumed = fit(make_model(seed=99), TRAIN, VALID, collate_vectors, config, resume_state=saved)

    assert learning(resumed.history) == learning(full.history)
    assert resumed.best_epoch == full.best_epoch and resumed.best_valid_f1 == full.best_valid_f1
    assert same_tensors(resumed.model.state_dict(), full.model.state_dict())
    assert same_tensors(resumed.state["model_state"], full.state["model_state"])
    assert same_tensors(resumed.state["optimizer_state"]["state"][0], full.state["optimizer_state"]["state"][0])


def test_resume_from_a_finished_run_trains_nothing():
    states: list[dict] = []
    full = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=2), save_state=states.append)
    again = fit(make_model(seed=5), TRAIN, VALID, collate_vectors, cfg(epochs=2), resume_state=states[-1])
    assert learning(again.history) == learning(full.history)
    assert same_tensors(again.model.state_dict(), full.model.state_dict())


# --------------------------------------------------------------------------- config


def test_config_from_dict_rejects_unknown_keys_and_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown training config key\(s\) \['learning_rate'\].*warmup_ratio"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    config = TrainConfig.from_dict({"lr": "5e-4", "epochs": 2.0})
    assert config.lr == 5e-4 and config.epochs == 2 and isinstance(config.epochs, int)
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("bad", [{"scheduler": "step"}, {"amp_dtype": "fp8"}, {"loss": "hinge"}, {"warmup_ratio": 1.5}])
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ValueError):
        TrainConfig.from_dict(bad)


def test_config_hash_is_stable_and_order_independent():
    assert config_hash({"a": 1, "b": {"c": [1, 2]}}) == config_hash({"b": {"c": [1, 2]}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash(TrainConfig().to_dict())) == 16


# --------------------------------------------------------------------------- seeding


def test_rng_state_round_trip_through_weights_only_load():
    seed_everything(7)
    state = capture_rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    random.random(), np.random.rand(), torch.rand(3)
    restore_rng_state(loaded)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == expected


def test_seed_everything_returns_a_seeded_generator():
    first = torch.randperm(10, generator=seed_everything(3)).tolist()
    assert torch.randperm(10, generator=seed_everything(3)).tolist() == first


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_without_temp_files(tmp_path):
    seed_everything(0)
    obj = {
        "model_state": make_model().state_dict(),
        "rng_state": capture_rng_state(),
        "config": {"training": TrainConfig().to_dict(), "nested": {"list": [1, 2.5, None, "x"], "flag": True}},
        "history": [{"epoch": 1, "valid_f1": 0.5}],
    }
    path = tmp_path / "sub" / "model.pt"
    atomic_torch_save(obj, path)
    atomic_torch_save(obj, path)  # overwriting works too
    loaded = safe_torch_load(path)
    assert same_tensors(loaded["model_state"], obj["model_state"])
    assert loaded["config"] == obj["config"] and loaded["history"] == obj["history"]
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_truncated_or_missing_checkpoint_raises_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.arange(1000.0)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt.*Delete .*re-run the training pipeline") as error:
        safe_torch_load(path)
    assert isinstance(error.value, RuntimeError)
    with pytest.raises(CheckpointError, match="does not exist"):
        safe_torch_load(tmp_path / "missing.pt")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        safe_torch_load(path)


def test_failed_save_leaves_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "model.pt"
    atomic_torch_save({"version": 1}, path)
    with pytest.raises(Exception):
        atomic_torch_save({"bad": lambda: None}, path)  # lambdas cannot be pickled
    assert safe_torch_load(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# --------------------------------------------------------------------------- GradScaler path (simulated on CPU)


@pytest.fixture
def scaler_on_cpu(monkeypatch):
    """CUDA fp16 is not available here: run the GradScaler code path with CPU bf16 autocast instead."""
    from streamguard.training import loop

    monkeypatch.setattr(loop, "resolve_amp", lambda dtype, device: loop.AmpSettings(True, torch.bfloat16, True, "fp16"))


def test_grad_scaler_path_trains_and_resumes(scaler_on_cpu, tmp_path):
    config = cfg(epochs=2, amp_dtype="fp16")
    states: list[dict] = []
    full = fit(make_model(), TRAIN, VALID, collate_vectors, config, save_state=states.append)
    assert all(math.isfinite(record["train_loss"]) for record in full.history)
    assert full.state["scaler_state"]["scale"] > 0 and full.history[-1]["optimizer_steps"] == 12
    resumed = fit(make_model(seed=3), TRAIN, VALID, collate_vectors, config, resume_state=states[0])
    assert learning(resumed.history) == learning(full.history)
    assert same_tensors(resumed.model.state_dict(), full.model.state_dict())


def test_grad_scaler_overflow_is_skipped_not_counted_as_nonfinite(scaler_on_cpu):
    class OverflowOnce(MLP):
        calls = 0

        def forward(self, batch):
            OverflowOnce.calls += 1
            logits = super().forward(batch)
            # finite loss (~1e36) whose scaled gradient overflows float32: a normal fp16-AMP event
            return logits * 1e36 if OverflowOnce.calls == 1 else logits

    result = fit(OverflowOnce(), TRAIN, VALID, collate_vectors, cfg(epochs=1, amp_dtype="fp16"))
    record = result.history[0]
    assert result.nonfinite_steps == 0
    assert record["amp_skipped_steps"] == 1 and record["optimizer_steps"] == 5
    assert result.state["scaler_state"]["scale"] == 65536.0 / 2


def test_worker_processes_do_not_change_the_result():
    """Shuffling and dropout do not depend on num_workers / persistent_workers / prefetch_factor."""
    in_process = fit(make_model(), TRAIN, VALID, collate_vectors, cfg(epochs=3))
    with_workers = fit(
        make_model(), TRAIN, VALID, collate_vectors,
        cfg(epochs=3, num_workers=1, persistent_workers=True, prefetch_factor=2),
    )
    assert learning(with_workers.history) == learning(in_process.history)
