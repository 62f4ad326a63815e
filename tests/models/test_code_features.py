"""The original's 10 hand-crafted code features as an optional side input to the transformer head (issue 16, item 3)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from streamguard.models.code_features import NAMES, code_feature_matrix, code_features

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
SOURCE = """int copy(char *dst, const char *src, int n) {
    // copy at most n bytes
    char buf[16];
    if (n > 16) { goto fail; }
    for (int i = 0; i < n; i++) { buf[i] = src[i]; }
    strcpy(dst, buf);
    system(getenv("CMD"));
    return strlen(dst) > 0 ? 1 : 0;
fail:
    return -1;
}"""


def test_each_feature_counts_its_c_construct_capped_and_scaled():
    values = dict(zip(NAMES, code_features(SOURCE), strict=True))
    assert values["loc"] == pytest.approx(11 / 100)
    assert values["sloc"] == pytest.approx(10 / 100)  # the comment-only line does not count
    assert values["sql_concat"] == 0.0
    assert values["execute"] == pytest.approx(1 / 5)  # system(
    assert values["user_input"] == pytest.approx(1 / 5)  # getenv(
    assert values["loops"] == pytest.approx(1 / 10)
    assert values["branches"] == pytest.approx(2 / 10)  # if and the ternary ?
    assert values["calls"] == pytest.approx(5 / 20)  # copy, strcpy, system, getenv, strlen
    assert values["try_blocks"] == pytest.approx(1 / 5)  # goto
    assert values["string_ops"] == pytest.approx(2 / 10)  # strcpy, strlen
    capped = code_features("\n".join(["x = system(a);"] * 30))
    assert capped[NAMES.index("execute")] == 1.0 and capped[NAMES.index("loc")] == pytest.approx(0.3)
    assert code_feature_matrix([SOURCE, ""]).shape == (2, 10)


@pytest.fixture(scope="module")
def frames():
    from streamguard.data.generator import generate_dataset

    return generate_dataset(48, 24, 0, seed=5)


def _params(code_features: bool) -> dict:
    params = copy.deepcopy(yaml.safe_load((CONF / "parameters_transformer.yml").read_text())["_transformer_defaults"])
    params.update({"max_length": 64, "vocab_size": 300, "code_features": code_features})
    params["training"].update({"epochs": 1, "progress": False})
    return params


def test_the_transformer_track_trains_and_predicts_with_code_features(frames):
    from streamguard.tracks.transformer import load_transformer, transformer_embeddings, transformer_logits, train_transformer

    checkpoint, _ = train_transformer(frames["train"], frames["valid"], _params(True), seed=0)
    assert checkpoint["model"]["head_config"]["code_features"] is True
    model, _, _ = load_transformer(checkpoint)
    assert model.uses_code_features and model.code_projection.in_features == 10
    logits = transformer_logits(checkpoint, frames["valid"])
    assert len(logits) == len(frames["valid"]) and np.isfinite(logits["prob"]).all()
    assert transformer_embeddings(checkpoint, frames["valid"]).shape == (len(frames["valid"]), model.embedding_dim)
    # The features are really an input: other feature values give other outputs for the same tokens.
    from streamguard.models.transformer import make_token_collate
    from streamguard.tracks.transformer import _token_dataset

    _, tokenizer, max_length = load_transformer(checkpoint)
    dataset = _token_dataset(frames["valid"].head(4), tokenizer, max_length, code_features=True)
    batch = make_token_collate(tokenizer.pad_token_id)([dataset[i] for i in range(4)])
    with torch.no_grad():
        original = model(batch)
        changed = model({**batch, "code_features": torch.ones_like(batch["code_features"])})
    assert not torch.allclose(original, changed)
    with pytest.raises(ValueError, match="trained with code_features"):
        model({key: value for key, value in batch.items() if key != "code_features"})


def test_without_code_features_the_model_has_no_side_input(frames):
    from streamguard.tracks.transformer import load_transformer, train_transformer

    checkpoint, _ = train_transformer(frames["train"], frames["valid"], _params(False), seed=0)
    model, _, _ = load_transformer(checkpoint)
    assert not model.uses_code_features and not hasattr(model, "code_projection")
    assert checkpoint["model"]["head_config"]["code_features"] is False


def test_high_recall_preset_uses_code_features_as_the_original():
    presets = yaml.safe_load((CONF / "parameters_transformer.yml").read_text())["transformer_presets"]
    assert presets["high_recall"]["code_features"] is True
