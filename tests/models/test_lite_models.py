"""The plain-torch inference twins (scan/serving) against the library models they stand in for:
RoBERTa encoder vs ``transformers.RobertaModel``, tokenizer vs ``AutoTokenizer``, GCN vs PyG."""

from __future__ import annotations

import numpy as np
import pytest
import torch

C_FUNCTIONS = [
    "int add(int a, int b)\n{\n    return a + b;\n}\n",
    "void copy(char *dst, const char *src)\n{\n\tstrcpy(dst, src);\t// tabs\n\n\n}\n",
    "char *s = \"héllo wörld ✓ 日本\";\n/* ünïcödé */ int f(void) { return 0; }\n",
    "int crlf(void)\r\n{\r\n    return 1;\r\n}\r\n",
    "",
    "   \n\n  \t\n",
    "int long_one(int n) {\n" + "    n = n * 3 + 1; if (n > 10) { n -= 7; }\n" * 40 + "    return n;\n}\n",
]


@pytest.fixture(scope="module")
def tiny_export() -> dict:
    """A scratch RoBERTa classifier with its BPE tokenizer, exported as checkpoints store it."""
    from streamguard.models.transformer import TransformerClassifier, export_transformer, load_backbone

    torch.manual_seed(0)
    texts = C_FUNCTIONS * 3 + [f"int f{i}(int x) {{ return x * {i}; }}\n" for i in range(30)]
    sizes = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64)
    tokenizer, encoder, info = load_backbone("tiny", train_texts=texts, vocab_size=300, max_length=48, scratch_overrides=sizes)
    return export_transformer(TransformerClassifier(encoder, dropout=0.1), tokenizer, info)


