"""The one training loop every track uses (transformer, GNN, fusion head).

A track brings a Dataset, a ``collate_fn`` returning ``{"labels", "idx", ...model inputs}`` and a
model with ``forward(batch) -> logits [B, 2]``, ``encode(batch) -> [B, D]`` and ``embedding_dim``.
The loop owns everything else: seeding, batching, AdamW + warmup schedule, accumulation, AMP,
clipping, EMA, non-finite detection, validation, best-epoch selection, early stopping, collapse
detection (:mod:`streamguard.training.collapse`), and a
resumable state dict (raw and EMA weights, optimizer, scheduler, scaler, RNG, history).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler

from streamguard.runtime.progress import progress
from streamguard.training.batching import LengthGroupedSampler, move_to_device
from streamguard.training.collapse import check_collapse
from streamguard.training.config import TrainConfig
from streamguard.training.distributed import DataParallel
from streamguard.training.losses import build_loss
from streamguard.training.seeding import (
    capture_rng_state,
    epoch_seed,
    restore_rng_state,
    seed_everything,
    seed_worker,
)
from streamguard.training.weighting import apply_triple_weighting_guard

logger = logging.getLogger(__name__)

# Keys of an epoch record that measure speed, not learning: they differ between identical runs.
TIMING_KEYS = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


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


@dataclass(frozen=True)
class AmpSettings:
    """Autocast dtype actually used (after CPU/bf16 fallbacks) and whether a GradScaler is needed."""

    enabled: bool
    dtype: torch.dtype | None
    use_scaler: bool
    name: str | None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_amp(amp_dtype: str | None, device: torch.device) -> AmpSettings:
    """Mixed precision only on CUDA; bf16 falls back to fp16 where the GPU lacks it (with a warning)."""
    off = AmpSettings(False, None, False, None)
    if amp_dtype is None:
        return off
    if device.type != "cuda":
        _warn_once(f"amp_dtype={amp_dtype!r} requested but training runs on {device.type}: AMP is off (fp32).")
        return off
    if amp_dtype == "bf16":
        if torch.cuda.is_bf16_supported():
            return AmpSettings(True, torch.bfloat16, False, "bf16")
        _warn_once("amp_dtype='bf16' is not supported by this GPU: falling back to fp16 with a GradScaler.")
    return AmpSettings(True, torch.float16, True, "fp16")


def default_param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norm weights; ``model.encoder`` at ``encoder_lr`` if set."""
    encoder = getattr(model, "encoder", None) if config.encoder_lr is not None else None
    if config.encoder_lr is not None and not isinstance(encoder, nn.Module):
        _warn_once(f"encoder_lr={config.encoder_lr} ignored: {type(model).__name__} has no `encoder` submodule.")
        encoder = None
    encoder_params = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        no_decay = parameter.ndim < 2 or name.endswith("bias") or "norm" in name.lower()
        buckets.setdefault((id(parameter) in encoder_params, no_decay), []).append(parameter)
    groups = []
    for (in_encoder, no_decay), params in sorted(buckets.items()):
        groups.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else config.weight_decay,
                "lr": config.encoder_lr if in_encoder else config.lr,
                "name": f"{'encoder' if in_encoder else 'model'}_{'no_decay' if no_decay else 'decay'}",
            }
        )
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return groups


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Hugging Face warmup schedules, stepped once per optimizer step."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if name == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    if name == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    if name == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup_steps)
    raise ValueError(f"unknown scheduler {name!r}; use linear, cosine or constant")


def dataset_labels(dataset: Dataset, collate_fn: Callable[[list], dict]) -> list[int]:
    """Training labels: the dataset's ``labels`` attribute when it has one, else read through the collate."""
    labels = getattr(dataset, "labels", None)
    if labels is not None and len(labels) == len(dataset):  # type: ignore[arg-type]
        return [int(label) for label in labels]
    loader = DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=collate_fn)
    return [int(label) for batch in loader for label in batch["labels"].tolist()]


