"""The one place that turns (text, labels, prompt, examples) into token ids.

It knows the token budget of the model, reports what it cut, splits long texts into windows and
too many labels into groups, and makes sure user strings can never produce the special tokens:
every user string is tokenised on its own with special-token matching off, and the markers
`<<LABEL>>`, `<<SEP>>`, `<<EXAMPLE>>` are inserted as ids. Layout (official uni-encoder format):

    prompt_first=False: [CLS] text <<LABEL>>l1<<LABEL>>l2 <<SEP>> prompt examples [SEP]
    prompt_first=True:  [CLS] <<LABEL>>l1<<LABEL>>l2 <<SEP>> prompt text examples [SEP]
    examples:           <<EXAMPLE>>text \\nLabels:\\n l1, l2 ... <<SEP>>

The bi-encoders read label names with their own label encoder: `bi-encoder-fused` keeps the
layout with bare markers (`<<LABEL>><<LABEL>><<SEP>>`), the plain `bi-encoder` reads only
`[CLS] prompt text [SEP]` (no markers, no examples) and scores every label against that one text.

The encoder-decoder architectures read two sequences ("split"): the text with its examples
`[CLS] text examples [SEP]`, and the label block `[CLS] <<LABEL>>l1<<LABEL>>l2 <<SEP>> prompt [SEP]`
(`Pass.label_ids`). Each has the whole token budget: the text is cut or split to fit its own, the
labels are grouped to fit theirs.

The decoder-kv architecture ("decoder") reads one sequence with no special tokens around it, the
labels after the text and each marker after its name:
`prompt examples text <<SEP>> l1 <<LABEL>> l2 <<LABEL>> <<SEP>>`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from .errors import InputError, TooMuchWork

if TYPE_CHECKING:  # torch-free at run time: the ONNX runtime lays out inputs here too
    from transformers import PreTrainedTokenizerBase

    from .config import GLiClassConfig

Truncation = Literal["warn", "error", "chunk"]
DescriptionMode = Literal["label", "text", "ignore"]
# What the text input holds of the labels: names after markers, bare markers, or nothing; or
# "split": the labels (names after markers) are a second sequence beside the text; or "decoder":
# the labels after the text, each marker after its name.
Layout = Literal["names", "markers", "none", "split", "decoder"]


def layout_of(config: GLiClassConfig) -> Layout:
    if config.architecture_type == "bi-encoder":
        return "none"
    if config.architecture_type in ("encoder-decoder", "encoder-decoder-cls"):
        return "split"
    if config.architecture_type == "decoder-kv":
        return "decoder"
    return "markers" if config.architecture_type == "bi-encoder-fused" else "names"


# Distinct label strings whose token ids are kept; the least recently used go first.
LABEL_CACHE_SIZE: Final = 65536


@dataclass(frozen=True)
class Example:
    """A few-shot example shown to the model in the `<<EXAMPLE>>` block."""

    text: str
    labels: tuple[str, ...]


@dataclass
class Request:
    """One text to classify, with everything that goes into its model input (all validated)."""

    text: str
    labels: list[str]  # names, in the caller's order
    descriptions: list[str | None]
    prompt: str = ""
    examples: Sequence[Example] = ()


@dataclass
class Pass:
    """One model input: a window of a request's text with one group of its labels."""

    request: int
    group: int
    window: int
    input_ids: list[int]
    num_labels: int
    label_ids: list[int] | None = None  # the label block's own sequence, in the "split" layout

    @property
    def tokens(self) -> int:
        """Token ids the model reads for this pass (both sequences in the "split" layout)."""
        return len(self.input_ids) + (len(self.label_ids) if self.label_ids is not None else 0)


@dataclass
class RequestPlan:
    """How a request was laid out: label groups, text windows per group, and what was cut."""

    text_tokens: int
    groups: list[tuple[int, int]]  # [start, end) into the request's labels
    windows: list[list[tuple[int, int]]]  # per group, [start, end) token ranges of the text
    cut_tokens: int = 0
    char_spans: list[tuple[int, int]] = field(default_factory=list)  # per text token, when known


