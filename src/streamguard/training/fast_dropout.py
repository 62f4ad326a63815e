"""Dropout with cheap masks on CPU, switched on by the training loop while it trains.

torch's CPU dropout draws one Bernoulli sample per element, about 10 ns each: on the tiny models the
main job trains, that was ~40 % of a transformer step (the attention probabilities alone are
batch x heads x T x T) and ~15 % of a GNN step (BENCHMARKS.md, "Where the main job's time went").
Here each element's keep/drop comes from 16 random bits, drawn 64 at a time: the same layer (each
element kept with probability 1 - p, p rounded to 1/65536, kept values scaled by 1/(1 - p)), from
torch's seeded generator, so runs stay reproducible; it is a different random stream from torch's
own dropout, so the trained weights differ from a run with plain dropout.

:func:`fast_dropout_layers` swaps every ``nn.Dropout`` of a model for :class:`FastDropout` (no state,
so state dicts are unchanged) and, for Hugging Face encoders, routes attention through
:func:`_eager_attention_with_fast_dropout` (an attention function registered with transformers'
``AttentionInterface``, the library's extension point); everything is put back on exit, so what the
loop returns and what checkpoints store is the plain model. Off a CPU the layers keep torch's dropout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_NAME = "streamguard_fast_dropout"
_LEVELS = 1 << 16  # keep/drop from 16 random bits per element


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with masks from random bits (CPU; elsewhere torch's dropout)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    dropped = int(round(p * _LEVELS))
    if dropped == 0:
        return x
    count = x.numel()
    # Full-range int64 draws: random_() without bounds would leave each word's top bit at 0.
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)
    bits = words.view(torch.int16)[:count].view(x.shape)
    keep = bits >= (dropped - (_LEVELS // 2))  # int16 values are uniform on [-32768, 32767]
    return x * keep.to(x.dtype).mul_(_LEVELS / (_LEVELS - dropped))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` whose masks come from :func:`fast_dropout` (never in place)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.Dropout's own name)
        return fast_dropout(input, self.p, self.training)


def _eager_attention_with_fast_dropout(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager attention (additive mask, softmax, dropout, values) with :func:`fast_dropout`."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, _eager_attention_with_fast_dropout)
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["eager"])  # the additive mask it adds


def _hugging_face_models(model: nn.Module) -> list[nn.Module]:
    """The outermost transformers models inside ``model`` (their attention implementation is per model)."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        if type(module).__module__.startswith("transformers.") and hasattr(module, "set_attn_implementation"):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


@contextmanager
def fast_dropout_layers(model: nn.Module, device: torch.device | str = "cpu") -> Iterator[nn.Module]:
    """While inside: ``model``'s dropout layers (and Hugging Face attention dropout) use :func:`fast_dropout`.

    A no-op off a CPU. Restores the original layer classes and attention implementations on exit.
    """
    if torch.device(device).type != "cpu":
        yield model
        return
    swapped = [module for module in model.modules() if type(module) is nn.Dropout]
    for module in swapped:
        module.__class__ = FastDropout
    attention: list[tuple[nn.Module, str]] = []
    try:
        encoders = _hugging_face_models(model)
        if encoders:
            _register_attention()
        for encoder in encoders:
            previous = encoder.config._attn_implementation
            encoder.set_attn_implementation(ATTENTION_NAME)
            attention.append((encoder, previous))
        yield model
    finally:
        for module in swapped:
            module.__class__ = nn.Dropout
        for encoder, previous in attention:
            encoder.set_attn_implementation(previous)
