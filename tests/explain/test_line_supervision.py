"""Line supervision: the transformer's optional line head, trained through the one loop from per-row
flaw lines, and the ``supervised`` line-score method that reads it (transformer, fusion, serving)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from .planted import FUSION_PARAMS, GNN_PARAMS, GRAPH_PARAMS, TRANSFORMER_PARAMS, planted_frame, with_flaw_lines

SUPERVISED_PARAMS = {**TRANSFORMER_PARAMS, "line_supervision": 1.0}


@pytest.fixture(scope="module")
def supervised_models() -> dict[str, dict]:
    """A transformer trained with its line head on the planted task, and a fusion model built on it."""
    from streamguard.tracks.fusion import train_fusion
    from streamguard.tracks.gnn import build_split_graphs, train_gnn
    from streamguard.tracks.transformer import train_transformer

    train, valid = with_flaw_lines(planted_frame(240, seed=1)), planted_frame(60, seed=2)
    transformer, history = train_transformer(train, valid, SUPERVISED_PARAMS, seed=0)
    graphs = {name: build_split_graphs(frame, GRAPH_PARAMS)[0] for name, frame in (("train", train), ("valid", valid))}
    gnn, _ = train_gnn(graphs["train"], train, graphs["valid"], valid, {**GNN_PARAMS, "training": {**GNN_PARAMS["training"], "epochs": 2}}, GRAPH_PARAMS, seed=0)
    fusion, _ = train_fusion(transformer, gnn, {"train": train, "valid": valid}, graphs, FUSION_PARAMS, seed=0)
    return {"transformer": transformer, "fusion": fusion, "history": history}


def _vulnerable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["target"] == 1]


@pytest.mark.parametrize("track", ["transformer", "fusion"])
def test_supervised_line_scores_rank_the_planted_line_first(supervised_models, planted_test, track: str) -> None:
    from streamguard.explain import ensemble_line_scores, rank_lines
    from streamguard.serving.scorer import EnsembleScorer

    checkpoint = supervised_models[track]
    probabilities = EnsembleScorer(track, [checkpoint], 0.5).score_codes(planted_test["func"].tolist())
    assert np.mean((probabilities >= 0.5) == planted_test["target"].to_numpy()) == 1.0  # detection still learned
    vulnerable = _vulnerable(planted_test)
    scores = ensemble_line_scores([checkpoint], vulnerable["func"].tolist(), "supervised")
    for line_scores, planted in zip(scores, vulnerable["planted_line"]):
        assert rank_lines(line_scores)[0] == planted, np.round(line_scores, 3)
        # The head's probability, max over the line's tokens: the planted line near 1, every other line low.
        others = np.delete(line_scores, planted - 1)
        assert np.nanmax(others) < 0.5 < line_scores[planted - 1]


def test_line_head_is_in_the_checkpoint_and_the_loop_records_its_loss(supervised_models) -> None:
    model = supervised_models["transformer"]["model"]
    assert model["head_config"]["line_supervision"] == 1.0
    assert {"line_head.weight", "line_head.bias"} <= set(model["state_dict"])
    history = supervised_models["history"]
    assert all(record["train_auxiliary_loss"] > 0 for record in history)
    assert history[-1]["train_auxiliary_loss"] < history[0]["train_auxiliary_loss"]  # the line head learned


def test_token_labels_follow_the_line_scores_token_mapping() -> None:
    """Tokens of the flawed line are 1, other lines' tokens 0, special / whitespace tokens ignored (-100);
    clean rows and rows without known lines are ignored entirely."""
    from streamguard.data.source_lines import token_lines
    from streamguard.models.transformer import TokenizedDataset, make_token_collate, train_bpe_tokenizer

    codes = ["int f(int a)\n{\n    a = a + 1;\n    sink(a);\n}\n", "int g(void)\r\n{\r\n    return 0;\r\n}\r\n", "int h(int a)\n{\n    sink(a);\n}\n"]
    tokenizer = train_bpe_tokenizer(codes * 4, vocab_size=300)
    dataset = TokenizedDataset([0, 1, 2], codes, [1, 0, 1], tokenizer, 64, flaw_lines=[[4], [], []])
    encoded = tokenizer(codes[0], return_offsets_mapping=True)
    lines = token_lines(codes[0], encoded["offset_mapping"])
    assert dataset.line_labels[0] == [-100 if line is None else int(line == 4) for line in lines]
    assert 1 in dataset.line_labels[0] and 0 in dataset.line_labels[0]
    assert set(dataset.line_labels[1]) == {-100} and set(dataset.line_labels[2]) == {-100}
    batch = make_token_collate(tokenizer.pad_token_id, 8)([dataset[0], dataset[1]])
    assert batch["line_labels"].shape == batch["input_ids"].shape
    assert bool((batch["line_labels"][batch["attention_mask"] == 0] == -100).all())


def _tiny_run(params: dict, train: pd.DataFrame) -> dict:
    from streamguard.tracks.transformer import train_transformer

    quick = {**params, "training": {**params["training"], "epochs": 1}}
    checkpoint, _ = train_transformer(train, planted_frame(16, seed=2), quick, seed=0)
    return checkpoint


def test_weight_zero_or_no_flaw_lines_gives_exactly_the_plain_model(caplog) -> None:
    """line_supervision 0 (or > 0 without flaw lines) trains the plain classifier bit for bit, with
    the old checkpoint layout: no line head, no extra head_config key."""
    train = planted_frame(48, seed=1)
    plain = _tiny_run(TRANSFORMER_PARAMS, train)
    off = _tiny_run({**TRANSFORMER_PARAMS, "line_supervision": 0.0}, with_flaw_lines(train))
    with caplog.at_level("WARNING"):
        unlabelled = _tiny_run({**TRANSFORMER_PARAMS, "line_supervision": 1.0}, train)
    assert "has no effect" in caplog.text
    for checkpoint in (plain, off, unlabelled):
        assert set(checkpoint["model"]["head_config"]) == {"dropout", "hidden_size", "code_features"}
        assert not any("line_head" in key for key in checkpoint["model"]["state_dict"])
        assert "train_auxiliary_loss" not in checkpoint["history"][0]
    for checkpoint in (off, unlabelled):
        assert checkpoint["model"]["state_dict"].keys() == plain["model"]["state_dict"].keys()
        assert all(torch.equal(checkpoint["model"]["state_dict"][k], v) for k, v in plain["model"]["state_dict"].items())
    on = _tiny_run(SUPERVISED_PARAMS, with_flaw_lines(train))
    assert "line_head.weight" in on["model"]["state_dict"]


def test_a_checkpoint_without_line_head_loads_and_supervised_names_the_parameter(planted_models) -> None:
    """The plain planted transformer has the pre-line-head layout (an old checkpoint): it loads and
    scores; ``supervised`` on it (and on a fusion model built on it) is a clear error."""
    from streamguard.explain import ensemble_line_scores
    from streamguard.models.transformer import rebuild_transformer

    exported = planted_models["transformer"]["model"]
    old = {**exported, "head_config": {key: exported["head_config"][key] for key in ("dropout", "hidden_size", "code_features")}}
    model, _ = rebuild_transformer(old)
    assert model.line_head is None
    code = "int f(int a, char *s)\n{\n    planted_sink(s);\n    return a;\n}\n"
    for track in ("transformer", "fusion"):
        with pytest.raises(ValueError, match="line_supervision"):
            ensemble_line_scores([planted_models[track]], [code], "supervised")


def test_served_model_returns_supervised_lines(supervised_models, planted_test, tmp_path: Path) -> None:
    import mlflow.pyfunc

    from streamguard.serving.model import save_servable_model
    from streamguard.serving.scorer import EnsembleScorer

    save_servable_model(EnsembleScorer("transformer", [supervised_models["transformer"]], 0.5), tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    vulnerable = _vulnerable(planted_test).head(3)
    answer = model.predict(pd.DataFrame({"func": vulnerable["func"].tolist()}), params={"lines": 1, "line_method": "supervised"})
    assert [lines[0]["line"] for lines in answer["lines"]] == vulnerable["planted_line"].tolist()


def test_auxiliary_output_is_added_for_the_learning_rate_range_test() -> None:
    from streamguard.training.losses import WithAuxiliaryLoss, split_output

    logits, labels = torch.tensor([[2.0, -1.0]]), torch.tensor([0])
    plain = torch.nn.CrossEntropyLoss()(logits, labels)
    assert split_output(logits) == (logits, None)
    combined = WithAuxiliaryLoss(torch.nn.CrossEntropyLoss())({"logits": logits, "auxiliary_loss": torch.tensor(0.5)}, labels)
    assert torch.isclose(combined, plain + 0.5)


def test_fusion_fine_tuning_a_supervised_branch_keeps_its_line_head(supervised_models) -> None:
    """A live (unfrozen) transformer branch trains through fusion's loss, which never reaches the line
    head: the head stays as trained and the fusion checkpoint loads with it."""
    from streamguard.tracks.fusion import load_fusion, train_fusion

    train, valid = planted_frame(48, seed=1), planted_frame(16, seed=2)
    params = {**FUSION_PARAMS, "freeze_transformer": False, "training": {**FUSION_PARAMS["training"], "epochs": 1}}
    transformer = supervised_models["transformer"]
    fusion, _ = train_fusion(transformer, None, {"train": train, "valid": valid}, {"train": [], "valid": []}, params, seed=0)
    tuned = fusion["model"]["fine_tuned_encoders"]["transformer"]
    trained = transformer["model"]["state_dict"]
    assert torch.equal(tuned["line_head.weight"], trained["line_head.weight"])
    assert not torch.equal(tuned["encoder.embeddings.word_embeddings.weight"], trained["encoder.embeddings.word_embeddings.weight"])
    assert load_fusion(fusion).encoders["transformer"].line_head is not None


@pytest.mark.parametrize("track", ["transformer", "fusion"])
def test_scan_uses_the_line_head_by_default_and_accepts_it_by_name(supervised_models, planted_models, planted_test, track, tmp_path, monkeypatch, capsys) -> None:
    """Seed ensembles with a line head score lines with it unless told otherwise; without one the default stays."""
    import json

    from streamguard.explain import default_method
    from streamguard.serving.scan import cli as scan_cli
    from streamguard.serving.scorer import EnsembleScorer

    vulnerable = _vulnerable(planted_test).head(2)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "planted.c").write_text("\n".join(vulnerable["func"].tolist()) + "\n")
    monkeypatch.chdir(tmp_path)
    scorer = EnsembleScorer(track, [supervised_models[track]], 0.5)
    for argv in (["src", "--format", "json", "--lines", "1"], ["src", "--format", "json", "--lines", "1", "--line-method", "supervised"]):
        assert scan_cli.main(argv, scorer_factory=lambda *_: scorer) == scan_cli.EXIT_FLAGGED
        document = json.loads(capsys.readouterr().out)
        assert document["summary"]["line_scores"]["method"] == "supervised"
        assert [f["lines"][0]["text"] for f in document["functions"]] == ["planted_sink(s);"] * 2
    assert default_method(track, [planted_models[track]]) == "attention"  # no line head: the track's default
    assert default_method(track, [supervised_models[track], planted_models[track]]) == "attention"  # not every seed has one
