"""Per-token attributions of a transformer classifier, summed per source line.

* ``attention`` (LineVul, Fu & Tantithamthavorn, MSR 2022): a token's score is the attention it
  receives, summed over every layer, head and query position (LineVul sums one layer's heads;
  all layers are used here so deeper models are not judged by their first layer alone).
  Attention says where the model looked, not what raised the score.
* ``integrated_gradients``: Captum's ``LayerIntegratedGradients`` on the word-embedding layer,
  from a baseline where every non-special token is ``<pad>``, for the vulnerable-minus-safe logit;
  a token's score is its attribution summed over the embedding dimensions (signed: positive pushes
  towards "vulnerable").
* ``gradient_x_input``: Captum's ``LayerGradientXActivation`` on the same layer (one backward
  pass: the cheap first-order version of the above), as a magnitude: at a saturated output the
  local gradient's sign can point away from the class a token drives.

* ``occlusion``: Captum's ``FeatureAblation`` with one feature per source line: every token of a
  line replaced by ``<pad>`` at once, and the line's score is how much that lowers the
  vulnerable-minus-safe logit (one forward pass per line, batched). It asks the counterfactual a
  reviewer asks ("without this line, is the function still flagged?"), where attention and
  gradients describe the model's inner state.

* ``supervised``: the line head a transformer trained with ``line_supervision`` > 0 carries (a
  per-token "on a flawed line" logit learned from line labels, e.g. Juliet's FLAW comments on the
  training split); a line's score is the highest sigmoid over its tokens. It is what the model was
  taught to answer, not a reading of the classifier, and needs a checkpoint with that head.

Tokens map to lines through the fast tokenizer's character offsets
(:func:`streamguard.explain.lines.token_lines`), so the mapping is exact for the project's BPE
tokenizer and for any RoBERTa-family tokenizer from Hugging Face.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from streamguard.explain.lines import LineIndex, aggregate_to_lines, token_lines

TRANSFORMER_METHODS = ("attention", "integrated_gradients", "gradient_x_input", "occlusion", "supervised")
OCCLUSION_BATCH = 16  # ablated copies of a function per forward pass
DEFAULT_IG_STEPS = 16
_ATTENTION_LOCK = threading.Lock()


def encode_with_offsets(tokenizer: Any, code: str, max_length: int) -> tuple[Any, Any, list[tuple[int, int]]]:
    """(input_ids [1, T], attention_mask [1, T], offsets) exactly as training tokenised ``code``."""
    import torch

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("line scores need a fast tokenizer (character offsets); this one is not")
    encoded = tokenizer(str(code), truncation=True, max_length=int(max_length), return_offsets_mapping=True)
    ids = torch.tensor([encoded["input_ids"]], dtype=torch.long)
    mask = torch.ones_like(ids)
    return ids, mask, [tuple(pair) for pair in encoded["offset_mapping"]]


@contextmanager
def eager_attention(encoder: Any) -> Iterator[None]:
    """Attention weights need the eager implementation (SDPA does not return them); restored after."""
    with _ATTENTION_LOCK:
        previous = getattr(encoder.config, "_attn_implementation", None)
        changed = previous not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
        if changed:
            encoder.set_attn_implementation("eager")
        try:
            yield
        finally:
            if changed:
                encoder.set_attn_implementation(previous)


def attention_token_scores(classifier: Any, input_ids: Any, attention_mask: Any) -> np.ndarray:
    """Attention each token receives, summed over layers, heads and queries: [T]."""
    import torch

    encoder = classifier.encoder
    with eager_attention(encoder), torch.no_grad():
        output = encoder(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    attentions = output.attentions
    if not attentions:
        raise RuntimeError(f"{type(encoder).__name__} returned no attention weights")
    total = torch.stack([layer[0] for layer in attentions]).sum(dim=(0, 1, 2))  # layers, heads, queries
    return total.float().numpy()


def supervised_token_scores(classifier: Any, input_ids: Any, attention_mask: Any) -> np.ndarray:
    """The line head's probability that each token is on a flawed line: [T]."""
    import torch

    if getattr(classifier, "line_head", None) is None:
        raise ValueError(
            "line-score method 'supervised' needs a transformer trained with a line head: set "
            "transformer.line_supervision > 0 (conf/base/parameters_transformer.yml) and train on rows that carry "
            "flaw_lines; this checkpoint has none (use attention, integrated_gradients, gradient_x_input or occlusion)"
        )
    with torch.no_grad():
        logits = classifier.token_line_logits({"input_ids": input_ids, "attention_mask": attention_mask})
    return torch.sigmoid(logits[0].float()).numpy()


