"""A GPU check that runs on a bare GPU box: torch, transformers, torch-geometric and accelerate
(plus numpy, pandas and scikit-learn), no Kedro, no MLflow, no network.

It uses StreamGuard's plain modules (models, the one training loop, metrics) from a copy of the
repository's ``src/`` and prints, in one run (under 8 minutes on one GPU):

* CodeBERT-size training throughput (RoBERTa-base shape built from config: 12 layers, hidden 768,
  12 heads; random weights, nothing downloaded) in functions/s and real tokens/s for fp32, bf16
  and fp16, with dynamic padding and length-grouped batches, and the peak GPU memory of each;
* GNN (GCN over the typed code graphs) and fusion-head training throughput;
* a short fine-tune of the CodeBERT-size model on a Devign sample: per-epoch train loss (it
  should fall) and validation ROC-AUC / F1 from the project's metrics module.

The GNN code (its graph type) needs tree-sitter, which comes along as two wheels: ``--prepare``
(run where the project is installed, with network) writes a bundle with the Devign sample, its
code graphs built beforehand (``graphs.pt``: nothing is parsed on the box) and the wheels::

    python benchmarks/gpu_check.py --prepare bundle/ --devign ../shared/data/devign/train.jsonl.gz
    scp -r src benchmarks/gpu_check.py bundle/ gpu-box:check/
    pip install --no-index check/bundle/wheels/*.whl                             # on the GPU box
    PYTHONPATH=check/src python check/gpu_check.py --bundle check/bundle --json gpu.json

``--quick`` is the same code path on a few CPU-sized batches (the test suite runs it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROBERTA_BASE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)
QUICK_SHAPE = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128)
TREE_SITTER_WHEELS = ("tree-sitter==0.26.1", "tree-sitter-c==0.24.2")  # requirements.txt pins


def read_jsonl(path: Path, limit: int | None, seed: int = 0) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rows = [{"idx": int(r.get("idx", i)), "func": r["func"], "target": int(r["target"])} for i, r in enumerate(rows)]
    if limit is not None and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)
    return rows


def generated_rows(n: int) -> list[dict]:
    """CPU quick mode without a Devign file: the project's generated functions."""
    from streamguard.data.generator import generate_dataset

    frame = generate_dataset(n, 0, 0, seed=7)["train"]
    return frame[["idx", "func", "target"]].to_dict("records")


def prepare(out: Path, rows: list[dict], with_wheels: bool) -> None:
    """Write the bundle for the GPU box: the sample, its code graphs, the tree-sitter wheels."""
    from streamguard.graphs import GraphConfig, build_graphs
    from streamguard.training import atomic_torch_save

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sample.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    graphs = build_graphs([row["func"] for row in rows], GraphConfig())
    atomic_torch_save({"graphs": graphs}, out / "graphs.pt")
    if with_wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps", "-d", str(out / "wheels"),
             *TREE_SITTER_WHEELS], check=True,
        )
    print(f"bundle written to {out}: {len(rows)} functions, graphs.pt, {'wheels/' if with_wheels else 'no wheels'}")


def load_graphs(bundle: Path | None, rows: list[dict]) -> list:
    if bundle is not None and (bundle / "graphs.pt").exists():
        import torch

        return torch.load(bundle / "graphs.pt", weights_only=False)["graphs"]
    from streamguard.graphs import GraphConfig, build_graphs  # needs tree-sitter

    return build_graphs([row["func"] for row in rows], GraphConfig())


def _peak_memory_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.empty_cache()


def _peak_memory_gib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def transformer_parts(rows: list[dict], shape: dict, max_length: int):
    from streamguard.models.transformer import TokenizedDataset, TransformerClassifier, load_backbone

    texts = [row["func"] for row in rows]
    tokenizer, encoder, info = load_backbone(
        "small", train_texts=texts, vocab_size=8000, max_length=max_length, scratch_overrides=shape
    )
    dataset = TokenizedDataset([r["idx"] for r in rows], texts, [r["target"] for r in rows], tokenizer, int(info["max_length"]))
    return tokenizer, TransformerClassifier(encoder, dropout=0.1), dataset


