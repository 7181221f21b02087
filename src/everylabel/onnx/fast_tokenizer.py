"""The part of a transformers tokenizer that the input layout uses, over `tokenizers` alone.

An export writes each tokenizer's backend (`tokenizer.json`, after everylabel's own adjustments
such as the prefix space of byte-level BPE) and its pad and special ids; this reads them back
without transformers. User strings are tokenised with special-token matching off
(`split_special_tokens=True` maps to the backend's `encode_special_tokens`), as the torch path
does, so "[SEP]" or "<<LABEL>>" in a text stays text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class FastTokenizer:
    """`tokenizer(strings, add_special_tokens=..., split_special_tokens=..., return_offsets_mapping=...)`."""

    def __init__(self, path: str | Path, pad_token_id: int, all_special_ids: Sequence[int]) -> None:
        from tokenizers import Tokenizer

        self._matching = Tokenizer.from_file(str(path))
        self._plain = Tokenizer.from_file(str(path))
        self._plain.encode_special_tokens = True
        for backend in (self._matching, self._plain):
            backend.no_padding()
            backend.no_truncation()
        self.pad_token_id = pad_token_id
        self.all_special_ids = list(all_special_ids)
        self._lock = threading.Lock()  # the backends' settings are shared state

    def __call__(
        self,
        text: str | Sequence[str],
        add_special_tokens: bool = True,
        split_special_tokens: bool = False,
        return_offsets_mapping: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        single = isinstance(text, str)
        strings = [text] if isinstance(text, str) else list(text)
        backend = self._plain if split_special_tokens else self._matching
        with self._lock:
            encodings = backend.encode_batch(strings, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if single:
            out = {key: value[0] for key, value in out.items()}
        return out


def same_plain_tokenization(first: str, second: str) -> bool:
    """Whether two tokenizer backends (their JSON) give every user string the same ids.

    User strings are tokenised with special tokens split (above), so special added tokens are never
    matched: two backends that differ only by such tokens (a GLiClass model's label, separator and
    example tokens) tokenise alike."""
    one, two = json.loads(first), json.loads(second)

    def plain(backend: dict, other: dict) -> dict:
        kept = {token["content"] for token in other.get("added_tokens", [])}
        tokens = [t for t in backend.get("added_tokens", []) if t["content"] in kept or not t.get("special")]
        return {**backend, "added_tokens": tokens}

    return bool(plain(one, two) == plain(two, one))