def gradient_token_scores(
    logit_difference: Callable[[Any, Any], Any],
    embedding_layer: Any,
    input_ids: Any,
    attention_mask: Any,
    baseline_ids: Any,
    method: str,
    steps: int = DEFAULT_IG_STEPS,
) -> np.ndarray:
    """Captum attributions at ``embedding_layer`` for ``logit_difference(ids, mask) -> [B]``: [T]."""
    import torch

    if method == "integrated_gradients":
        from captum.attr import LayerIntegratedGradients

        explainer = LayerIntegratedGradients(logit_difference, embedding_layer)
        attributions = explainer.attribute(
            input_ids, baselines=baseline_ids, additional_forward_args=(attention_mask,), n_steps=int(steps),
            internal_batch_size=int(steps),
        )
    elif method == "gradient_x_input":
        from captum.attr import LayerGradientXActivation

        explainer = LayerGradientXActivation(logit_difference, embedding_layer)
        with torch.enable_grad():
            attributions = explainer.attribute(input_ids, additional_forward_args=(attention_mask,))
    else:
        raise ValueError(f"unknown gradient method {method!r}")
    scores = attributions[0].sum(dim=-1).detach().float().numpy()
    # A local gradient's sign is unreliable where the model saturates (it can point away from the
    # class the token drives); its magnitude is what ranks tokens. IG integrates, so it keeps the sign.
    return np.abs(scores) if method == "gradient_x_input" else scores


def occlusion_line_scores(
    logit_difference: Callable[[Any, Any], Any], input_ids: Any, attention_mask: Any, lines: list[int | None], pad_id: int
) -> dict[int, float]:
    """Per line: the logit difference minus the one with all the line's tokens replaced by ``pad_id``
    (Captum ``FeatureAblation``, a feature mask grouping tokens by line; special tokens never ablated)."""
    import torch
    from captum.attr import FeatureAblation

    numbered = sorted({line for line in lines if line is not None})
    if not numbered:
        return {}
    group_of = {line: group for group, line in enumerate(numbered)}
    # Special tokens join the first line's group but keep their ids: the ablation baseline below is
    # the input itself at their positions, so replacing "them" changes nothing.
    feature_mask = torch.tensor([[group_of.get(line, 0) for line in lines]], dtype=torch.long)
    baseline = input_ids.clone()
    for position, line in enumerate(lines):
        if line is not None:
            baseline[0, position] = pad_id
    with torch.no_grad():
        attributions = FeatureAblation(logit_difference).attribute(
            input_ids, baselines=baseline, additional_forward_args=(attention_mask,), feature_mask=feature_mask,
            perturbations_per_eval=OCCLUSION_BATCH,
        )
    first_token_of = {}
    for position, line in enumerate(lines):
        if line is not None:
            first_token_of.setdefault(line, position)
    return {line: float(attributions[0, position]) for line, position in first_token_of.items()}


def baseline_ids_for(tokenizer: Any, input_ids: Any, offsets: list[tuple[int, int]]) -> Any:
    """Every non-special token replaced by ``<pad>`` (special tokens, empty offsets, are kept)."""
    baseline = input_ids.clone()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.unk_token_id
    for position, (start, end) in enumerate(offsets):
        if end > start:
            baseline[0, position] = pad
    return baseline


def transformer_line_scores_one(
    model: Any,
    tokenizer: Any,
    max_length: int,
    code: str,
    method: str,
    steps: int = DEFAULT_IG_STEPS,
    head: Callable[[Any], Any] | None = None,
) -> np.ndarray:
    """Line scores of one function for one transformer classifier (NaN: lines no token reaches).

    ``head`` maps the CLS vectors [B, H] to logits [B, 2] when the transformer is a branch of a
    larger model (fusion); by default the classifier's own head.
    """
    if method not in TRANSFORMER_METHODS:
        raise ValueError(f"transformer line-score method must be one of {TRANSFORMER_METHODS}, got {method!r}")
    index = LineIndex.of(code)
    input_ids, attention_mask, offsets = encode_with_offsets(tokenizer, code, max_length)
    if method == "attention":
        token_scores = attention_token_scores(model, input_ids, attention_mask)
    elif method == "supervised":  # probabilities: a line is as flawed as its most confident token
        scores = supervised_token_scores(model, input_ids, attention_mask)
        return aggregate_to_lines(index.num_lines, token_lines(code, offsets), scores, reduce="max")
    else:
        logits_of_cls = head or (lambda cls: model.head(model.dropout(cls)))

        def logit_difference(ids: Any, mask: Any) -> Any:
            logits = logits_of_cls(model.encode({"input_ids": ids, "attention_mask": mask.expand(ids.shape[0], -1)}))
            return logits[:, 1] - logits[:, 0]

        if method == "occlusion":
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.unk_token_id
            per_line = occlusion_line_scores(logit_difference, input_ids, attention_mask, token_lines(code, offsets), pad)
            return aggregate_to_lines(index.num_lines, list(per_line), list(per_line.values()))
        token_scores = gradient_token_scores(
            logit_difference,
            model.encoder.get_input_embeddings(),
            input_ids,
            attention_mask,
            baseline_ids_for(tokenizer, input_ids, offsets),
            method,
            steps,
        )
    return aggregate_to_lines(index.num_lines, token_lines(code, offsets), token_scores)