def run_fit(model, train_set, valid_set, collate, train_lengths=None, **training):
    """The project's own loop (AdamW, warmup, AMP, clipping, validation)."""
    from streamguard.training import TrainConfig, fit

    config = TrainConfig(progress=False, early_stopping_patience=0, warmup_ratio=0.1, **training)
    started = time.perf_counter()
    result = fit(model, train_set, valid_set, collate, config, train_lengths=train_lengths)
    return result, time.perf_counter() - started


def transformer_throughput(rows, shape, max_length, batch_size, device, precisions) -> list[dict]:
    import torch
    from torch.utils.data import Subset

    from streamguard.models.transformer import make_token_collate

    tokenizer, _, dataset = transformer_parts(rows, shape, max_length)
    collate = make_token_collate(tokenizer.pad_token_id, 8)
    valid = Subset(dataset, range(min(len(dataset), batch_size)))
    results = []
    for precision in precisions:
        if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
            results.append({"precision": precision, "skipped": "GPU without bf16"})
            continue
        _, model, _ = transformer_parts(rows[:64], shape, max_length)  # fresh weights per precision
        _peak_memory_reset(device)
        result, _ = run_fit(
            model, dataset, valid, collate, train_lengths=dataset.lengths, epochs=1, batch_size=batch_size,
            amp_dtype=None if precision == "fp32" else precision, device=str(device), lr=2e-5,
        )
        record = result.history[-1]
        results.append({
            "precision": precision,
            "amp_used": result.state["effective"]["amp_dtype"] or "fp32",
            "functions_per_s": record["samples_per_s"],
            "tokens_per_s": record.get("tokens_per_s"),
            "peak_gib": _peak_memory_gib(device),
        })
        del model, result
    return results


def gnn_and_fusion_throughput(rows, graphs, device, batch_size, hidden_dim) -> dict:
    import numpy as np

    from streamguard.graphs import EDGE_TYPES, NUM_NODE_TYPES
    from streamguard.models.fusion import FusionClassifier, FusionExamples, make_fusion_collate
    from streamguard.models.gnn import GNNClassifier, GraphExamples, collate_graphs

    labels = [row["target"] for row in rows]
    idx = [row["idx"] for row in rows]
    examples = GraphExamples(idx, graphs, labels)
    token_buckets = max(int(graph.node_token.max(initial=0)) for graph in graphs) + 1
    gnn = GNNClassifier(num_node_types=NUM_NODE_TYPES, token_buckets=token_buckets, num_edge_types=len(EDGE_TYPES),
                        hidden_dim=hidden_dim, num_layers=3, dropout=0.1)
    _peak_memory_reset(device)
    result, _ = run_fit(gnn, examples, examples, collate_graphs, epochs=1, batch_size=batch_size, device=str(device),
                        lr=2e-3, group_by_length=False)
    out = {"gnn_graphs_per_s": result.history[-1]["samples_per_s"], "gnn_peak_gib": _peak_memory_gib(device)}

    rng = np.random.default_rng(0)  # fusion head over cached branch embeddings (CodeBERT 768 + GNN pooled)
    features = {"transformer": rng.normal(size=(len(rows), 768)), "gnn": rng.normal(size=(len(rows), 2 * hidden_dim))}
    fusion_set = FusionExamples(idx, labels, features=features)
    fusion = FusionClassifier({name: array.shape[1] for name, array in features.items()}, hidden_dim=256, dropout=0.1)
    result, _ = run_fit(fusion, fusion_set, fusion_set, make_fusion_collate({}), epochs=1, batch_size=batch_size * 4,
                        device=str(device), lr=1e-3, group_by_length=False)
    out["fusion_functions_per_s"] = result.history[-1]["samples_per_s"]
    return out


