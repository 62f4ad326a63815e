"""A task only one planted token decides, and tiny models trained on it (shared by the explain tests)."""

from __future__ import annotations

import random

import pandas as pd

FILLERS = (
    "int x = a + 3;",
    "x = x * 2;",
    "char buf[10];",
    "int y = x - a;",
    "y = y + 1;",
    "if (x > 4) { x = 0; }",
    "a = a ^ y;",
    "int z = a * y;",
)
PLANTED, DECOY = "planted_sink(s);", "benign_sink(s);"


def planted_function(index: int, vulnerable: bool, rng: random.Random) -> tuple[str, int]:
    """(code, 1-based line of the planted/decoy call): the label depends on that line only."""
    body = rng.sample(FILLERS, 5)
    position = rng.randrange(len(body) + 1)
    body.insert(position, PLANTED if vulnerable else DECOY)
    lines = [f"int f_{index}(int a, char *s)", "{", *(f"    {line}" for line in body), "    return x;", "}"]
    return "\n".join(lines) + "\n", position + 3


def planted_frame(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        vulnerable = i % 2 == 0
        code, line = planted_function(i, vulnerable, rng)
        rows.append({"idx": i, "func": code, "target": int(vulnerable), "planted_line": line})
    return pd.DataFrame(rows)


TRANSFORMER_PARAMS = {
    "model_name": "tiny",
    "max_length": 96,
    "vocab_size": 300,
    "dropout": 0.0,
    "training": {"epochs": 4, "batch_size": 16, "lr": 2.0e-3, "early_stopping_patience": 0, "selection_metric": "valid_loss", "progress": False},
}
GRAPH_PARAMS = {"edge_types": ["ast", "next_token", "control_flow", "data_flow"], "max_nodes": 256, "token_buckets": 512}
GNN_PARAMS = {
    "arch": "gcn", "hidden_dim": 16, "num_layers": 2, "dropout": 0.0, "pooling": "mean_max", "encoder_features": "none",
    "training": {"epochs": 8, "batch_size": 16, "lr": 1.0e-2, "early_stopping_patience": 0, "selection_metric": "valid_loss", "group_by_length": False,
                 "pad_to_multiple_of": None, "progress": False},
}
FUSION_PARAMS = {
    "model_name": None, "hidden_dim": 16, "dropout": 0.0, "freeze_transformer": True, "freeze_gnn": True,
    "encoder_lr": 1.0e-5, "training": {"epochs": 4, "batch_size": 16, "lr": 5.0e-3, "early_stopping_patience": 0, "selection_metric": "valid_loss",
                                       "group_by_length": False, "progress": False},
}


def train_planted_models(train: pd.DataFrame, valid: pd.DataFrame) -> dict[str, dict]:
    """One seed of each track (transformer, gnn, fusion) on the planted task, through the track recipes."""
    from streamguard.tracks.fusion import train_fusion
    from streamguard.tracks.gnn import build_split_graphs, train_gnn
    from streamguard.tracks.transformer import train_transformer

    transformer, _ = train_transformer(train, valid, TRANSFORMER_PARAMS, seed=0)
    train_graphs, _ = build_split_graphs(train, GRAPH_PARAMS)
    valid_graphs, _ = build_split_graphs(valid, GRAPH_PARAMS)
    gnn, _ = train_gnn(train_graphs, train, valid_graphs, valid, GNN_PARAMS, GRAPH_PARAMS, seed=0)
    fusion, _ = train_fusion(
        transformer, gnn, {"train": train, "valid": valid}, {"train": train_graphs, "valid": valid_graphs}, FUSION_PARAMS, seed=0
    )
    return {"transformer": transformer, "gnn": gnn, "fusion": fusion}


def juliet_style_rows(n: int, seed: int, split: str) -> list[dict]:
    """Rows shaped like the Juliet functions files: ``func`` with the suite's FLAW comments and a
    bad/good name, ``func_anon`` without comments and with the name replaced (as the real files)."""
    import hashlib

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        vulnerable = i % 2 == 0
        anon, line = planted_function(i, vulnerable, rng)
        lines = anon.split("\n")
        name = f"CWE121_case_{i}_{'bad' if vulnerable else 'good'}"
        original = list(lines)
        original[0] = original[0].replace(f"f_{i}", name)
        comment = "    /* POTENTIAL FLAW: planted sink */" if vulnerable else "    /* FIX: benign sink */"
        original.insert(line - 1, comment)
        original.insert(2, "")
        func_anon = "\n".join([lines[0].replace(f"f_{i}", "id_1"), *lines[1:]])
        rows.append(
            {
                "id": f"{split}/case_{i}.c:1", "cwe": "CWE121", "role": "bad" if vulnerable else "good",
                "target": int(vulnerable), "func": "\n".join(original), "func_anon": func_anon,
                "anon_sha1": hashlib.sha1(func_anon.encode()).hexdigest(), "label_conflict": False, "split": split,
                "planted_line": line,
            }
        )
    return rows


def with_flaw_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the ``flaw_lines`` column line supervision reads: the planted line of vulnerable rows."""
    return frame.assign(flaw_lines=[[int(line)] if target else [] for line, target in zip(frame["planted_line"], frame["target"])])
