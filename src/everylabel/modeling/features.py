"""Where the label and text vectors come from in the encoded sequence.

The label block is `<<LABEL>>name1<<LABEL>>name2...<<SEP>>`; the k-th `<<LABEL>>` opens the
span of label k. Fully vectorised: no per-row Python work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..config import GLiClassConfig


def slot_count(config: GLiClassConfig, input_ids: torch.Tensor, requested: int | None) -> int:
    """How many label slots the logits have: as asked, else by `max_labels_alloc` ("dynamic": the
    most `<<LABEL>>` markers in any row of `input_ids`)."""
    if requested is not None:
        return requested
    alloc = config.max_labels_alloc
    if alloc == "fixed":
        return config.max_num_classes
    if isinstance(alloc, int):
        return alloc
    return max(int((input_ids == config.class_token_index).sum(dim=-1).max()), 1)


def label_slot_mask(input_ids: torch.Tensor, label_id: int, num_slots: int) -> torch.Tensor:
    """(batch, num_slots) mask of the label slots that hold a real label in each row."""
    counts = (input_ids == label_id).sum(dim=-1, keepdim=True)  # (batch, 1)
    return torch.arange(num_slots, device=input_ids.device).unsqueeze(0) < counts


def _first_token_select(
    input_ids: torch.Tensor, label_id: int, num_slots: int, embed_label_token: bool
) -> torch.Tensor:
    """(batch, num_slots, seq) one-hot of the token read for each label slot (all False if empty)."""
    is_label = input_ids == label_id  # (batch, seq)
    rank = is_label.long().cumsum(dim=-1) - 1  # (batch, seq): index of the label each marker opens
    slots = torch.arange(num_slots, device=input_ids.device).view(1, -1, 1)
    select = is_label.unsqueeze(1) & (rank.unsqueeze(1) == slots)  # (batch, num_slots, seq)
    if not embed_label_token:
        select = torch.nn.functional.pad(select[:, :, :-1], (1, 0))  # the first token of the name
    return select


def label_vectors_first(
    hidden: torch.Tensor, input_ids: torch.Tensor, label_id: int, num_slots: int, embed_label_token: bool
) -> torch.Tensor:
    """The state at the k-th `<<LABEL>>` token (or the token right after it) for k < num_slots.

    hidden (batch, seq, dim) -> (batch, num_slots, dim); empty slots are zeros.
    """
    select = _first_token_select(input_ids, label_id, num_slots, embed_label_token)
    return torch.einsum("bks,bsd->bkd", select.to(hidden.dtype), hidden)


def label_positions_first(
    input_ids: torch.Tensor, label_id: int, num_slots: int, embed_label_token: bool
) -> torch.Tensor:
    """(batch, num_slots) positions that `label_vectors_first` reads; 0 for empty slots."""
    return _first_token_select(input_ids, label_id, num_slots, embed_label_token).long().argmax(dim=-1)


def label_vectors_average(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    label_id: int,
    num_slots: int,
    embed_label_token: bool,
    stop_id: int | None,
) -> torch.Tensor:
    """The mean state over the span of each label, from its `<<LABEL>>` up to the next one.

    As in the official format, the last span runs on to the end of the sequence unless `stop_id`
    (the `<<SEP>>` id, used with extract_text_features) ends it. (batch, num_slots, dim).
    """
    is_label = input_ids == label_id
    rank = is_label.long().cumsum(dim=-1)  # (batch, seq): 1-based label of each position, 0 before any
    in_span = attention_mask.bool()
    if stop_id is not None:
        in_span = in_span & ((input_ids == stop_id).long().cumsum(dim=-1) == 0)
    if not embed_label_token:
        in_span = in_span & ~is_label
    slots = torch.arange(1, num_slots + 1, device=hidden.device).view(1, -1, 1)
    span = ((rank.unsqueeze(1) == slots) & in_span.unsqueeze(1)).to(hidden.dtype)  # (batch, num_slots, seq)
    counts = span.sum(dim=-1, keepdim=True).clamp(min=1)
    return torch.einsum("bks,bsd->bkd", span, hidden) / counts


def text_from_separator(
    hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each row so that it starts at its first `<<SEP>>` (row start when there is none).

    Returns the shifted states (batch, seq, dim) with zeros past the end and the shifted mask.
    """
    batch, seq = input_ids.shape
    start = (input_ids == sep_id).int().argmax(dim=-1)  # (batch,)
    offsets = torch.arange(seq, device=hidden.device).unsqueeze(0)  # (1, seq)
    inside = offsets < (seq - start).unsqueeze(1)  # (batch, seq)
    source = (start.unsqueeze(1) + offsets).clamp(max=seq - 1)
    rows = torch.arange(batch, device=hidden.device).unsqueeze(1)
    shifted = hidden[rows, source] * inside.unsqueeze(-1).to(hidden.dtype)
    return shifted, attention_mask[rows, source] * inside


def before_first(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """(batch, seq) 1 before each row's first `token_id` (the whole row when it has none), else 0."""
    seq = input_ids.shape[1]
    positions = torch.arange(seq, device=input_ids.device).unsqueeze(0)  # (1, seq)
    hit = input_ids == token_id
    first = torch.where(hit.any(dim=-1, keepdim=True), hit.int().argmax(dim=-1, keepdim=True), seq)
    return (positions < first).long()


def segment_ids(input_ids: torch.Tensor, sep_id: int, example_id: int) -> torch.Tensor:
    """Segment of each token: 0 before the first `<<SEP>>`, 1 from it, 2 from the first `<<EXAMPLE>>`.

    A row without `<<SEP>>` is all segment 1, as in the official format.
    """
    seq = input_ids.shape[1]
    positions = torch.arange(seq, device=input_ids.device).unsqueeze(0)
    sep_start = (input_ids == sep_id).int().argmax(dim=-1, keepdim=True)  # (batch, 1)
    is_example = input_ids == example_id
    example_start = torch.where(
        is_example.any(dim=-1, keepdim=True), is_example.int().argmax(dim=-1, keepdim=True), seq
    )
    return (positions >= sep_start).long() + (positions >= example_start).long()
