"""A plain-torch RoBERTa encoder for inference: ``transformers.RobertaModel(config, add_pooling_layer=False)``
without importing ``transformers``.

Importing ``transformers``' RobertaModel costs about 3.5 s on 2 cores (it pulls in torch._dynamo,
sympy, torch.distributed.tensor, accelerate, scipy...), more than everything else a one-file
``streamguard scan`` does. This module computes the same thing from the same weights: module and
parameter names are HF's, so a checkpoint's state dict loads with ``strict=True``; attention is
HF's eager attention with the same additive key mask (0 or the dtype's minimum), so attention
weights are returned for the ``attention`` line scores. It only stands in for the configurations
it reproduces exactly (:func:`lite_roberta_unsupported`); anything else uses the HF model.
Tested equal to HF in tests/models/test_lite_models.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def lite_roberta_unsupported(config: Mapping[str, Any], encoder_kwargs: Mapping[str, Any] | None = None) -> str | None:
    """Why :class:`LiteRobertaModel` cannot reproduce this HF config (None: it can)."""
    kwargs = dict(encoder_kwargs or {})
    checks = {
        "model_type is not roberta": config.get("model_type") != "roberta",
        "activation is not gelu": config.get("hidden_act") != "gelu",
        "positions are not absolute": config.get("position_embedding_type", "absolute") not in (None, "absolute"),
        "decoder or cross-attention": bool(config.get("is_decoder")) or bool(config.get("add_cross_attention")),
        "has a pooling layer": kwargs.get("add_pooling_layer", True) is not False or set(kwargs) - {"add_pooling_layer"},
        "chunked feed-forward": bool(config.get("chunk_size_feed_forward")),
        "hidden size not divisible by heads": int(config.get("hidden_size", 0)) % max(int(config.get("num_attention_heads", 1)), 1) != 0,
        "separate embedding size": "embedding_size" in config,
    }
    reasons = [reason for reason, failed in checks.items() if failed]
    return ", ".join(reasons) or None


@dataclass
class LiteEncoderOutput:
    """What callers read from HF's output: ``last_hidden_state`` [B, T, H], ``attentions`` (per layer [B, heads, T, T])."""

    last_hidden_state: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None


class RobertaEmbeddings(nn.Module):
    """Word + token-type + position embeddings, LayerNorm; positions count from ``pad_token_id + 1``, skipping padding."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.padding_idx = int(config.pad_token_id)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=self.padding_idx)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size, padding_idx=self.padding_idx)

    def forward(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids is not None:
            mask = input_ids.ne(self.padding_idx).int()
            position_ids = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.padding_idx
            inputs_embeds = self.word_embeddings(input_ids)
        else:  # as HF: sequential positions, padding cannot be told apart
            length = inputs_embeds.shape[1]
            position_ids = torch.arange(self.padding_idx + 1, length + self.padding_idx + 1, device=inputs_embeds.device)
            position_ids = position_ids.unsqueeze(0).expand(inputs_embeds.shape[:-1])
        token_types = torch.zeros(inputs_embeds.shape[:-1], dtype=torch.long, device=inputs_embeds.device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_types)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class RobertaSelfAttention(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.num_attention_heads = int(config.num_attention_heads)
        self.attention_head_size = int(config.hidden_size) // self.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, all_head_size)
        self.key = nn.Linear(config.hidden_size, all_head_size)
        self.value = nn.Linear(config.hidden_size, all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*hidden.shape[:-1], -1, self.attention_head_size)
        query = self.query(hidden).view(shape).transpose(1, 2)
        key = self.key(hidden).view(shape).transpose(1, 2)
        value = self.value(hidden).view(shape).transpose(1, 2)
        weights = torch.matmul(query, key.transpose(2, 3)) * self.scaling
        if additive_mask is not None:
            weights = weights + additive_mask
        weights = F.softmax(weights, dim=-1)
        output = torch.matmul(self.dropout(weights), value).transpose(1, 2).contiguous()
        return output.reshape(*hidden.shape[:-1], -1).contiguous(), weights


class RobertaSelfOutput(nn.Module):
    """Dense -> dropout -> LayerNorm(+ residual); also the shape of the feed-forward's output block."""

    def __init__(self, config: SimpleNamespace, in_features: int | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class RobertaAttention(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.self = RobertaSelfAttention(config)
        self.output = RobertaSelfOutput(config)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.self(hidden, additive_mask)
        return self.output(attended, hidden), weights


class RobertaIntermediate(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))  # HF's "gelu": the exact (erf) form


class RobertaLayer(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.attention = RobertaAttention(config)
        self.intermediate = RobertaIntermediate(config)
        self.output = RobertaSelfOutput(config, in_features=config.intermediate_size)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended), weights


class RobertaEncoder(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.layer = nn.ModuleList(RobertaLayer(config) for _ in range(int(config.num_hidden_layers)))


class LiteRobertaModel(nn.Module):
    """``RobertaModel(config, add_pooling_layer=False)``'s forward in plain torch (same parameter names).

    ``config`` is the HF config as a dict (``config.to_dict()``, what checkpoints store); it is
    offered back as attributes (``encoder.config.hidden_size``...).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        reason = lite_roberta_unsupported(config, {"add_pooling_layer": False})
        if reason:
            raise ValueError(f"LiteRobertaModel cannot reproduce this config: {reason}")
        self.config = SimpleNamespace(**dict(config))
        self.embeddings = RobertaEmbeddings(self.config)
        self.encoder = RobertaEncoder(self.config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> LiteEncoderOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        hidden = self.embeddings(input_ids, inputs_embeds)
        additive_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            # HF's eager bidirectional mask: [B, 1, 1, T] broadcast over heads and queries, 0 or the minimum
            keep = attention_mask.bool()[:, None, None, :]
            zero, minimum = hidden.new_zeros(()), hidden.new_full((), torch.finfo(hidden.dtype).min)
            additive_mask = torch.where(keep, zero, minimum)
        attentions = []
        for layer in self.encoder.layer:
            hidden, weights = layer(hidden, additive_mask)
            attentions.append(weights)
        return LiteEncoderOutput(hidden, tuple(attentions) if output_attentions else None)


def lite_roberta_from_export(exported: Mapping[str, Any]) -> LiteRobertaModel | None:
    """A :class:`LiteRobertaModel` for a transformer export (``export_encoder``'s dict), or None when
    its config is one the lite model does not reproduce."""
    config = dict(exported["encoder_config"])
    if lite_roberta_unsupported(config, exported.get("encoder_kwargs")) is not None:
        return None
    return LiteRobertaModel(config)

