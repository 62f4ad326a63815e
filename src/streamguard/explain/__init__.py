"""Which lines? Line scores for a flagged function from a trained track (plain Python, no Kedro).

May import: tracks, models, graphs, training, data, evaluation, runtime, config.

* :mod:`~streamguard.explain.lines`: exact character/byte -> line mapping (``\\n``, ``\\r\\n``, ``\\r``),
  token and node scores summed per line, ranking;
* :mod:`~streamguard.explain.transformer`: attention (LineVul), Integrated Gradients and
  gradient x input (Captum) over the tokens, occlusion of whole lines, and ``supervised``: the
  line head of a transformer trained with ``line_supervision`` > 0;
* :mod:`~streamguard.explain.gnn`: node attributions (input x gradient in plain torch; PyG's
  ``torch_geometric.explain`` CaptumExplainer and GNNExplainer for the others) mapped to lines
  through the graph nodes' source spans;
* :mod:`~streamguard.explain.fusion`: both branches through the fusion head, combined by the
  head's per-function reliance on each branch;
* :mod:`~streamguard.explain.lexical`: the lexical heuristic and exact random-order baselines;
* :mod:`~streamguard.explain.scores`: a seed ensemble's line scores, top-k lines;
* :mod:`~streamguard.explain.render`: a function's source shaded by line score (HTML / PNG).
"""

from streamguard.explain.lexical import lexical_line_scores, random_expected_ifa, random_topk_probability
from streamguard.explain.lines import LineIndex, rank_lines, token_lines
from streamguard.explain.scores import (
    DEFAULT_METHODS,
    METHODS,
    LineScore,
    check_method,
    default_method,
    ensemble_line_scores,
    top_lines,
)

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "LineIndex",
    "LineScore",
    "check_method",
    "default_method",
    "ensemble_line_scores",
    "lexical_line_scores",
    "random_expected_ifa",
    "random_topk_probability",
    "rank_lines",
    "token_lines",
    "top_lines",
]
