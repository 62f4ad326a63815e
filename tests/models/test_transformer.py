"""Transformer backbone: scratch tokenizer/encoder, local loading, offline errors, export round trip."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from streamguard.models.transformer import (
    BACKBONE_ALIASES,
    SCRATCH_SIZES,
    BackboneUnavailableError,
    TokenizedDataset,
    TransformerClassifier,
    export_transformer,
    load_backbone,
    make_token_collate,
    rebuild_transformer,
    train_bpe_tokenizer,
)

MICRO = dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64)
TEMPLATES = [
    "int f{i}(char *buf, int n) {{ if (n > {i}) return -1; memcpy(buf, src, n); return 0; }}",
    "void g{i}(struct node *p) {{ free(p); p->next = NULL; }}",
    "static int h{i}(const char *fmt) {{ printf(fmt); return {i}; }}",
    "size_t k{i}(size_t a, size_t b) {{ char *m = malloc(a * b); if (!m) return 0; return a * b; }}",
]
TEXTS = [template.format(i=i) for i in range(12) for template in TEMPLATES]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return load_backbone("tiny", train_texts=TEXTS, vocab_size=400, max_length=64, scratch_overrides=MICRO)


def _batch(tokenizer, texts, max_length=64):
    dataset = TokenizedDataset(list(range(len(texts))), texts, [i % 2 for i in range(len(texts))], tokenizer, max_length)
    return make_token_collate(tokenizer.pad_token_id, 8)([dataset[i] for i in range(len(dataset))])


def test_registry_constants():
    assert BACKBONE_ALIASES["codebert"] == "microsoft/codebert-base"
    assert set(SCRATCH_SIZES) == {"tiny", "small"}
    assert SCRATCH_SIZES["tiny"]["hidden_size"] == 128


def test_bpe_tokenizer_is_roberta_like(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=400)
    assert [tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    assert tokenizer.pad_token_id == 1
    ids = tokenizer(TEXTS[:2], truncation=True, max_length=10)["input_ids"]
    assert all(seq[0] == 0 and seq[-1] == 2 and len(seq) == 10 for seq in ids)  # truncation keeps </s>
    assert tokenizer.decode(tokenizer(TEXTS[0])["input_ids"], skip_special_tokens=True) == TEXTS[0]
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(TEXTS[:3])["input_ids"] == tokenizer(TEXTS[:3])["input_ids"]


def test_scratch_backbone(backbone):
    tokenizer, encoder, info = backbone
    assert info == {**info, "model_name": "tiny", "source": "scratch", "max_length": 64, "hidden_size": 32}
    config = encoder.config
    assert config.max_position_embeddings == 66 and config.pad_token_id == 1
    assert config.vocab_size == len(tokenizer) and config.num_hidden_layers == 1
    with pytest.raises(ValueError, match="train_texts"):
        load_backbone("tiny")


def test_classifier_shapes_and_dynamic_padding(backbone):
    tokenizer, encoder, _ = backbone
    model = TransformerClassifier(encoder, dropout=0.1).eval()
    assert model.embedding_dim == 32
    texts = [TEXTS[0], "int x;"]
    dataset = TokenizedDataset([7, 9], texts, [1, 0], tokenizer, max_length=64)
    assert dataset.lengths == [len(ids) for ids in dataset.input_ids] and dataset.labels == [1, 0]
    batch = make_token_collate(tokenizer.pad_token_id, 8)([dataset[0], dataset[1]])
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width - 8 < max(dataset.lengths) <= width < 64
    assert batch["attention_mask"].sum(dim=1).tolist() == dataset.lengths
    assert batch["idx"].tolist() == [7, 9] and batch["labels"].tolist() == [1, 0]
    with torch.no_grad():
        assert model(batch).shape == (2, 2)
        assert model.encode(batch).shape == (2, 32)
        # padding does not change a sequence's output
        alone = make_token_collate(tokenizer.pad_token_id, None)([dataset[1]])
        torch.testing.assert_close(model(alone)[0], model(batch)[1], rtol=1e-4, atol=1e-5)


def test_export_rebuild_round_trip_gives_identical_logits(backbone):
    tokenizer, encoder, info = backbone
    torch.manual_seed(1)
    model = TransformerClassifier(encoder, dropout=0.2).eval()
    exported = export_transformer(model, tokenizer, info)
    buffer = io.BytesIO()
    torch.save({"model": exported}, buffer)  # what the lead's checkpoint does
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["model"]
    assert loaded["backbone_info"]["source"] == "scratch" and "tokenizer.json" in loaded["tokenizer_files"]
    rebuilt, rebuilt_tokenizer = rebuild_transformer(loaded)
    assert rebuilt_tokenizer(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    assert rebuilt_tokenizer.model_max_length == 64
    batch = _batch(tokenizer, TEXTS[:6])
    with torch.no_grad():
        assert torch.equal(rebuilt(batch), model(batch))
    assert rebuilt.dropout_p == 0.2


def test_load_backbone_from_a_local_directory(backbone, tmp_path, caplog):
    tokenizer, encoder, _ = backbone
    encoder.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        loaded_tokenizer, loaded_encoder, info = load_backbone(str(tmp_path), max_length=512)
    assert info["source"] == "pretrained" and info["max_length"] == 64  # 66 positions - 2 for RoBERTa
    assert "max_length=512" in caplog.text
    assert loaded_tokenizer.model_max_length == 64
    batch = _batch(tokenizer, TEXTS[:4])
    encoder.eval(), loaded_encoder.eval()
    with torch.no_grad():
        expected = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        actual = loaded_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.equal(actual, expected)
    # and the export of a "pretrained" model rebuilds offline as well
    model = TransformerClassifier(loaded_encoder).eval()
    buffer = io.BytesIO()
    torch.save(export_transformer(model, loaded_tokenizer, info), buffer)
    buffer.seek(0)
    rebuilt, _ = rebuild_transformer(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        assert torch.equal(rebuilt(batch), model(batch))


def test_unavailable_backbone_offline_explains_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneUnavailableError) as error:
        load_backbone("codebert")
    message = str(error.value)
    assert "microsoft/codebert-base" in message and "offline" in message
    assert "huggingface-cli download microsoft/codebert-base" in message
    assert "/path/to/dir" in message and "'tiny'" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert isinstance(error.value, ValueError)
    with pytest.raises(BackboneUnavailableError, match="no directory"):
        load_backbone(str(tmp_path / "missing" / "model"))


def test_tiny_transformer_trains_with_the_shared_loop(backbone):
    from streamguard.training import TrainConfig, fit, predict_logits

    tokenizer, _, _ = backbone
    torch.manual_seed(0)
    _, encoder, info = load_backbone("tiny", train_texts=TEXTS, vocab_size=400, max_length=64, scratch_overrides=MICRO)
    labels = [int("free" in text or "printf" in text) for text in TEXTS]
    train = TokenizedDataset(list(range(len(TEXTS))), TEXTS, labels, tokenizer, info["max_length"])
    config = TrainConfig(epochs=2, batch_size=8, lr=1e-3, progress=False, early_stopping_patience=0)
    result = fit(
        TransformerClassifier(encoder), train, train, make_token_collate(tokenizer.pad_token_id, 8), config,
        train_lengths=train.lengths,
    )
    assert len(result.history) == 2 and result.history[-1]["tokens_per_s"] > 0
    idx, _, logits = predict_logits(result.model, train, make_token_collate(1, 8), batch_size=16)
    assert idx.tolist() == list(range(len(TEXTS))) and logits.shape == (len(TEXTS), 2)


def test_mean_pooling_averages_real_tokens_only_and_survives_export(backbone):
    tokenizer, encoder, info = backbone
    torch.manual_seed(1)
    model = TransformerClassifier(encoder, pooling="mean").eval()
    batch = _batch(tokenizer, TEXTS[:6])
    assert bool((batch["attention_mask"] == 0).any())  # padding present: it must not count
    with torch.no_grad():
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        expected = torch.stack([hidden[i, batch["attention_mask"][i].bool()].mean(dim=0) for i in range(len(hidden))])
        torch.testing.assert_close(model.encode(batch), expected, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(model.encode(batch), hidden[:, 0])
    exported = export_transformer(model, tokenizer, info)
    assert exported["head_config"]["pooling"] == "mean"
    assert "pooling" not in export_transformer(TransformerClassifier(encoder), tokenizer, info)["head_config"]  # CLS exports as before
    rebuilt, _ = rebuild_transformer(exported)
    assert rebuilt.pooling == "mean"
    with torch.no_grad():
        assert torch.equal(rebuilt(batch), model(batch))
    with pytest.raises(ValueError, match="pooling"):
        TransformerClassifier(encoder, pooling="max")
