"""Transformer backbone: pretrained RoBERTa-family encoders or tiny/small ones built from scratch.

``tiny``/``small`` need nothing from the network: a byte-level BPE tokenizer is trained on the
training split and a RobertaModel is built from config. Anything else (the codebert /
graphcodebert / unixcoder aliases, a hub id, a local directory) goes through
``AutoTokenizer``/``AutoModel.from_pretrained`` from local files or the HF cache.

``transformers`` is imported inside functions: importing this module costs torch only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset

from streamguard.training.batching import pad_token_batch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

BACKBONE_ALIASES = {
    "codebert": "microsoft/codebert-base",
    "graphcodebert": "microsoft/graphcodebert-base",
    "unixcoder": "microsoft/unixcoder-base",
}
SCRATCH_SIZES = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "small": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
}
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's, so <pad> = 1 as in RobertaConfig
# RoBERTa numbers positions from pad_token_id + 1, so two position embeddings are not usable.
_ROBERTA_POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "roberta-prelayernorm"}


class BackboneUnavailableError(ValueError):
    """A pretrained backbone cannot be loaded (offline, not cached, bad path); the message says how to fix it."""


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, model_max_length: int | None = None
) -> PreTrainedTokenizerFast:
    """Byte-level BPE (as RoBERTa's) trained on ``texts``, wrapped as a fast tokenizer.

    Special tokens are RoBERTa's (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4) and
    every encoding is wrapped as ``<s> ... </s>``, so truncation keeps the closing ``</s>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((str(text) for text in texts), trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")), add_prefix_space=False
    )
    extra = {"model_max_length": int(model_max_length)} if model_max_length else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=AddedToken("<mask>", lstrip=True, special=True),
        **extra,
    )


