"""Bi-encoders through the Classifier: the label-vector cache, correct pooling, inputs, training."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from everylabel import Classifier, InputError, Label, TruncationWarning, create_model, load_model
from everylabel.adapters import apply_lora, is_lora
from everylabel.errors import TooMuchWork
from everylabel.inference.batching import collate
from everylabel.inference.example_vectors import example_targets, refit_label_vectors
from everylabel.inference.label_vectors import slot_inputs
from everylabel.prompt import WorkBudget
from everylabel.training.fewshot import few_shot_fit
from tests import oracle

TEXTS = [
    "The match ended in a draw after extra time.",
    "Parliament passed the budget late on Thursday.",
    "Stir the sauce gently and add salt.",
    "Rain all week, then sun on Sunday.",
]
LABELS = ["sports", "politics", "cooking", "weather"]


def bi_model(backbone: Path, arch: str = "bi-encoder", pooling: str = "avg", head_only: bool = False):
    model, tokenizer = create_model(
        backbone, architecture_type=arch, pooling_strategy=pooling, normalize_features=True, dropout=0.0
    )
    if head_only:  # an adapter applies to the unchanged backbones on disk
        for part in ("text_projector", "classes_projector", "biencoder_projector"):
            oracle.spread_weights(getattr(model.model, part))
    else:
        oracle.spread_weights(model)
    return model.eval(), tokenizer


class RowCounter:
    """Counts the label rows the label encoder runs on."""

    def __init__(self, model) -> None:
        self.rows = 0
        model.label_encoder.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.rows += int(ids.shape[0])


@pytest.mark.parametrize("arch", ["bi-encoder", "bi-encoder-fused"])
def test_each_distinct_label_is_encoded_once_then_cached(backbone_dir, arch: str) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"), arch)
    counter = RowCounter(model)
    clf = Classifier(model, tokenizer, device="cpu", batch_size=2)
    per_text = [LABELS, ["sports", "art"], ["cooking", "art", "war"], ["weather"]]
    first = clf.classify(TEXTS, per_text)
    assert counter.rows == len({label for labels in per_text for label in labels}) == 6
    again = clf.classify(TEXTS * 3, per_text * 3)
    assert counter.rows == 6  # nothing encoded the second time
    for a, b in zip(again[:4], first, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
    # Without a cache every call encodes its distinct labels once again, with the same scores.
    uncached = Classifier(model, tokenizer, device="cpu", batch_size=2, label_cache_size=0)
    before = counter.rows
    fresh = uncached.classify(TEXTS, per_text)
    assert counter.rows - before == 6
    for a, b in zip(fresh, first, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)


def test_cache_is_bounded_least_recently_used_first(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu", label_cache_size=3)
    clf.classify(TEXTS[:1], ["a", "b", "c"])
    clf.classify(TEXTS[:1], ["a"])  # "a" becomes the most recent
    clf.classify(TEXTS[:1], ["d"])  # "b" goes
    assert clf.label_vectors is not None
    assert set(clf.label_vectors.cache.get(["a", "b", "c", "d"])) == {"a", "c", "d"}


def test_encode_labels_and_store_them_in_another_classifier(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    source = Classifier(model, tokenizer, device="cpu")
    labels = [*LABELS, Label("finance", "money, banks and markets")]
    vectors = source.encode_labels(labels)
    assert vectors.shape == (5, model.config.encoder_hidden_size) and vectors.dtype == np.float32
    counter = RowCounter(model)
    target = Classifier(model, tokenizer, device="cpu")
    target.store_label_embeddings(labels, vectors)
    got = target.classify(TEXTS, labels)
    assert counter.rows == 0
    want = Classifier(model, tokenizer, device="cpu", label_cache_size=0).classify(TEXTS, labels)
    for a, b in zip(got, want, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
    with pytest.raises(InputError, match=r"vectors: expected shape \(5, 32\)"):
        target.store_label_embeddings(labels, vectors[:2])


def test_uni_encoder_has_no_label_vectors(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"))
    with pytest.raises(InputError, match="encode_labels: only bi-encoders"):
        Classifier(model, tokenizer, device="cpu").encode_labels(LABELS)


def test_avg_pooling_is_correct_by_default_and_official_on_request(backbone_dir) -> None:
    """A label's score must not depend on the labels beside it; the official padded mean does."""
    model, tokenizer = bi_model(backbone_dir("bert"), pooling="avg")
    long_label = "a very long label about the history of northern mountain railways"
    for mask_padding, independent in ((True, True), (False, False)):
        clf = Classifier(model, tokenizer, device="cpu", mask_padding=mask_padding)
        alone = clf.classify(TEXTS, ["sports"])
        beside = clf.classify(TEXTS, ["sports", long_label])
        same = all(
            a.scores["sports"] == pytest.approx(b.scores["sports"], abs=1e-6)
            for a, b in zip(alone, beside, strict=True)
        )
        assert same is independent


