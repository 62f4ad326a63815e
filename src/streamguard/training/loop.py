"""The one training loop every track uses (transformer, GNN, fusion head).

A track brings a Dataset, a ``collate_fn`` returning ``{"labels", "idx", ...model inputs}`` and a
model with ``forward(batch) -> logits [B, 2]``, ``encode(batch) -> [B, D]`` and ``embedding_dim``.
While training, ``forward`` may instead return ``{"logits", "auxiliary_loss"}`` (an extra objective
the model weighs itself, e.g. the transformer's token-level line supervision): the loop adds that
loss to the classification loss and records its mean as ``train_auxiliary_loss``.
The loop owns everything else: seeding, batching, AdamW + warmup schedule, accumulation, AMP,
clipping, EMA, non-finite detection, validation, best-epoch selection, early stopping, collapse
detection (:mod:`streamguard.training.collapse`), and a
resumable state dict (raw and EMA weights, optimizer, scheduler, scaler, RNG, history).

This module holds the epoch loop and its state handling; :mod:`~streamguard.training.components`
builds what it runs with (device, AMP, optimizer groups, schedule, loaders) and
:mod:`~streamguard.training.predict` runs models without training them (validation, logits, embeddings).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from streamguard.runtime.progress import progress
from streamguard.training.batching import move_to_device
from streamguard.training.collapse import check_collapse
from streamguard.training.components import (


    AmpSettings,
    autocast_context,
    cpu_copy,
    make_eval_loader,
    make_train_loader,
    warn_once,
    build_scheduler,
    dataset_labels,
    default_param_groups,
    resolve_amp,
    resolve_device,
)
from streamguard.training.config import TrainConfig
from streamguard.training.distributed import DataParallel
from streamguard.training.fast_dropout import fast_dropout_layers
from streamguard.training.predict import validate_epoch
from streamguard.training.losses import build_loss, split_output
from streamguard.training.seeding import capture_rng_state, epoch_seed, restore_rng_state, seed_everything
from streamguard.training.weighting import apply_triple_weighting_guard


logger = logging.getLogger(__name__)

# Keys of an epoch record that measure speed, not learning: they differ between identical runs.
TIMING_KEYS = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")


class NonFiniteLossError(RuntimeError):
    """Training produced more non-finite losses/gradients than ``max_nonfinite_steps`` allows."""


@dataclass
class FitResult:
    """What :func:`fit` returns. ``model`` holds the best epoch's weights (the EMA weights when EMA is on).

    The best epoch is the one with the best ``selection_metric``; ``best_valid_f1`` is that epoch's F1 at 0.5.
    """

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_valid_f1: float
    state: dict[str, Any] = field(repr=False)
    nonfinite_steps: int = 0


def _selection_score(record: Mapping[str, Any], metric: str) -> float:
    """Higher is better: the loss is negated."""
    return -float(record[metric]) if metric == "valid_loss" else float(record[metric])


def _class_weights_of(criterion: nn.Module) -> list[float] | None:
    """The class weights a criterion applies (CE ``weight`` or focal ``alpha``), for the record."""
    weights = getattr(criterion, "weight", None)
    if weights is None:
        weights = getattr(criterion, "alpha", None)
    return None if weights is None else [float(w) for w in weights]


def _grad_norm(parameters: list[nn.Parameter], clip: float) -> torch.Tensor:
    """Total gradient norm (clipping first when ``clip`` > 0); used to detect non-finite gradients."""
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(parameters, clip)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


class _Trainer:
    """State of one fit() call; split out so each piece of the loop reads on its own."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        device: torch.device,
        amp: AmpSettings,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
        scaler: torch.amp.GradScaler,
        ema: torch.optim.swa_utils.AveragedModel | None,
        criterion: nn.Module,
        steps_per_epoch: int,
    ) -> None:
        self.model, self.config, self.device, self.amp = model, config, device, amp
        self.optimizer, self.scheduler, self.scaler, self.ema = optimizer, scheduler, scaler, ema
        self.criterion = criterion
        self.steps_per_epoch = steps_per_epoch
        self.trainable = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        self.nonfinite_steps = 0
        self.optimizer_steps = 0
        self.amp_overflow_steps = 0
        # Data parallel: forward through the DDP wrapper of ``model`` (same parameters), set by fit().
        self.parallel: DataParallel | None = None
        self.train_model: nn.Module = model

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, float]:
        config, model = self.config, self.model
        model.train()
        accumulation = config.gradient_accumulation_steps
        n_batches = len(loader)
        loss_sum, loss_samples, samples, tokens, has_tokens = 0.0, 0, 0, 0, False
        auxiliary_sum, has_auxiliary = 0.0, False
        group_is_bad = False
        step_in_epoch = 0
        self.optimizer.zero_grad(set_to_none=True)
        bar = progress(loader, desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, leave=False, dynamic_ncols=True)
        for batch_index, batch in enumerate(bar):
            group_start = (batch_index // accumulation) * accumulation
            # The epoch's last group may be short: it is flushed here, never carried into the next epoch.
            group_size = min(accumulation, n_batches - group_start)
            batch = move_to_device(batch, self.device, non_blocking=True)
            labels = batch["labels"]
            batch_size = int(labels.numel())
            samples += batch_size
            if "attention_mask" in batch:
                has_tokens = True
                tokens += int(batch["attention_mask"].sum())
            last_of_group = batch_index + 1 == group_start + group_size
            with self._no_sync(not last_of_group), autocast_context(self.device, self.amp):
                logits, auxiliary = split_output(self.train_model(batch))
            loss = self.criterion(logits.float(), labels)
            if auxiliary is not None:
                has_auxiliary = True
                loss = loss + auxiliary.float()
            loss_value = float(loss.detach())
            if math.isfinite(loss_value):
                self.scaler.scale(loss / group_size).backward()
                loss_sum += loss_value * batch_size
                loss_samples += batch_size
                if auxiliary is not None:
                    auxiliary_sum += float(auxiliary.detach()) * batch_size
                if batch_index % 10 == 0:
                    bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            else:
                group_is_bad = True
            if batch_index + 1 == group_start + group_size:
                step_in_epoch += 1
                self._optimizer_step(group_is_bad, epoch, step_in_epoch)
                group_is_bad = False
        bar.close()
        if self.parallel is not None:  # the whole global batch's numbers, the same in every process
            loss_sum, loss_samples, samples, tokens, auxiliary_sum = self.parallel.sum(
                loss_sum, loss_samples, samples, tokens, auxiliary_sum
            )
        stats = {
            "train_loss": loss_sum / loss_samples if loss_samples else float("nan"),
            "samples": samples,
            "tokens": tokens if has_tokens else -1,
        }
        if has_auxiliary:  # part of train_loss; recorded apart to see what the extra objective costs
            stats["train_auxiliary_loss"] = auxiliary_sum / loss_samples if loss_samples else float("nan")
        return stats

    def _no_sync(self, skip: bool):
        return self.parallel.no_sync(self.train_model, skip) if self.parallel is not None else contextlib.nullcontext()

    def _optimizer_step(self, loss_was_nonfinite: bool, epoch: int, step: int) -> None:
        if loss_was_nonfinite:
            self._skip_step(epoch, step, "loss")
            return
        if self.amp.use_scaler:
            self.scaler.unscale_(self.optimizer)
        norm = _grad_norm(self.trainable, self.config.grad_clip_norm)
        if not torch.isfinite(norm) and not self.amp.use_scaler:
            self._skip_step(epoch, step, "gradient")
            return
        # With fp16 an inf gradient is a normal overflow: the scaler skips the step and lowers its scale.
        scale_before = self.scaler.get_scale() if self.amp.use_scaler else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if scale_before is not None and self.scaler.get_scale() < scale_before:
            self.amp_overflow_steps += 1
            if self.scaler.get_scale() < 1.0:  # still inf at a scale below 1: the gradients really are broken
                self._skip_step(epoch, step, "gradient (GradScaler scale fell below 1)")
            return
        self.scheduler.step()
        self.optimizer_steps += 1
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            # Buffers (BatchNorm statistics, position ids) are copied, not averaged: integer buffers
            # would be corrupted by averaging.
            for ema_buffer, buffer in zip(self.ema.module.buffers(), self.model.buffers(), strict=True):
                ema_buffer.copy_(buffer)

    def _skip_step(self, epoch: int, step: int, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_steps += 1
        logger.warning(
            "non-finite %s at epoch %d, optimizer step %d/%d: step skipped (%d skipped so far)",
            what, epoch, step, self.steps_per_epoch, self.nonfinite_steps,
        )
        if self.nonfinite_steps > self.config.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"non-finite {what} at epoch {epoch}, optimizer step {step}/{self.steps_per_epoch}: "
                f"{self.nonfinite_steps} step(s) skipped, more than max_nonfinite_steps="
                f"{self.config.max_nonfinite_steps}. Lower the learning rate (lr={self.config.lr}), enable "
                f"gradient clipping (grad_clip_norm > 0), use bf16 or fp32 instead of fp16 AMP, or check the "
                f"data for broken inputs or labels outside {{0, 1}}."
            )


def fit(
    model: nn.Module,
    train_dataset: Dataset,
    valid_dataset: Dataset,
    collate_fn: Callable[[list], dict],
    config: TrainConfig,
    *,
    train_lengths: Sequence[int] | None = None,
    param_groups: list[dict] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    resume_state: Mapping[str, Any] | None = None,
    save_state: Callable[[dict], None] | None = None,
    evaluate: Callable[..., dict[str, float]] | None = None,
) -> FitResult:
    """Train ``model`` and return it with its best epoch's weights (by ``config.selection_metric``:
    validation ROC-AUC by default, F1 at 0.5 or loss on request; ties keep the earlier epoch).

    ``train_lengths`` enables length-grouped batches (less padding); ``param_groups`` replaces the
    default AdamW groups (fusion: a lower lr for fine-tuned encoders); ``save_state`` receives a
    resumable snapshot after every epoch and ``resume_state`` continues from one, giving the same
    result (on CPU, bit for bit) as a run that was never interrupted (the tracks wire both to a
    :class:`streamguard.training.resume.ResumeStore` through ``resumable_fit``).
    ``evaluate(model, valid_loader, device, amp)`` replaces the classification validation for
    other objectives (masked-language-model pretraining reports ``valid_loss`` and perplexity).
    """
    if config.lr == "auto":
        raise ValueError("lr='auto' is resolved before fit by streamguard.training.lr_finder.resolve_auto_lr (the tracks do it)")
    config, weighting_guard = apply_triple_weighting_guard(config)  # the original's adjustment (or an error)
    loader_generator = seed_everything(config.seed, config.deterministic)
    sampler_generator = torch.Generator()
    # Launched on N processes (streamguard.training.distributed): Accelerate picks the device, wraps
    # the model in DDP, shards batches and gathers validation; only process 0 saves and logs.
    parallel = DataParallel.from_environment(config.device, config.amp_dtype)
    if parallel is not None and not parallel.is_main:
        on_epoch_end = save_state = None
    device = parallel.device if parallel is not None else resolve_device(config.device)
    amp = resolve_amp(config.amp_dtype, device)
    if len(train_dataset) == 0 or len(valid_dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(
            f"fit needs non-empty train and valid sets (got {len(train_dataset)} and {len(valid_dataset)} examples)"  # type: ignore[arg-type]
        )
    model.to(device)

    needs_labels = config.class_weighting == "balanced" or config.weighted_sampler
    train_labels = dataset_labels(train_dataset, collate_fn) if needs_labels else None
    if config.weighted_sampler and config.class_weighting == "balanced":
        warn_once(
            "weighted_sampler and class_weighting='balanced' both correct the class imbalance: together they "
            "over-predict the vulnerable class (the original system's 65-70 % positive rate)."
        )
    criterion = build_loss(config, train_labels).to(device)

    train_loader = make_train_loader(
        train_dataset, collate_fn, config, device, (sampler_generator, loader_generator), train_lengths, train_labels
    )
    valid_loader = make_eval_loader(valid_dataset, collate_fn, config.eval_batch_size, device, config)
    if len(train_loader) == 0:
        raise ValueError(
            f"{len(train_dataset)} training examples give no batch with batch_size={config.batch_size} "  # type: ignore[arg-type]
            f"and drop_last={config.drop_last}"
        )
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_ratio * total_steps))

    groups = param_groups if param_groups is not None else default_param_groups(model, config)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = build_scheduler(optimizer, config.scheduler, warmup_steps, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.use_scaler)
    ema = None
    if config.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=False)
        ema.module.eval()
    trainer = _Trainer(model, config, device, amp, optimizer, scheduler, scaler, ema, criterion, steps_per_epoch)
    if parallel is not None:
        trainer.parallel, trainer.train_model = parallel, parallel.wrap_model(model)
        train_loader, valid_loader = parallel.shard(train_loader), parallel.shard_for_evaluation(valid_loader)

    effective = {
        "device": str(device),
        "amp_dtype": amp.name,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
        "param_group_lrs": [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups],
        "class_weights": _class_weights_of(criterion),
        "triple_weighting_guard": weighting_guard,  # both original values when the guard changed them
    }
    if parallel is not None:
        effective["data_parallel_processes"] = parallel.num_processes
    logger.info("training: %s", effective)

    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_f1, best_score, stale_epochs, start_epoch = 0, -math.inf, -math.inf, 0, 1
    if resume_state is not None:
        start_epoch = _restore(resume_state, config, trainer)
        history = [dict(record) for record in resume_state["history"]]
        best_state = resume_state["best_model_state"]
        best_epoch, best_f1 = int(resume_state["best_epoch"]), float(resume_state["best_valid_f1"])
        best_score = float(resume_state.get("best_score", best_f1))
        stale_epochs = int(resume_state["epochs_without_improvement"])

    def snapshot(epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model_state": cpu_copy(model.state_dict()),
            "ema_state": cpu_copy(ema.state_dict()) if ema is not None else None,
            "best_model_state": best_state,
            "best_epoch": best_epoch,
            "best_valid_f1": best_f1,
            "best_score": best_score,
            "optimizer_state": cpu_copy(optimizer.state_dict()),
            "scheduler_state": cpu_copy(scheduler.state_dict()),
            "scaler_state": cpu_copy(scaler.state_dict()),
            "rng_state": capture_rng_state(),
            "history": [dict(record) for record in history],
            "epochs_without_improvement": stale_epochs,
            "nonfinite_steps": trainer.nonfinite_steps,
            "optimizer_steps": trainer.optimizer_steps,
            "amp_skipped_steps": trainer.amp_overflow_steps,
            "effective": effective,
            "config": config.to_dict(),
        }

    state: dict[str, Any] | None = None
    patience = config.early_stopping_patience
    stopped_early = patience > 0 and stale_epochs >= patience
    last_epoch = start_epoch - 1  # the last completed epoch (the resumed one when nothing is left to run)
    for epoch in range(start_epoch, config.epochs + 1):
        if stopped_early:
            break
        started = time.perf_counter()
        # This epoch's order (and worker seeds) depend on (seed, epoch) only: resuming reproduces them.
        sampler_generator.manual_seed(epoch_seed(config.seed, epoch, stream=0))
        loader_generator.manual_seed(epoch_seed(config.seed, epoch, stream=1))
        with fast_dropout_layers(model, device) if config.fast_dropout else contextlib.nullcontext():
            train_stats = trainer.train_epoch(train_loader, epoch)
        train_seconds = time.perf_counter() - started
        valid_stats = (evaluate or validate_epoch)(trainer.eval_model, valid_loader, device, amp)
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_stats["train_loss"],
            **({"train_auxiliary_loss": train_stats["train_auxiliary_loss"]} if "train_auxiliary_loss" in train_stats else {}),
            **valid_stats,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "optimizer_steps": trainer.optimizer_steps,
            "nonfinite_steps": trainer.nonfinite_steps,
            "seconds": seconds,
            "train_seconds": train_seconds,
            "samples_per_s": train_stats["samples"] / max(train_seconds, 1e-9),
        }
        if train_stats["tokens"] >= 0:
            record["tokens_per_s"] = train_stats["tokens"] / max(train_seconds, 1e-9)
        if amp.use_scaler:  # fp16 overflow steps the GradScaler skipped (normal while it calibrates)
            record["amp_skipped_steps"] = trainer.amp_overflow_steps
        score = _selection_score(record, config.selection_metric)
        if score > best_score:  # strict: a tie keeps the earlier epoch
            best_score, best_f1, best_epoch, stale_epochs = score, record.get("valid_f1", float("nan")), epoch, 0
            best_state = cpu_copy(trainer.eval_model.state_dict())
        else:
            stale_epochs += 1
        record["best_valid_f1"] = best_f1
        record["best_epoch"] = best_epoch
        history.append(record)
        last_epoch = epoch
        logger.info(
            "epoch %d/%d: train_loss %.4f %s (best %s @ epoch %d) %.1fs",
            epoch, config.epochs, record["train_loss"],
            " ".join(f"{key} {value:.4f}" for key, value in valid_stats.items() if key.startswith("valid_")),
            config.selection_metric, best_epoch, seconds,
        )
        if on_epoch_end is not None:
            on_epoch_end(dict(record))
        check_collapse(history, config)  # raises TrainingCollapseError (with a report) on a collapse
        stopped_early = patience > 0 and stale_epochs >= patience
        state = None
        if save_state is not None:
            state = snapshot(epoch)
            save_state(state)
        if stopped_early:
            logger.info("early stopping after epoch %d: no %s improvement in %d epoch(s)", epoch, config.selection_metric, patience)
            break
    if state is None:
        state = snapshot(last_epoch)

    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_valid_f1=float(best_f1),
        state=state,
        nonfinite_steps=trainer.nonfinite_steps,
    )


