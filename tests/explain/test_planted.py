"""A model that only reacts to one planted token: every track's explanation must rank that token's line first."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard.explain import METHODS, ensemble_line_scores, rank_lines
from streamguard.tracks.common import reuse_loaded_models

CASES = [(track, method) for track in ("transformer", "gnn", "fusion") for method in METHODS[track]]


@pytest.mark.parametrize(("track", "method"), CASES)
def test_planted_line_ranks_first(planted_models, planted_test, track: str, method: str) -> None:
    from streamguard.inference import EnsembleScorer

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
    """Two copies of one seed give exactly that seed's normalised scores (the ensemble is a mean)."""
    from streamguard.explain.lines import normalise

    code = planted_test[planted_test["target"] == 1]["func"].iloc[0]
    checkpoint = planted_models["gnn"]
    single = ensemble_line_scores([checkpoint], [code], "gradient_x_input")[0]
    double = ensemble_line_scores([checkpoint, checkpoint], [code], "gradient_x_input")[0]
    assert np.allclose(normalise(single), double, equal_nan=True)


def test_unknown_method_is_refused(planted_models) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        ensemble_line_scores([planted_models["gnn"]], ["int f(void) { return 0; }"], "attention")
