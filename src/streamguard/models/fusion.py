"""Late fusion: concat(transformer CLS, GNN pooled[, lexical log-odds]) -> MLP head -> 2 logits.

A branch is either *live* (an encoder module whose ``encode`` runs every batch: fine-tuning and
inference) or *cached* (its embedding was computed once, the encoder being frozen, and arrives in
``batch["features"][name]``). Training a frozen branch from the cache gives the same model as
running the frozen encoder every batch, at a fraction of the cost. The optional ``lexical`` branch
is one number per function, the TF-IDF model's log-odds (``streamguard.tracks.baseline.LexicalScorer``):
always a feature, never an encoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

BRANCH_ORDER = ("transformer", "gnn", "lexical")


class FusionClassifier(nn.Module):
    def __init__(
        self,
        branch_dims: Mapping[str, int],
        hidden_dim: int = 256,
        dropout: float = 0.25,
        encoders: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.branches = [name for name in BRANCH_ORDER if name in branch_dims]
        if not set(self.branches) & {"transformer", "gnn"}:
            raise ValueError("fusion needs at least one deep branch (transformer or gnn)")
        self.branch_dims = {name: int(branch_dims[name]) for name in self.branches}
        self.encoders = nn.ModuleDict(dict(encoders or {}))
        in_dim = sum(self.branch_dims.values())
        self.head = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 2)
        )
        self.hidden_dim, self.dropout = int(hidden_dim), float(dropout)
        self.embedding_dim = in_dim

    def encode(self, batch: Mapping[str, Any]) -> torch.Tensor:
        parts = []
        cached = batch.get("features", {})
        for name in self.branches:  # a cached (frozen) embedding wins over re-running its encoder
            if name in cached:
                parts.append(cached[name])
            elif name == "lexical":
                raise KeyError("the lexical branch is a feature: pass batch['features']['lexical'] (the TF-IDF log-odds)")
            else:
                parts.append(self.encoders[name].encode(batch[name]))
        return torch.cat(parts, dim=-1)

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(self.encode(batch))

    def head_config(self) -> dict[str, Any]:
        return {"branch_dims": dict(self.branch_dims), "hidden_dim": self.hidden_dim, "dropout": self.dropout}


class FusionExamples(torch.utils.data.Dataset):
    """Row-aligned examples: cached branch features and/or the live branches' own examples."""

    def __init__(
        self,
        idx: Sequence[int],
        labels: Sequence[int],
        features: Mapping[str, np.ndarray] | None = None,
        live: Mapping[str, torch.utils.data.Dataset] | None = None,
    ) -> None:
        self.idx, self.labels = list(idx), list(labels)
        self.features = {name: np.asarray(array, dtype=np.float32) for name, array in (features or {}).items()}
        self.live = dict(live or {})
        for name, source in [*self.features.items(), *self.live.items()]:
            if len(source) != len(self.idx):
                raise ValueError(f"fusion branch {name!r} has {len(source)} rows for {len(self.idx)} examples")

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, position: int) -> dict[str, Any]:
        return {
            "idx": self.idx[position],
            "label": self.labels[position],
            "features": {name: array[position] for name, array in self.features.items()},
            "live": {name: dataset[position] for name, dataset in self.live.items()},
        }


def make_fusion_collate(live_collates: Mapping[str, Any]):
    """Collate for FusionExamples: stacks cached features, delegates live branches to their collates."""

    def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "idx": torch.tensor([item["idx"] for item in items], dtype=torch.long),
            "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
            "features": {
                name: torch.from_numpy(np.stack([item["features"][name] for item in items]))
                for name in items[0]["features"]
            },
        }
        for name, branch_collate in live_collates.items():
            batch[name] = branch_collate([item["live"][name] for item in items])
        return batch

    return collate
