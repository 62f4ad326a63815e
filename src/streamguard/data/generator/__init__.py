"""Embedded default data set: labelled synthetic C functions across eight CWE families.

The project must run offline on its own data, and a data set that one token can solve
would make every model look perfect. So each family has a vulnerable and a fixed variant
that use the same APIs and differ in structure only (a bound `<` vs `<=`, a check on the
wrong variable, a pointer not reset after free on one path, ...). Decoy snippets in their
fixed form, scary-looking but safe calls, and unrelated noise statements appear in both
classes; a share of labels is flipped, as in Devign.

Everything is drawn from one `random.Random(seed)`, so the same arguments give the same
functions on every machine.
"""

from __future__ import annotations

import random

import pandas as pd

from streamguard.data.generator._vocabulary import _NOUNS, _RETURN_TYPES, _VERBS
from streamguard.data.generator._function import _Function, _ensure_status, _indent
from streamguard.data.generator._families import FAMILIES, Family
from streamguard.data.generator._noise import _NOISE, _noise_param_check

__all__ = ["FAMILIES", "Family", "generate_dataset", "generate_functions"]


# --- assembly ---------------------------------------------------------------------------


def _build_function(rng: random.Random, family: Family, vulnerable: bool) -> str:
    fn = _Function(rng=rng, goto_style=rng.random() < 0.3)
    if fn.goto_style:
        _ensure_status(fn)
    pieces: list[list[str]] = []
    argument_checks: list[list[str]] = []
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 5))):
        noise = _NOISE[rng.randrange(len(_NOISE))]
        # A NULL test of the context after some use of it would itself be a CWE-476 pattern.
        (argument_checks if noise is _noise_param_check else pieces).append(noise(fn))
    core_start = len(fn.body)
    rng.choice(family.shapes)(fn, vulnerable)
    core = fn.body[core_start:]
    del fn.body[core_start:]
    pieces.insert(rng.randint(0, len(pieces)), core)
    if rng.random() < 0.15:  # a decoy: another family's snippet, always in its fixed form
        decoy_family = rng.choice([other for other in FAMILIES if other is not family and other.name != "double_free"])
        rng.choice(decoy_family.shapes)(fn, False)
        pieces.insert(rng.randint(0, len(pieces)), fn.body[:])
        fn.body.clear()
    for piece in argument_checks + pieces:
        if fn.body and rng.random() < 0.4:
            fn.body.append("")
        fn.body += piece
    if fn.cleanup or fn.uses_label:
        tail = [f"{fn.label}:", *_indent(fn.cleanup), f"    return {fn.status};"]
    else:
        tail = _indent([f"return {fn.status if fn.status else fn.pick(('0', '0', '1', fn.counter()))};"])
    name = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}" + (f"_{rng.randint(0, 99)}" if rng.random() < 0.3 else "")
    signature = f"{rng.choice(_RETURN_TYPES)} {name}({', '.join(fn.params) or 'void'})"
    lines = [signature, "{"] + _indent(fn.decls) + ([""] if fn.decls else []) + _indent(fn.body) + tail + ["}"]
    return "\n".join(lines) + "\n"


def generate_functions(
    n: int, seed: int, label_noise: float = 0.05, vulnerable_ratio: float = 0.45, start_idx: int = 0
) -> list[dict]:
    """Generate `n` labelled functions; the same arguments always give the same rows.

    `clean_target` is the label by construction; `target` flips it with probability
    `label_noise`, mimicking the noisy commit-based labels of Devign.
    """
    rng = random.Random(seed)
    rows: list[dict] = []
    for offset in range(n):
        family = rng.choice(FAMILIES)
        clean_target = int(rng.random() < vulnerable_ratio)
        func = _build_function(rng, family, bool(clean_target))
        target = 1 - clean_target if rng.random() < label_noise else clean_target
        rows.append(
            {
                "idx": start_idx + offset,
                "func": func,
                "target": target,
                "project": "synthetic",
                "cwe": family.cwe,
                "family": family.name,
                "clean_target": clean_target,
            }
        )
    return rows


def generate_dataset(
    n_train: int,
    n_valid: int,
    n_test: int,
    seed: int = 0,
    label_noise: float = 0.05,
    vulnerable_ratio: float = 0.45,
) -> dict[str, pd.DataFrame]:
    """Generate train/valid/test splits with ids unique across splits.

    One stream is cut into the three splits, so growing a later split never changes an
    earlier one and the splits are drawn from the same distribution.
    """
    rows = generate_functions(n_train + n_valid + n_test, seed, label_noise, vulnerable_ratio)
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, len(rows))}
    columns = ["idx", "func", "target", "project", "cwe", "family", "clean_target"]
    splits = {}
    for split, (start, stop) in bounds.items():
        frame = pd.DataFrame(rows[start:stop], columns=columns)
        splits[split] = frame.astype({"idx": "int64", "target": "int64", "clean_target": "int64"})
    return splits
