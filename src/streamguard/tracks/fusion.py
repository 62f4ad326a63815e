"""Fusion track recipe: branch checkpoints -> (cached or live) encoders -> MLP head via the shared loop."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamguard.training.distributed import data_parallel_track
from streamguard.tracks.common import (
    build_checkpoint,
    cached_build,
    fit_with_resume,
    keep_finished,
    require_track,
    resolve_lr,
    reuse_finished,
    train_config,
)
from streamguard.tracks.gnn import MissingBranchError

if TYPE_CHECKING:  # imported where needed: the serving scorer's path does without pandas
    import numpy as np
    import pandas as pd

logger = logging.getLogger(__name__)


def available_branches(
    transformer_checkpoint: Mapping | None, gnn_checkpoint: Mapping | None, seed: int
) -> dict[str, Mapping]:
    """The branches whose checkpoints exist; warns for a missing one, fails when both are missing."""
    found = {name: ckpt for name, ckpt in (("transformer", transformer_checkpoint), ("gnn", gnn_checkpoint)) if ckpt is not None}
    missing = [name for name in ("transformer", "gnn") if name not in found]
    if not found:
        raise MissingBranchError(
            f"fusion seed {seed}: both transformer.seed_{seed}.checkpoint and gnn.seed_{seed}.checkpoint are missing. "
            "Produce them with `kedro run --pipeline transformer` and `kedro run --pipeline gnn` "
            "(or run everything with `kedro run`)."
        )
    for name in missing:
        logger.warning(
            "fusion seed %d: %s.seed_%d.checkpoint is missing, so this seed runs single-branch (%s only). "
            "Produce it with `kedro run --pipeline %s`.",
            seed, name, seed, ", ".join(found), name,
        )
    return found


def _check_backbone(params: Mapping[str, Any], transformer_checkpoint: Mapping | None) -> None:
    expected = params.get("model_name")
    if expected and transformer_checkpoint is not None:
        actual = transformer_checkpoint["config"]["model_name"]
        if actual != expected:
            raise ValueError(
                f"fusion.model_name={expected!r} but the transformer checkpoint was trained with {actual!r}: "
                f"re-run `kedro run --pipeline transformer --params transformer.model_name={expected}` or set fusion.model_name=null"
            )


def _branch_inputs(
    name: str, checkpoint: Mapping, frame: pd.DataFrame, graphs: Sequence, frozen: bool, companion: Mapping | None,
    pad_to_multiple_of: Any = "checkpoint",
):
    """(cached embeddings, None) for a frozen branch; (None, (encoder, dataset, collate)) for a live one.

    A live transformer branch pads its batches to ``pad_to_multiple_of`` (fusion's own training
    setting while fusion trains; the branch checkpoint's when ``"checkpoint"``, as at inference).
    """
    if name == "transformer":
        from streamguard.models.transformer import make_token_collate
        from streamguard.tracks.transformer import _token_dataset, load_transformer, transformer_embeddings

        if frozen:
            return transformer_embeddings(checkpoint, frame), None
        model, tokenizer, max_length = load_transformer(checkpoint)
        if getattr(model, "line_head", None) is not None:
            # Fusion's loss never reaches a line head (line_supervision): kept as trained, and out of
            # data-parallel gradient reduction, which fails on parameters that get no gradient.
            model.line_head.requires_grad_(False)
        if pad_to_multiple_of == "checkpoint":
            pad_to_multiple_of = checkpoint["config"]["training"].get("pad_to_multiple_of")
        collate = make_token_collate(tokenizer.pad_token_id, pad_to_multiple_of)
        return None, (model, _token_dataset(frame, tokenizer, max_length, model.uses_code_features), collate)
    from streamguard.tracks.gnn import gnn_embeddings, load_gnn, model_examples

    if frozen:
        return gnn_embeddings(checkpoint, graphs, frame, companion), None
    if checkpoint["config"].get("encoder_features", "none") != "none":
        raise ValueError("a gnn branch trained with encoder_features=cls can only be fused frozen: set fusion.freeze_gnn=true")
    model = load_gnn(checkpoint)
    return None, (model, *model_examples(model, frame, graphs, None))


def _fusion_examples(branches, frame, graphs, frozen: Mapping[str, bool], pad_to_multiple_of: Any = "checkpoint",
                     lexical: Any = None):
    """Examples for ``frame``; ``lexical`` (log-odds per row, or None) becomes the lexical branch's feature."""
    import numpy as np

    from streamguard.models.fusion import FusionExamples

    features, live, encoders, collates = {}, {}, {}, {}
    if lexical is not None:
        features["lexical"] = np.asarray(lexical, dtype=np.float32).reshape(-1, 1)
    for name, checkpoint in branches.items():
        cached, live_parts = _branch_inputs(
            name, checkpoint, frame, graphs, frozen[name], branches.get("transformer"), pad_to_multiple_of
        )
        if cached is not None:
            features[name] = cached
        else:
            encoders[name], live[name], collates[name] = live_parts
    examples = FusionExamples(frame["idx"].tolist(), frame["target"].tolist(), features=features, live=live)
    return examples, encoders, collates


_LEXICAL_CACHE: dict[str, tuple[Any, Any, Any]] = {}


def lexical_branch(frames: Mapping[str, pd.DataFrame], baseline_params: Mapping[str, Any] | None, folds: int):
    """(scorer, train log-odds, valid log-odds) for the lexical branch.

    The scorer is the baseline's model (TF-IDF + logistic regression, C chosen on valid); train rows
    get out-of-fold log-odds (``folds``-fold cross-fitting at that C), valid rows the scorer's own.
    Computed once per data and settings in a process, so every fusion seed shares it.
    """
    from streamguard.tracks.baseline import LexicalScorer, cross_fitted_margins
    from streamguard.training.resume import fingerprint

    columns = ["idx", "func", "target"]
    key = fingerprint(dict(baseline_params or {}), int(folds), frames["train"][columns], frames["valid"][columns])
    if key not in _LEXICAL_CACHE:
        scorer = LexicalScorer.fit(frames["train"], frames["valid"], baseline_params)
        train = cross_fitted_margins(frames["train"], scorer.c, baseline_params, folds=folds)
        valid = scorer.log_odds(frames["valid"]["func"].tolist())
        logger.info("fusion lexical branch: C=%g, %d-fold cross-fitted train log-odds", scorer.c, folds)
        _LEXICAL_CACHE.clear()  # one data set at a time
        _LEXICAL_CACHE[key] = (scorer, train, valid)
    return _LEXICAL_CACHE[key]


def _lexical_scorer(checkpoint: Mapping[str, Any]):
    """The fusion checkpoint's lexical scorer, or None without a lexical branch (then without
    importing the baseline's pandas and scikit-learn)."""
    exported = checkpoint["model"].get("lexical")
    if exported is None:
        return None
    from streamguard.tracks.baseline import LexicalScorer

    return cached_build("fusion_lexical", checkpoint, lambda: LexicalScorer.from_export(exported))


def _branch_dims(branches: Mapping[str, Mapping], lexical: bool = False) -> dict[str, int]:
    from streamguard.tracks.gnn import load_gnn
    from streamguard.tracks.transformer import load_transformer

    dims = {"lexical": 1} if lexical else {}
    if "transformer" in branches:
        dims["transformer"] = load_transformer(branches["transformer"])[0].embedding_dim
    if "gnn" in branches:
        dims["gnn"] = load_gnn(branches["gnn"]).embedding_dim
    return dims


@data_parallel_track
def train_fusion(
    transformer_checkpoint: Mapping | None,
    gnn_checkpoint: Mapping | None,
    frames: Mapping[str, pd.DataFrame],
    graphs: Mapping[str, Sequence],
    params: Mapping[str, Any],
    *,
    seed: int,
    on_epoch_end: Callable[[dict], None] | None = None,
    resume: Any = None,
    baseline_params: Mapping[str, Any] | None = None,
) -> tuple[dict, list[dict]]:
    """Fit the fusion head (and fine-tune unfrozen encoders at ``training.encoder_lr``) for one seed.

    With a live (unfrozen) transformer branch, ``training.pad_to_multiple_of`` pads its batches and
    ``training.group_by_length`` batches functions of similar token length; frozen branches are
    cached vectors, so neither applies. ``resume`` (a ResumeStore) saves every epoch and continues
    from a state saved with the same config, data and branch checkpoints. ``lexical_branch: true``
    adds the TF-IDF model (``baseline_params``) as a third, one-number branch (``lexical_branch``).
    """
    from streamguard.models.fusion import FusionClassifier, make_fusion_collate
    from streamguard.training import fit, seed_everything

    branches = available_branches(transformer_checkpoint, gnn_checkpoint, seed)
    _check_backbone(params, transformer_checkpoint)
    frozen = {"transformer": bool(params["freeze_transformer"]), "gnn": bool(params["freeze_gnn"])}
    config = train_config(params, seed)
    use_lexical = bool(params.get("lexical_branch", False))
    data: dict[str, Any] = {
        "train": frames["train"],
        "valid": frames["valid"],
        "train_graphs": graphs["train"],
        "valid_graphs": graphs["valid"],
    }
    data.update({f"{name}_checkpoint": checkpoint["model"] for name, checkpoint in branches.items()})
    if use_lexical:
        data["lexical"] = {"baseline": dict(baseline_params or {}), "folds": int(params.get("lexical_folds", 5))}
    identity = {"track": "fusion", "seed": seed, "params": params, "data": data,
                "extra_config": {"branches": sorted(branches) + (["lexical"] if use_lexical else [])}}
    reused = reuse_finished(resume, on_epoch_end=on_epoch_end, **identity)
    if reused is not None:
        return reused
    pad = config.pad_to_multiple_of if "transformer" in branches and not frozen["transformer"] else "checkpoint"
    scorer, train_lexical, valid_lexical = (
        lexical_branch(frames, baseline_params, int(params.get("lexical_folds", 5))) if use_lexical else (None, None, None)
    )
    train_set, encoders, collates = _fusion_examples(branches, frames["train"], graphs["train"], frozen, pad, train_lexical)
    valid_set, valid_encoders, _ = _fusion_examples(branches, frames["valid"], graphs["valid"], frozen, pad, valid_lexical)
    del valid_encoders  # same weights as `encoders`; validation runs through the trained model
    live_tokens = train_set.live.get("transformer")
    seed_everything(seed)
    model = FusionClassifier(_branch_dims(branches, use_lexical), params["hidden_dim"], params["dropout"], encoders=encoders)
    config, lr_info = resolve_lr(
        config, model, train_set, make_fusion_collate(collates), track="fusion", seed=seed, params=params, data=data,
        extra_config=identity["extra_config"],
    )
    groups = [{"params": list(model.head.parameters()), "lr": config.lr}]
    if encoders:
        # Fine-tuned encoders at training.encoder_lr (null: the head's lr).
        encoder_lr = config.encoder_lr if config.encoder_lr is not None else config.lr
        groups.append({"params": list(model.encoders.parameters()), "lr": float(encoder_lr)})
    result = fit_with_resume(
        lambda **resume_args: fit(
            model, train_set, valid_set, make_fusion_collate(collates), config, param_groups=groups,
            train_lengths=None if live_tokens is None else live_tokens.lengths, **resume_args,
        ),
        config,
        resume=resume,
        on_epoch_end=on_epoch_end,
        **identity,
    )
    export = {
        "head_config": result.model.head_config(),
        "head_state": result.model.head.state_dict(),
        "fine_tuned_encoders": {name: encoder.state_dict() for name, encoder in result.model.encoders.items()},
        "frozen": frozen,
        "branch_checkpoints": {name: {"config": ckpt["config"], "model": ckpt["model"], "track": name, "seed": ckpt["seed"]} for name, ckpt in branches.items()},
    }
    if scorer is not None:
        export["lexical"] = scorer.export()
    extra = {
        "branches_used": list(branches),
        "branches_missing": [name for name in ("transformer", "gnn") if name not in branches],
        "frozen_branches": [name for name in branches if frozen[name]],
        "lexical_branch": use_lexical,
    }
    checkpoint = build_checkpoint("fusion", seed, params, export, result, metrics_extra={**extra, **lr_info})
    return keep_finished(resume, checkpoint, result.history)


def load_fusion(checkpoint: Mapping[str, Any]):
    """The fusion model with every branch live (frozen ones use their original weights)."""
    from streamguard.models.fusion import FusionClassifier
    from streamguard.tracks.gnn import load_gnn
    from streamguard.tracks.transformer import load_transformer

    require_track(checkpoint, "fusion")
    exported = checkpoint["model"]

    def build():
        encoders = {}
        for name, branch in exported["branch_checkpoints"].items():
            encoders[name] = load_transformer(branch)[0] if name == "transformer" else load_gnn(branch)
            if name in exported["fine_tuned_encoders"]:
                encoders[name] = copy.deepcopy(encoders[name])  # never tune a (possibly shared) branch model in place
                encoders[name].load_state_dict(exported["fine_tuned_encoders"][name])
        head = exported["head_config"]
        model = FusionClassifier(head["branch_dims"], head["hidden_dim"], head["dropout"], encoders=encoders)
        model.head.load_state_dict(exported["head_state"])
        model.lexical_scorer = _lexical_scorer(checkpoint)  # the lexical branch's input, from code text
        return model.eval()

    return cached_build("fusion", checkpoint, build)


def fusion_logits(checkpoint: Mapping[str, Any], frame: pd.DataFrame, graphs: Sequence) -> pd.DataFrame:
    from streamguard.evaluation.scoring import logits_frame

    return logits_frame(*fusion_predictions(checkpoint, frame, graphs))


def fusion_predictions(checkpoint: Mapping[str, Any], frame: Any, graphs: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, logits [N, 2]) for ``frame`` (a DataFrame or :class:`~streamguard.tracks.common.FunctionRows`)."""
    from streamguard.models.fusion import make_fusion_collate
    from streamguard.training import predict_logits

    exported = checkpoint["model"]
    branches = exported["branch_checkpoints"]
    # Frozen branches are embedded once (cached); fine-tuned ones run live with their tuned weights.
    frozen = {name: name not in exported["fine_tuned_encoders"] for name in branches}
    scorer = _lexical_scorer(checkpoint)
    lexical = None if scorer is None else scorer.log_odds(frame["func"].tolist())
    examples, _, collates = _fusion_examples(branches, frame, graphs, frozen, lexical=lexical)
    return predict_logits(load_fusion(checkpoint), examples, make_fusion_collate(collates))
