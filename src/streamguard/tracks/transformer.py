"""Transformer track recipe: backbone + tokenised splits + the shared loop -> checkpoint, logits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamguard.training.distributed import data_parallel_track
from streamguard.tracks.common import (
    build_checkpoint,
    cached_build,
    fit_with_resume,
    keep_finished,
    lite_models,
    require_track,
    resolve_lr,
    reuse_finished,
    train_config,
)

if TYPE_CHECKING:  # imported where needed: the serving scorer's path does without pandas
    import numpy as np
    import pandas as pd

logger = logging.getLogger(__name__)
FLAW_LINES_COLUMN = "flaw_lines"  # optional per-row list of 1-based flawed lines of ``func`` (line supervision)


def _token_dataset(frame: pd.DataFrame, tokenizer: Any, max_length: int, code_features: bool = False, line_labels: bool = False):
    """Tokenised rows of ``frame``, with the 10 hand-crafted code features when the model uses them,
    and per-token line labels from its ``flaw_lines`` column when ``line_labels``."""
    from streamguard.models.transformer import TokenizedDataset

    features = None
    if code_features:
        from streamguard.models.code_features import code_feature_matrix

        features = code_feature_matrix(frame["func"].tolist())
    flaw_lines = _flaw_lines(frame) if line_labels else None
    return TokenizedDataset(
        frame["idx"].tolist(), frame["func"].tolist(), frame["target"].tolist(), tokenizer, max_length, features, flaw_lines
    )


def _flaw_lines(frame: pd.DataFrame) -> list[list[int]]:
    """The ``flaw_lines`` column as lists of ints (missing column or a missing value: no known line)."""
    if FLAW_LINES_COLUMN not in frame:
        return [[] for _ in range(len(frame))]
    return [[int(line) for line in lines] if isinstance(lines, (list, tuple)) or hasattr(lines, "__array__") else []
            for lines in frame[FLAW_LINES_COLUMN].tolist()]


def line_supervision_weight(params: Mapping[str, Any], train: pd.DataFrame) -> float:
    """``line_supervision`` when it can act: > 0 and some vulnerable training row carries flaw lines
    (else 0, with a warning when it was asked for: the model is then the plain classifier)."""
    weight = float(params.get("line_supervision", 0.0) or 0.0)
    if weight <= 0:
        return 0.0
    known = sum(1 for lines, target in zip(_flaw_lines(train), train["target"].tolist()) if lines and int(target) == 1)
    if not known:
        logger.warning(
            "transformer.line_supervision=%s has no effect: no vulnerable training row carries %r (the model gets no line head)",
            weight, FLAW_LINES_COLUMN,
        )
        return 0.0
    logger.info("line supervision: weight %s on %d vulnerable training functions with known flawed lines", weight, known)
    return weight


@data_parallel_track
def train_transformer(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    seed: int,
    on_epoch_end: Callable[[dict], None] | None = None,
    resume: Any = None,
    pretrained: Mapping[str, Any] | None = None,
) -> tuple[dict, list[dict]]:
    """Build the backbone (training the BPE tokenizer on ``train`` for tiny/small), fit, export.

    ``resume`` (a :class:`streamguard.training.resume.ResumeStore`) saves a resumable state every
    epoch and continues from the newest good one saved with the same config and data. With
    ``init_from: pretraining`` the encoder and tokenizer come from ``pretrained`` (the
    ``pretraining`` pipeline's MLM checkpoint) instead of a fresh initialisation.
    """
    from streamguard.models.transformer import (
        TransformerClassifier,
        export_transformer,
        load_backbone,
        make_token_collate,
    )
    from streamguard.training import fit, seed_everything

    config = train_config(params, seed)
    line_supervision = line_supervision_weight(params, train)
    init_from = params.get("init_from")
    if init_from == "pretraining" and pretrained is None:
        raise FileNotFoundError(
            "transformer.init_from=pretraining needs the pretrained encoder (data/06_models/pretraining/encoder.pt): "
            "run `kedro run --pipeline pretraining` first, or set transformer.init_from=null."
        )
    extra_config = {}
    if init_from:  # a state trained from another pretrained encoder must not be resumed
        extra_config["pretrained_encoder"] = [pretrained.get("config_hash"), pretrained.get("created_at")]
    if line_supervision:  # nor one trained on other flaw lines
        import pandas as pd

        from streamguard.training.resume import fingerprint

        extra_config["flaw_lines"] = fingerprint(pd.DataFrame({"idx": train["idx"].tolist(), "lines": [str(lines) for lines in _flaw_lines(train)]}))
    identity = {
        "track": "transformer", "seed": seed, "params": params, "data": {"train": train, "valid": valid},
        "extra_config": extra_config or None,
    }
    reused = reuse_finished(resume, on_epoch_end=on_epoch_end, **identity)
    if reused is not None:
        return reused
    seed_everything(seed)
    if init_from == "pretraining":
        from streamguard.tracks.pretraining import pretrained_backbone

        tokenizer, encoder, info = pretrained_backbone(pretrained)
    elif init_from is not None:
        raise ValueError(f"transformer.init_from must be null or 'pretraining', got {init_from!r}")
    else:
        tokenizer, encoder, info = load_backbone(
            params["model_name"],
            train_texts=train["func"].tolist(),
            vocab_size=int(params.get("vocab_size", 8000)),
            max_length=int(params["max_length"]),
        )
    model = TransformerClassifier(
        encoder, dropout=float(params["dropout"]), code_features=bool(params.get("code_features", False)), line_supervision=line_supervision,
        pooling=str(params.get("pooling", "cls")),
    )
    max_length = int(info["max_length"])
    # Only the training rows' flaw lines are read: validation stays plain classification.
    train_set = _token_dataset(train, tokenizer, max_length, model.uses_code_features, line_labels=model.line_head is not None)
    valid_set = _token_dataset(valid, tokenizer, max_length, model.uses_code_features)
    collate = make_token_collate(tokenizer.pad_token_id, config.pad_to_multiple_of)
    data = {"train": train, "valid": valid}
    config, lr_info = resolve_lr(config, model, train_set, collate, track="transformer", seed=seed, params=params, data=data)
    result = fit_with_resume(
        lambda **resume_args: fit(model, train_set, valid_set, collate, config, train_lengths=train_set.lengths, **resume_args),
        config,
        resume=resume,
        on_epoch_end=on_epoch_end,
        **identity,
    )
    checkpoint = build_checkpoint(
        "transformer", seed, params, export_transformer(result.model, tokenizer, info), result, metrics_extra=lr_info
    )
    return keep_finished(resume, checkpoint, result.history)


def load_transformer(checkpoint: Mapping[str, Any]):
    """(model, tokenizer, max_length) rebuilt offline from a transformer checkpoint (plain-torch
    encoder and tokenizer where they exist, inside ``reuse_loaded_models(..., lite=True)``)."""
    from streamguard.models.transformer import rebuild_transformer

    require_track(checkpoint, "transformer")

    def build():
        model, tokenizer = rebuild_transformer(checkpoint["model"], lite=lite_models())
        return model, tokenizer, int(checkpoint["model"]["backbone_info"]["max_length"])

    return cached_build("transformer", checkpoint, build)


def transformer_logits(checkpoint: Mapping[str, Any], frame: pd.DataFrame, batch_size: int = 64) -> pd.DataFrame:
    """Logits table (idx, label, logit_0, logit_1, prob) for ``frame`` from a checkpoint."""
    from streamguard.evaluation.scoring import logits_frame

    return logits_frame(*transformer_predictions(checkpoint, frame, batch_size))


def transformer_predictions(checkpoint: Mapping[str, Any], frame: Any, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, logits [N, 2]) for ``frame`` (a DataFrame or :class:`~streamguard.tracks.common.FunctionRows`)."""
    from streamguard.models.transformer import make_token_collate
    from streamguard.training import predict_logits

    model, tokenizer, max_length = load_transformer(checkpoint)
    dataset = _token_dataset(frame, tokenizer, max_length, model.uses_code_features)
    pad_multiple = checkpoint["config"]["training"].get("pad_to_multiple_of")
    return predict_logits(model, dataset, make_token_collate(tokenizer.pad_token_id, pad_multiple), batch_size=batch_size)


def transformer_embeddings(checkpoint: Mapping[str, Any], frame: pd.DataFrame, batch_size: int = 64):
    """CLS embeddings [N, H] of ``frame`` rows (in order) from a transformer checkpoint."""
    from streamguard.models.transformer import make_token_collate
    from streamguard.training import embed

    model, tokenizer, max_length = load_transformer(checkpoint)
    dataset = _token_dataset(frame, tokenizer, max_length, model.uses_code_features)
    pad_multiple = checkpoint["config"]["training"].get("pad_to_multiple_of")
    _, _, embeddings = embed(model, dataset, make_token_collate(tokenizer.pad_token_id, pad_multiple), batch_size=batch_size)
    return embeddings
