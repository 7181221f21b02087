"""Tokenizer loading: special tokens, and the prefix space ModernBERT checkpoints expect."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from everylabel.tokenization import SPECIAL_TOKENS, add_special_tokens, load_tokenizer
from tests.backbones import tokenizer_for


def byte_level_bpe(folder: Path) -> Path:
    """A small byte-level BPE tokenizer without prefix space, like ModernBERT's."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["[CLS]", "[SEP]", "[PAD]", "[UNK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["sports politics cooking weather the match ended in a draw"] * 50, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]"
    )
    fast.save_pretrained(folder)
    return folder


def test_modernbert_tokenizer_adds_the_prefix_space(tmp_path: Path) -> None:
    folder = byte_level_bpe(tmp_path)
    plain = load_tokenizer(str(folder), "bert")
    spaced = load_tokenizer(str(folder), "modernbert")
    assert plain.tokenize("sports")[0] != spaced.tokenize("sports")[0]
    assert spaced.tokenize("sports") == spaced.tokenize(" sports")
    # A label right after <<LABEL>> is tokenised as a word that follows a space.
    add_special_tokens(spaced)
    pieces = spaced.tokenize("<<LABEL>>sports")
    assert pieces[0] == "<<LABEL>>" and pieces[1:] == spaced.tokenize(" sports")


def test_special_tokens_are_added_once_with_consecutive_ids() -> None:
    tokenizer = tokenizer_for("bert")
    size = len(tokenizer)
    ids = add_special_tokens(tokenizer)
    assert ids == (size, size + 1, size + 2)
    assert add_special_tokens(tokenizer) == ids  # idempotent
    for token, token_id in zip(SPECIAL_TOKENS, ids, strict=True):
        assert tokenizer(f"a{token}b", add_special_tokens=False)["input_ids"].count(token_id) == 1


def test_deberta_v3_sentencepiece_tokenizer_takes_the_special_tokens() -> None:
    tokenizer = tokenizer_for("deberta-v3")
    label_id, sep_id, _ = add_special_tokens(tokenizer)
    ids = tokenizer("<<LABEL>>sports<<LABEL>>politics<<SEP>>a text")["input_ids"]
    assert ids.count(label_id) == 2 and ids.count(sep_id) == 1
