"""Running a model over a dataset without training it: the per-epoch validation (loss, F1 at 0.5, ROC-AUC),
and the logits / embeddings every track's prediction step and fusion's frozen branches use.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from streamguard.runtime.progress import progress
from streamguard.training.batching import move_to_device
from streamguard.training.components import AmpSettings, autocast_context, eval_order, make_eval_loader, resolve_device


@torch.no_grad()
def validate_epoch(model: nn.Module, loader: DataLoader, device: torch.device, amp: AmpSettings) -> dict[str, float]:
    """Unweighted CE (comparable across runs and losses), F1 at P(vulnerable) >= 0.5 and ROC-AUC."""
    from sklearn.metrics import f1_score, roc_auc_score

    model.eval()
    gather = getattr(loader, "gather", None)  # data parallel: every process scores the whole set
    loss_sum, count = 0.0, 0
    labels_all, probs_all = [], []
    for batch in loader:
        batch = move_to_device(batch, device, non_blocking=True)
        with autocast_context(device, amp):
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
    loader = make_eval_loader(dataset, collate_fn, batch_size, target)
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
    back = np.argsort(np.asarray(eval_order(dataset)), kind="stable")  # the loader ran shortest first
    return (
        torch.cat(idx_parts).numpy().astype(np.int64)[back],
        torch.cat(label_parts).numpy().astype(np.int64)[back],
        torch.cat(output_parts).numpy()[back],
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