def _padded(ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    from streamguard.training.batching import pad_token_batch

    return pad_token_batch(ids, pad, 8)


def test_lite_roberta_equals_hf_roberta_on_a_padded_batch(tiny_export: dict) -> None:
    from streamguard.models.roberta_lite import LiteRobertaModel
    from streamguard.models.transformer import rebuild_encoder

    hf = rebuild_encoder({**tiny_export, "encoder_state_dict": {k[len("encoder."):]: v for k, v in tiny_export["state_dict"].items() if k.startswith("encoder.")}})[0]
    hf.set_attn_implementation("eager")
    lite = LiteRobertaModel(tiny_export["encoder_config"])
    lite.load_state_dict(hf.state_dict(), strict=True)
    hf.eval(), lite.eval()
    generator = torch.Generator().manual_seed(1)
    ids = [torch.randint(3, 300, (n,), generator=generator).tolist() for n in (5, 17, 11, 1)]
    input_ids, mask = _padded([[0, *row, 2] for row in ids], pad=1)
    assert bool((mask == 0).any())  # the batch does pad
    with torch.no_grad():
        expected = hf(input_ids=input_ids, attention_mask=mask, output_attentions=True)
        actual = lite(input_ids=input_ids, attention_mask=mask, output_attentions=True)
        unpadded = lite(input_ids=input_ids[:1, :7], attention_mask=mask[:1, :7])
        expected_unpadded = hf(input_ids=input_ids[:1, :7], attention_mask=mask[:1, :7])
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
    assert len(actual.attentions) == len(expected.attentions) == 2
    for mine, theirs in zip(actual.attentions, expected.attentions):
        assert mine.shape == theirs.shape == (4, 2, input_ids.shape[1], input_ids.shape[1])
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(unpadded.last_hidden_state, expected_unpadded.last_hidden_state, atol=1e-5, rtol=0)
    assert unpadded.attentions is None
    assert lite.config.hidden_size == 32 and lite.get_input_embeddings() is lite.embeddings.word_embeddings


def test_lite_roberta_gradients_at_the_embeddings_equal_hf(tiny_export: dict) -> None:
    """Gradient line-score methods (Captum at the word embeddings) read the same gradients."""
    from streamguard.models.transformer import rebuild_transformer

    (hf, _), (lite, _) = rebuild_transformer(tiny_export), rebuild_transformer(tiny_export, lite=True)
    input_ids, mask = _padded([[0, 40, 41, 42, 2], [0, 50, 2]], pad=1)
    grads = []
    for model in (hf, lite):
        model.zero_grad()
        logits = model({"input_ids": input_ids, "attention_mask": mask})
        (logits[:, 1] - logits[:, 0]).sum().backward()
        grads.append(model.encoder.get_input_embeddings().weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=0)


def test_rebuild_transformer_lite_scores_like_the_library_model(tiny_export: dict) -> None:
    from streamguard.models.roberta_lite import LiteRobertaModel
    from streamguard.models.tokenizer_lite import LiteTokenizer
    from streamguard.models.transformer import rebuild_transformer

    hf, hf_tokenizer = rebuild_transformer(tiny_export)
    lite, lite_tokenizer = rebuild_transformer(tiny_export, lite=True)
    assert isinstance(lite.encoder, LiteRobertaModel) and isinstance(lite_tokenizer, LiteTokenizer)
    assert not isinstance(hf.encoder, LiteRobertaModel)
    ids = lite_tokenizer(C_FUNCTIONS, truncation=True, max_length=48, padding=False)["input_ids"]
    input_ids, mask = _padded(ids, lite_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.testing.assert_close(lite({"input_ids": input_ids, "attention_mask": mask}),
                                   hf({"input_ids": input_ids, "attention_mask": mask}), atol=1e-5, rtol=0)


def test_lite_encoder_under_mean_pooling_scores_like_the_library_model(tiny_export: dict) -> None:
    """Mean pooling reads every real token's last hidden state, so padding must be handled alike."""
    from streamguard.models.transformer import rebuild_transformer

    exported = {**tiny_export, "head_config": {**tiny_export["head_config"], "pooling": "mean"}}
    (hf, _), (lite, _) = rebuild_transformer(exported), rebuild_transformer(exported, lite=True)
    assert lite.pooling == hf.pooling == "mean"
    input_ids, mask = _padded([[0, 40, 41, 42, 43, 44, 2], [0, 50, 2]], pad=1)
    with torch.no_grad():
        torch.testing.assert_close(lite({"input_ids": input_ids, "attention_mask": mask}),
                                   hf({"input_ids": input_ids, "attention_mask": mask}), atol=1e-5, rtol=0)


@pytest.mark.parametrize("change", [{"hidden_act": "relu"}, {"position_embedding_type": "relative_key"}, {"model_type": "bert"},
                                    {"is_decoder": True}])
def test_configs_the_lite_roberta_does_not_reproduce_keep_the_library_model(change: dict) -> None:
    from streamguard.models.roberta_lite import lite_roberta_unsupported

    config = {"model_type": "roberta", "hidden_act": "gelu", "hidden_size": 32, "num_attention_heads": 2}
    assert lite_roberta_unsupported(config, {"add_pooling_layer": False}) is None
    assert lite_roberta_unsupported({**config, **change}, {"add_pooling_layer": False}) is not None
    assert lite_roberta_unsupported(config, {}) is not None  # a pooler: not reproduced


def test_lite_tokenizer_gives_autotokenizers_ids_and_offsets(tiny_export: dict) -> None:
    from streamguard.models.tokenizer_lite import lite_tokenizer_from_export
    from streamguard.models.transformer import _rebuild_tokenizer

    library, lite = _rebuild_tokenizer(tiny_export), lite_tokenizer_from_export(tiny_export)
    assert lite is not None and lite.is_fast
    assert (lite.pad_token_id, lite.unk_token_id, len(lite)) == (library.pad_token_id, library.unk_token_id, len(library))
    for max_length in (48, 8):
        for text in C_FUNCTIONS:
            expected = library(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
            actual = lite(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
            assert actual["input_ids"] == list(expected["input_ids"]), (max_length, text[:30])
            assert [tuple(pair) for pair in actual["offset_mapping"]] == [tuple(pair) for pair in expected["offset_mapping"]]
        batch = library(C_FUNCTIONS, truncation=True, max_length=max_length, padding=False)
        assert lite(C_FUNCTIONS, truncation=True, max_length=max_length, padding=False)["input_ids"] == [list(row) for row in batch["input_ids"]]
    assert len(lite(C_FUNCTIONS[-1], truncation=True, max_length=48)["input_ids"]) == 48  # truncated, closing </s> kept
    assert len(lite(C_FUNCTIONS[-1])["input_ids"]) > 48  # no truncation unless asked


def test_the_token_dataset_is_the_same_with_either_tokenizer(tiny_export: dict) -> None:
    from streamguard.models.tokenizer_lite import lite_tokenizer_from_export
    from streamguard.models.transformer import TokenizedDataset, _rebuild_tokenizer

    labels, lines = [1] * len(C_FUNCTIONS), [[1, 2]] * len(C_FUNCTIONS)
    library = TokenizedDataset(range(len(C_FUNCTIONS)), C_FUNCTIONS, labels, _rebuild_tokenizer(tiny_export), 48, flaw_lines=lines)
    lite = TokenizedDataset(range(len(C_FUNCTIONS)), C_FUNCTIONS, labels, lite_tokenizer_from_export(tiny_export), 48, flaw_lines=lines)
    assert lite.input_ids == library.input_ids and lite.line_labels == library.line_labels


def test_tokenizers_the_lite_one_does_not_know_keep_autotokenizer(tiny_export: dict) -> None:
    import json

    from streamguard.models.tokenizer_lite import lite_tokenizer_from_export

    files = dict(tiny_export["tokenizer_files"])
    config = json.loads(files["tokenizer_config.json"])
    for change in ({"tokenizer_class": "RobertaTokenizer"}, {"add_prefix_space": True}, {"truncation_side": "left"}):
        changed = {**files, "tokenizer_config.json": json.dumps({**config, **change})}
        assert lite_tokenizer_from_export({**tiny_export, "tokenizer_files": changed}) is None, change
    without_json = {name: text for name, text in files.items() if name != "tokenizer.json"}
    assert lite_tokenizer_from_export({**tiny_export, "tokenizer_files": without_json}) is None


# --- GNN -------------------------------------------------------------------------------------------------


def _graphs() -> list:
    from streamguard.graphs.schema import CodeGraph

    rng = np.random.default_rng(4)

    def graph(nodes: int, edges: int, self_loops: int = 0) -> CodeGraph:
        edge_index = rng.integers(0, nodes, size=(2, edges)) if edges else np.zeros((2, 0), dtype=np.int64)
        if self_loops:
            loops = rng.integers(0, nodes, size=self_loops)
            edge_index = np.concatenate([edge_index, np.stack([loops, loops])], axis=1)
        return CodeGraph(
            node_type=rng.integers(0, 20, size=nodes).astype(np.int32),
            node_token=rng.integers(0, 31, size=nodes).astype(np.int32),
            edge_index=edge_index.astype(np.int64),
            edge_type=rng.integers(0, 4, size=edge_index.shape[1]).astype(np.int8),
        )

    return [graph(9, 20), graph(4, 0), graph(15, 40, self_loops=3), graph(1, 0), graph(6, 9, self_loops=1)]


def _gnn(pooling: str, extra_feature_dim: int = 0, add_reverse_edges: bool = True):
    from streamguard.models.gnn import GNNClassifier

    torch.manual_seed(0)
    model = GNNClassifier(20, 30, 4, arch="gcn", hidden_dim=16, num_layers=3, dropout=0.3, pooling=pooling,
                          extra_feature_dim=extra_feature_dim, add_reverse_edges=add_reverse_edges)
    with torch.no_grad():  # relation weights away from their initial 1, so they matter
        model.relation_logits.uniform_(-2.0, 2.0)
        for conv in model.convs:
            conv.bias.uniform_(-0.5, 0.5)
    lite = GNNClassifier.from_config(model.model_config(), lite=True)
    lite.load_state_dict(model.state_dict(), strict=True)
    return model.eval(), lite.eval()


@pytest.mark.parametrize("pooling, extra, reverse", [("mean_max", 0, True), ("mean", 0, True), ("max", 3, True), ("mean_max", 0, False)])
def test_lite_gcn_equals_the_pyg_gcn(pooling: str, extra: int, reverse: bool) -> None:
    from streamguard.models.gnn import GraphExamples, collate_graphs
    from streamguard.models.gnn_lite import GCNLayer, collate_lite_graphs

    model, lite = _gnn(pooling, extra, reverse)
    assert all(isinstance(conv, GCNLayer) for conv in lite.convs) and lite.model_config() == model.model_config()
    graphs = _graphs()
    features = np.random.default_rng(0).normal(size=(len(graphs), extra)).astype(np.float32) if extra else None
    examples = GraphExamples(list(range(10, 15)), graphs, [0, 1, 0, 1, 1], features)
    lite_examples = GraphExamples(list(range(10, 15)), graphs, [0, 1, 0, 1, 1], features, lite=True)
    batch, lite_batch = collate_graphs([examples[i] for i in range(5)]), collate_lite_graphs([lite_examples[i] for i in range(5)])
    for key in ("labels", "idx", *(("extra_features",) if extra else ())):
        assert torch.equal(batch[key], lite_batch[key])
    for name in ("x", "edge_index", "edge_type", "batch"):
        assert torch.equal(getattr(batch["graph"], name), getattr(lite_batch["graph"], name)), name
    with torch.no_grad():
        torch.testing.assert_close(lite(lite_batch), model(batch), atol=1e-5, rtol=0)
        torch.testing.assert_close(lite.encode(lite_batch), model.encode(batch), atol=1e-5, rtol=0)
        # one graph at a time gives the same as in the batch
        torch.testing.assert_close(lite(collate_lite_graphs([lite_examples[2]])), model(batch)[2:3], atol=1e-5, rtol=0)


def test_lite_gcn_layer_equals_gcnconv_without_edge_weights() -> None:
    from torch_geometric.nn import GCNConv

    from streamguard.models.gnn_lite import GCNLayer

    torch.manual_seed(2)
    conv, layer = GCNConv(8, 5), GCNLayer(8, 5)
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
    layer.load_state_dict(conv.state_dict(), strict=True)
    x, edge_index = torch.randn(7, 8), torch.tensor([[0, 1, 2, 2, 6, 3], [1, 2, 0, 2, 5, 3]])
    torch.testing.assert_close(layer(x, edge_index), conv(x, edge_index), atol=1e-6, rtol=0)
    weight = torch.rand(6)
    torch.testing.assert_close(layer(x, edge_index, weight), conv(x, edge_index, weight), atol=1e-6, rtol=0)


@pytest.mark.parametrize("config", [{"arch": "gat"}, {"arch": "ggnn"}, {"pooling": "attention"}, {"pooling": "devign"}])
def test_architectures_without_a_lite_twin_need_pyg(config: dict) -> None:
    from streamguard.models.gnn import GNNClassifier
    from streamguard.models.gnn_lite import lite_gnn_unsupported

    assert lite_gnn_unsupported(config) is not None
    with pytest.raises(ValueError, match="lite GNN"):
        GNNClassifier(20, 30, 4, hidden_dim=16, lite=True, **config)


def test_gradient_x_input_node_scores_equal_pygs_captum_explainer() -> None:
    """The gnn default line-score method runs without PyG's explain module, with the same scores."""
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer

    from streamguard.explain.gnn import _node_scores, single_graph_batch

    model, lite = _gnn("mean_max")
    graph = _graphs()[2]
    batch = single_graph_batch(graph)
    x = lite.node_inputs(batch["graph"]).detach()

    class NodeInputModel(torch.nn.Module):
        def forward(self, inputs, edge_index):  # noqa: ARG002
            return model(batch, node_inputs=inputs)

    explainer = Explainer(
        model=NodeInputModel(), algorithm=CaptumExplainer("InputXGradient"), explanation_type="phenomenon",
        node_mask_type="attributes", edge_mask_type=None,
        model_config={"mode": "multiclass_classification", "task_level": "graph", "return_type": "raw"},
    )
    with torch.enable_grad():
        expected = explainer(x.clone().requires_grad_(True), batch["graph"].edge_index, target=torch.tensor([1]))
    expected_scores = np.abs(expected.node_mask.detach().sum(dim=-1).numpy())
    actual = _node_scores(lambda inputs: lite(batch, node_inputs=inputs), x, batch["graph"].edge_index, "gradient_x_input", 16, 1)
    np.testing.assert_allclose(actual, expected_scores, atol=1e-5)
    assert float(np.abs(actual).sum()) > 0


@pytest.mark.parametrize("arch, pooling", [("gat", "mean"), ("ggnn", "attention"), ("gcn", "devign"), ("gcn", "mean_max")])
def test_line_score_batches_of_one_graph_suit_every_library_gnn(arch: str, pooling: str) -> None:
    """``explain.gnn.single_graph_batch`` is plain tensors for every architecture, not only the lite ones."""
    from streamguard.explain.gnn import single_graph_batch
    from streamguard.models.gnn import GNNClassifier, GraphExamples, collate_graphs

    torch.manual_seed(0)
    model = GNNClassifier(20, 30, 4, arch=arch, hidden_dim=16, num_layers=2, pooling=pooling).eval()
    graph = _graphs()[0]
    with torch.no_grad():
        expected = model(collate_graphs([GraphExamples([0], [graph], [0])[0]]))
        torch.testing.assert_close(model(single_graph_batch(graph)), expected, atol=1e-6, rtol=0)
