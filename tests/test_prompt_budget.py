"""prompt_first with a prompt: the prompt and text are tokenised together where that fits, and no
input ever runs past the window, at the window's edge, for every backbone family in the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from everylabel import Classifier, create_model
from tests.backbones import FAMILIES

PROMPTS = ("Classify", "Topic:")
WORDS = ("zebra", "quantum", "thunder", "pizzeria", "unbelievable")
LABELS = ["sports", "politics"]


def _growing_pair(clf: Classifier) -> tuple[str, str]:
    """A prompt and a first word that take more tokens together than apart."""

    def count(string: str) -> int:
        return len(clf.builder.encode([string])[0][0])

    for prompt in PROMPTS:
        for word in WORDS:
            if count(prompt + word) > count(prompt) + count(word):
                return prompt, word
    raise AssertionError("no prompt and word that tokenise longer together")


@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_fit_the_window_at_its_edge(backbone_dir, family: str) -> None:
    model, tokenizer = create_model(backbone_dir(family), prompt_first=True, dropout=0.0)
    clf = Classifier(model, tokenizer, device="cpu", max_length=48, min_text_tokens=8)
    prompt, word = _growing_pair(clf)
    edge_seen = False
    for extra in range(20, 45):
        text = word + " the" * extra
        prepared = clf.prepare(text, LABELS, prompt=prompt)
        assert all(len(p.input_ids) <= clf.max_length for p in prepared.passes), extra
        plan = prepared.plans[0]
        fits = plan.cut_tokens == 0
        edge_seen |= fits and len(prepared.passes[0].input_ids) == clf.max_length
        if fits:  # the whole text is in the input, in one tokenisation or the other
            assert clf.tokenizer.decode(prepared.passes[0].input_ids).count("the") >= extra
            clf.classify(text, LABELS, prompt=prompt)
    assert edge_seen  # some text filled the window exactly


def test_a_text_at_the_edge_of_the_real_window_runs(backbone_dir) -> None:
    model, tokenizer = create_model(backbone_dir("bert"), prompt_first=True, dropout=0.0)
    clf = Classifier(model, tokenizer, device="cpu")  # the backbone's own 512-token window
    prompt, word = _growing_pair(clf)
    budget = clf.max_length - len(clf.prepare("x", LABELS, prompt=prompt).passes[0].input_ids) + 1
    text = word + " the" * (budget - len(clf.builder.encode([word])[0][0]))
    prepared = clf.prepare(text, LABELS, prompt=prompt)
    assert prepared.plans[0].cut_tokens == 0
    assert len(prepared.passes[0].input_ids) == clf.max_length
    (result,) = clf.classify(text, LABELS, prompt=prompt)  # past the position table: IndexError
    ids = prepared.passes[0].input_ids
    logits = clf.run(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), 2)[0]
    expected = (1 / (1 + np.exp(-logits))).tolist()
    assert [result.scores[label] for label in LABELS] == pytest.approx(expected, abs=1e-6)
