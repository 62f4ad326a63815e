"""In-domain pretraining: masked-language modelling of the from-scratch encoder on unlabelled C.

Why: a tiny RoBERTa trained from scratch on ~20k labelled functions learns C syntax and the
vulnerability signal at once, and barely leaves chance level. Pretraining it first on the same
functions without labels (and on any other C a user has: Juliet's ``func_anon``, their own code
base) gives the classifier an encoder that already knows the language. The corpus never holds
valid or test text. The output is an encoder checkpoint (encoder weights + tokenizer) that the
transformer track starts from with ``transformer.init_from: pretraining``.

Plain Python: transformers' ``RobertaForMaskedLM`` and ``DataCollatorForLanguageModeling``, trained
by the shared loop (:func:`streamguard.training.fit`) with an MLM validation (loss, perplexity).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamguard.tracks.common import (
    build_checkpoint,
    fit_with_resume,
    keep_finished,
    require_track,
    reuse_finished,
    train_config,
)

logger = logging.getLogger(__name__)

TRACK = "pretraining"


def pretraining_corpus(train: pd.DataFrame, corpus: Mapping[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The unlabelled functions to pretrain on, and how many came from each source.

    ``corpus``: ``include_train`` (the train split's ``func``), ``jsonl`` (a list of
    ``{path, field}``: e.g. Juliet's ``func_anon``), ``directories`` (C sources whose functions the
    scan extractor pulls out), ``max_functions`` (a seeded cap, 0 = all). Exact duplicates are dropped.
    """
    texts: list[str] = []
    counts: dict[str, int] = {}
    if corpus.get("include_train", True):
        texts += [str(text) for text in train["func"].tolist()]
        counts["train_split"] = len(train)
    for entry in corpus.get("jsonl") or []:
        path, field = Path(str(entry["path"])).expanduser(), str(entry.get("field", "func"))
        found = _jsonl_texts(path, field)
        texts += found
        counts[f"jsonl:{path.name}:{field}"] = len(found)
    for directory in corpus.get("directories") or []:
        found = _directory_functions(Path(str(directory)).expanduser())
        texts += found
        counts[f"directory:{directory}"] = len(found)
    unique = list(dict.fromkeys(text for text in texts if text.strip()))
    counts["duplicates_dropped"] = len(texts) - len(unique)
    cap = int(corpus.get("max_functions") or 0)
    if cap and len(unique) > cap:
        keep = np.sort(np.random.default_rng(int(corpus.get("seed", 0))).choice(len(unique), cap, replace=False))
        unique = [unique[i] for i in keep]
    counts["total"] = len(unique)
    if not unique:
        raise ValueError("the pretraining corpus is empty: enable pretraining.corpus.include_train or name jsonl files / directories")
    return unique, counts


