"""The body of `POST /v1/classify`: read it, bound it, and turn it into `prepare`'s arguments.

The fields are the `Classifier.classify` arguments of the same names. Their values are checked by
the classifier itself (while preparing), so a bad value gets exactly the CLI's and the library's
message (`texts[3]: ...`); here only the envelope is checked: JSON (not nested past what can be
read), an object, known fields, the one label shape JSON cannot say plainly, and the size limits.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import InputError
from ..jsonfiles import json_labels


class ClassifyRequest(BaseModel):
    """What `/docs` shows for the request body (the service reads the body itself, see module doc)."""

    texts: list[str] | str = Field(description="the texts to classify (a string is one text)")
    labels: Any = Field(
        description="candidate labels: one list for all texts, one list per text, or a hierarchy "
        '(nested objects and lists, flattened to parent.child); an item is a name or {"name", '
        '"description"}. A list whose items are all two-string lists is refused as ambiguous '
        '(pairs or two labels per text?): write such labels as {"name": ...} objects'
    )
    multi_label: bool = Field(True, description="sigmoid scores and thresholds; false: softmax, top label")
    threshold: float | list[float] | dict[str, float] | None = Field(
        None,
        description="multi-label decision threshold: one number, one per text, or per label "
        "(default: the model's tuned thresholds if it was calibrated with them, else 0.5)",
    )
    prompt: str | list[str | None] | None = Field(None, description="task prompt: one, or one per text")
    examples: Any = Field(None, description='few-shot examples: [{"text", "labels"}], or one list per text')
    truncation: Literal["warn", "error", "chunk"] = Field(
        "warn", description="a text longer than the model's window: cut and report, refuse, or score windows"
    )
    aggregation: Literal["max", "mean"] = Field("max", description="how chunk windows' scores combine")
    overlap: int | None = Field(None, description="tokens shared by consecutive chunk windows")
    shortlist: int | None = Field(
        None, description="for many labels: rank them with the server's retriever, score the top k"
    )
    label_order: Literal["given", "sorted", "robust"] = Field(
        "given", description="score the given order, one canonical order, or the mean of four orders"
    )
    adapter: str | None = Field(
        None,
        description="a LoRA adapter the server was started with (serve --adapter NAME=DIR; /info lists "
        "them) to score with; null: the model's own weights. An unknown name is answered 404",
    )


FIELDS = tuple(ClassifyRequest.model_fields)


class TooLarge(Exception):
    """The request is over a size limit (HTTP 413)."""


def json_object(body: bytes, holding: str) -> dict[str, Any]:
    """The body as a JSON object; anything else raises `InputError` on the field "body" (`holding`
    names the fields the object should have, for the message)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError("body", f"not valid JSON ({error})") from None
    except RecursionError:
        raise InputError("body", "nested too deeply to read (brackets inside brackets)") from None
    if not isinstance(data, dict):
        raise InputError("body", f"expected a JSON object with {holding}, got {type(data).__name__}")
    return data


def count_texts(texts: Any, limit: int, field: str) -> int:
    """How many texts `texts` is (a string is one); `TooLarge` naming `field` over `limit`. Every
    protocol's parser bounds its texts here, before any work."""
    count = len(texts) if isinstance(texts, list) else 1
    if count > limit:
        raise TooLarge(f"{field}: {count} texts in one request; this server takes at most {limit}")
    return count


def parse_body(body: bytes, max_request_texts: int) -> tuple[dict[str, Any], int]:
    """(`prepare`'s keyword arguments, number of texts) from a request body; raises `InputError`
    for a malformed envelope and `TooLarge` for too many texts."""
    data = json_object(body, "'texts' and 'labels'")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(unknown[0], f"unknown field (fields: {', '.join(FIELDS)})")
    for required in ("texts", "labels"):
        if required not in data:
            raise InputError(required, "missing")
    json_labels(data["labels"])
    return data, count_texts(data["texts"], max_request_texts, "texts")