@dataclass(frozen=True)
class WorkBudget:
    """Bounds on the work one call may cause (the server's per-request limits); None: no bound."""

    max_labels: int | None = None  # candidate labels of one text, in all its label orders
    max_passes: int | None = None  # model inputs
    max_tokens: int | None = None  # token ids over all model inputs
    max_refits: int | None = None  # a bi-encoder's label-vector refits to distinct example lists

    def check_refits(self, count: int) -> None:
        if self.max_refits is not None and count > self.max_refits:
            raise TooMuchWork(
                "examples",
                f"{count} distinct example lists, each refitting the label vectors; this server "
                f"refits at most {self.max_refits} for one request",
            )

    def check_labels(self, field: str, count: int) -> None:
        if self.max_labels is not None and count > self.max_labels:
            raise TooMuchWork(
                field, f"{count} candidate labels to score; this server takes at most {self.max_labels}"
            )

    def check(self, passes: int, tokens: int) -> None:
        if self.max_passes is not None and passes > self.max_passes:
            raise TooMuchWork(
                "texts",
                f"{passes} model passes (windows x label groups x label orders); this server runs at "
                f"most {self.max_passes} for one request",
            )
        if self.max_tokens is not None and tokens > self.max_tokens:
            raise TooMuchWork(
                "texts",
                f"{tokens} tokens to score; this server scores at most {self.max_tokens} for one request",
            )


@dataclass
class _Parts:
    """A request's token ids by part, and its plan, before any model input is assembled."""

    text: list[int]
    labels: list[list[int]]  # per label: its name's ids (empty where the label encoder reads names)
    prompt: list[int]
    before_text: list[int]  # label descriptions read before the text (descriptions="text")
    examples: list[int]  # the whole <<EXAMPLE>> block
    joint: list[int] | None  # prompt and text tokenised as one string, where the layout uses it
    plan: RequestPlan


def _tokens(part: _Parts) -> int:
    """Token ids over all of a laid-out request's passes, but for the tokenizer's wrapping ones
    (counted the same way for the "split" layout's two sequences)."""
    fixed = len(part.prompt) + len(part.before_text) + len(part.examples)
    total = 0
    for (start, end), windows in zip(part.plan.groups, part.plan.windows, strict=True):
        block = sum(len(ids) + 1 for ids in part.labels[start:end]) + 1 if part.labels else 0
        total += sum(fixed + block + (b - a) for a, b in windows)
    return total


def example_segment(example: Example) -> str:
    return f"{example.text} \nLabels:\n {', '.join(example.labels)}"


