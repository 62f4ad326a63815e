"""One entry point for "this checkpoint's logits on these rows", whatever its track.

The ensemble's recompute step and the serving scorer both need it; keeping the dispatch here keeps
the arrows pointing from evaluation and serving down to the track recipes. The scorer asks for
:func:`checkpoint_predictions` on :class:`~streamguard.tracks.common.FunctionRows`, so that a scan
imports no pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEEP_TRACKS = ("transformer", "gnn", "fusion")


def checkpoint_logits(track: str, checkpoint: Mapping[str, Any], frame: pd.DataFrame, graphs: Sequence | None) -> pd.DataFrame:
    """The logits table (``idx, label, logit_0, logit_1, prob``) of ``checkpoint`` on ``frame`` (and its graphs)."""
    from streamguard.evaluation.scoring import logits_frame

    return logits_frame(*checkpoint_predictions(track, checkpoint, frame, graphs))


def checkpoint_predictions(
    track: str, checkpoint: Mapping[str, Any], frame: Any, graphs: Sequence | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, logits [N, 2]) of ``checkpoint`` on ``frame`` (a DataFrame or ``FunctionRows``) and its graphs."""
    if track == "transformer":
        from streamguard.tracks.transformer import transformer_predictions

        return transformer_predictions(checkpoint, frame)
    if track == "gnn":
        from streamguard.tracks.gnn import gnn_predictions

        return gnn_predictions(checkpoint, graphs, frame)
    if track == "fusion":
        from streamguard.tracks.fusion import fusion_predictions

        return fusion_predictions(checkpoint, frame, graphs)
    raise ValueError(f"cannot compute logits for track {track!r}; known: {', '.join(DEEP_TRACKS)}")
