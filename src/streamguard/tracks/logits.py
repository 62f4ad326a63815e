"""One entry point for "this checkpoint's logits on these rows", whatever its track.

The ensemble's recompute step and the serving scorer both need it; keeping the dispatch here keeps
the arrows pointing from evaluation and serving down to the track recipes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

DEEP_TRACKS = ("transformer", "gnn", "fusion")


def checkpoint_logits(track: str, checkpoint: Mapping[str, Any], frame: pd.DataFrame, graphs: Sequence | None) -> pd.DataFrame:
    """The logits table (``idx, label, logit_0, logit_1, prob``) of ``checkpoint`` on ``frame`` (and its graphs)."""
    if track == "transformer":
        from streamguard.tracks.transformer import transformer_logits

        return transformer_logits(checkpoint, frame)
    if track == "gnn":
        from streamguard.tracks.gnn import gnn_logits

        return gnn_logits(checkpoint, graphs, frame)
    if track == "fusion":
        from streamguard.tracks.fusion import fusion_logits

        return fusion_logits(checkpoint, frame, graphs)
    raise ValueError(f"cannot compute logits for track {track!r}; known: {', '.join(DEEP_TRACKS)}")
