"""Line scores of the fusion model: each branch explained through the fusion head, then combined.

How the branches are combined (documented in the README, "Which lines?"):

1. each branch's line scores are computed *through the fusion model*: the transformer's tokens
   with the GNN's pooled vector held fixed, the GNN's nodes with the transformer's CLS vector held
   fixed, both for the fusion head's vulnerable-minus-safe logit (so a branch the head ignores
   gets small attributions);
2. each branch's scores are L1-normalised over the function's lines;
3. they are summed with weights equal to each branch's share of the head's input attribution
   (|gradient x input| of the concatenated branch vectors, summed per branch): the branch the
   head leaned on for *this* function decides more of the line ranking.

A lexical branch (the TF-IDF log-odds) is held fixed like the other branch and ranks no lines.

``attention``, ``occlusion`` and ``supervised`` use the transformer branch only (the GNN has no
attention to read nor a line head, and occluding a line's graph nodes would need the function
re-parsed); ``occlusion`` runs through the fusion head with the GNN's pooled vector held fixed.
``supervised`` reads the line head of the transformer branch (a branch trained with
``line_supervision`` > 0; the fusion head plays no part in it). A fusion model without a
transformer branch falls back to ``integrated_gradients`` for ``attention`` and ``occlusion`` and
refuses ``supervised``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamguard.explain.gnn import gnn_line_scores_one, graph_with_spans, single_graph_batch
from streamguard.explain.lines import normalise
from streamguard.explain.transformer import DEFAULT_IG_STEPS, encode_with_offsets, transformer_line_scores_one

FUSION_METHODS = ("integrated_gradients", "gradient_x_input", "attention", "occlusion", "supervised")
TRANSFORMER_ONLY = ("attention", "occlusion", "supervised")  # methods read from the transformer branch alone


def branch_shares(head: Any, parts: dict[str, Any], order: list[str]) -> dict[str, float]:
    """Each branch's share of |gradient x input| at the fusion head's input (sums to 1)."""
    import torch

    with torch.enable_grad():
        z = torch.cat([parts[name] for name in order], dim=-1).detach().requires_grad_(True)
        logits = head(z)
        (logits[:, 1] - logits[:, 0]).sum().backward()
        contribution = (z * z.grad).abs()[0].detach()
    shares, start = {}, 0
    for name in order:
        width = parts[name].shape[-1]
        shares[name] = float(contribution[start : start + width].sum())
        start += width
    total = sum(shares.values())
    return {name: (value / total if total > 0 else 1.0 / len(order)) for name, value in shares.items()}


def combine_branches(scores: dict[str, np.ndarray], shares: dict[str, float]) -> np.ndarray:
    """Share-weighted sum of L1-normalised branch line scores; NaN only where every branch is NaN."""
    stacked = np.vstack([shares[name] * normalise(values) for name, values in scores.items()])
    with np.errstate(invalid="ignore"):
        any_scored = np.any(~np.isnan(stacked), axis=0)
        return np.where(any_scored, np.nansum(stacked, axis=0), np.nan)


def fusion_line_scores_one(
    model: Any,
    tokenizer: Any | None,
    max_length: int,
    graph_config: Any,
    code: str,
    method: str = "integrated_gradients",
    steps: int = DEFAULT_IG_STEPS,
) -> np.ndarray:
    """Line scores of one function for one fusion model (``model.encoders`` live, eval mode)."""
    import torch

    if method not in FUSION_METHODS:
        raise ValueError(f"fusion line-score method must be one of {FUSION_METHODS}, got {method!r}")
    order = list(model.branches)
    transformer, gnn = model.encoders["transformer"] if "transformer" in order else None, model.encoders["gnn"] if "gnn" in order else None
    if method == "supervised":
        if transformer is None:
            raise ValueError("line-score method 'supervised' reads the transformer branch's line head: this fusion model has no transformer branch")
        return transformer_line_scores_one(transformer, tokenizer, max_length, code, method, steps)
    parts: dict[str, Any] = {}
    with torch.no_grad():
        if transformer is not None:
            input_ids, attention_mask, _ = encode_with_offsets(tokenizer, code, max_length)
            parts["transformer"] = transformer.encode({"input_ids": input_ids, "attention_mask": attention_mask})
        if gnn is not None:
            graph_batch = single_graph_batch(graph_with_spans(code, graph_config)[0])
            parts["gnn"] = gnn.encode(graph_batch)
        if "lexical" in order:  # one number, held fixed: it shifts the head but has no lines of its own
            log_odds = model.lexical_scorer.log_odds([code])
            parts["lexical"] = torch.tensor(log_odds, dtype=torch.float32).reshape(1, 1)
    shares = branch_shares(model.head, parts, order)

    def head_logits(name: str, vector: Any) -> Any:
        joined = [vector if other == name else parts[other].expand(vector.shape[0], -1) for other in order]
        return model.head(torch.cat(joined, dim=-1))

    scores: dict[str, np.ndarray] = {}
    if transformer is not None:
        scores["transformer"] = transformer_line_scores_one(
            transformer, tokenizer, max_length, code, method, steps, head=lambda cls: head_logits("transformer", cls)
        )
    if gnn is not None and (method not in TRANSFORMER_ONLY or transformer is None):
        gnn_method = "integrated_gradients" if method in TRANSFORMER_ONLY else method
        scores["gnn"] = gnn_line_scores_one(
            gnn, code, graph_config, gnn_method, steps,
            encode_to_logits=lambda batch, inputs: head_logits("gnn", gnn.encode(batch, inputs)),
        )
    if method in TRANSFORMER_ONLY and transformer is not None:
        shares = {"transformer": 1.0}
    return combine_branches(scores, {name: shares[name] for name in scores})
