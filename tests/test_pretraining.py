"""MLM pretraining: corpus assembly, masking collate, the pipeline on an in-memory catalog, and the
transformer starting from the pretrained encoder."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
import torch

TEMPLATES = [
    "int f{i}(char *buf, int n) {{ if (n > {i}) return -1; memcpy(buf, src, n); return 0; }}",
    "void g{i}(struct node *p) {{ free(p); p->next = NULL; }}",
    "static int h{i}(const char *fmt) {{ printf(fmt); return {i}; }}",
    "size_t k{i}(size_t a, size_t b) {{ char *m = malloc(a * b); if (!m) return 0; return a * b; }}",
]
MICRO_PARAMS = {
    "model_name": "tiny",
    "max_length": 48,
    "vocab_size": 300,
    "mlm_probability": 0.15,
    "valid_fraction": 0.2,
    "seed": 0,
    "corpus": {"include_train": True, "jsonl": [], "directories": [], "max_functions": 0},
    "training": {"epochs": 2, "batch_size": 8, "eval_batch_size": 16, "lr": 2.0e-3, "warmup_ratio": 0.0,
                 "early_stopping_patience": 0, "progress": False},
}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def train_frame() -> pd.DataFrame:
    texts = [template.format(i=i) for i in range(10) for template in TEMPLATES]
    return pd.DataFrame({"idx": range(len(texts)), "func": texts, "target": [int("free" in t) for t in texts]})


@pytest.fixture(scope="module")
def pretrained(train_frame, monkeypatch_module):
    from streamguard.models import transformer as transformer_module
    from streamguard.tracks.pretraining import pretrain_encoder

    # A micro encoder (1 layer, 32 wide) keeps the test in seconds; the recipe is the real one.
    monkeypatch_module.setitem(transformer_module.SCRATCH_SIZES, "tiny",
                               dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64))
    return pretrain_encoder(train_frame, MICRO_PARAMS, seed=0)


@pytest.fixture(scope="module")
def monkeypatch_module():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


def test_corpus_takes_train_jsonl_fields_and_c_directories_without_duplicates(train_frame, tmp_path):
    from streamguard.tracks.pretraining import pretraining_corpus

    jsonl = tmp_path / "juliet.jsonl.gz"
    with gzip.open(jsonl, "wt") as handle:
        handle.write(json.dumps({"func": "with FLAW comment", "func_anon": "void bad(void) { int a[2]; a[2] = 0; }"}) + "\n")
        handle.write(json.dumps({"func_anon": train_frame["func"][0]}) + "\n")  # duplicate of a train function
        handle.write("not json\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "util.c").write_text("int add(int a, int b)\n{\n  return a + b;\n}\n\nstatic void noop(void) { }\n")
    texts, counts = pretraining_corpus(
        train_frame, {"include_train": True, "jsonl": [{"path": str(jsonl), "field": "func_anon"}], "directories": [str(source)]}
    )
    assert counts["train_split"] == len(train_frame) and counts[f"jsonl:{jsonl.name}:func_anon"] == 2
    assert counts[f"directory:{source}"] == 2 and counts["duplicates_dropped"] == 1
    assert "void bad(void) { int a[2]; a[2] = 0; }" in texts and any("int add(int a, int b)" in text for text in texts)
    assert not any("FLAW" in text for text in texts)  # only the named field is read
    assert counts["total"] == len(texts) == len(train_frame) + 3
    capped, capped_counts = pretraining_corpus(train_frame, {"include_train": True, "max_functions": 7})
    assert len(capped) == capped_counts["total"] == 7
    with pytest.raises(ValueError, match="corpus is empty"):
        pretraining_corpus(train_frame, {"include_train": False})


def test_mlm_collate_masks_and_flattens_the_labels_of_masked_positions_only():
    from streamguard.models.transformer import TokenizedDataset, make_mlm_collate, train_bpe_tokenizer

    texts = [template.format(i=i) for i in range(6) for template in TEMPLATES]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300)
    dataset = TokenizedDataset(list(range(len(texts))), texts, [0] * len(texts), tokenizer, 48)
    batch = make_mlm_collate(tokenizer, 0.15, 8, seed=3)([dataset[i] for i in range(len(dataset))])
    masked = batch["mlm_labels"] != -100
    assert masked.any() and batch["labels"].tolist() == batch["mlm_labels"][masked].tolist()
    assert (batch["input_ids"][masked] == tokenizer.mask_token_id).float().mean() > 0.5  # 80 % become <mask>
    assert not masked[batch["attention_mask"] == 0].any()  # padding is never a target
    again = make_mlm_collate(tokenizer, 0.15, 8, seed=3)([dataset[i] for i in range(len(dataset))])
    assert torch.equal(again["mlm_labels"], batch["mlm_labels"])  # a fixed seed gives the same masks (validation)
    one = make_mlm_collate(tokenizer, 0.0001, 8)([dataset[0]])
    assert one["labels"].numel() >= 1  # never an empty target: the loss stays defined


def test_pretraining_lowers_the_masked_token_loss_and_exports_the_encoder(pretrained):
    checkpoint, history = pretrained
    assert checkpoint["track"] == "pretraining" and len(history) == 2
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(record["valid_perplexity"] == pytest.approx(2.718281828 ** record["valid_loss"], rel=1e-4) for record in history)
    exported = checkpoint["model"]
    assert {"encoder_config", "encoder_state_dict", "tokenizer_files", "backbone_info"} <= set(exported)
    assert checkpoint["corpus"]["total"] == 40


def test_transformer_starts_from_the_pretrained_encoder(pretrained, train_frame, monkeypatch):
    from streamguard.tracks import transformer as track
    from streamguard.tracks.pretraining import pretrained_backbone

    checkpoint, _ = pretrained
    tokenizer, encoder, info = pretrained_backbone(checkpoint)
    expected = checkpoint["model"]["encoder_state_dict"]
    assert all(torch.equal(value, expected[key]) for key, value in encoder.state_dict().items())
    assert tokenizer("int f(void)")["input_ids"][0] == tokenizer.bos_token_id and info["source"] == "pretrained_mlm"

    seen = {}
    real_fit = track.fit_with_resume if hasattr(track, "fit_with_resume") else None

    def spy(run_fit, config, **kwargs):
        seen["extra_config"] = kwargs.get("extra_config")
        return real_fit(run_fit, config, **kwargs)

    monkeypatch.setattr(track, "fit_with_resume", spy)
    params = {"model_name": "tiny", "init_from": "pretraining", "max_length": 48, "vocab_size": 300, "dropout": 0.1,
              "training": {"epochs": 1, "batch_size": 8, "progress": False}}
    fine_tuned, _ = track.train_transformer(train_frame, train_frame, params, seed=0, pretrained=checkpoint)
    assert fine_tuned["model"]["backbone_info"]["source"] == "pretrained_mlm"
    assert seen["extra_config"]["pretrained_encoder"][0] == checkpoint["config_hash"]  # resume knows the encoder
    with pytest.raises(FileNotFoundError, match="kedro run --pipeline pretraining"):
        track.train_transformer(train_frame, train_frame, params, seed=0, pretrained=None)


def test_pretraining_pipeline_writes_encoder_history_metrics_and_curves(train_frame, tmp_path, monkeypatch):
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from streamguard.datasets import FiguresDataset
    from streamguard.models import transformer as transformer_module
    from streamguard.pipelines.pretraining import create_pipeline

    monkeypatch.setitem(transformer_module.SCRATCH_SIZES, "tiny",
                        dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64))
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"train_functions", "params:pretraining", "pretraining.training_state"}
    outputs = {"pretraining.encoder", "pretraining.history", "pretraining.metrics"}
    catalog = DataCatalog(
        {
            "train_functions": MemoryDataset(train_frame),
            "params:pretraining": MemoryDataset({**MICRO_PARAMS, "training": {**MICRO_PARAMS["training"], "epochs": 1}}),
            "pretraining.training_state": MemoryDataset(None),
            **{name: MemoryDataset() for name in outputs},
            "pretraining.curves": FiguresDataset(str(tmp_path / "figures")),
        }
    )
    SequentialRunner().run(pipeline, catalog)
    metrics = catalog.load("pretraining.metrics")
    assert metrics["corpus"]["total"] == 40 and metrics["best_valid_perplexity"] > 1
    assert catalog.load("pretraining.encoder")["track"] == "pretraining"
    assert (tmp_path / "figures" / "pretraining_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_seeded_mlm_collate_works_outside_the_main_process(monkeypatch):
    """Dask workers, Kedro's ParallelRunner and spawned pools are not the main process and not
    DataLoader workers; transformers' collator refuses to seed itself there."""
    import transformers.data.data_collator as collator_module

    from streamguard.models.transformer import TokenizedDataset, make_mlm_collate, train_bpe_tokenizer

    class Worker:
        name = "SpawnProcess-1"

    texts = [template.format(i=i) for i in range(4) for template in TEMPLATES]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300)
    dataset = TokenizedDataset(list(range(len(texts))), texts, [0] * len(texts), tokenizer, 48)
    in_main = make_mlm_collate(tokenizer, 0.15, 8, seed=5)([dataset[i] for i in range(len(dataset))])
    monkeypatch.setattr(collator_module.mp, "current_process", lambda: Worker())
    in_worker = make_mlm_collate(tokenizer, 0.15, 8, seed=5)([dataset[i] for i in range(len(dataset))])
    assert torch.equal(in_worker["mlm_labels"], in_main["mlm_labels"])  # same seeded masks wherever it runs