def test_classify_from_threads_matches_one_thread(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu", label_cache_size=8)
    want = Classifier(model, tokenizer, device="cpu", label_cache_size=0).classify(TEXTS, LABELS)
    label_sets = [[f"{label} {i}" for label in LABELS] for i in range(6)]
    expected = [Classifier(model, tokenizer, device="cpu").classify(TEXTS, s) for s in label_sets]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                for got, ref in zip(clf.classify(TEXTS, label_sets[i]), expected[i], strict=True):
                    assert got.scores == pytest.approx(ref.scores, abs=1e-6)
                for got, ref in zip(clf.classify(TEXTS, LABELS), want, strict=True):
                    assert got.scores == pytest.approx(ref.scores, abs=1e-6)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_inputs_prompt_descriptions_examples_truncation(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu", max_length=24)
    plain = clf.classify(TEXTS[0], LABELS)[0]
    prompted = clf.classify(TEXTS[0], LABELS, prompt="Topic of the text:")[0]
    assert prompted.scores != pytest.approx(plain.scores, abs=1e-6)
    with pytest.raises(InputError, match=r"examples\[0\]\.labels: 'goals' is not one of the labels of texts"):
        clf.classify(TEXTS[0], LABELS, examples=[{"text": "Goal!", "labels": ["goals"]}])
    wordy = [{"text": " ".join(TEXTS * 3), "labels": ["sports"]}]  # over the 24-token window
    with pytest.raises(InputError, match=r"examples: the example 'The match ended.*tokens, but only 22 fit"):
        clf.classify(TEXTS[0], LABELS, examples=wordy, truncation="error")
    with pytest.warns(TruncationWarning, match="1 of 1 examples were cut to fit 24 tokens"):
        clf.classify(TEXTS[0], LABELS, examples=wordy)
    with pytest.warns(TruncationWarning):
        long = clf.classify(" ".join(TEXTS * 3), LABELS)[0]
    assert long.truncated and long.cut_tokens > 0
    described = Classifier(model, tokenizer, device="cpu", descriptions="label")
    with_desc = described.classify(TEXTS[0], [Label("sports", "games, teams and matches"), "politics"])[0]
    without = described.classify(TEXTS[0], ["sports", "politics"])[0]
    assert with_desc.scores["sports"] != pytest.approx(without.scores["sports"], abs=1e-6)
    assert with_desc.scores["politics"] == pytest.approx(without.scores["politics"], abs=1e-6)


def test_labels_cannot_inject_special_tokens_and_are_never_cut(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu")
    assert clf.label_vectors is not None
    tokens = clf.label_vectors.tokens
    (row,) = tokens.ids(["[SEP] [CLS] sports [PAD]"])
    specials = set(tokens.tokenizer.all_special_ids)
    assert [t for t in row if t in specials] == [*tokens.prefix, *tokens.suffix]
    with pytest.raises(InputError, match=r"labels\['word word.*tokens, but the label encoder takes 512"):
        clf.classify(TEXTS[0], ["word " * 600])


def test_fused_model_puts_label_vectors_at_the_markers(backbone_dir) -> None:
    """The fused text input has bare markers; its logits change with each label's vector."""
    model, tokenizer = bi_model(backbone_dir("bert"), "bi-encoder-fused", "first")
    clf = Classifier(model, tokenizer, device="cpu")
    prepared = clf.prepare(TEXTS[:1], LABELS)
    label_id, sep_id, _ = model.config.special_token_ids()
    ids = prepared.passes[0].input_ids
    marker_at = [i for i, t in enumerate(ids) if t == label_id]
    assert len(marker_at) == 4 and ids[marker_at[-1] + 1] == sep_id
    assert marker_at == list(range(marker_at[0], marker_at[0] + 4))  # no names between markers
    a = clf.classify(TEXTS[:1], LABELS)[0].scores
    b = clf.classify(TEXTS[:1], ["sports", "politics", "cooking", "chess"])[0].scores
    assert a["sports"] != pytest.approx(b["sports"], abs=1e-6)  # labels see each other in the text


@pytest.mark.parametrize("arch", ["bi-encoder", "bi-encoder-fused"])
def test_lora_adapter_round_trip_and_export(backbone_dir, tmp_path: Path, arch: str) -> None:
    from everylabel.adapters import export_model

    model, tokenizer = bi_model(backbone_dir("bert"), arch, head_only=True)
    apply_lora(model, r=4, alpha=8)
    assert hasattr(model.model.label_encoder, "peft_config")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    want = Classifier(model, tokenizer, device="cpu").classify(TEXTS, LABELS)
    folder = export_model(model, tokenizer, tmp_path / "adapter")
    assert is_lora(load_model(folder)[0])  # saved as an adapter folder, rebuilt on its base
    loaded = Classifier.from_pretrained(folder, device="cpu")
    assert not is_lora(loaded.model)  # served with the adapters merged in
    for a, b in zip(loaded.classify(TEXTS, LABELS), want, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_saved_checkpoint_keeps_its_label_tokenizer(backbone_dir, tmp_path: Path) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    model.config.label_model_name = "no/such-model-offline"  # must not be needed after saving
    model.save_pretrained(tmp_path / "ck")
    tokenizer.save_pretrained(tmp_path / "ck")
    from everylabel.tokenization import save_label_tokenizer

    save_label_tokenizer(tokenizer, tmp_path / "ck")
    loaded, _ = load_model(tmp_path / "ck")
    assert loaded.config.architecture_type == "bi-encoder"
    assert Classifier.from_pretrained(tmp_path / "ck", device="cpu").classify(TEXTS[0], LABELS)[0].scores


def test_cli_classify_and_eval_take_a_bi_encoder_checkpoint(capsys, backbone_dir, tmp_path: Path) -> None:
    import json

    from everylabel.adapters import export_model
    from everylabel.cli import main

    model, tokenizer = bi_model(backbone_dir("bert"), "bi-encoder-fused")
    folder = export_model(model, tokenizer, tmp_path / "fused")
    assert (folder / "label_tokenizer").is_dir()
    code = main(
        ["classify", TEXTS[0], "--model", str(folder), "--labels", ",".join(LABELS), "--prompt", "Topic:"]
    )
    out = capsys.readouterr().out
    assert code == 0 and set(json.loads(out)["scores"]) == set(LABELS)
    data = tmp_path / "data.jsonl"
    rows = [{"text": t, "label": g} for t, g in zip(TEXTS, LABELS, strict=True)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code = main(["eval", "--model", str(folder), "--dataset", str(data), "--json", str(tmp_path / "r.json")])
    assert code == 0
    (report,) = json.loads((tmp_path / "r.json").read_text())
    assert report["texts"] == 4 and 0.0 <= report["metrics"]["macro_f1"] <= 1.0


def test_few_shot_fit_trains_a_fused_bi_encoder(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"), "bi-encoder-fused", "first")
    clf = Classifier(model, tokenizer, device="cpu")
    shots = [{"text": t, "labels": [g]} for t, g in zip(TEXTS, LABELS, strict=True)]

    def gold_probability() -> float:
        results = clf.classify(TEXTS, LABELS, multi_label=False)
        return sum(r.scores[g] for r, g in zip(results, LABELS, strict=True)) / len(LABELS)

    before = gold_probability()
    few_shot_fit(clf, shots, epochs=30, encoder_lr=3e-4, head_lr=3e-3, batch_size=4)
    after = gold_probability()
    assert after > before + 0.3 and after > 0.4, (before, after)


def test_the_one_product_dot_scoring_equals_the_slot_path(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    assert model.model.scores_by_matmul
    clf = Classifier(model, tokenizer, device="cpu")
    prepared = clf.prepare(TEXTS, [LABELS, LABELS[:2], ["art", *LABELS], ["war"]])
    table = prepared.label_table
    vectors, index = slot_inputs(table, [clf.slot_labels(prepared, p) for p in prepared.passes])
    ids, mask = collate([p.input_ids for p in prepared.passes], clf.pad_id)
    with torch.no_grad():
        fast = model(ids, mask, label_embeddings=vectors, label_index=index)
        slow = model(ids, mask, label_embeddings=vectors, label_index=index, output_class_embeddings=True)
    assert fast.class_embeddings is None and slow.class_embeddings is not None
    assert torch.allclose(fast.logits, slow.logits, atol=1e-5)
    assert (fast.logits[index < 0] == -1000).all()


def teaching(clf: Classifier) -> tuple[list, list[str], list[dict]]:
    """The results without examples, each text's least liked label, and examples showing each text
    twice as that label: left out, either copy is learnt from the other, so a refit passes its
    check and each text then gets that label."""
    plain = clf.classify(TEXTS, LABELS, multi_label=False)
    least = [min(r.scores, key=r.scores.__getitem__) for r in plain]
    shown = [{"text": t, "labels": [label]} for t, label in zip(TEXTS, least, strict=True)] * 2
    return plain, least, shown


def test_examples_refit_the_label_vectors_and_score_as_the_refit_says(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu")
    plain, least, shown = teaching(clf)
    prepared = clf.prepare(TEXTS, LABELS, multi_label=False, examples=shown)
    assert prepared.label_fits == [0, 0, 0, 0]
    taught = clf.classify(TEXTS, LABELS, multi_label=False, examples=shown)
    assert [r.labels for r in taught] == [[label] for label in least]
    # the same scores from the pieces: scaled text vectors (the logits against the unit vectors)
    # and the refit of example_vectors.py
    vectors = clf.scaled_text_vectors([(t, "") for t in TEXTS], prepared, None)
    own = clf.backend.encode_labels([clf.builder.label_piece(label, None) for label in LABELS])
    logits = clf.score(clf.prepare(TEXTS, LABELS, multi_label=False), calibrated=False)
    for text, row in zip(TEXTS, logits, strict=True):
        np.testing.assert_allclose(vectors[(text, "")] @ own.T, row, atol=1e-4)
    examples = np.stack([vectors[(t, "")] for t in TEXTS] * 2)
    refit = refit_label_vectors(own, examples, example_targets([(label,) for label in least] * 2, LABELS))
    assert refit is not None
    for text, result in zip(TEXTS, taught, strict=True):
        expected = torch.softmax(torch.from_numpy(vectors[(text, "")] @ refit.T), 0).numpy()
        np.testing.assert_allclose([result.scores[label] for label in LABELS], expected, atol=1e-4)
    # examples the model gets right as they are change nothing
    agreed = [{"text": t, "labels": r.labels} for t, r in zip(TEXTS, plain, strict=True)]
    again = clf.classify(TEXTS, LABELS, multi_label=False, examples=agreed)
    assert [r.scores for r in again] == [r.scores for r in plain]


def test_examples_are_refused_where_the_logit_is_not_a_dot_product(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"), "bi-encoder-fused")
    clf = Classifier(model, tokenizer, device="cpu")
    with pytest.raises(InputError, match="examples: this bi-encoder-fused model takes no examples"):
        clf.classify(TEXTS[0], LABELS, examples=[{"text": "Goal!", "labels": ["sports"]}])


def test_examples_give_one_refit_for_any_label_order_and_count_in_the_budget(backbone_dir) -> None:
    model, tokenizer = bi_model(backbone_dir("bert"))
    clf = Classifier(model, tokenizer, device="cpu")
    _, _, shown = teaching(clf)
    given = clf.classify(TEXTS, LABELS, multi_label=False, examples=shown)
    backwards = clf.classify(TEXTS, LABELS[::-1], multi_label=False, examples=shown)
    for a, b in zip(given, backwards, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    robust = clf.prepare(TEXTS, LABELS, multi_label=False, examples=shown, label_order="robust")
    assert robust.label_fits is not None and set(robust.label_fits) == {0}
    # the examples' passes and tokens count with the texts' in a server's budget
    alone = clf.prepare(TEXTS, LABELS)
    with pytest.raises(TooMuchWork, match="model passes"):
        clf.prepare(TEXTS, LABELS, examples=shown, budget=WorkBudget(max_passes=len(alone.passes) + 1))
    # and so are the distinct example lists a call refits to
    apart = [[example] * 2 for example in shown[:4]]
    with pytest.raises(TooMuchWork, match="examples: 4 distinct example lists"):
        clf.prepare(TEXTS, LABELS, examples=apart, budget=WorkBudget(max_refits=3))
    assert clf.prepare(TEXTS, LABELS, examples=apart, budget=WorkBudget(max_refits=4)).label_fits
    # a refit's size is bounded: examples x labels
    many = [f"label {i}" for i in range(128)]
    with pytest.raises(InputError, match=r"examples: 129 examples x 128 labels of texts\[0\]"):
        clf.classify(TEXTS[0], many, examples=[{"text": "a", "labels": ["label 0"]}] * 129)
