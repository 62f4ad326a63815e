"""The lexical branch of fusion: the TF-IDF model's log-odds as a third, one-number branch."""

from __future__ import annotations

import io

import numpy as np
import pytest

from streamguard.data.generator import generate_dataset

from tests.explain.planted import FUSION_PARAMS, GNN_PARAMS, GRAPH_PARAMS, TRANSFORMER_PARAMS

BASELINE = {"c_grid": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], "min_df": 1}


@pytest.fixture(scope="module")
def frames():
    return generate_dataset(96, 48, 48, seed=11)


def test_scorer_survives_a_weights_only_checkpoint_and_matches_the_baseline(frames):
    import torch

    from streamguard.tracks.baseline import LexicalScorer, fit_baseline

    scorer = LexicalScorer.fit(frames["train"], frames["valid"], BASELINE)
    buffer = io.BytesIO()
    torch.save({"lexical": scorer.export()}, buffer)
    buffer.seek(0)
    restored = LexicalScorer.from_export(torch.load(buffer, weights_only=True)["lexical"])
    texts = frames["test"]["func"].tolist()
    _, test_logits, info = fit_baseline(frames["train"], frames["valid"], frames["test"], BASELINE)
    assert restored.c == info["C"]
    np.testing.assert_allclose(restored.log_odds(texts), test_logits["logit_1"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(scorer.log_odds(texts), restored.log_odds(texts), atol=1e-12)


def test_cross_fitted_margins_are_out_of_fold(frames):
    from streamguard.tracks.baseline import LexicalScorer, cross_fitted_margins

    train = frames["train"]
    scorer = LexicalScorer.fit(train, frames["valid"], BASELINE)
    out_of_fold = cross_fitted_margins(train, scorer.c, BASELINE, folds=4)
    in_sample = scorer.log_odds(train["func"].tolist())
    labels = train["target"].to_numpy()
    assert out_of_fold.shape == (len(train),)
    np.testing.assert_array_equal(out_of_fold, cross_fitted_margins(train, scorer.c, BASELINE, folds=4))  # seeded folds

    def separation(scores):  # mean score of vulnerable minus safe rows
        return scores[labels == 1].mean() - scores[labels == 0].mean()

    # A model scoring its own training rows separates them better than it will separate unseen rows.
    assert separation(in_sample) > separation(out_of_fold)
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_fitted_margins(train, scorer.c, BASELINE, folds=1)


def test_fusion_with_a_lexical_branch_trains_saves_and_scores_new_code(frames, tmp_path):
    from streamguard.tracks.fusion import fusion_logits, load_fusion, train_fusion
    from streamguard.tracks.gnn import build_split_graphs, train_gnn
    from streamguard.tracks.transformer import train_transformer
    from streamguard.training import atomic_torch_save, safe_torch_load

    train, valid, test = frames["train"], frames["valid"], frames["test"]
    quick = {"epochs": 1}
    transformer, _ = train_transformer(train, valid, {**TRANSFORMER_PARAMS, "training": {**TRANSFORMER_PARAMS["training"], **quick}}, seed=0)
    graphs = {split: build_split_graphs(frames[split], GRAPH_PARAMS)[0] for split in ("train", "valid", "test")}
    gnn, _ = train_gnn(graphs["train"], train, graphs["valid"], valid,
                       {**GNN_PARAMS, "training": {**GNN_PARAMS["training"], **quick}}, GRAPH_PARAMS, seed=0)
    params = {**FUSION_PARAMS, "lexical_branch": True, "lexical_folds": 3,
              "training": {**FUSION_PARAMS["training"], "collapse_check_from_epoch": 0}}
    checkpoint, history = train_fusion(transformer, gnn, {"train": train, "valid": valid}, graphs, params, seed=0,
                                       baseline_params=BASELINE)
    assert checkpoint["metrics_extra"]["lexical_branch"] is True
    dims = checkpoint["model"]["head_config"]["branch_dims"]
    assert dims["lexical"] == 1 and set(dims) == {"transformer", "gnn", "lexical"}
    assert history and "valid_roc_auc" in history[-1]

    path = tmp_path / "fusion.pt"
    atomic_torch_save(checkpoint, path)
    reloaded = safe_torch_load(path)
    before = fusion_logits(checkpoint, test, graphs["test"])
    after = fusion_logits(reloaded, test, graphs["test"])
    np.testing.assert_allclose(before[["logit_0", "logit_1"]].to_numpy(), after[["logit_0", "logit_1"]].to_numpy(), atol=1e-5)
    assert load_fusion(reloaded).lexical_scorer is not None

    # The branch is used: shifting the lexical input moves the fusion logits.
    import torch

    model = load_fusion(reloaded)
    features = {"transformer": torch.zeros(1, dims["transformer"]), "gnn": torch.zeros(1, dims["gnn"])}
    low = model({"features": {**features, "lexical": torch.full((1, 1), -5.0)}})
    high = model({"features": {**features, "lexical": torch.full((1, 1), 5.0)}})
    assert not torch.allclose(low, high)
    with pytest.raises(KeyError, match="lexical branch is a feature"):
        model({"features": features, "transformer": None, "gnn": None})
