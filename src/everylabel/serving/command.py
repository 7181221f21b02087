"""`everylabel serve`: the HTTP service on uvicorn (argument parsing here; the app in `app.py`)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from ..errors import InputError, MissingDependencyError


def add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="an HTTP service with dynamic batching (FastAPI on uvicorn)",
        description="POST /v1/classify, GET /health, /info, /metrics (Prometheus), a page to try the model "
        "at / and the API docs at /docs and /redoc (all offline). The texts of concurrent requests are "
        "batched together; SIGTERM finishes what is in flight, then exits.",
    )
    serve.add_argument("--model", default="default", help="checkpoint folder, hub id or ONNX export")
    serve.add_argument(
        "--backend", choices=("auto", "torch", "onnx"), default="auto", help="as for `classify`"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    serve.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    serve.add_argument("--max-length", type=int, help="token window (default: the model's)")
    serve.add_argument("--batch-size", type=int, default=32, help="most model inputs per batch")
    serve.add_argument(
        "--max-batch-tokens", type=int, help="padded tokens per batch (default: the classifier's budget)"
    )
    serve.add_argument(
        "--max-queue-texts", type=int, default=1024, help="texts queued at once; beyond them 429"
    )
    serve.add_argument(
        "--max-request-texts",
        type=int,
        help="texts in one request; beyond them 413 (default: 256, or the queue bound if smaller)",
    )
    serve.add_argument(
        "--max-queue-tokens",
        type=int,
        default=2**21,
        help="tokens of the passes queued at once; beyond them 429",
    )
    serve.add_argument(
        "--max-labels",
        type=int,
        default=16384,
        help="candidate labels of one text (x4 robust); beyond them 413",
    )
    serve.add_argument(
        "--max-request-passes",
        type=int,
        default=2048,
        help="model passes of one request (windows x label groups x label orders); beyond them 413",
    )
    serve.add_argument(
        "--max-request-tokens",
        type=int,
        default=2**19,
        help="tokens over one request's passes; beyond them 413",
    )
    serve.add_argument(
        "--max-request-refits",
        type=int,
        default=4,
        help="distinct example lists one request may refit a bi-encoder's label vectors to; beyond them 413",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=8 * 2**20, help="request body size; beyond it 413"
    )
    serve.add_argument("--retriever", help="what ranks labels for requests with 'shortlist' (see classify)")
    serve.add_argument(
        "--adapter",
        action="append",
        type=adapter_option,
        metavar="NAME=DIR",
        help="an extra LoRA adapter folder (as LoRA training or save_adapter write it) trained on the "
        'model\'s base backbone; a request picks it with the field "adapter": NAME (an unknown name is '
        "answered 404). Repeat for several; they share one copy of the backbone and run on torch "
        "(--backend auto picks it). Requests of different adapters are batched apart",
    )
    serve.add_argument(
        "--max-loaded-adapters",
        type=int,
        help="adapters held in memory at once (default 8); the least recently used is unloaded and read "
        "again from its folder when next asked for",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")


def adapter_option(value: str) -> tuple[str, str]:
    """--adapter NAME=DIR -> (NAME, DIR): a well-formed name and an existing folder."""
    from ..inference.extra_adapters import ADAPTER_NAME

    name, equals, folder = value.partition("=")
    if not equals or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR (an adapter name and its folder), got {value!r}")
    if not ADAPTER_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{value!r}: {name!r} is not an adapter name (letters, digits and . _ / : -, at most 128)"
        )
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{value!r}: the folder {folder} does not exist")
    return name, folder


def check_adapter_options(args: argparse.Namespace) -> None:
    """--adapter and --max-loaded-adapters fit together and with --backend (`InputError` otherwise)."""
    adapters = args.adapter or []
    names = [name for name, _ in adapters]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError("--adapter", f"the name {twice[0]!r} is given twice; each adapter needs its own")
    if args.max_loaded_adapters is not None:
        if not adapters:
            raise InputError("--max-loaded-adapters", "bounds the adapters of --adapter; give --adapter too")
        if args.max_loaded_adapters < 1:
            raise InputError("--max-loaded-adapters", f"must be >= 1, got {args.max_loaded_adapters}")
    if adapters and args.backend == "onnx":
        raise InputError("--adapter", "adapters run on the torch backend; use --backend torch or auto")


def serve_command(args: argparse.Namespace) -> int:
    check_adapter_options(args)
    try:
        import uvicorn

        from .app import ServeSettings, create_app
    except ImportError as error:
        raise MissingDependencyError(
            f"serve: needs the server extra ({error.name} is missing): pip install 'everylabel[serve]'"
        ) from None
    from ..commands import open_for_command

    settings = ServeSettings(
        model=args.model,
        max_batch_tokens=args.max_batch_tokens,
        max_queue_texts=args.max_queue_texts,
        max_queue_tokens=args.max_queue_tokens,
        max_request_texts=args.max_request_texts or min(256, args.max_queue_texts),
        max_labels=args.max_labels,
        max_request_passes=args.max_request_passes,
        max_request_tokens=min(args.max_request_tokens, args.max_queue_tokens),
        max_request_refits=args.max_request_refits,
        max_body_bytes=args.max_body_bytes,
        retriever=args.retriever,
    )
    args.verbose = True  # say which backend runs, on stderr
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    app = create_app(lambda: open_for_command(args), settings)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=not args.no_access_log
    )
    server = _draining_server(config)
    service = app.state.service
    service.on_failure = lambda _error: setattr(server, "should_exit", True)
    server.run()
    return 1 if service.status == "failed" or server.force_exit else 0


def _draining_server(config: Any) -> Any:
    """uvicorn's server, whose exit status says how it stopped: after SIGTERM (or one Ctrl-C) it
    stops taking requests, answers every one in flight and the command exits 0; uvicorn itself would
    raise the signal again at the end, which supervisors read as a crash. A second Ctrl-C cuts the
    requests in flight (`force_exit`): then the status is 1."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()  # handled here: not raised again once the drain is done

    return DrainingServer(config)