class InputBuilder:
    """Builds model inputs for one tokenizer and config within `max_length` tokens.

    Safe to share between threads: tokenizer calls are serialised by a lock (the fast tokenizer's
    settings are mutable state), and the label cache is a bounded LRU behind its own lock.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: GLiClassConfig,
        max_length: int,
        *,
        min_text_tokens: int = 64,
        description_mode: DescriptionMode = "label",
        label_cache_size: int = LABEL_CACHE_SIZE,
    ) -> None:
        self.tokenizer = tokenizer
        self.layout = layout_of(config)
        self.prompt_first = bool(config.prompt_first)
        self.label_id, self.sep_id, self.example_id = config.special_token_ids()
        if self.layout == "decoder":  # the official decoder-kv <<SEP>> (`sep_token_index`)
            self.sep_id = getattr(config, "sep_id", self.sep_id)
        self.max_length = max_length
        self.min_text_tokens = min_text_tokens
        self.description_mode = description_mode
        self.label_template: str | None = getattr(config, "label_template", None)
        # The decoder-kv format adds no special tokens around its sequence.
        self.prefix, self.suffix = ([], []) if self.layout == "decoder" else wrapping_ids(tokenizer)
        self.forbidden = {*config.special_token_ids(), self.sep_id}
        self._label_cache: OrderedDict[str, list[int]] = OrderedDict()
        self._label_cache_size = label_cache_size
        self._cache_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        # Long texts are expected here (this class cuts or splits them); mute the tokenizer's notice.
        getattr(tokenizer, "deprecation_warnings", {})[
            "sequence-length-is-longer-than-the-specified-maximum"
        ] = True

    # -- tokenisation of user strings -------------------------------------------------------------

    def encode(self, strings: Sequence[str], offsets: bool = False) -> tuple[list[list[int]], list | None]:
        """Token ids of each string, special-token matching off: "<<LABEL>>" in a text is just text."""
        if not strings:
            return [], [] if offsets else None
        with self._tokenizer_lock:
            enc = plain_tokens(self.tokenizer, strings, offsets)
        ids = [[t for t in row if t not in self.forbidden] for row in enc["input_ids"]]
        return ids, (enc["offset_mapping"] if offsets else None)

    def label_ids(self, pieces: Sequence[str]) -> list[list[int]]:
        """Token ids of label strings, cached across calls (label sets repeat) in a bounded LRU."""
        found: dict[str, list[int]] = {}
        with self._cache_lock:
            for piece in dict.fromkeys(pieces):
                ids = self._label_cache.get(piece)
                if ids is not None:
                    self._label_cache.move_to_end(piece)
                    found[piece] = ids
        missing = [p for p in dict.fromkeys(pieces) if p not in found]
        if missing:
            found.update(zip(missing, self.encode(missing)[0], strict=True))
            with self._cache_lock:
                for piece in missing:
                    self._label_cache[piece] = found[piece]
                while len(self._label_cache) > self._label_cache_size:
                    self._label_cache.popitem(last=False)
        return [found[p] for p in pieces]

    def described(self, name: str, description: str | None) -> str:
        """A label with its description where descriptions go to the label: "name: description"."""
        if description and self.description_mode == "label":
            return f"{name}: {description}"
        return name

    def label_piece(self, name: str, description: str | None) -> str:
        """The string the model reads for a label: `described` in the model's `label_template`.

        "sports" -> "This article is about sports." with that template; "sports" without one."""
        piece = self.described(name, description)
        return piece if self.label_template is None else self.label_template.replace("{label}", piece)

    # -- layout ----------------------------------------------------------------------------------

    def build(
        self,
        requests: Sequence[Request],
        truncation: Truncation,
        overlap: int | None = None,
        budget: WorkBudget | None = None,
    ) -> tuple[list[Pass], list[RequestPlan]]:
        """All model inputs for `requests`, and how each request was laid out.

        With a `budget`, the passes and tokens are counted from the plans before any input is
        assembled, and a call over it raises `TooMuchWork` (a text cut into thousands of windows
        costs only its plan)."""
        parts = self._lay_out(requests, truncation, overlap)
        if budget is not None:
            count = sum(len(w) for p in parts for w in p.plan.windows)
            wrap = (len(self.prefix) + len(self.suffix)) * (2 if self.layout == "split" else 1)
            budget.check(count, sum(map(_tokens, parts)) + wrap * count)
        passes: list[Pass] = []
        for index, part in enumerate(parts):
            passes += self._assemble(index, requests[index], part)
        return passes, [part.plan for part in parts]

    def _lay_out(
        self, requests: Sequence[Request], truncation: Truncation, overlap: int | None
    ) -> list[_Parts]:
        """Each request's token ids by part and its plan (label groups, text windows, what was cut)."""
        want_offsets = truncation == "chunk"
        texts_ids, texts_offsets = self.encode([r.text for r in requests], offsets=want_offsets)
        prompt_ids = dict(zip(*self._unique_encode([r.prompt for r in requests]), strict=True))
        segments = [example_segment(e) for r in requests for e in r.examples]
        segment_ids = dict(zip(*self._unique_encode(segments), strict=True))
        described = [self._descriptions_text(r) for r in requests]
        description_ids = dict(zip(*self._unique_encode(described), strict=True))
        joint = self._joint_prompt_text(requests)
        out = []
        for i, request in enumerate(requests):
            if self.layout in ("names", "split", "decoder"):
                pieces = zip(request.labels, request.descriptions, strict=True)
                labels = self.label_ids([self.label_piece(n, d) for n, d in pieces])
            else:  # the label encoder reads the names
                labels = [[] for _ in request.labels]
            if request.examples and self.layout == "none":
                raise InputError(
                    f"texts[{i}]", "examples: the bi-encoder reads no examples (its text has no labels)"
                )
            examples: list[int] = []
            if request.examples:
                for example in request.examples:
                    examples += [self.example_id, *segment_ids[example_segment(example)]]
                examples.append(self.sep_id)
            before_text = description_ids[described[i]]
            prompt = prompt_ids[request.prompt]
            fixed = len(self.prefix) + len(self.suffix) + len(prompt) + len(examples) + len(before_text)
            text = texts_ids[i]
            if self.layout == "decoder":  # its label block opens with a <<SEP>> of its own
                fixed += 1
            if self.layout == "split":  # the prompt goes with the labels, in their own sequence
                text_fixed = fixed - len(prompt)
                plan = self._plan_split(i, text, labels, text_fixed, len(prompt), truncation, overlap)
            else:
                plan = self._plan(i, text, labels, len(request.labels), fixed, truncation, overlap)
            if texts_offsets is not None:
                plan.char_spans = [tuple(span) for span in texts_offsets[i]]
            usable_joint = joint[i] if joint is not None and request.prompt and not before_text else None
            out.append(_Parts(text, labels, prompt, before_text, examples, usable_joint, plan))
        return out

    def _assemble(self, index: int, request: Request, part: _Parts) -> list[Pass]:
        """The model inputs of one laid-out request: a pass per label group and text window."""
        passes = []
        prefix, suffix, text, plan = self.prefix, self.suffix, part.text, part.plan
        for g, (start, end) in enumerate(plan.groups):
            block = [t for ids in part.labels[start:end] for t in (self.label_id, *ids)] + [self.sep_id]
            for w, (a, b) in enumerate(plan.windows[g]):
                whole = a == 0 and b == len(text)
                if self.layout == "decoder":
                    names = (t for ids in part.labels[start:end] for t in (*ids, self.label_id))
                    tail = [self.sep_id, *names]
                    context = part.prompt + part.examples + part.before_text + text[a:b]
                    if part.joint is not None and whole and not part.examples:
                        joined = part.joint + tail + [self.sep_id]  # "prompt text" as one string
                        context = part.joint if len(joined) <= self.max_length else context
                    ids = context + tail + [self.sep_id]
                    passes.append(Pass(index, g, w, ids, end - start))
                    continue
                if self.layout == "split":
                    ids = prefix + part.before_text + text[a:b] + part.examples + suffix
                    label_ids = prefix + block + part.prompt + suffix
                    passes.append(Pass(index, g, w, ids, end - start, label_ids))
                    continue
                if self.layout == "none":
                    ids = prefix + part.prompt + part.before_text + text[a:b] + suffix
                    if part.joint is not None and whole:
                        joined = prefix + part.joint + suffix  # "prompt text", as one string
                        ids = joined if len(joined) <= self.max_length else ids
                elif self.prompt_first:
                    ids = prefix + block + part.prompt + part.before_text + text[a:b] + part.examples + suffix
                    if part.joint is not None and whole:
                        # Prompt and text tokenised together, as the official format does, where
                        # that fits: joint tokens can outnumber the separate ones the plan budgeted.
                        joined = prefix + block + part.joint + part.examples + suffix
                        ids = joined if len(joined) <= self.max_length else ids
                else:
                    ids = prefix + part.before_text + text[a:b] + block + part.prompt + part.examples + suffix
                if len(ids) > self.max_length:  # the plan keeps every input in the window
                    raise AssertionError(f"input of {len(ids)} tokens planned for {self.max_length}")
                passes.append(Pass(index, g, w, ids, end - start))
        return passes

    def _plan(
        self,
        index: int,
        text: list[int],
        labels: list[list[int]],
        count: int,
        fixed: int,
        truncation: Truncation,
        overlap: int | None,
    ) -> RequestPlan:
        """Label groups and text windows of one request within the token budget."""
        room = self.max_length - fixed  # for the label block (markers, names, <<SEP>>) and the text
        reserve = min(len(text), self.min_text_tokens)
        if self.layout == "none":  # no label block: every label is scored against the whole budget
            labels, room, reserve = [], room + 1, min(reserve, 1)
        longest = max((len(ids) + 1 for ids in labels), default=0) + 1
        if room - reserve < longest:
            need = fixed + reserve + longest
            raise InputError(
                f"texts[{index}]",
                f"the prompt, examples and longest label need {need} tokens with the text's first "
                f"{reserve}; the model takes {self.max_length}",
            )
        groups = _group_labels([len(ids) + 1 for ids in labels], room - reserve) if labels else [(0, count)]
        windows: list[list[tuple[int, int]]] = []
        cut = 0
        for start, end in groups:
            budget = room - sum(len(ids) + 1 for ids in labels[start:end]) - 1
            if len(text) <= budget:
                windows.append([(0, len(text))])
            elif truncation == "error":
                raise InputError(
                    f"texts[{index}]",
                    f"{len(text)} tokens, but only {budget} fit beside its labels (max_length "
                    f"{self.max_length}); use truncation='warn' to cut or 'chunk' to split it",
                )
            elif truncation == "warn":
                windows.append([(0, budget)])
                cut = max(cut, len(text) - budget)
            else:
                if overlap is not None and overlap > budget // 2:
                    raise InputError(
                        "overlap",
                        f"{overlap} tokens, but the windows of texts[{index}] hold {budget} tokens beside "
                        f"its labels, and at most half a window ({budget // 2}) may overlap",
                    )
                windows.append(_windows(len(text), budget, overlap))
        return RequestPlan(len(text), groups, windows, cut)

    def _plan_split(
        self,
        index: int,
        text: list[int],
        labels: list[list[int]],
        text_fixed: int,
        prompt: int,
        truncation: Truncation,
        overlap: int | None,
    ) -> RequestPlan:
        """Label groups and text windows when text and labels are two sequences, each with the
        whole budget: the labels grouped beside the prompt, the text cut or split beside its
        examples, the same windows for every group."""
        wrap = len(self.prefix) + len(self.suffix)
        label_room = self.max_length - wrap - prompt
        longest = max((len(ids) + 1 for ids in labels), default=0) + 1
        if label_room < longest:
            raise InputError(
                f"texts[{index}]",
                f"the prompt and the longest label need {wrap + prompt + longest} tokens; the model "
                f"takes {self.max_length}",
            )
        budget = self.max_length - text_fixed
        if budget < max(min(len(text), self.min_text_tokens), 1):
            raise InputError(
                f"texts[{index}]",
                f"the examples leave no room for the text: they need {text_fixed} of the model's "
                f"{self.max_length} tokens",
            )
        groups = _group_labels([len(ids) + 1 for ids in labels], label_room)
        cut = 0
        if len(text) <= budget:
            windows = [(0, len(text))]
        elif truncation == "error":
            raise InputError(
                f"texts[{index}]",
                f"{len(text)} tokens, but only {budget} fit (max_length {self.max_length}); use "
                "truncation='warn' to cut or 'chunk' to split it",
            )
        elif truncation == "warn":
            windows, cut = [(0, budget)], len(text) - budget
        else:
            if overlap is not None and overlap > budget // 2:
                raise InputError(
                    "overlap",
                    f"{overlap} tokens, but the windows of texts[{index}] hold {budget} tokens, and at "
                    f"most half a window ({budget // 2}) may overlap",
                )
            windows = _windows(len(text), budget, overlap)
        return RequestPlan(len(text), groups, [list(windows) for _ in groups], cut)

    def _descriptions_text(self, request: Request) -> str:
        if self.description_mode != "text":
            return ""
        parts = [f"{n}: {d}" for n, d in zip(request.labels, request.descriptions, strict=True) if d]
        return " ".join(parts)

    def _unique_encode(self, strings: Sequence[str]) -> tuple[list[str], list[list[int]]]:
        unique = list(dict.fromkeys(strings))
        return unique, self.encode(unique)[0]

    def _joint_prompt_text(self, requests: Sequence[Request]) -> list[list[int]] | None:
        joins = self.prompt_first or self.layout in ("none", "decoder")
        if not joins or not any(r.prompt for r in requests):
            return None
        gap = " " if self.layout == "none" else ""  # the bi-encoder's text is f"{prompt} {text}"
        return self.encode([r.prompt + gap + r.text if r.prompt else "" for r in requests])[0]


