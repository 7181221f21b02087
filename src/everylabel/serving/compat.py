"""Two other services' protocols, answered by the same engine, scheduler and limits as `/v1/classify`.

Hugging Face inference, zero-shot classification: `POST /`, and `POST /models/{model_id}` for
clients that keep the hosted API's path (the id is not checked: this server has one model).
`huggingface_hub.InferenceClient(model="http://host:port").zero_shot_classification(...)` posts
to the URL itself. Body: `{"inputs": str | [str], "parameters": {"candidate_labels": [str] or
"a, b", "multi_label": false, "hypothesis_template": str}}`; "options" (the hosted API's cache and
wait switches) is read and ignored. A comma string is split on commas, each name stripped. The
answer is the task format of the Hugging Face task specification, the one `InferenceClient` parses:
every candidate as `{"label", "score"}`, best first (the older `{"sequence", "labels", "scores"}`
object is refused by that client, which expects a list); a list of inputs gets one such list per
input. `multi_label` false (the default, as on the hosted API) scores with a softmax over the
candidates, so the scores sum to 1; true scores each label alone (sigmoid). An empty text has no
scores: `[]`. `hypothesis_template`: GLiClass scores a label's own text beside the text, not an NLI
hypothesis. Absent, or the NLI pipeline's default "This example is {}.", the names are scored as
given; any other template becomes each label's text (`template.format(name)`, as the NLI pipeline
builds its hypotheses) and the answer still names the candidate. A template without `{}` is 422.

The official gliclass server (`gliclass.serve`, whose `GLiClassClient(url)` works unchanged):
`POST /gliclass` with `{"texts" (or "text"), "labels", "threshold", "multi_label", "examples",
"prompt", "adapter_id"}` answers one list per text of the labels decided, as `{"label", "score"}`
in the candidates' order, as the official pipeline lists them: multi-label, those at or over the
threshold; single-label, the top one. A string is one text, answered `[[...]]`. The official Ray
Serve deployment classifies only the first text of a list and answers that text's list bare, which
`GLiClassClient` (documented as one list per text; `classify` takes `[0]`) misreads; this answers
the client's contract, every text. `labels` as a list of lists is one label list per text (gliclass
labels are names, so the [name, description] reading `/v1/classify` refuses to guess does not
arise). `threshold` null: the model's default (0.5 unless calibrated with tuned thresholds).
`adapter_id` null or "__base__" (the official base id): the base model; any other id is passed to
the classifier as `adapter` (one the server does not have is 404, as on the official server).
`GET /gliclass/-/healthz` is 200 once the model is ready, 503 before;
`GET /gliclass/adapter-cache[?adapter_id=]` answers in the official shape (`adapter_cache_status`).

Both: the body is bounded by `max_body_bytes`, the texts by `max_request_texts`, the work by
`classify_arguments`, as `/v1/classify` is; an error is `{"detail", "field", "error"}` ("error"
is the key both services answer errors with) naming the protocol's own field
(`parameters.candidate_labels[2]`). A text longer than the model's window is cut, as `classify`
does by default, and its index is listed in the `X-Everylabel-Truncated` header, since neither
answer has a place for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from ..errors import InputError, TooMuchWork
from ..inference.labels import normalize_label_set
from ..inference.results import ClassificationResult
from .http import error as _error
from .http import read_body as _read_body
from .requests import TooLarge, count_texts, json_object

# classify_arguments(service, request, prepare's keyword arguments, texts) in app.py.
Classify = Callable[[Any, Request, dict[str, Any], int], Awaitable[list[ClassificationResult] | Response]]

NLI_DEFAULT_TEMPLATE = "This example is {}."
HF_FIELDS = ("inputs", "parameters", "options")
HF_PARAMETERS = ("candidate_labels", "multi_label", "hypothesis_template")
# What an error of the engine names, in the Hugging Face protocol's words.
HF_NAMES = {
    "texts": "inputs",
    "labels": "parameters.candidate_labels",
    "multi_label": "parameters.multi_label",
}
GLICLASS_FIELDS = ("texts", "text", "labels", "threshold", "multi_label", "examples", "prompt", "adapter_id")
GLICLASS_NAMES = {"adapter": "adapter_id"}
BASE_ADAPTER_ID = "__base__"  # the official server's id for "no adapter"
TRUNCATED_HEADER = "X-Everylabel-Truncated"


class HuggingFaceParameters(BaseModel):
    candidate_labels: list[str] | str = Field(description='the labels, or one string "a, b, c"')
    multi_label: bool = Field(False, description="score each label alone (sigmoid); false: softmax")
    hypothesis_template: str | None = Field(
        None, description='absent or "This example is {}.": labels as given; else each label\'s text'
    )


class HuggingFaceRequest(BaseModel):
    """What `/docs` shows for the Hugging Face body (the route reads the body itself)."""

    inputs: str | list[str] = Field(description="the text, or a list of texts")
    parameters: HuggingFaceParameters


class GLiClassRequest(BaseModel):
    """What `/docs` shows for the official gliclass server's body (the route reads it itself)."""

    texts: str | list[str] = Field(description="the texts (a string is one text)")
    labels: list[str] | list[list[str]] = Field(description="one label list, or one per text")
    threshold: float | None = Field(None, description="multi-label decision threshold")
    multi_label: bool = True
    examples: list[Any] | None = Field(None, description='few-shot examples [{"text", "labels"}]')
    prompt: str | list[str] | None = None
    adapter_id: str | None = Field(None, description='a LoRA adapter; null or "__base__": the base model')


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request body for `/docs`, its nested models written in place (a `$defs` reference would
    point nowhere inside openapi.json)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return inline(definitions[reference.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def add_compat_routes(app: FastAPI, service: Any, classify: Classify) -> None:
    """The Hugging Face and gliclass routes over `service` (the app's `Service`); every request
    ends in `classify` (app.py's `classify_arguments`, given here so this module need not import
    the app)."""

    async def huggingface(request: Request) -> Response:
        return await _timed(service, "huggingface", _huggingface(service, request, classify))

    hf_docs = "Hugging Face inference protocol, zero-shot classification"
    app.post("/", summary=hf_docs, openapi_extra=_body_schema(HuggingFaceRequest))(huggingface)

    @app.post(
        "/models/{model_id:path}",
        summary=f"{hf_docs} (the hosted API's path; this server's one model answers any id)",
        openapi_extra=_body_schema(HuggingFaceRequest),
    )
    async def huggingface_model(model_id: str, request: Request) -> Response:
        return await huggingface(request)

    @app.post(
        "/gliclass",
        summary="The official gliclass server's protocol (gliclass.serve.client.GLiClassClient)",
        openapi_extra=_body_schema(GLiClassRequest),
    )
    async def gliclass(request: Request) -> Response:
        return await _timed(service, "gliclass", _gliclass(service, request, classify))

    @app.get("/gliclass/-/healthz", summary="gliclass protocol: 200 once the model is ready, 503 before")
    async def gliclass_health() -> Response:
        if service.status == "ready":
            return PlainTextResponse("success")
        loading = service.status == "loading"
        return _problem(503, "the model is loading" if loading else f"the model failed: {service.error}")

    @app.get("/gliclass/adapter-cache", summary="gliclass protocol: the adapters this server can apply")
    async def gliclass_adapters(adapter_id: str | None = None) -> dict[str, Any]:
        return adapter_cache_status(service, adapter_id)


def adapter_cache_status(service: Any, adapter_id: str | None = None) -> dict[str, Any]:
    """The official server's adapter-cache answer: `{"enabled": false, "base_adapter_id"}` while the
    service has no `adapters` (the ids of the adapters it can apply); with them, those ids as
    "loaded" and, asked about `adapter_id`, whether it is one of them ("cached")."""
    adapters = getattr(service, "adapters", None)
    if adapters is None:
        return {"enabled": False, "base_adapter_id": BASE_ADAPTER_ID}
    answer: dict[str, Any] = {"enabled": True, "base_adapter_id": BASE_ADAPTER_ID, "loaded": sorted(adapters)}
    if adapter_id is not None:
        answer["adapter_id"] = adapter_id
        answer["cached"] = adapter_id == BASE_ADAPTER_ID or adapter_id in answer["loaded"]
    return answer


async def _timed(service: Any, endpoint: str, answer: Awaitable[Response]) -> Response:
    started = time.monotonic()
    response = await answer
    service.metrics.requests.labels(endpoint, str(response.status_code)).inc()
    service.metrics.request_seconds.observe(time.monotonic() - started)
    return response


async def _huggingface(service: Any, request: Request, classify: Classify) -> Response:
    body = await _read_body(request, service.settings.max_body_bytes)
    if isinstance(body, Response):
        return _in_protocol(body, {})
    settings = service.settings
    try:
        arguments, count, names = parse_huggingface(body, settings.max_request_texts, settings.max_labels)
    except TooLarge as error:
        return _problem(413, str(error), "inputs")
    except TooMuchWork as error:
        return _problem(413, str(error), error.field)
    except InputError as error:
        return _problem(422, str(error), error.field)
    outcome = await classify(service, request, arguments, count)
    if isinstance(outcome, Response):
        return _in_protocol(outcome, HF_NAMES)
    ranked = [_ranked(result, names, arguments["labels"]) for result in outcome]
    return _answer(ranked[0] if isinstance(arguments["texts"], str) else ranked, outcome)


def parse_huggingface(body: bytes, max_texts: int, max_labels: int) -> tuple[dict[str, Any], int, list[str]]:
    """(`prepare`'s keyword arguments, number of texts, the candidate names) from a Hugging Face
    zero-shot body; raises `InputError` naming the field, `TooLarge` for too many texts and
    `TooMuchWork` for too many labels (the engine's bound, checked here to name the field)."""
    data = json_object(body, "'inputs' and 'parameters'")
    _known(data, HF_FIELDS, "", "field")
    if "inputs" not in data:
        raise InputError("inputs", "missing")
    texts = data["inputs"]
    if isinstance(texts, list):
        if not texts:
            raise InputError("inputs", "an empty list: give a text or a list of texts")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"inputs[{index}]", f"expected a string, got {type(text).__name__}")
    elif not isinstance(texts, str):
        raise InputError("inputs", f"expected a string or a list of strings, got {type(texts).__name__}")
    count = count_texts(texts, max_texts, "inputs")
    parameters = data.get("parameters")
    if not isinstance(parameters, dict):
        problem = "missing" if parameters is None else f"expected an object, got {type(parameters).__name__}"
        raise InputError("parameters", f"{problem}; it holds candidate_labels")
    _known(parameters, HF_PARAMETERS, "parameters.", "parameter")
    names = candidate_names(parameters.get("candidate_labels"))
    if len(names) > max_labels:
        raise TooMuchWork(
            "parameters.candidate_labels",
            f"{len(names)} candidate labels to score; this server takes at most {max_labels}",
        )
    multi_label = parameters.get("multi_label")
    if multi_label is None:
        multi_label = False
    elif not isinstance(multi_label, bool):
        raise InputError("parameters.multi_label", f"expected true or false, got {multi_label!r}")
    labels = label_texts(names, parameters.get("hypothesis_template"))
    return {"texts": texts, "labels": labels, "multi_label": multi_label}, count, names


def candidate_names(raw: Any) -> list[str]:
    """`parameters.candidate_labels` as a list of names: "a, b" -> ["a", "b"]; each must be a
    non-empty string, none twice."""
    field = "parameters.candidate_labels"
    if raw is None:
        raise InputError(field, "missing")
    if isinstance(raw, str):
        names = [name.strip() for name in raw.split(",")]
    elif isinstance(raw, list):
        for index, name in enumerate(raw):
            if not isinstance(name, str):
                raise InputError(f"{field}[{index}]", f"expected a string, got {type(name).__name__}")
        names = list(raw)
    else:
        raise InputError(field, f"expected a list of strings or one comma-separated string, got {raw!r}")
    normalize_label_set(names, field)  # empty names, duplicates, an empty list
    return names


def label_texts(names: list[str], template: Any) -> list[str]:
    """The text the model scores for each candidate: the name, or the hypothesis `template` makes of
    it ("About {}." -> "About sports.") unless it is absent or the NLI default."""
    field = "parameters.hypothesis_template"
    if template is None or template == NLI_DEFAULT_TEMPLATE:
        return names
    if not isinstance(template, str):
        raise InputError(field, f"expected a string with {{}} where the label goes, got {template!r}")
    try:
        texts = [template.format(name) for name in names]
        placeheld = template.format("a") != template.format("b")
    except (IndexError, KeyError, ValueError) as error:
        raise InputError(field, f"{template!r} does not format with one label ({error})") from None
    if not placeheld:
        raise InputError(field, f"{template!r} has no {{}} where the label goes")
    return texts


def _ranked(result: ClassificationResult, names: list[str], texts: list[str]) -> list[dict[str, Any]]:
    """Every candidate with its score, best first, named as the caller named it."""
    if result.empty:
        return []
    scored = [{"label": name, "score": result.scores[text]} for name, text in zip(names, texts, strict=True)]
    return sorted(scored, key=lambda item: -item["score"])


async def _gliclass(service: Any, request: Request, classify: Classify) -> Response:
    body = await _read_body(request, service.settings.max_body_bytes)
    if isinstance(body, Response):
        return _in_protocol(body, {})
    try:
        arguments, count = parse_gliclass(body, service.settings.max_request_texts)
    except TooLarge as error:
        return _problem(413, str(error), "texts")
    except InputError as error:
        return _problem(422, str(error), error.field)
    outcome = await classify(service, request, arguments, count)
    if isinstance(outcome, Response):
        return _in_protocol(outcome, GLICLASS_NAMES)
    return _answer([_decided(result) for result in outcome], outcome)


def parse_gliclass(body: bytes, max_texts: int) -> tuple[dict[str, Any], int]:
    """(`prepare`'s keyword arguments, number of texts) from the official gliclass server's body;
    the values themselves are checked by the classifier, as for `/v1/classify`."""
    data = json_object(body, "'texts' and 'labels'")
    _known(data, GLICLASS_FIELDS, "", "field")
    if "text" in data and "texts" in data:
        raise InputError("text", "give texts or text, not both")
    if "texts" not in data and "text" not in data:
        raise InputError("texts", "missing")
    if "labels" not in data:
        raise InputError("labels", "missing")
    texts = data.get("texts", data.get("text"))
    count = count_texts(texts, max_texts, "texts")
    arguments = {
        "texts": texts,
        "labels": data["labels"],
        "threshold": data.get("threshold"),
        "multi_label": data.get("multi_label", True),
    }
    for name in ("examples", "prompt"):
        if data.get(name) is not None:
            arguments[name] = data[name]
    adapter_id = data.get("adapter_id")
    if adapter_id is not None and adapter_id != BASE_ADAPTER_ID:
        arguments["adapter"] = adapter_id
    return arguments, count


def _decided(result: ClassificationResult) -> list[dict[str, Any]]:
    """The labels decided for one text, in the candidates' order (as the official pipeline lists them)."""
    chosen = set(result.labels)
    return [{"label": name, "score": score} for name, score in result.scores.items() if name in chosen]


def _known(data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, kind: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InputError(f"{prefix}{unknown[0]}", f"unknown {kind} ({kind}s: {', '.join(allowed)})")


def _answer(content: Any, results: list[ClassificationResult]) -> Response:
    """The answer, with the texts cut to the model's window named in a header."""
    cut = [str(index) for index, result in enumerate(results) if result.truncated]
    return JSONResponse(content, headers={TRUNCATED_HEADER: ",".join(cut)} if cut else None)


def _problem(
    status: int, detail: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    extra: dict[str, Any] = {"field": field} if field is not None else {}
    response = _error(status, detail, error=detail, **extra)
    response.headers.update(headers or {})
    return response


def _in_protocol(response: Response, names: Mapping[str, str]) -> Response:
    """An error answer of the service in the protocol's own field names, its message also under
    "error" (`texts[2]: ...` -> `inputs[2]: ...`); headers such as Retry-After kept."""
    data = json.loads(bytes(response.body))
    detail, field = data["detail"], data.get("field")
    if field is not None:
        renamed = _renamed(field, names)
        if detail.startswith(field):
            detail = renamed + detail[len(field) :]
        field = renamed
    kept = {key: value for key, value in response.headers.items() if key.lower() == "retry-after"}
    return _problem(response.status_code, detail, field, kept)


def _renamed(field: str, names: Mapping[str, str]) -> str:
    """ "labels[2]" -> "parameters.candidate_labels[2]" with {"labels": "parameters.candidate_labels"}."""
    for old, new in names.items():
        if field == old or field.startswith((f"{old}[", f"{old}.")):
            return new + field[len(old) :]
    return field