def usable_max_length(config: Any, requested: int) -> int:
    """The longest input the encoder can embed: ``max_position_embeddings`` (minus 2 for RoBERTa-family)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return int(requested)
    if getattr(config, "model_type", None) in _ROBERTA_POSITION_OFFSET_TYPES:
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return min(int(requested), int(positions))


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else path-like is meant as a local directory."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _unavailable_message(model_name: str, resolved: str, cause: BaseException, is_path: bool) -> str:
    detail = " ".join(str(cause).split())[:300] or "no details"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    where = "StreamGuard runs offline (HF_HUB_OFFLINE=1), so it can only use" if offline else "It can use"
    hub_id = BACKBONE_ALIASES.get(model_name, "microsoft/codebert-base" if is_path else resolved)
    lines = [
        f"cannot load the transformer backbone {model_name!r} (resolved to {resolved!r}): {type(cause).__name__}: {detail}",
        f"{where} weights already on this machine. To provide them:",
        f"  * pass model_name=/path/to/dir, a local directory holding config.json, the weights "
        f"(model.safetensors or pytorch_model.bin) and the tokenizer files (what save_pretrained writes), or",
        f"  * on a connected machine run `huggingface-cli download {hub_id}` (`hf download {hub_id}` with recent "
        f"huggingface_hub) to fill the Hugging Face cache (~/.cache/huggingface/hub), then copy that cache here "
        f"or point HF_HOME at it.",
        f"Known aliases: {', '.join(f'{k} -> {v}' for k, v in BACKBONE_ALIASES.items())}. 'tiny' and 'small' "
        f"need nothing: they build a RoBERTa from scratch with a tokenizer trained on the training split.",
    ]
    return "\n".join(lines)


def load_backbone(
    model_name: str,
    *,
    train_texts: Sequence[str] | None = None,
    vocab_size: int = 8000,
    max_length: int = 512,
    scratch_overrides: Mapping[str, Any] | None = None,
) -> tuple[PreTrainedTokenizerFast, PreTrainedModel, dict[str, Any]]:
    """(tokenizer, encoder, backbone_info) for ``model_name``.

    ``tiny``/``small`` build a RobertaModel from config with a BPE tokenizer trained on
    ``train_texts`` (required). Aliases, hub ids and local directories load with
    ``from_pretrained`` from local files/cache; failure raises :class:`BackboneUnavailableError`.
    ``backbone_info["max_length"]`` is the usable length (lowered, with a warning, to what the
    position embeddings allow).
    """
    if model_name in SCRATCH_SIZES:
        return _scratch_backbone(model_name, train_texts, vocab_size, max_length, scratch_overrides)
    if scratch_overrides:
        raise ValueError(f"scratch_overrides only apply to {sorted(SCRATCH_SIZES)}, not to {model_name!r}")
    from transformers import AutoModel, AutoTokenizer

    resolved = BACKBONE_ALIASES.get(model_name, model_name)
    local_dir = Path(resolved).expanduser()
    if local_dir.is_dir():
        resolved = str(local_dir)
    elif _looks_like_path(resolved):  # not a hub id: say so instead of the hub's "Repo id must be..." error
        raise BackboneUnavailableError(
            _unavailable_message(model_name, resolved, FileNotFoundError(f"no directory {local_dir}"), is_path=True)
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
        encoder = AutoModel.from_pretrained(resolved)
    except Exception as exc:  # OSError offline / not cached, ValueError for unknown configs, ...
        message = _unavailable_message(model_name, resolved, exc, is_path=local_dir.is_dir())
        raise BackboneUnavailableError(message) from None
    usable = usable_max_length(encoder.config, max_length)
    if usable < max_length:
        logger.warning(
            "max_length=%d is longer than %s can embed (max_position_embeddings=%d): using %d",
            max_length, model_name, encoder.config.max_position_embeddings, usable,
        )
    tokenizer.model_max_length = usable
    info = {
        "model_name": model_name,
        "resolved_name": resolved,
        "source": "pretrained",
        "max_length": usable,
        "model_type": encoder.config.model_type,
        "hidden_size": int(encoder.config.hidden_size),
    }
    return tokenizer, encoder, info


def _scratch_backbone(
    model_name: str,
    train_texts: Sequence[str] | None,
    vocab_size: int,
    max_length: int,
    scratch_overrides: Mapping[str, Any] | None,
) -> tuple[PreTrainedTokenizerFast, PreTrainedModel, dict[str, Any]]:
    from transformers import RobertaConfig, RobertaModel

    if train_texts is None or len(train_texts) == 0:
        raise ValueError(f"model_name={model_name!r} trains its tokenizer on the training split: pass train_texts")
    tokenizer = train_bpe_tokenizer(train_texts, vocab_size=vocab_size, model_max_length=max_length)
    sizes = {**SCRATCH_SIZES[model_name], **dict(scratch_overrides or {})}
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=int(max_length) + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        **sizes,
    )
    encoder = RobertaModel(config, add_pooling_layer=False)  # CLS pooling happens in the classifier
    info = {
        "model_name": model_name,
        "resolved_name": model_name,
        "source": "scratch",
        "max_length": int(max_length),
        "model_type": "roberta",
        "hidden_size": int(config.hidden_size),
        "vocab_size": len(tokenizer),
    }
    return tokenizer, encoder, info


POOLINGS = ("cls", "mean")


class TransformerClassifier(nn.Module):
    """Encoder -> CLS vector -> Dropout -> Linear(H, H/2) -> ReLU -> Dropout -> Linear(H/2, 2).

    ``pooling="mean"`` replaces the CLS vector with the mean of the last layer over the real tokens:
    a from-scratch encoder on a few thousand functions has little data to learn to gather the
    function into its first token, and the mean gives the head every token directly (on the
    embedded data: seed-to-seed spread of test ROC-AUC 0.01 instead of 0.04, BENCHMARKS.md).

    With ``code_features`` (the original's ``--use-code-features``), the batch's 10 hand-crafted
    features (:mod:`streamguard.models.code_features`) go through Linear(10, H), are concatenated
    with the CLS vector, and Linear(2H, H) -> ReLU -> Dropout gives the vector the head (and
    fusion, through ``encode``) sees.

    With ``line_supervision`` > 0, a line head Linear(H, 1) gives every token of the last layer a
    "this token is on a flawed line" logit. While training on batches that carry ``line_labels``
    ([B, T]: 1 flawed line, 0 other line, -100 unknown), ``forward`` returns
    ``{"logits", "auxiliary_loss"}`` with ``line_supervision`` x the tokens' BCE, which the shared
    loop adds to the classification loss; otherwise it returns the logits alone. Without it there
    is no line head at all, so the model (and its state dict) is exactly the plain classifier.
    """

    def __init__(
        self, encoder: nn.Module, dropout: float = 0.1, code_features: bool = False, line_supervision: float = 0.0, pooling: str = "cls"
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.embedding_dim = hidden
        self.dropout_p = float(dropout)
        self.uses_code_features = bool(code_features)
        if self.uses_code_features:
            from streamguard.models.code_features import NUM_CODE_FEATURES

            self.code_projection = nn.Linear(NUM_CODE_FEATURES, hidden)
            self.code_merge = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden // 2, 2)
        )
        if line_supervision < 0:
            raise ValueError(f"line_supervision is a loss weight (0 = off), got {line_supervision}")
        self.line_supervision = float(line_supervision)
        # Created last, and only when on: the other layers draw the same initial weights either way.
        self.line_head = nn.Linear(hidden, 1) if self.line_supervision > 0 else None

    def _encode_tokens(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden states [B, T, H], the vector the head sees [B, H]): one encoder pass for both heads."""
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        if self.pooling == "mean":
            real = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            cls = (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)
        else:
            cls = hidden[:, 0]
        if not self.uses_code_features:
            return hidden, cls
        if "code_features" not in batch:
            raise ValueError("this transformer was trained with code_features: build its batches with them (TokenizedDataset(code_features=...))")
        features = self.code_projection(batch["code_features"].to(cls.dtype))
        return hidden, self.code_merge(torch.cat([cls, features], dim=-1))

    def encode(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The pooled last layer (CLS, or the mean over real tokens), merged with the code features when on: [B, H]."""
        return self._encode_tokens(batch)[1]

    def token_line_logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The line head's per-token logits [B, T] ("this token is on a flawed line")."""
        if self.line_head is None:
            raise ValueError(
                "this transformer has no line head: train it with transformer.line_supervision > 0 on rows "
                "that carry flaw_lines (the line-score method 'supervised' reads that head)"
            )
        hidden, _ = self._encode_tokens(batch)
        return self.line_head(hidden).squeeze(-1)

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor | dict[str, torch.Tensor]:
        hidden, vector = self._encode_tokens(batch)
        logits = self.head(self.dropout(vector))
        if self.line_head is None or not self.training or "line_labels" not in batch:
            return logits
        token_loss = line_token_loss(self.line_head(hidden).squeeze(-1), batch["line_labels"])
        return {"logits": logits, "auxiliary_loss": self.line_supervision * token_loss}


def line_token_loss(token_logits: torch.Tensor, line_labels: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the tokens with a known label (``line_labels`` >= 0); zero, still attached to the
    graph (so every parameter gets a gradient, as data parallel wants), when the batch has none."""
    import torch.nn.functional as F

    known = line_labels >= 0
    if not bool(known.any()):
        return token_logits.float().sum() * 0.0
    return F.binary_cross_entropy_with_logits(token_logits.float()[known], line_labels[known].float())


def token_line_labels(code: str, offsets: Sequence[tuple[int, int]], flawed: Iterable[int]) -> list[int]:
    """Per token: 1 on a flawed line, 0 on another line, -100 for special and whitespace tokens
    (token -> line exactly as the line scores map it: :func:`streamguard.data.source_lines.token_lines`)."""
    from streamguard.data.source_lines import token_lines

    flawed_set = {int(line) for line in flawed}
    return [-100 if line is None else int(line in flawed_set) for line in token_lines(code, offsets)]


class TokenizedDataset(Dataset):
    """Functions tokenised once (truncated, unpadded); padding happens per batch in the collate.

    ``flaw_lines`` (optional, one list per row: 1-based flawed lines of the text, empty when clean
    or unknown) adds per-token ``line_labels`` for the line head (:func:`token_line_labels`); only
    vulnerable rows with known lines get labels, every other row's tokens are -100 (ignored).
    """

    def __init__(
        self,
        idx: Sequence[int],
        texts: Sequence[str],
        labels: Sequence[int],
        tokenizer: Any,
        max_length: int,
        code_features: Any = None,
        flaw_lines: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if not (len(idx) == len(texts) == len(labels)):
            raise ValueError(f"idx, texts and labels differ in length: {len(idx)}, {len(texts)}, {len(labels)}")
        if flaw_lines is not None and len(flaw_lines) != len(idx):
            raise ValueError(f"{len(flaw_lines)} flaw-line lists for {len(idx)} functions")
        if flaw_lines is not None and not getattr(tokenizer, "is_fast", False):
            raise ValueError("line supervision needs a fast tokenizer (character offsets to map tokens to lines)")
        self.idx = [int(i) for i in idx]
        self.labels = [int(label) for label in labels]
        texts = [str(text) for text in texts]
        offsets = flaw_lines is not None
        encoded = (
            tokenizer(texts, truncation=True, max_length=int(max_length), padding=False, return_offsets_mapping=offsets)
            if len(texts) else {"input_ids": [], "offset_mapping": []}
        )
        self.input_ids: list[list[int]] = [list(ids) for ids in encoded["input_ids"]]
        self.lengths = [len(ids) for ids in self.input_ids]
        self.code_features = None if code_features is None else torch.as_tensor(code_features, dtype=torch.float32)
        if self.code_features is not None and len(self.code_features) != len(self.idx):
            raise ValueError(f"{len(self.code_features)} code feature rows for {len(self.idx)} functions")
        self.line_labels: list[list[int]] | None = None
        if flaw_lines is not None:
            self.line_labels = [
                token_line_labels(text, spans, lines) if label == 1 and len(lines) else [-100] * len(spans)
                for text, spans, lines, label in zip(texts, encoded["offset_mapping"], flaw_lines, self.labels)
            ]

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, position: int) -> dict[str, Any]:
        item = {"idx": self.idx[position], "input_ids": self.input_ids[position], "label": self.labels[position]}
        if self.code_features is not None:
            item["code_features"] = self.code_features[position]
        if self.line_labels is not None:
            item["line_labels"] = self.line_labels[position]
        return item


def make_token_collate(pad_id: int, pad_to_multiple_of: int | None = 8) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Collate for :class:`TokenizedDataset` items: dynamic padding to the batch's longest sequence."""

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_token_batch([item["input_ids"] for item in items], pad_id, pad_to_multiple_of)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
            "idx": torch.tensor([item["idx"] for item in items], dtype=torch.long),
        }
        if items and "code_features" in items[0]:
            batch["code_features"] = torch.stack([item["code_features"] for item in items])
        if items and "line_labels" in items[0]:
            batch["line_labels"] = pad_token_batch([item["line_labels"] for item in items], -100, pad_to_multiple_of)[0]
        return batch

    return collate


def _tokenizer_files(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's saved files as text (or uint8 tensors for binary ones): weights-only loadable."""
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        tokenizer_files = {}
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                try:
                    tokenizer_files[path.relative_to(directory).as_posix()] = data.decode("utf-8")
                except UnicodeDecodeError:  # e.g. a sentencepiece model: stored as a uint8 tensor
                    tokenizer_files[path.relative_to(directory).as_posix()] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return tokenizer_files


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}


def export_encoder(encoder: nn.Module, tokenizer: Any, backbone_info: Mapping[str, Any]) -> dict[str, Any]:
    """An encoder and its tokenizer (e.g. after MLM pretraining) as plain types and tensors."""
    encoder_kwargs = {"add_pooling_layer": False} if hasattr(encoder, "pooler") and encoder.pooler is None else {}
    return {
        "backbone_info": dict(backbone_info),
        "encoder_config": encoder.config.to_dict(),
        "encoder_kwargs": encoder_kwargs,
        "tokenizer_files": _tokenizer_files(tokenizer),
        "encoder_state_dict": _cpu_state(encoder),
    }


def export_transformer(model: TransformerClassifier, tokenizer: Any, backbone_info: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to rebuild the model offline, as plain types and tensors (weights-only loadable)."""
    exported = export_encoder(model.encoder, tokenizer, backbone_info)
    del exported["encoder_state_dict"]  # the classifier's state dict holds the encoder's weights
    return {
        **exported,
        "head_config": {
            "dropout": model.dropout_p, "hidden_size": model.embedding_dim, "code_features": model.uses_code_features,
            # Only with a line head, so a model trained without one exports exactly as before.
            **({"line_supervision": model.line_supervision} if model.line_head is not None else {}),
            **({"pooling": model.pooling} if model.pooling != "cls" else {}),  # absent: CLS, as every older export
        },
        "state_dict": _cpu_state(model),
    }


def rebuild_encoder(exported: Mapping[str, Any], tokenizer: bool = True) -> tuple[PreTrainedModel, PreTrainedTokenizerFast | None]:
    """Inverse of :func:`export_encoder` (weights loaded when the export holds them), no download."""
    from transformers import CONFIG_MAPPING, AutoModel

    config_dict = dict(exported["encoder_config"])
    config = CONFIG_MAPPING[config_dict["model_type"]].from_dict(config_dict)
    encoder = AutoModel.from_config(config, **dict(exported.get("encoder_kwargs") or {}))
    if "encoder_state_dict" in exported:
        encoder.load_state_dict(exported["encoder_state_dict"])
    return encoder, _rebuild_tokenizer(exported) if tokenizer else None


def _lite_parts(exported: Mapping[str, Any]) -> tuple[nn.Module | None, Any]:
    """(lite encoder or None, lite tokenizer or None) for an export; None where the library one is needed."""
    from streamguard.models.roberta_lite import lite_roberta_unsupported, lite_roberta_from_export
    from streamguard.models.tokenizer_lite import lite_tokenizer_from_export, lite_tokenizer_unsupported

    encoder, tokenizer = lite_roberta_from_export(exported), lite_tokenizer_from_export(exported)
    if encoder is None:
        logger.debug("library encoder: %s", lite_roberta_unsupported(exported["encoder_config"], exported.get("encoder_kwargs")))
    if tokenizer is None:
        logger.debug("library tokenizer: %s", lite_tokenizer_unsupported(exported["tokenizer_files"]))
    return encoder, tokenizer


def rebuild_transformer(exported: Mapping[str, Any], lite: bool = False) -> tuple[TransformerClassifier, Any]:
    """Inverse of :func:`export_transformer`: same architecture, weights and tokenizer, no download.

    ``lite`` (inference only) builds the encoder and tokenizer without ``transformers`` where they
    can be reproduced exactly (:mod:`~streamguard.models.roberta_lite`,
    :mod:`~streamguard.models.tokenizer_lite`), each falling back to the library one otherwise.
    """
    encoder, tokenizer = _lite_parts(exported) if lite else (None, None)
    if encoder is None:
        encoder = rebuild_encoder(exported, tokenizer=False)[0]
    if tokenizer is None:
        tokenizer = _rebuild_tokenizer(exported)
    head = exported.get("head_config", {})
    model = TransformerClassifier(
        encoder,
        dropout=float(head.get("dropout", 0.1)),
        code_features=bool(head.get("code_features", False)),
        line_supervision=float(head.get("line_supervision", 0.0)),  # absent: trained without a line head
        pooling=str(head.get("pooling", "cls")),
    )
    try:
        model.load_state_dict(exported["state_dict"])
    except RuntimeError:
        if not lite:
            raise
        logger.debug("the lite encoder does not take this state dict: using the library one", exc_info=True)
        return rebuild_transformer(exported, lite=False)
    return model.eval(), tokenizer


def _rebuild_tokenizer(exported: Mapping[str, Any]) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as directory:
        for name, content in exported["tokenizer_files"].items():
            path = Path(directory) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                path.write_bytes(bytes(content.numpy().tobytes()))
        tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.model_max_length = int(exported["backbone_info"]["max_length"])
    return tokenizer


class MaskedLMObjective(nn.Module):
    """A ``*ForMaskedLM`` model as the shared loop expects a model: ``forward(batch)`` gives the
    vocabulary logits of the masked positions only, matching the collate's flat ``labels``.

    Scoring only the ~15 % masked positions keeps the LM head (hidden x vocabulary) cheap.
    """

    def __init__(self, mlm_model: nn.Module) -> None:
        super().__init__()
        self.mlm = mlm_model

    @property
    def encoder(self) -> nn.Module:
        return self.mlm.base_model

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        hidden = self.mlm.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        masked = batch["mlm_labels"] != -100
        return self.mlm.lm_head(hidden[masked])


def make_mlm_collate(tokenizer: Any, mlm_probability: float = 0.15, pad_to_multiple_of: int | None = 8, seed: int | None = None):
    """Collate for :class:`TokenizedDataset` items: transformers' MLM masking (80/10/10), dynamic padding.

    ``labels`` holds the original ids of the masked positions only (flat), ``mlm_labels`` the full
    [B, T] labels with -100 elsewhere. ``seed`` fixes the masks (validation); None uses torch's
    global generator, seeded by the loop.
    """
    from transformers import DataCollatorForLanguageModeling

    masker = DataCollatorForLanguageModeling(
        tokenizer, mlm=True, mlm_probability=float(mlm_probability), pad_to_multiple_of=pad_to_multiple_of, seed=seed
    )
    if seed is not None:
        # Seed the generator here: the collator's own lazy seeding refuses to run outside the main
        # process unless inside a DataLoader worker, so a seeded collate would fail in a Dask worker,
        # Kedro's ParallelRunner or any spawned pool process.
        masker.generator = masker.get_generator(seed)

    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        batch = masker([{"input_ids": item["input_ids"]} for item in items])
        labels = batch["labels"]
        if bool((labels == -100).all()):  # nothing drawn (tiny batch): mask one token so the loss is defined
            labels[0, 1] = batch["input_ids"][0, 1]
            batch["input_ids"][0, 1] = tokenizer.mask_token_id
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": (batch["input_ids"] != tokenizer.pad_token_id).long() if "attention_mask" not in batch else batch["attention_mask"],
            "mlm_labels": labels,
            "labels": labels[labels != -100],
            "idx": torch.tensor([item["idx"] for item in items], dtype=torch.long),
        }

    return collate
