"""Length-grouped batches, dynamic padding, device moves."""

from __future__ import annotations

import pytest
import torch

from streamguard.training import LengthGroupedSampler, move_to_device, pad_token_batch


def _lengths(n: int = 203) -> list[int]:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(1, 500, (n,), generator=generator).tolist()


def test_every_index_exactly_once_per_epoch():
    lengths = _lengths()
    sampler = LengthGroupedSampler(lengths, batch_size=8, generator=torch.Generator().manual_seed(0), mega_batch_factor=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 26
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(batch) <= 8 for batch in batches)


def test_drop_last_yields_only_full_batches():
    sampler = LengthGroupedSampler(_lengths(), batch_size=8, generator=torch.Generator().manual_seed(0), drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 203 // 8
    assert all(len(batch) == 8 for batch in batches)
    assert len({i for batch in batches for i in batch}) == 8 * (203 // 8)


def test_deterministic_for_a_generator_state_and_shuffled_across_epochs():
    lengths = _lengths()
    first = list(LengthGroupedSampler(lengths, 8, torch.Generator().manual_seed(5)))
    second = list(LengthGroupedSampler(lengths, 8, torch.Generator().manual_seed(5)))
    assert first == second
    generator = torch.Generator().manual_seed(5)
    sampler = LengthGroupedSampler(lengths, 8, generator)
    assert list(sampler) != list(sampler)  # the generator advances: a new order each epoch


def test_batches_group_similar_lengths():
    lengths = _lengths(800)
    batches = list(LengthGroupedSampler(lengths, 16, torch.Generator().manual_seed(0)))
    grouped_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    permutation = torch.randperm(800, generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [permutation[i : i + 16] for i in range(0, 800, 16)]
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in random_batches) / len(random_batches)
    assert grouped_spread < random_spread / 3
    # batch order is random, not sorted by length
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)


def test_pad_to_longest_rounded_to_multiple():
    input_ids, attention_mask = pad_token_batch([[5, 6, 7], [1, 2, 3, 4, 9]], pad_id=1, pad_to_multiple_of=8)
    assert input_ids.shape == attention_mask.shape == (2, 8)
    assert input_ids.dtype == attention_mask.dtype == torch.long
    assert input_ids[0].tolist() == [5, 6, 7, 1, 1, 1, 1, 1]
    assert attention_mask.tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]]


def test_pad_is_dynamic_not_fixed():
    ids, _ = pad_token_batch([[1, 2], [3]], pad_id=0, pad_to_multiple_of=None)
    assert ids.shape == (2, 2)
    ids, _ = pad_token_batch([[1] * 9], pad_id=0, pad_to_multiple_of=8)
    assert ids.shape == (1, 16)
    ids, _ = pad_token_batch([[1] * 16], pad_id=0, pad_to_multiple_of=8)
    assert ids.shape == (1, 16)


class _HasTo:
    def __init__(self) -> None:
        self.device = None

    def to(self, device, non_blocking=False):
        self.device = torch.device(device)
        return self


def test_move_to_device_nested():
    batch = {"x": torch.ones(2), "nested": {"y": torch.zeros(1), "graph": _HasTo()}, "list": [torch.ones(1)], "name": "a"}
    moved = move_to_device(batch, "cpu")
    assert moved["x"].device.type == "cpu"
    assert moved["nested"]["graph"].device == torch.device("cpu")
    assert moved["name"] == "a" and isinstance(moved["list"], list)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ValueError):
        LengthGroupedSampler([1, 2], batch_size)
