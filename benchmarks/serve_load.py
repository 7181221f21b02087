"""Load on `everylabel serve` over real HTTP: throughput and latency against offline `classify`, exact
scores, and overload behaviour.

The server runs as a separate process (`python -m everylabel serve`); the clients are async httpx
in this process. Phases, in one run:
1. load: `--clients` concurrent clients, each sending 1 to 8 texts per request (a seeded sample of
   20 Newsgroups test posts, mixed lengths) for `--seconds`: errors, p50/p99 latency, texts/s.
2. offline: `Classifier.classify` in this process (the server idle) on every text the server
   answered, in the order sent: texts/s, and the largest difference between any returned score and
   the offline score of the same text and label.
3. overload: `--overload` times the queue bound in texts, all at once: every answer must be 200
   or 429 (with Retry-After), never 5xx.
4. recovery: the load phase again for `--recovery-seconds`: zero errors.
Needs `make bench-data`. Run:
    .venv/bin/python benchmarks/serve_load.py --out docs/serve/cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from everylabel.evaluation.datasets import load_named
from everylabel.evaluation.throughput import machine_description


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "everylabel", "serve", "--model", args.model, "--backend", args.backend,
        "--device", args.device, "--dtype", args.dtype, "--port", str(port),
        "--max-queue-texts", str(args.max_queue_texts), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(command, env=env)


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def load_phase(
    base: str, texts: list[str], labels: list[str], clients: int, seconds: float, seed: int
) -> dict[str, Any]:
    """`clients` clients sending 1-8 texts per request until `seconds` are up."""
    rng = random.Random(seed)
    sent: list[tuple[int, dict[str, float]]] = []  # (text index, returned scores) per answered text
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client: httpx.AsyncClient, own: random.Random) -> None:
        while time.monotonic() < deadline:
            chosen = [own.randrange(len(texts)) for _ in range(own.randint(1, 8))]
            started = time.monotonic()
            response = await client.post(
                f"{base}/v1/classify", json={"texts": [texts[i] for i in chosen], "labels": labels}
            )
            latencies.append(time.monotonic() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                for i, result in zip(chosen, response.json()["results"], strict=True):
                    sent.append((i, result["scores"]))

    started = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        await asyncio.gather(*(client_loop(client, random.Random(rng.random())) for _ in range(clients)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "texts": len(sent),
        "seconds": elapsed,
        "texts_per_s": len(sent) / elapsed,
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "sent": sent,
    }


async def overload_phase(base: str, texts: list[str], labels: list[str], total_texts: int) -> dict[str, Any]:
    """`total_texts` texts in requests of 8, all sent at once."""
    requests = total_texts // 8
    statuses: dict[int, int] = {}
    retry_after_missing = 0
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:

        async def one(k: int) -> None:
            nonlocal retry_after_missing
            batch = [texts[(8 * k + j) % len(texts)] for j in range(8)]
            response = await client.post(f"{base}/v1/classify", json={"texts": batch, "labels": labels})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429 and "retry-after" not in response.headers:
                retry_after_missing += 1

        started = time.monotonic()
        await asyncio.gather(*(one(k) for k in range(requests)))
    return {
        "requests": requests,
        "texts": requests * 8,
        "statuses": statuses,
        "seconds": time.monotonic() - started,
        "429_without_retry_after": retry_after_missing,
    }


def offline(args: argparse.Namespace, texts: list[str], labels: list[str], sent: list[Any]) -> dict[str, Any]:
    from everylabel import Classifier

    classifier = Classifier.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, backend=args.backend
    )
    classifier.classify(texts[:8], labels, progress=False)  # warm up, as the server did
    order = [i for i, _ in sent]
    started = time.perf_counter()
    results = classifier.classify([texts[i] for i in order], labels, progress=False)
    seconds = time.perf_counter() - started
    worst = max(
        abs(result.scores[label] - scores[label])
        for result, (_, scores) in zip(results, sent, strict=True)
        for label in labels
    )
    return {
        "texts": len(order),
        "seconds": seconds,
        "texts_per_s": len(order) / seconds,
        "max_abs_diff": worst,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = load_named("20newsgroups", "test", args.pool, seed=3)
    texts, labels = data.texts, data.labels[: args.labels]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(args, port)
    try:
        ready_s = await wait_ready(base, process)
        async with httpx.AsyncClient() as client:
            info = (await client.get(f"{base}/info")).json()
        load = await load_phase(base, texts, labels, args.clients, args.seconds, seed=0)
        sent = load.pop("sent")
        exact = offline(args, texts, labels, sent)
        overload = await overload_phase(base, texts, labels, args.overload * args.max_queue_texts)
        recovery = await load_phase(base, texts, labels, args.clients, args.recovery_seconds, seed=1)
        recovery.pop("sent")
    finally:
        process.terminate()
        exit_code = process.wait(timeout=120)
    return {
        "machine": machine_description(args.device if args.device != "auto" else "cpu"),
        "server": info,
        "ready_s": ready_s,
        "labels": labels,
        "clients": args.clients,
        "load": load,
        "offline": exact,
        "throughput_ratio": load["texts_per_s"] / exact["texts_per_s"],
        "overload": overload,
        "recovery": recovery,
        "server_exit_code_after_sigterm": exit_code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--recovery-seconds", type=float, default=15.0)
    parser.add_argument("--max-queue-texts", type=int, default=512, help="the server's queue bound")
    parser.add_argument("--overload", type=int, default=4, help="overload burst, in queue bounds")
    parser.add_argument("--pool", type=int, default=2000, help="20 Newsgroups test posts to draw from")
    parser.add_argument("--labels", type=int, default=8, help="the first N 20 Newsgroups label names")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*were cut to fit")
    report = asyncio.run(run(args))
    load, exact, over, again = report["load"], report["offline"], report["overload"], report["recovery"]
    print(f"machine: {report['machine']}; server: {report['server']}")
    print("| phase | requests | texts | statuses | texts/s | p50 s | p99 s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, phase in (("load", load), ("recovery", again)):
        print(
            f"| {name} ({args.clients} clients, {phase['seconds']:.0f} s) | {phase['requests']} | {phase['texts']} "
            f"| {phase['statuses']} | {phase['texts_per_s']:.1f} | {phase['p50_s']:.3f} | {phase['p99_s']:.3f} |"
        )
    print(f"| offline classify (same texts) | | {exact['texts']} | | {exact['texts_per_s']:.1f} | | |")
    print(f"| overload ({over['texts']} texts at once) | {over['requests']} | | {over['statuses']} | | | |")
    print(
        f"server / offline throughput: {report['throughput_ratio']:.2f}x; largest score difference "
        f"{exact['max_abs_diff']:.2e}; 429 without Retry-After: {over['429_without_retry_after']}; "
        f"server exit code after SIGTERM: {report['server_exit_code_after_sigterm']}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
