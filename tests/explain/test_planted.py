"""A model that only reacts to one planted token: every track's explanation must rank that token's line first."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard.explain import METHODS, ensemble_line_scores, rank_lines
from streamguard.tracks.common import reuse_loaded_models

# `supervised` needs a model trained with its line head: tests/explain/test_line_supervision.py.
CASES = [(track, method) for track in ("transformer", "gnn", "fusion") for method in METHODS[track] if method != "supervised"]


@pytest.mark.parametrize(("track", "method"), CASES)
def test_planted_line_ranks_first(planted_models, planted_test, track: str, method: str) -> None:
    from streamguard.serving.scorer import EnsembleScorer

    checkpoint = planted_models[track]
    probabilities = EnsembleScorer(track, [checkpoint], 0.5).score_codes(planted_test["func"].tolist())
    assert np.mean((probabilities >= 0.5) == planted_test["target"].to_numpy()) == 1.0  # the model learned the task
    vulnerable = planted_test[planted_test["target"] == 1]
    with reuse_loaded_models({}):
        scores = ensemble_line_scores([checkpoint], vulnerable["func"].tolist(), method)
    for line_scores, code, planted in zip(scores, vulnerable["func"], vulnerable["planted_line"]):
        assert len(line_scores) == len(code.split("\n"))
        assert rank_lines(line_scores)[0] == planted, (method, code, np.round(line_scores, 3))


def test_seed_ensemble_averages_normalised_seed_scores(planted_models, planted_test) -> None:
    """Two seeds' line scores: each L1-normalised, then averaged; non-statement lines NaN."""
    from streamguard.explain.lines import normalise, only_statement_lines
    from streamguard.explain.scores import seed_line_scores

    code = planted_test[planted_test["target"] == 1]["func"].iloc[0]
    first, second = planted_models["gnn"], planted_models["fusion"]["model"]["branch_checkpoints"]["gnn"]
    second = {**second, "model": {**second["model"], "state_dict": {k: v * 1.5 for k, v in second["model"]["state_dict"].items()}}}
    one, two = (seed_line_scores(c, code, "gradient_x_input") for c in (first, second))
    expected = only_statement_lines(code, (normalise(one) + normalise(two)) / 2)
    averaged = ensemble_line_scores([first, second], [code], "gradient_x_input")[0]
    assert np.allclose(averaged, expected, equal_nan=True)
    assert np.isnan(averaged[[0, 1, -2, -1]]).all()  # signature, braces, the empty last line


def test_unknown_method_is_refused(planted_models) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        ensemble_line_scores([planted_models["gnn"]], ["int f(void) { return 0; }"], "attention")
