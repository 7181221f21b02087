"""Where `everylabel batch` writes, so that every input row lands in the output exactly once.

The output folder holds one Parquet file per part of the plan, named by its number
(`part-00000.parquet`, ...; part k holds the rows k*P .. (k+1)*P-1), and `_manifest.json`. A part
is written under a temporary name starting with ".", flushed to disk and renamed into place, so a
part file exists complete or not at all; the manifest is replaced the same way after each part.
A part is done when its file exists, so a run killed at any point loses only the parts it was
computing, and `--resume` computes exactly those. The manifest records the run's fingerprint (the
inputs' names, sizes and modification times, and every setting that changes results); each part
carries the fingerprint's digest in its Parquet metadata, and a resume with other inputs or
settings is refused. The runtime that classifies (torch or onnxruntime, its dtype, CPU or GPU: a
bf16 GPU actor gives other scores than an fp32 CPU) is recorded with the first part written and
checked for every later one, so a resume on another runtime is refused before it writes. Names
starting with "_" or "." are skipped by pyarrow, pandas, Spark and Ray, so they read the folder as
the dataset of its parts.

A lock file keeps a second run out while the first is alive (an advisory lock, released by the
system however the process ends) and names its owner (pid, host, start). A clean exit removes it;
a file left by a killed run is reported as stale when the next run takes the lock over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from ..cli_io import CliError
from ..extras import require
from .classify import result_fields
from .sources import Part

MANIFEST = "_manifest.json"
FORMAT = "everylabel-batch/1"
METADATA_KEY = "everylabel.batch"
LOCK = ".everylabel-batch.lock"


def part_name(number: int, count: int) -> str:
    """part_name(3, 120) -> "part-00003.parquet" (wider numbers past 99,999 parts, fixed per plan)."""
    width = max(5, len(str(count - 1)))
    return f"part-{number:0{width}d}.parquet"


def part_schema(id_column: bool, keep_text: bool) -> Any:
    """The columns of every part: `index`, `id` (with an id column), `text` (with --keep-text), results."""
    pa = require("pyarrow", "batch", "everylabel batch")
    fields = [pa.field("index", pa.int64())]
    fields += [pa.field("id", pa.string())] if id_column else []
    fields += [pa.field("text", pa.string())] if keep_text else []
    return pa.schema(fields + result_fields())


def digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, one phrase per setting; [] when they match."""
    out = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key == "files":
            was = {f["name"]: f for f in before or []}
            now = {f["name"]: f for f in after or []}
            changed = [name for name in now if name in was and now[name] != was[name]]
            for label, names in (
                ("added", now.keys() - was),
                ("removed", was.keys() - now),
                ("changed", changed),
            ):
                if names:
                    out.append(f"input files {label}: {', '.join(sorted(names)[:3])}")
        else:
            out.append(f"{key} was {_short(before)}, now {_short(after)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


class Output:
    """The output folder of one run: checks it against the plan, then writes parts and the manifest."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], plan: list[Part], rows: int) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.plan = plan
        self.rows = rows
        self.names = [part_name(part.number, len(plan)) for part in plan]
        self.digest = digest(fingerprint)
        self.done: dict[int, Part] = {}
        self.runtime: dict[str, str] | None = None  # what classified the parts written so far
        self.stale_lock: dict[str, Any] | None = None  # the owner of a lock file a killed run left
        self._lock: IO[str] | None = None

    def open(self, resume: bool, runtime: dict[str, str] | None = None) -> list[Part]:
        """Lock the folder and check what it holds; the parts still to compute.

        Without `resume`, a folder with parts or a manifest is an error. With it, the fingerprint
        must match, leftover temporary files go, and every part file must be one of the plan's,
        with the plan's row count and this run's digest. `runtime`, when known before any part is
        classified (this process's classifier), must be the one the parts were written with.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        manifest = self.folder / MANIFEST
        found = sorted(p.name for p in self.folder.glob("part-*.parquet"))
        if not resume and (manifest.exists() or found):
            what = f"{len(found)} part files" if found else MANIFEST
            raise CliError(f"--output: {self.folder} exists with {what}; use --resume or another --output")
        if manifest.exists():
            old = self._read_manifest()
            changed = differences(old.get("fingerprint", {}), self.fingerprint)
            if changed:
                raise CliError(
                    f"--resume: {self.folder} was written with other settings: {'; '.join(changed)}"
                )
            self.runtime = old.get("runtime")
        if runtime is not None:
            self.check_runtime(runtime)
        elif found:
            raise CliError(f"--resume: {self.folder} has part files but no {MANIFEST}: not a batch output")
        for temp in self.folder.glob(".*.tmp"):
            temp.unlink()
        number = {name: part for name, part in zip(self.names, self.plan, strict=True)}
        for name in found:
            if name not in number:
                raise CliError(
                    f"--resume: {self.folder / name} is not one of this run's {len(self.plan)} parts"
                )
            self._check_part(name, number[name])
            self.done[number[name].number] = number[name]
        self._write_manifest()
        return [part for part in self.plan if part.number not in self.done]

    def check_runtime(self, runtime: dict[str, str]) -> None:
        """The runtime about to write a part must be the one that wrote the others; the first one
        written is recorded."""
        if self.runtime is not None and self.done and runtime != self.runtime:
            changed = differences(self.runtime, runtime)
            raise CliError(f"--resume: {self.folder} was classified on another runtime: {'; '.join(changed)}")
        self.runtime = runtime

    def write(self, part: Part, table: Any, runtime: dict[str, str] | None = None) -> None:
        """Write one part atomically (temporary file, fsync, rename), then the manifest; `runtime`
        is what classified it (checked against the parts before)."""
        if runtime is not None:
            self.check_runtime(runtime)
        pa = require("pyarrow", "batch", "everylabel batch")
        pq = require("pyarrow.parquet", "batch", "everylabel batch")
        expected = pa.array(range(part.first, part.first + part.rows), pa.int64())
        if table.num_rows != part.rows or not table.column("index").combine_chunks().equals(expected):
            raise RuntimeError(f"part {part.number}: rows are not {part.first}..{part.first + part.rows - 1}")
        note = {"digest": self.digest, "first": part.first, "rows": part.rows, "runtime": self.runtime}
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(note)})
        name = self.names[part.number]
        temp = self.folder / f".{name}.tmp"
        with open(temp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.folder / name)
        _sync_folder(self.folder)
        self.done[part.number] = part
        self._write_manifest()

    @property
    def complete(self) -> bool:
        return len(self.done) == len(self.plan)

    def close(self) -> None:
        """Release the lock and remove its file (a run ends cleanly)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.folder / LOCK)  # while still held: no other run can hold this file
            self._lock.close()  # releases the lock (as does the process's end, however it ends)
            self._lock = None

    def _take_lock(self) -> None:
        """Hold the folder's lock file, or say who does. A file left behind by a run that was killed
        (nobody holds it) is taken over and reported in `stale_lock`."""
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform: one run at a time is up to the user
            return
        path = self.folder / LOCK
        while True:
            handle = open(path, "a+")  # noqa: SIM115 (held until close)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(handle)
                handle.close()
                raise CliError(
                    f"--output: another everylabel batch ({describe_owner(owner)}) is writing {self.folder}"
                ) from None
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file a finishing run removed between our open and our lock
                break
            handle.close()
        previous = _owner(handle)
        if previous:
            self.stale_lock = previous
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        handle.flush()
        self._lock = handle

    def _check_part(self, name: str, part: Part) -> None:
        pq = require("pyarrow.parquet", "batch", "everylabel batch")
        path = self.folder / name
        try:
            metadata = pq.read_metadata(path)
            note = json.loads((metadata.metadata or {}).get(METADATA_KEY.encode(), b"{}"))
        except Exception as error:  # any unreadable file is reported the same way
            raise CliError(f"--resume: {path} is unreadable ({error}); delete it and resume") from None
        if note.get("digest") != self.digest:
            raise CliError(f"--resume: {path} was written by another run; delete it and resume")
        if metadata.num_rows != part.rows:
            raise CliError(f"--resume: {path} has {metadata.num_rows} rows, the plan {part.rows}")

    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CliError(f"--resume: {path} is not valid JSON ({error})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CliError(f"--resume: {path} is not an everylabel batch manifest ({FORMAT})")
        return manifest

    def _write_manifest(self) -> None:
        done = sorted(self.done.values(), key=lambda part: part.number)
        manifest = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "digest": self.digest,
            "rows": self.rows,
            "parts_planned": len(self.plan),
            "parts": [{"name": self.names[p.number], "first": p.first, "rows": p.rows} for p in done],
            "rows_done": sum(part.rows for part in done),
            "complete": self.complete,
            "runtime": self.runtime,
        }
        temp = self.folder / f".{MANIFEST}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.folder / MANIFEST)
        _sync_folder(self.folder)


def _owner(handle: IO[str]) -> dict[str, Any]:
    """What a lock file says of the run that holds (or held) it; {} for an empty or unreadable one."""
    try:
        handle.seek(0)
        owner = json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def describe_owner(owner: dict[str, Any]) -> str:
    """{"pid": 41, "host": "a", "started": ...} -> "pid 41 on a, started 2026-12-05 18:01:57"."""
    if not owner:
        return "its owner is not recorded"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"pid {owner.get('pid')} on {owner.get('host')}, started {started}"


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
