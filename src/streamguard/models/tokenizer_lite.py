"""A checkpoint's fast tokenizer straight from its ``tokenizer.json`` (the ``tokenizers`` library), without
importing ``transformers``.

``AutoTokenizer.from_pretrained`` needs ``transformers`` (seconds of imports for a one-file scan),
yet for the tokenizers StreamGuard saves it only wraps ``tokenizers.Tokenizer`` loaded from that
file. :class:`LiteTokenizer` wraps it the same way for what scoring and line scores call
(``tokenizer(texts, truncation=True, max_length=..., padding=False, return_offsets_mapping=...)``,
``pad_token_id``, ``unk_token_id``, ``is_fast``): the same ids and character offsets, tested
against ``AutoTokenizer`` in tests/models/test_lite_models.py. Tokenizer classes or options it does
not know (:func:`lite_tokenizer_unsupported`) keep ``AutoTokenizer``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# The classes whose fast tokenizer is exactly tokenizer.json (transformers 5 saves "TokenizersBackend").
LITE_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
# tokenizer_config.json keys that do not change how text becomes ids and offsets.
_NEUTRAL_KEYS = {
    "backend", "tokenizer_class", "model_max_length", "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
    "cls_token", "mask_token", "added_tokens_decoder", "clean_up_tokenization_spaces", "extra_special_tokens",
    "additional_special_tokens", "model_input_names", "name_or_path", "padding_side",
}


def lite_tokenizer_unsupported(tokenizer_files: Mapping[str, Any]) -> str | None:
    """Why :class:`LiteTokenizer` cannot stand in for ``AutoTokenizer`` on these files (None: it can)."""
    if not isinstance(tokenizer_files.get("tokenizer.json"), str):
        return "no tokenizer.json"
    try:
        config = json.loads(tokenizer_files.get("tokenizer_config.json") or "{}")
    except ValueError:
        return "unreadable tokenizer_config.json"
    if config.get("tokenizer_class") not in LITE_TOKENIZER_CLASSES:
        return f"tokenizer class {config.get('tokenizer_class')!r}"
    if config.get("truncation_side", "right") != "right":
        return "left truncation"
    unknown = sorted(set(config) - _NEUTRAL_KEYS - {"truncation_side"})
    return f"tokenizer_config options {unknown}" if unknown else None


def _token_content(value: Any) -> str | None:
    return value.get("content") if isinstance(value, Mapping) else value


class LiteTokenizer:
    """``tokenizers.Tokenizer`` called the way ``PreTrainedTokenizerFast.__call__`` calls it."""

    is_fast = True

    def __init__(self, tokenizer_files: Mapping[str, Any], model_max_length: int) -> None:
        from tokenizers import Tokenizer

        reason = lite_tokenizer_unsupported(tokenizer_files)
        if reason:
            raise ValueError(f"LiteTokenizer cannot stand in for AutoTokenizer here: {reason}")
        self._tokenizer = Tokenizer.from_str(tokenizer_files["tokenizer.json"])
        self._tokenizer.no_padding()
        self._lock = threading.Lock()  # truncation is tokenizer state: set and used under one lock
        config = json.loads(tokenizer_files.get("tokenizer_config.json") or "{}")
        self.model_max_length = int(model_max_length)
        self.pad_token_id = self._id_of(_token_content(config.get("pad_token")))
        self.unk_token_id = self._id_of(_token_content(config.get("unk_token")))

    def _id_of(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(
        self,
        text: str | Sequence[str],
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        """``{"input_ids", "attention_mask"[, "offset_mapping"]}``: lists for one text, lists of lists for several."""
        if padding:
            raise ValueError("LiteTokenizer does not pad: batches are padded by the collate")
        single = isinstance(text, str)
        with self._lock:
            if truncation:
                length = self.model_max_length if max_length is None else int(max_length)
                self._tokenizer.enable_truncation(length, stride=0, strategy="longest_first", direction="right")
            else:
                self._tokenizer.no_truncation()
            encodings = self._tokenizer.encode_batch([text] if single else list(text), add_special_tokens=True)
        result: dict[str, Any] = {
            "input_ids": [encoding.ids for encoding in encodings],
            "attention_mask": [encoding.attention_mask for encoding in encodings],
        }
        if return_offsets_mapping:
            result["offset_mapping"] = [encoding.offsets for encoding in encodings]
        return {key: value[0] for key, value in result.items()} if single else result


def lite_tokenizer_from_export(exported: Mapping[str, Any]) -> LiteTokenizer | None:
    """The export's tokenizer as a :class:`LiteTokenizer`, or None when ``AutoTokenizer`` must load it."""
    if lite_tokenizer_unsupported(exported["tokenizer_files"]) is not None:
        return None
    return LiteTokenizer(exported["tokenizer_files"], int(exported["backbone_info"]["max_length"]))
