"""The serving scorer on the plain-torch models (the default) against the library models: same
probabilities, same line scores, and no ``transformers`` / PyG / sympy / scipy / scikit-learn / pandas imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TRACKS = ("transformer", "gnn", "fusion")
HEAVY = ("transformers", "torch_geometric", "sympy", "scipy", "sklearn", "captum", "kedro", "mlflow", "pandas", "torch._dynamo")


def _scorers(checkpoint: dict, track: str):
    from streamguard.serving.scorer import EnsembleScorer

    return EnsembleScorer(track, [checkpoint], 0.5, lite=True), EnsembleScorer(track, [checkpoint], 0.5, lite=False)


def _built_models(scorer) -> list:
    return [model for _, model in scorer._models.values()]


def _is_lite(model) -> bool:
    from streamguard.models.roberta_lite import LiteRobertaModel

    if isinstance(model, tuple):  # load_transformer: (model, tokenizer, max_length)
        return isinstance(model[0].encoder, LiteRobertaModel)
    if hasattr(model, "encoders"):  # fusion
        return all(_is_lite(encoder) for encoder in model.encoders.values())
    if hasattr(model, "encoder"):
        return isinstance(model.encoder, LiteRobertaModel)
    return bool(model.lite)


@pytest.mark.parametrize("track", TRACKS)
def test_the_lite_scorer_scores_and_explains_like_the_library_models(planted_models, planted_test, track: str) -> None:
    lite, library = _scorers(planted_models[track], track)
    codes = planted_test["func"].tolist()
    np.testing.assert_allclose(lite.score_codes(codes), library.score_codes(codes), atol=1e-5, rtol=0)
    assert _built_models(lite) and all(_is_lite(model) for model in _built_models(lite))
    assert not any(_is_lite(model) for model in _built_models(library))
    method = lite.default_line_method  # attention (transformer, fusion) or gradient_x_input (gnn)
    for mine, theirs in zip(lite.line_scores(codes[:4], method), library.line_scores(codes[:4], method)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
        assert np.isfinite(mine).any()


@pytest.mark.parametrize("track, method", [("transformer", "integrated_gradients"), ("transformer", "occlusion"),
                                           ("fusion", "gradient_x_input"), ("gnn", "integrated_gradients")])
def test_other_line_score_methods_work_on_the_lite_models(planted_models, planted_test, track: str, method: str) -> None:
    lite, library = _scorers(planted_models[track], track)
    codes = planted_test["func"].tolist()[:2]
    for mine, theirs in zip(lite.line_scores(codes, method), library.line_scores(codes, method)):
        np.testing.assert_allclose(mine, theirs, atol=1e-4, rtol=1e-4)


def test_library_models_on_request(planted_models, monkeypatch) -> None:
    from streamguard.serving.scorer import EnsembleScorer

    monkeypatch.setenv("STREAMGUARD_LITE_MODELS", "0")
    assert EnsembleScorer("gnn", [planted_models["gnn"]], 0.5).lite is False
    monkeypatch.delenv("STREAMGUARD_LITE_MODELS")
    assert EnsembleScorer("gnn", [planted_models["gnn"]], 0.5).lite is True


PROBE = """
import json, sys
from streamguard.serving.scorer import EnsembleScorer
from streamguard.training.checkpoint import safe_torch_load
track, path, codes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
scorer = EnsembleScorer(track, [safe_torch_load(path)], 0.5)
scores = scorer.score_codes(codes).tolist()
lines = [[None if x != x else x for x in s.tolist()] for s in scorer.line_scores(codes)]
print(json.dumps({"scores": scores, "lines": lines, "imported": sorted(m for m in sys.argv[4].split(",") if m in sys.modules)}))
"""


@pytest.mark.parametrize("track", TRACKS)
def test_scoring_with_line_scores_imports_no_library_model_stack(planted_models, planted_test, tmp_path: Path, track: str) -> None:
    import torch

    path = tmp_path / "checkpoint.pt"
    torch.save(planted_models[track], path)
    codes = planted_test["func"].tolist()[:3]
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, track, str(path), json.dumps(codes), ",".join(HEAVY)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["imported"] == [], f"scoring imported {result['imported']}"
    _, library = _scorers(planted_models[track], track)
    np.testing.assert_allclose(result["scores"], library.score_codes(codes), atol=1e-5, rtol=0)
    for mine, theirs in zip(result["lines"], library.line_scores(codes)):
        np.testing.assert_allclose(np.array(mine, dtype=float), theirs, atol=1e-5, rtol=0)
