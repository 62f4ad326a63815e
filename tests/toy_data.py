"""Tiny vector datasets in the shared loop's batch format (dict batches with labels and idx), for loop-level tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class VectorRows(torch.utils.data.Dataset):
    """``n`` random ``dim``-vectors (seeded by ``n``); labels given, else 1 where the first coordinate is positive."""

    def __init__(self, n: int, dim: int, labels: Sequence[int] | None = None) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(n))
        self.labels = [int(label) for label in labels] if labels is not None else (self.x[:, 0] > 0).long().tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "labels": self.labels[i], "idx": i}


def collate_rows(items: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "x": torch.stack([item["x"] for item in items]),
        "labels": torch.tensor([item["labels"] for item in items]),
        "idx": torch.tensor([item["idx"] for item in items]),
    }
