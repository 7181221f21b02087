"""The two engines of `everylabel batch`: in this process, or on a Ray Data actor pool.

Both classify one part at a time with one `ClassifyBatch` call on exactly that part's rows. A
text's scores move in their last bits (about 1e-7) with the texts batched beside it, so only a
part classified whole gives the same bytes in either engine, for any number of workers. On Ray the
dataset is the pending parts (one row each); each actor reads its part's rows from the input files
itself (`read_part` seeks to them) and classifies them, and the driver streams the results back and
writes each part atomically once all of its rows have arrived (rows carry their index, so Ray's
batching and order do not matter).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..cli_io import CliError
from ..errors import EverylabelError, InputError
from ..extras import require
from .classify import ClassifyBatch
from .parts import Output, part_schema
from .sources import Part, Segment, Source, discover, fingerprint_files, read_part, scan

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")
Write = Callable[[Part, Any, dict[str, str]], None]
# The column a Ray actor adds to its rows: the runtime that classified them (JSON).
RUNTIME_COLUMN = "_everylabel_runtime"


@dataclass(frozen=True)
class BatchJob:
    """One `everylabel batch` run; the fields are the command's options."""

    input: Path
    output: Path
    labels: Any
    text_column: str = "text"
    id_column: str | None = None
    keep_text: bool = False
    model: str = "default"
    multi_label: bool = True
    threshold: float | None = None
    prompt: str | None = None
    truncation: str = "warn"
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    max_length: int | None = None
    part_rows: int = 1000
    engine: Engine = "local"
    workers: int = 1
    threads: int | None = None
    resume: bool = False
    progress: bool | None = None

    def check(self) -> None:
        if self.labels is None:
            raise CliError("no labels: use --labels a,b,c or --labels-file FILE")
        if self.engine not in ENGINES:
            raise CliError(f"--engine: expected local or ray, got {self.engine!r}")
        for name, value in (("--part-rows", self.part_rows), ("--workers", self.workers)):
            if value < 1:
                raise CliError(f"{name}: expected a number >= 1, got {value}")
        if self.threads is not None and self.threads < 1:
            raise CliError(f"--threads: expected a number >= 1, got {self.threads}")
        if self.engine == "local" and self.workers != 1:
            raise CliError(
                "--workers: the local engine runs one classifier in this process; use --engine ray"
            )

    def classifier_options(self) -> dict[str, Any]:
        """The keyword arguments of `ClassifyBatch` (the part tables name their text column "text").

        `threads` is left to each engine: this process's default, or the CPUs of a Ray actor."""
        return {
            "model": self.model,
            "labels": self.labels,
            "text_column": "text",
            "multi_label": self.multi_label,
            "threshold": self.threshold,
            "prompt": self.prompt,
            "truncation": self.truncation,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
        }

    def fingerprint(self, source: Source) -> dict[str, Any]:
        """The inputs and every setting that changes the output; a resume must match it.

        The model counts by content: its weights, its calibration file and every folder it reads
        (`digests.model_digest`), with the package version. The runtime that classifies (backend,
        dtype, CPU or GPU) is checked part by part (`Output.check_runtime`). The batch size,
        threads, engine and workers are left out: they decide how fast, not what (a score may
        differ in its last bits, about 1e-7, see the module).
        """
        from .. import __version__
        from ..digests import model_digest

        model = self.model
        if model != "default" and Path(model).exists():
            model = str(Path(model).resolve())
        return {
            "input": str(self.input.resolve()),
            "files": fingerprint_files(source.files),
            "text_column": self.text_column,
            "id_column": self.id_column,
            "keep_text": self.keep_text,
            "part_rows": self.part_rows,
            "model": model,
            "model_digest": model_digest(self.model)[:16],
            "version": __version__,
            "backend": self.backend,
            "dtype": self.dtype,
            "max_length": self.max_length,
            "labels": json.loads(json.dumps(self.labels, default=repr)),
            "multi_label": self.multi_label,
            "threshold": self.threshold,
            "prompt": self.prompt,
            "truncation": self.truncation,
        }


def run_batch(job: BatchJob) -> dict[str, Any]:
    """Classify every row of `job.input` into `job.output` (see the package); returns a summary."""
    job.check()
    started = time.perf_counter()
    source = Source(tuple(discover(job.input)), job.text_column, job.id_column)
    plan, rows = scan(source, job.part_rows)
    output = Output(job.output, job.fingerprint(source), plan, rows)
    rate = _Rate()
    try:
        local = (
            ClassifyBatch(**job.classifier_options(), threads=job.threads) if job.engine == "local" else None
        )
        pending = output.open(job.resume, local.runtime if local is not None else None)
        if output.stale_lock:
            print(f"everylabel: warning: {_stale_note(output)}", file=sys.stderr)
        bar = _progress(job.progress, len(plan), len(plan) - len(pending))
        schema = part_schema(job.id_column is not None, job.keep_text)

        def write(part: Part, table: Any, runtime: dict[str, str]) -> None:
            output.write(part, table.select(schema.names).cast(schema), runtime)
            rate.add(part.rows)
            if bar is not None:
                bar.update(1)

        if pending and local is not None:
            for part in pending:
                write(part, classify_part(local, source, part), local.runtime)
        elif pending:
            _run_ray(job, source, pending, write)
        if not output.complete:
            raise RuntimeError(f"{len(plan) - len(output.done)} parts were not written")
        if bar is not None:
            bar.close()
    finally:
        output.close()
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "parts": len(plan),
        "parts_written": len(pending),
        "parts_skipped": len(plan) - len(pending),
        "rows_written": rate.rows,
        "seconds": round(seconds, 3),
        "texts_per_second": round(rate.rows / seconds, 1) if seconds > 0 else None,
        "steady_texts_per_second": rate.steady(),
        "engine": job.engine,
        "runtime": output.runtime,
        "output": str(job.output),
        **({"stale_lock": _stale_note(output)} if output.stale_lock else {}),
    }