def _group_labels(sizes: Sequence[int], capacity: int) -> list[tuple[int, int]]:
    """Split consecutive label block sizes (marker + name) into balanced groups that fit `capacity`.

    Each group also holds one <<SEP>>. [3, 3, 3, 3], capacity 7 -> [(0, 2), (2, 4)]. Every single
    label must fit on its own (the caller checks).
    """
    total = sum(sizes) + 1
    if total <= capacity:
        return [(0, len(sizes))]
    target = -(-sum(sizes) // -(-total // capacity))  # an even share per group
    groups: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (used + size + 1 > capacity or used + size > target):
            groups.append((start, i))
            start, used = i, 0
        used += size
    groups.append((start, len(sizes)))
    return groups


def _windows(length: int, size: int, overlap: int | None) -> list[tuple[int, int]]:
    """Overlapping [start, end) windows of `size` tokens covering `length` tokens; `overlap` is at
    most half a window (the caller checks), so there are at most about 2 x length / size windows."""
    overlap = size // 4 if overlap is None else overlap
    stride = max(size - overlap, 1)
    out = []
    start = 0
    while True:
        end = min(start + size, length)
        out.append((start, end))
        if end >= length:
            return out
        start += stride


def plain_tokens(tokenizer: PreTrainedTokenizerBase, strings: Sequence[str], offsets: bool = False) -> Any:
    """Tokenise user strings with no special tokens added and special-token matching off, so
    "<<LABEL>>" or "[SEP]" in them is plain text (the caller drops any special id that remains)."""
    return tokenizer(
        list(strings),
        add_special_tokens=False,
        split_special_tokens=True,
        return_offsets_mapping=offsets,
        return_attention_mask=False,
        return_token_type_ids=False,
    )


def wrapping_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a sequence ([CLS] / [SEP] and the like)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot find how the tokenizer wraps a sequence with its special tokens")
