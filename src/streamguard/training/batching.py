"""Batching helpers: length-grouped batches, dynamic padding, moving nested batches to a device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[list[int]]):
    """Batch sampler yielding batches of similar length in random order (less padding, same randomness).

    Each epoch: shuffle all indices with ``generator``, cut the permutation into mega-batches of
    ``mega_batch_factor`` batches, sort each mega-batch by length (longest first), cut it into
    batches, and shuffle the batch order. Every index appears exactly once per epoch; the order
    depends only on the generator's state when iteration starts.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        mega_batch_factor: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = [int(length) for length in lengths]
        self.batch_size = int(batch_size)
        self.generator = generator
        self.drop_last = bool(drop_last)
        self.mega_batch_size = int(batch_size) * max(1, int(mega_batch_factor))

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.lengths) // self.batch_size
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        permutation = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches: list[list[int]] = []
        for start in range(0, len(permutation), self.mega_batch_size):
            mega = sorted(permutation[start : start + self.mega_batch_size], key=lambda i: -self.lengths[i])
            batches.extend(mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size))
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size][: len(self)]
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        for position in order:
            yield batches[position]


def pad_token_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, pad_to_multiple_of: int | None = None
) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Right-pad to the longest sequence *in this batch* (rounded up to ``pad_to_multiple_of``).

    Never pads to a fixed maximum length: short batches stay short. Returns (input_ids, attention_mask).
    """
    longest = max((len(sequence) for sequence in sequences), default=0)
    if pad_to_multiple_of and pad_to_multiple_of > 1:
        longest = math.ceil(longest / pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(sequences), longest), int(pad_id), dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask  # type: ignore[return-value]


def move_to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Move a batch (tensors, objects with ``.to`` such as a PyG Batch, nested dicts/lists) to ``device``."""
    if isinstance(batch, torch.Tensor) or (hasattr(batch, "to") and not isinstance(batch, (Mapping, list, tuple))):
        try:
            return batch.to(device, non_blocking=non_blocking)
        except TypeError:  # a .to() without non_blocking
            return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device, non_blocking) for key, value in batch.items()}
    if isinstance(batch, list):
        return [move_to_device(value, device, non_blocking) for value in batch]
    if isinstance(batch, tuple):
        return tuple(move_to_device(value, device, non_blocking) for value in batch)
    return batch