def _stale_note(output: Output) -> str:
    from .parts import describe_owner

    return (
        f"{output.folder} had a lock file left by a run that ended without releasing it "
        f"({describe_owner(output.stale_lock or {})}); taken over"
    )


def classify_part(classify: ClassifyBatch, source: Source, part: Part) -> Any:
    """One part's rows, read and classified in one call; a bad text is named by its row index."""
    table = read_part(source, part)
    try:
        return classify.add_results(table)
    except InputError as error:
        if error.field.startswith("texts[") and error.field.endswith("]"):
            raise CliError(f"input row {part.first + int(error.field[6:-1])}: {error.problem}") from None
        raise


class ClassifyParts(ClassifyBatch):
    """A Ray Data actor of the batch engine: each batch is part descriptors, read and classified whole."""

    def __init__(self, source: Source, **options: Any) -> None:
        super().__init__(**options)
        self.source = source

    def __call__(self, batch: Any) -> Any:
        """The parts' rows with their results, and a column saying which runtime classified them."""
        pa = require("pyarrow", "ray", "--engine ray")
        table = pa.concat_tables(
            [classify_part(self, self.source, _part_from_json(spec)) for spec in batch["part"]]
        )
        runtime = json.dumps(self.runtime, sort_keys=True)
        return table.append_column(RUNTIME_COLUMN, pa.array([runtime] * table.num_rows, pa.string()))


def _run_ray(job: BatchJob, source: Source, pending: list[Part], write: Write) -> None:
    ray = require("ray", "ray", "--engine ray")
    pa = require("pyarrow", "ray", "--engine ray")
    require("ray.data", "ray", "--engine ray")
    started_here = not ray.is_initialized()
    if started_here and os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.ERROR)  # joins the cluster RAY_ADDRESS names
    elif started_here:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # failures are raised, not logged
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.raise_original_map_exception = True  # an InputError stays one, not a UserCodeException
        gpus = ray.cluster_resources().get("GPU", 0) >= 1
        cpus = job.threads or 1
        options = {**job.classifier_options(), "threads": None if gpus else cpus}
        items = [{"part": json.dumps(dataclasses.asdict(part))} for part in pending]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ClassifyParts,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=job.workers),
            fn_constructor_kwargs={"source": source, **options},
            num_cpus=cpus,
            **({"num_gpus": 1} if gpus else {}),
        )
        waiting = {part.number: part for part in pending}
        pieces: dict[int, list[Any]] = {}
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for number, piece in _by_part(batch, job.part_rows, pa):
                pieces.setdefault(number, []).append(piece)
                if sum(p.num_rows for p in pieces[number]) == waiting[number].rows:
                    table = pa.concat_tables(pieces.pop(number)).sort_by("index")
                    runtime = json.loads(table.column(RUNTIME_COLUMN)[0].as_py())
                    write(waiting.pop(number), table.drop_columns([RUNTIME_COLUMN]), runtime)
    except Exception as error:
        found = _user_error(error)
        if found is None:
            raise
        raise found from None
    finally:
        if started_here:
            ray.shutdown()


def _by_part(table: Any, part_rows: int, pa: Any) -> list[tuple[int, Any]]:
    """(part number, its rows in `table`) for each part with rows in `table`."""
    index = table.column("index").to_numpy()
    if len(index) == 0:
        return []
    numbers = index // part_rows
    if numbers.min() == numbers.max():
        return [(int(numbers[0]), table)]
    return [(int(n), table.filter(pa.array(numbers == n))) for n in sorted(set(numbers.tolist()))]


def _part_from_json(spec: str) -> Part:
    data = json.loads(spec)
    return Part(data["number"], data["first"], data["rows"], tuple(Segment(**s) for s in data["segments"]))


def _user_error(error: BaseException) -> EverylabelError | None:
    """The everylabel error behind an exception Ray wraps, with its own one-line message."""
    found, seen, stack = [], set(), [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, EverylabelError) and not type(current).__module__.startswith("ray"):
            found.append(current)  # not Ray's copy of the class, whose message starts with its traceback
        for inner in (getattr(current, "cause", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                stack.append(inner)
    if not found:
        return None
    message = str(found[0]).strip().splitlines()[0]
    return found[0] if message == str(found[0]) else CliError(message)  # Ray may append its advice


class _Rate:
    """Rows written, and the rate after the first part (start-up left out)."""

    def __init__(self) -> None:
        self.rows = 0
        self.after_first = 0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, rows: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        else:
            self.after_first += rows
        self.last, self.rows = now, self.rows + rows

    def steady(self) -> float | None:
        if self.first is None or self.last is None or self.last <= self.first:
            return None
        return round(self.after_first / (self.last - self.first), 1)


def _progress(enabled: bool | None, total: int, done: int) -> Any:
    """A bar of parts on stderr: when asked, or on a terminal."""
    if not (enabled if enabled is not None else sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="part", desc="batch")