def _cpu_copy(value: Any) -> Any:
    """A detached CPU snapshot (tensors cloned) of nested state, safe from later in-place updates."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {key: _cpu_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cpu_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_cpu_copy(item) for item in value)
    return copy.deepcopy(value)


def _loader_kwargs(config: TrainConfig, collate_fn: Callable, device: torch.device) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "collate_fn": collate_fn,
        "num_workers": config.num_workers,
        "pin_memory": device.type == "cuda",
    }
    if config.num_workers > 0:
        kwargs["worker_init_fn"] = seed_worker
        kwargs["persistent_workers"] = config.persistent_workers
        if config.prefetch_factor is not None:
            kwargs["prefetch_factor"] = config.prefetch_factor
    return kwargs


def _train_loader(
    dataset: Dataset,
    collate_fn: Callable,
    config: TrainConfig,
    device: torch.device,
    generators: tuple[torch.Generator, torch.Generator],
    train_lengths: Sequence[int] | None,
    train_labels: Sequence[int] | None,
) -> DataLoader:
    """Training batches. The sampler has its own generator, separate from the loader's (worker seeds):
    the example order is then the same with or without (persistent) workers."""
    sampler_generator, loader_generator = generators
    kwargs = {**_loader_kwargs(config, collate_fn, device), "generator": loader_generator}
    if config.weighted_sampler:
        counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=2)
        per_class = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        weights = torch.as_tensor(per_class[np.asarray(train_labels, dtype=np.int64)], dtype=torch.double)
        sampler = WeightedRandomSampler(weights, num_samples=len(dataset), replacement=True, generator=sampler_generator)
        if train_lengths is not None and config.group_by_length:
            _warn_once("weighted_sampler is on, so batches are not grouped by length.")
        return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=config.drop_last, **kwargs)
    if train_lengths is not None and config.group_by_length:
        if len(train_lengths) != len(dataset):  # type: ignore[arg-type]
            raise ValueError(f"train_lengths has {len(train_lengths)} entries for {len(dataset)} examples")
        batch_sampler = LengthGroupedSampler(train_lengths, config.batch_size, sampler_generator, drop_last=config.drop_last)
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    sampler = RandomSampler(dataset, generator=sampler_generator)
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=config.drop_last, **kwargs)


def _eval_loader(
    dataset: Dataset, collate_fn: Callable, batch_size: int, device: torch.device, config: TrainConfig | None = None
) -> DataLoader:
    kwargs = _loader_kwargs(config, collate_fn, device) if config is not None else {"collate_fn": collate_fn}
    # Its own generator: creating the iterator draws a seed, which must not come from the global RNG
    # (that would make dropout depend on whether validation workers are persistent).
    generator = torch.Generator()
    generator.manual_seed(0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=generator, **kwargs)


def _autocast(device: torch.device, amp: AmpSettings):
    return torch.autocast(device_type=device.type, dtype=amp.dtype, enabled=amp.enabled)


@torch.no_grad()
def _validate(model: nn.Module, loader: DataLoader, device: torch.device, amp: AmpSettings) -> dict[str, float]:
    """Unweighted CE (comparable across runs and losses), F1 at P(vulnerable) >= 0.5 and ROC-AUC."""
    from sklearn.metrics import f1_score, roc_auc_score

    model.eval()
    gather = getattr(loader, "gather", None)  # data parallel: every process scores the whole set
    loss_sum, count = 0.0, 0
    labels_all, probs_all = [], []
    for batch in loader:
        batch = move_to_device(batch, device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(batch)
        logits = logits.float()
        labels = batch["labels"]
        if gather is not None:
            logits, labels = gather((logits, labels))
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        count += int(labels.numel())
        probs_all.append(torch.softmax(logits, dim=-1)[:, 1].cpu())
        labels_all.append(labels.cpu())
    labels_np = torch.cat(labels_all).numpy()
    probs_np = torch.cat(probs_all).numpy()
    predictions = (probs_np >= 0.5).astype(np.int64)
    both_classes = np.unique(labels_np).size == 2
    return {
        "valid_loss": loss_sum / max(count, 1),
        "valid_predicted_positive_rate": float(predictions.mean()),  # 0 or 1: a collapse signal
        "valid_f1": float(f1_score(labels_np, predictions, pos_label=1, zero_division=0)),
        "valid_roc_auc": float(roc_auc_score(labels_np, probs_np)) if both_classes else 0.5,
    }


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
            with self._no_sync(not last_of_group), _autocast(self.device, self.amp):
                logits = self.train_model(batch)
            loss = self.criterion(logits.float(), labels)
            loss_value = float(loss.detach())
            if math.isfinite(loss_value):
                self.scaler.scale(loss / group_size).backward()
                loss_sum += loss_value * batch_size
                loss_samples += batch_size
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
            loss_sum, loss_samples, samples, tokens = self.parallel.sum(loss_sum, loss_samples, samples, tokens)
        return {
            "train_loss": loss_sum / loss_samples if loss_samples else float("nan"),
            "samples": samples,
            "tokens": tokens if has_tokens else -1,
        }

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
        _warn_once(
            "weighted_sampler and class_weighting='balanced' both correct the class imbalance: together they "
            "over-predict the vulnerable class (the original system's 65-70 % positive rate)."
        )
    criterion = build_loss(config, train_labels).to(device)

    train_loader = _train_loader(
        train_dataset, collate_fn, config, device, (sampler_generator, loader_generator), train_lengths, train_labels
    )
    valid_loader = _eval_loader(valid_dataset, collate_fn, config.eval_batch_size, device, config)
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
            "model_state": _cpu_copy(model.state_dict()),
            "ema_state": _cpu_copy(ema.state_dict()) if ema is not None else None,
            "best_model_state": best_state,
            "best_epoch": best_epoch,
            "best_valid_f1": best_f1,
            "best_score": best_score,
            "optimizer_state": _cpu_copy(optimizer.state_dict()),
            "scheduler_state": _cpu_copy(scheduler.state_dict()),
            "scaler_state": _cpu_copy(scaler.state_dict()),
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
        train_stats = trainer.train_epoch(train_loader, epoch)
        train_seconds = time.perf_counter() - started
        valid_stats = (evaluate or _validate)(trainer.eval_model, valid_loader, device, amp)
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_stats["train_loss"],
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
            best_state = _cpu_copy(trainer.eval_model.state_dict())
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
        _warn_once(f"resuming with a changed training config ({', '.join(changed)}): the result will differ from an uninterrupted run")
    trainer.model.load_state_dict(resume_state["model_state"])
    trainer.optimizer.load_state_dict(resume_state["optimizer_state"])
    trainer.scheduler.load_state_dict(resume_state["scheduler_state"])
    if resume_state.get("scaler_state"):
        trainer.scaler.load_state_dict(resume_state["scaler_state"])
    if trainer.ema is not None:
        if resume_state.get("ema_state") is not None:
            trainer.ema.load_state_dict(resume_state["ema_state"])
        else:
            _warn_once("resuming with ema=True from a state without EMA weights: the EMA restarts from the raw weights")
    trainer.nonfinite_steps = int(resume_state.get("nonfinite_steps", 0))
    trainer.optimizer_steps = int(resume_state.get("optimizer_steps", 0))
    trainer.amp_overflow_steps = int(resume_state.get("amp_skipped_steps", 0))
    restore_rng_state(resume_state["rng_state"])
    return int(resume_state["epoch"]) + 1


def _collect(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable[[list], dict],
    batch_size: int,
    device: str | torch.device,
    show_progress: bool,
    method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    target = resolve_device(device)
    model.to(target).eval()
    run = model if method == "forward" else getattr(model, method)
    loader = _eval_loader(dataset, collate_fn, batch_size, target)
    idx_parts, label_parts, output_parts = [], [], []
    with torch.inference_mode():  # cheaper than no_grad: the outputs never meet autograd
        for batch in progress(loader, desc=method, disable=not show_progress, leave=False):
            batch = move_to_device(batch, target)
            output_parts.append(run(batch).float().cpu())
            idx_parts.append(batch["idx"].cpu())
            label_parts.append(batch["labels"].cpu())
    if not output_parts:
        width = 2 if method == "forward" else int(getattr(model, "embedding_dim", 0))
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, width), np.float32)
    return (
        torch.cat(idx_parts).numpy().astype(np.int64),
        torch.cat(label_parts).numpy().astype(np.int64),
        torch.cat(output_parts).numpy(),
    )


def predict_logits(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable[[list], dict],
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, logits [N, 2]) in dataset order; eval mode, no gradients, fp32."""
    return _collect(model, dataset, collate_fn, batch_size, device, progress, "forward")


def embed(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable[[list], dict],
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, embeddings [N, D]) from ``model.encode``: fusion caches frozen-encoder features with it."""
    return _collect(model, dataset, collate_fn, batch_size, device, progress, "encode")