def fine_tune(rows, shape, max_length, batch_size, device, epochs, precision) -> dict:
    from streamguard.evaluation.metrics import compute_metrics, probabilities_from_logits  # the project's one metrics module
    from streamguard.models.transformer import make_token_collate
    from streamguard.training import predict_logits

    split = int(len(rows) * 0.8)
    tokenizer, model, dataset = transformer_parts(rows, shape, max_length)
    from torch.utils.data import Subset

    train_set, valid_set = Subset(dataset, range(split)), Subset(dataset, range(split, len(rows)))
    lengths = [dataset.lengths[i] for i in range(split)]
    collate = make_token_collate(tokenizer.pad_token_id, 8)
    amp = None if precision == "fp32" else precision
    result, seconds = run_fit(model, train_set, valid_set, collate, train_lengths=lengths, epochs=epochs,
                              batch_size=batch_size, amp_dtype=amp, device=str(device), lr=2e-5 if shape is ROBERTA_BASE else 1e-3)
    _, labels, logits = predict_logits(result.model, valid_set, collate, batch_size=batch_size * 2, device=device)
    metrics = compute_metrics(labels, probabilities_from_logits(logits))
    losses = [record["train_loss"] for record in result.history]
    return {"train_loss_per_epoch": losses, "loss_fell": losses[-1] < losses[0], "seconds": seconds,
            "valid_roc_auc": metrics["roc_auc"], "valid_f1_at_0_5": metrics["f1_at_0_5"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="folder written by --prepare (sample.jsonl, graphs.pt)")
    parser.add_argument("--devign", type=Path, help="a Devign/CodeXGLUE jsonl(.gz) to sample from")
    parser.add_argument("--sample", type=int, default=2000, help="functions in the sample (default 2000)")
    parser.add_argument("--prepare", type=Path, help="write a bundle for the GPU box here and stop")
    parser.add_argument("--no-wheels", action="store_true", help="--prepare without downloading the tree-sitter wheels")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: tiny shapes, few batches")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sample = 64 if args.quick else args.sample
    if args.bundle is not None and (args.bundle / "sample.jsonl").exists():
        rows = read_jsonl(args.bundle / "sample.jsonl", sample)
    elif args.devign is not None:
        rows = read_jsonl(args.devign, sample)
    else:
        rows = generated_rows(sample)
    if args.prepare is not None:
        prepare(args.prepare, rows, with_wheels=not args.no_wheels)
        return 0

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    shape = QUICK_SHAPE if args.quick else ROBERTA_BASE
    max_length = 128 if args.quick else 512
    batch = 8 if args.quick else 16
    precisions = ["fp32"] if device.type == "cpu" else ["fp32", "bf16", "fp16"]
    started = time.perf_counter()
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "functions": len(rows), "quick": bool(args.quick),
        "transformer_shape": shape,
    }
    print(f"device {report['device']}, torch {torch.__version__}, {len(rows)} functions", flush=True)
    report["transformer"] = transformer_throughput(rows, shape, max_length, batch, device, precisions)
    for row in report["transformer"]:
        if "skipped" in row:
            print(f"  transformer {row['precision']}: skipped ({row['skipped']})")
            continue
        peak = f", peak {row['peak_gib']:.2f} GiB" if row["peak_gib"] is not None else ""
        print(f"  transformer {row['precision']:>4} (amp {row['amp_used']}): {row['functions_per_s']:.1f} functions/s, "
              f"{row['tokens_per_s']:.0f} tokens/s{peak}", flush=True)
    graphs = load_graphs(args.bundle, rows)
    report["gnn_fusion"] = gnn_and_fusion_throughput(rows, graphs, device, 32 if args.quick else 64, 16 if args.quick else 128)
    print(f"  gnn: {report['gnn_fusion']['gnn_graphs_per_s']:.1f} graphs/s; fusion head: "
          f"{report['gnn_fusion']['fusion_functions_per_s']:.0f} functions/s", flush=True)
    tune_precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else ("fp16" if device.type == "cuda" else "fp32")
    report["fine_tune"] = fine_tune(rows, shape, max_length, batch, device, 2 if args.quick else 3, tune_precision)
    tune = report["fine_tune"]
    print(f"  fine-tune ({tune_precision}): train loss per epoch {', '.join(f'{v:.4f}' for v in tune['train_loss_per_epoch'])} "
          f"({'falls' if tune['loss_fell'] else 'does NOT fall'}); valid ROC-AUC {tune['valid_roc_auc']:.3f}", flush=True)
    report["total_seconds"] = time.perf_counter() - started
    print(f"total {report['total_seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