def _jsonl_texts(path: Path, field: str) -> list[str]:
    """``field`` of every JSON line of a (gzipped) jsonl file; lines without it are counted and skipped."""
    import gzip
    import json

    if not path.exists():
        raise FileNotFoundError(f"pretraining.corpus.jsonl names {path}, which does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    texts, skipped = [], 0
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                value = json.loads(line).get(field)
            except (json.JSONDecodeError, AttributeError):
                value = None
            if isinstance(value, str) and value.strip():
                texts.append(value)
            else:
                skipped += 1
    if skipped:
        logger.warning("pretraining corpus: %d line(s) of %s had no text field %r and were skipped", skipped, path, field)
    return texts


def _directory_functions(directory: Path) -> list[str]:
    """Function definitions in the C files under ``directory``, found by the scan extractor."""
    from streamguard.data.extract import extract_functions, iter_source_files

    texts: list[str] = []
    for path in iter_source_files([str(directory)]):
        records, _ = extract_functions(path)
        texts += [record.code for record in records]
    return texts


def _split_corpus(texts: Sequence[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A held-out slice of the corpus for the MLM validation loss (not the task's valid split)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    n_valid = max(1, int(round(len(texts) * float(valid_fraction)))) if len(texts) > 1 else 0
    valid = [texts[i] for i in order[:n_valid]]
    train = [texts[i] for i in order[n_valid:]] or valid
    return train, valid


def mlm_validation(mlm_probability: float, tokenizer: Any, pad_to_multiple_of: int | None, seed: int) -> Callable[..., dict[str, float]]:
    """The loop's ``evaluate``: masked-token loss and perplexity, with the same masks every epoch."""

    def evaluate(model: Any, loader: Any, device: Any, amp: Any) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        from streamguard.models.transformer import make_mlm_collate
        from streamguard.training.batching import move_to_device

        collate = make_mlm_collate(tokenizer, mlm_probability, pad_to_multiple_of, seed=seed)  # fresh: same masks each time
        model.eval()
        loss_sum, count = 0.0, 0
        with torch.no_grad():
            for items in _items(loader):
                batch = move_to_device(collate(items), device)
                logits = model(batch).float()
                loss_sum += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
                count += int(batch["labels"].numel())
        loss = loss_sum / max(count, 1)
        return {"valid_loss": loss, "valid_perplexity": float(math.exp(min(loss, 50.0))), "valid_masked_tokens": count}

    return evaluate


def _items(loader: Any):
    """The raw items of an eval loader's batches (the loop's loader collates with the training collate)."""
    dataset, batch_size = loader.dataset, loader.batch_size or 64
    for start in range(0, len(dataset), batch_size):
        yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]


def pretrain_encoder(
    train: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    on_epoch_end: Callable[[dict], None] | None = None,
    resume: Any = None,
) -> tuple[dict, list[dict]]:
    """Train the BPE tokenizer and a from-scratch RobertaForMaskedLM on the corpus; export the encoder.

    Returns a checkpoint (``model``: the encoder export with tokenizer, ``corpus``: counts) and the
    per-epoch history (train loss, valid loss, perplexity).
    """
    import torch
    from transformers import RobertaForMaskedLM

    from streamguard.models.transformer import (
        SCRATCH_SIZES,
        MaskedLMObjective,
        TokenizedDataset,
        export_encoder,
        load_backbone,
        make_mlm_collate,
    )
    from streamguard.training import fit, seed_everything

    model_name = str(params["model_name"])
    if model_name not in SCRATCH_SIZES:
        raise ValueError(f"pretraining builds a from-scratch encoder: model_name must be one of {sorted(SCRATCH_SIZES)}, got {model_name!r}")
    config = train_config({**params, "training": {**params["training"], "selection_metric": "valid_loss"}}, seed)
    if int(getattr(config, "num_processes", 1)) > 1:
        raise ValueError("pretraining runs in one process: data-parallel pretraining (training.num_processes > 1) is not supported yet")
    identity = {"track": TRACK, "seed": seed, "params": params, "data": {"train": train}}
    reused = reuse_finished(resume, on_epoch_end=on_epoch_end, **identity)
    if reused is not None:
        return reused
    texts, counts = pretraining_corpus(train, params.get("corpus") or {})
    corpus_train, corpus_valid = _split_corpus(texts, float(params.get("valid_fraction", 0.05)), seed)
    logger.info("pretraining corpus: %s; %d train / %d held-out functions", counts, len(corpus_train), len(corpus_valid))
    seed_everything(seed)
    tokenizer, encoder, info = load_backbone(
        model_name, train_texts=corpus_train, vocab_size=int(params.get("vocab_size", 8000)), max_length=int(params["max_length"])
    )
    mlm_model = RobertaForMaskedLM(encoder.config)
    mlm_model.roberta.load_state_dict(encoder.state_dict(), strict=False)  # the same freshly initialised encoder
    model = MaskedLMObjective(mlm_model)
    max_length = int(info["max_length"])
    zeros = lambda n: [0] * n  # noqa: E731 (no labels: MLM makes its own)
    train_set = TokenizedDataset(list(range(len(corpus_train))), corpus_train, zeros(len(corpus_train)), tokenizer, max_length)
    valid_set = TokenizedDataset(list(range(len(corpus_valid))), corpus_valid, zeros(len(corpus_valid)), tokenizer, max_length)
    probability = float(params.get("mlm_probability", 0.15))
    collate = make_mlm_collate(tokenizer, probability, config.pad_to_multiple_of)
    evaluate = mlm_validation(probability, tokenizer, config.pad_to_multiple_of, seed)
    result = fit_with_resume(
        lambda **resume_args: fit(
            model, train_set, valid_set, collate, config, train_lengths=train_set.lengths, evaluate=evaluate, **resume_args
        ),
        config,
        resume=resume,
        on_epoch_end=on_epoch_end,
        **identity,
    )
    with torch.no_grad():
        exported = export_encoder(result.model.mlm.roberta, tokenizer, {**info, "source": "pretrained_mlm"})
    checkpoint = build_checkpoint(TRACK, seed, params, exported, result, corpus=counts)
    return keep_finished(resume, checkpoint, result.history)


def pretrained_backbone(checkpoint: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """(tokenizer, encoder, backbone_info) from a pretraining checkpoint, for the transformer track."""
    from streamguard.models.transformer import rebuild_encoder

    require_track(checkpoint, TRACK)
    encoder, tokenizer = rebuild_encoder(checkpoint["model"])
    info = {**checkpoint["model"]["backbone_info"], "pretraining_config_hash": checkpoint.get("config_hash")}
    return tokenizer, encoder.train(), info
