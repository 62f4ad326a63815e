"""Line scores for a trained seed ensemble: every seed explained, its line scores L1-normalised and
averaged (as the ensemble averages the seeds' logits), so no single seed dominates by scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamguard.explain.fusion import FUSION_METHODS, fusion_line_scores_one
from streamguard.explain.gnn import GNN_METHODS, gnn_line_scores_one
from streamguard.explain.lexical import lexical_line_scores
from streamguard.explain.lines import LineIndex, mean_scores, only_statement_lines, rank_lines
from streamguard.explain.transformer import DEFAULT_IG_STEPS, TRANSFORMER_METHODS, transformer_line_scores_one

METHODS: dict[str, tuple[str, ...]] = {
    "transformer": TRANSFORMER_METHODS,
    "gnn": GNN_METHODS,
    "fusion": FUSION_METHODS,
}
# Per track, the method scan and the served model use unless told otherwise: the best Top-1 on the
# Juliet line benchmark (benchmarks/results/lines_juliet.md), which is also among the cheapest.
# For fusion that is its transformer branch's attention (0.43 vs 0.34 for the combined gradients).
# `supervised` ranks best where it exists (a line head, trained with transformer.line_supervision > 0:
# benchmarks/results/lines_juliet_supervised.md), so it is the default of every seed ensemble that has one
# (:func:`default_method`).
DEFAULT_METHODS = {"transformer": "attention", "gnn": "gradient_x_input", "fusion": "attention"}


def has_line_head(checkpoint: Mapping[str, Any]) -> bool:
    """Whether a transformer checkpoint (or a fusion checkpoint's transformer branch) carries a line head."""
    if checkpoint.get("track") == "fusion":
        branch = checkpoint.get("model", {}).get("branch_checkpoints", {}).get("transformer")
        return branch is not None and has_line_head(branch)
    return checkpoint.get("track") == "transformer" and "line_supervision" in checkpoint.get("model", {}).get("head_config", {})


def default_method(track: str, checkpoints: Sequence[Mapping[str, Any]] = ()) -> str:
    """The method scan and the served model use unless told: ``supervised`` when every seed has a line
    head, else the track's :data:`DEFAULT_METHODS` entry."""
    if checkpoints and all(has_line_head(checkpoint) for checkpoint in checkpoints):
        return "supervised"
    return DEFAULT_METHODS[track]


@dataclass(frozen=True)
class LineScore:
    """One ranked line: 1-based line number within the function, its score and its text."""

    line: int
    score: float
    text: str

    def as_dict(self, line_offset: int = 0) -> dict[str, Any]:
        return {"line": self.line + line_offset, "score": round(float(self.score), 6), "text": self.text.strip()}


def check_method(track: str, method: str | None) -> str:
    """The method to use for ``track`` (its default when None); an unknown one is an error naming the known ones."""
    if track not in METHODS:
        raise ValueError(f"no line scores for track {track!r}; known: {sorted(METHODS)}")
    method = method or DEFAULT_METHODS[track]
    if method not in METHODS[track] and method != "lexical":
        raise ValueError(f"{track} line-score method must be one of {METHODS[track] + ('lexical',)}, got {method!r}")
    return method


def seed_line_scores(checkpoint: Mapping[str, Any], code: str, method: str, steps: int = DEFAULT_IG_STEPS) -> np.ndarray:
    """One seed checkpoint's line scores for one function (models built once inside ``reuse_loaded_models``)."""
    track = checkpoint["track"]
    if track == "transformer":
        from streamguard.tracks.transformer import load_transformer

        model, tokenizer, max_length = load_transformer(checkpoint)
        return transformer_line_scores_one(model, tokenizer, max_length, code, method, steps)
    if track == "gnn":
        from streamguard.tracks.gnn import load_gnn

        if checkpoint["config"].get("encoder_features", "none") != "none":
            raise ValueError("line scores for a GNN trained with encoder_features=cls are not supported (it needs the transformer's CLS)")
        return gnn_line_scores_one(load_gnn(checkpoint), code, checkpoint["model"]["graph_config"], method, steps)
    if track == "fusion":
        from streamguard.tracks.fusion import load_fusion
        from streamguard.tracks.transformer import load_transformer

        branches = checkpoint["model"]["branch_checkpoints"]
        tokenizer, max_length = None, 0
        if "transformer" in branches:
            _, tokenizer, max_length = load_transformer(branches["transformer"])
        graph_config = branches["gnn"]["model"]["graph_config"] if "gnn" in branches else None
        return fusion_line_scores_one(load_fusion(checkpoint), tokenizer, max_length, graph_config, code, method, steps)
    raise ValueError(f"no line scores for track {track!r}")


def ensemble_line_scores(
    checkpoints: Sequence[Mapping[str, Any]], codes: Sequence[str], method: str | None = None, steps: int = DEFAULT_IG_STEPS
) -> list[np.ndarray]:
    """Per function, the seed-averaged line scores (one value per source line; NaN: no evidence, or a
    line that cannot hold a statement, see :func:`~streamguard.explain.lines.statement_lines`)."""
    import torch

    if not checkpoints:
        raise ValueError("no checkpoints to explain")
    track = checkpoints[0]["track"]
    method = check_method(track, method or default_method(track, checkpoints))
    if method == "lexical":
        return [lexical_line_scores(code) for code in codes]
    results = []
    with torch.enable_grad():
        for code in codes:
            seeds = [seed_line_scores(checkpoint, code, method, steps) for checkpoint in checkpoints]
            results.append(only_statement_lines(code, mean_scores(seeds)))
    return results


def top_lines(code: str, scores: Sequence[float], k: int) -> list[LineScore]:
    """The ``k`` highest-scored lines that carry a score (NaN lines never appear)."""
    index = LineIndex.of(code)
    values = np.asarray(scores, dtype=float)
    ranked = [line for line in rank_lines(values) if not np.isnan(values[line - 1])]
    return [LineScore(line, float(values[line - 1]), index.line_text(line)) for line in ranked[: max(int(k), 0)]]