def _restore(resume_state: Mapping[str, Any], config: TrainConfig, trainer: _Trainer) -> int:
    """Load a :func:`fit` snapshot into the fresh trainer; returns the first epoch still to run."""
    saved_config = dict(resume_state.get("config") or {})
    ignored = {"progress", "num_workers", "prefetch_factor", "persistent_workers", "device", "eval_batch_size"}
    changed = sorted(k for k in saved_config if k not in ignored and saved_config.get(k) != getattr(config, k, None))
    if changed:
        warn_once(f"resuming with a changed training config ({', '.join(changed)}): the result will differ from an uninterrupted run")
    trainer.model.load_state_dict(resume_state["model_state"])
    trainer.optimizer.load_state_dict(resume_state["optimizer_state"])
    trainer.scheduler.load_state_dict(resume_state["scheduler_state"])
    if resume_state.get("scaler_state"):
        trainer.scaler.load_state_dict(resume_state["scaler_state"])
    if trainer.ema is not None:
        if resume_state.get("ema_state") is not None:
            trainer.ema.load_state_dict(resume_state["ema_state"])
        else:
            warn_once("resuming with ema=True from a state without EMA weights: the EMA restarts from the raw weights")
    trainer.nonfinite_steps = int(resume_state.get("nonfinite_steps", 0))
    trainer.optimizer_steps = int(resume_state.get("optimizer_steps", 0))
    trainer.amp_overflow_steps = int(resume_state.get("amp_skipped_steps", 0))
    restore_rng_state(resume_state["rng_state"])
    return int(resume_state["epoch"]) + 1
