"""What the docs show is what the code does.

Every `everylabel ...` command line in a code block of README.md and docs/*.md parses with the
command line's own parser (`cli.build_parser`; nothing is run), every `make X` names a target of
the Makefile, every relative link points at a file and heading that exist, and the README's
30-second tour runs as shown: its Python blocks print the ```text block that follows them, its
`everylabel classify` transcripts print their output, and its curl request gets its answer, all
with the default model on a CPU. `make docs` (mkdocs --strict) checks the same links on the site.

In a bash/sh/shell block every line is a command; in a console or text block, the lines that
start with `$ `. A command ends at a pipe, `;`, `&&`, `&` or a redirection; `NAME=value` lines of
a block are expanded where `$NAME` stands alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from everylabel.cli import build_parser, main

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "recipes" / "README.md"]  # pages whose links are checked
SHELL = {"bash", "sh", "shell"}
TRANSCRIPT = {"console", "text"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", ">&", "<<"}
PREFIXES = {"do", "then", "time", "exec", "nohup"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, indented ones (inside list items) included."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, lang = opening.groups()
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        blocks.append(Block(path, index + 1, lang.lower(), "\n".join(body)))
        index = end + 1
    return blocks


def transcript(text: str) -> list[tuple[str, list[str]]]:
    """A console block -> [(command, output lines)]: `$ ` lines (with their `\\` continuations)
    and the lines after them up to the next `$ `."""
    steps: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            if steps:
                steps[-1][1].append(lines[index])
            index += 1
            continue
        command = lines[index][2:]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command = command[:-1] + " " + lines[index].strip()
        steps.append((command, []))
        index += 1
    return [(command, _trim(output)) for command, output in steps]


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def shell_lines(block: Block) -> list[str]:
    """The command lines of a block: `\\` continuations joined, a quote open across lines kept whole."""
    if block.lang in TRANSCRIPT:
        return [command for command, _ in transcript(block.text)]
    if block.lang not in SHELL:
        return []
    lines: list[str] = []
    pending = ""
    for line in block.text.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote closes on a later line
            continue
        if pending.strip():
            lines.append(pending)
        pending = ""
    return lines


def segments(line: str) -> list[list[str]]:
    """A shell line -> its simple commands as tokens: `a | b; c > f` -> [[a], [b], [c]]."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    redirected = False
    for token in lexer:
        if token in OPERATORS:
            if found[-1] and found[-1][-1] in {"1", "2"} and token.startswith(">"):
                found[-1].pop()  # 2>/dev/null: the descriptor is not an argument
            redirected = token in {">", ">>", "<", "2>", ">&", "<<"}
            if not redirected:
                found.append([])
            continue
        if not redirected:
            found[-1].append(token)
    return [tokens for tokens in found if tokens]


def everylabel_argv(tokens: list[str], variables: dict[str, str]) -> list[str] | None:
    """The arguments after `everylabel` (or `python -m everylabel`) in a simple command, `$NAME`
    expanded; None when the command is not everylabel."""
    words = [word for token in tokens for word in _expand(token, variables)]
    for index, word in enumerate(words):
        if Path(word).name.startswith("python") and words[index + 1 : index + 3] == ["-m", "everylabel"]:
            return words[index + 3 :]
    start = 0
    while start < len(words) and (re.fullmatch(r"\w+=.*", words[start]) or words[start] in PREFIXES):
        start += 1
    if start < len(words) and Path(words[start]).name == "everylabel":
        return words[start + 1 :]
    return None


def _expand(token: str, variables: dict[str, str]) -> list[str]:
    name = re.fullmatch(r"\$\{?(\w+)\}?", token)
    if name is not None and name.group(1) in variables:
        return shlex.split(variables[name.group(1)])
    return [token]


def commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of every everylabel command in a code block of the pages."""
    for page in PAGES:
        for block in code_blocks(page):
            variables: dict[str, str] = {}
            for line in shell_lines(block):
                for tokens in segments(line):
                    if len(tokens) == 1 and (assignment := re.fullmatch(r"(\w+)=(.*)", tokens[0], re.S)):
                        variables[assignment.group(1)] = assignment.group(2)
                    argv = everylabel_argv(tokens, variables)
                    if argv is not None:
                        yield block.where, argv


COMMANDS = list(commands())


def test_the_pages_show_commands() -> None:
    shown = {argv[0] for _, argv in COMMANDS if argv}
    assert {"classify", "train", "eval", "export", "serve", "batch", "calibrate", "cache"} <= shown, shown


@cache
def parser() -> argparse.ArgumentParser:
    return build_parser()  # parse_args keeps no state between calls


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_command_shown_parses(where: str, argv: list[str]) -> None:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser().parse_args(argv)
        except SystemExit as stop:
            # The parser checks that an --adapter folder exists; the folders the docs name are examples.
            example_folder = re.search(r"the folder \S+ does not exist\s*$", errors.getvalue())
            assert stop.code == 0 or example_folder, (
                f"{where}: everylabel {shlex.join(argv)}\n{errors.getvalue()}"
            )


def make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^([\w.-]+(?:\s+[\w.-]+)*)\s*:(?!=)", line)
        if rule is not None:
            targets.update(rule.group(1).split())
    return targets


def test_every_make_target_shown_exists() -> None:
    shown: set[tuple[str, str]] = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for span in re.findall(r"`make ([\w.-]+)[^`]*`", text):
            shown.add((str(page.relative_to(ROOT)), span))
        for block in code_blocks(page):
            for line in shell_lines(block):
                for tokens in segments(line):
                    if tokens[0] == "make" and len(tokens) > 1:
                        shown.add((block.where, tokens[1]))
    assert {"demo", "test", "docs"} <= {target for _, target in shown}
    missing = sorted((where, target) for where, target in shown if target not in make_targets())
    assert not missing, f"make targets the docs name that the Makefile lacks: {missing}"


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and mkdocs write it: "One engine, two runtimes" ->
    "one-engine-two-runtimes"."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", text))


@cache
def anchors(page: Path) -> set[str]:
    text = without_code_blocks(page.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def without_code_blocks(text: str) -> str:
    return re.sub(r"(?ms)^(\s*)(```+|~~~+).*?^\1\2\s*$", "", text)


def prose(page: Path) -> str:
    """A page without its code blocks and inline code (links there are examples, not links)."""
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(page.read_text(encoding="utf-8")))


def test_every_relative_link_points_at_a_file_and_heading() -> None:
    broken = []
    for page in LINKED:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# The 30-second tour, run.


def tour() -> list[Block]:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n## 30-second tour")
    end = text.index("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[:end].count("\n") + 1
    return [block for block in code_blocks(readme) if first <= block.line <= last]


@pytest.fixture(scope="module")
def default_classifier() -> Any:
    from everylabel import Classifier

    return Classifier.from_pretrained("default", device="cpu")


@pytest.fixture
def shared_default(default_classifier: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`Classifier.from_pretrained` answers the tour's calls with one default model, on a CPU."""
    from everylabel import Classifier

    plain = {"backend": "auto", "device": "auto", "dtype": "auto", "batch_size": 32, "max_length": None}

    def from_pretrained(model: Any, **options: Any) -> Any:
        asked = {key: value for key, value in options.items() if plain.get(key, object()) != value}
        assert model == "default" and not asked, f"the tour opens {model!r} with {asked}: extend the test"
        return default_classifier

    monkeypatch.setattr(Classifier, "from_pretrained", from_pretrained)
    return default_classifier


def same_output(shown: list[str], printed: list[str]) -> bool:
    """Line by line; JSON lines compare their numbers to 1e-4 (the last digits vary with threads)."""
    if len(shown) != len(printed):
        return False
    return all(_same_line(a, b) for a, b in zip(shown, printed, strict=True))


def _same_line(shown: str, printed: str) -> bool:
    try:
        return _close(json.loads(shown), json.loads(printed))
    except ValueError:
        return shown.rstrip() == printed.rstrip()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_close(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, abs_tol=1e-4)
    return a == b


def test_the_tour_python_prints_what_the_readme_shows(shared_default: Any) -> None:
    blocks = tour()
    namespace: dict[str, Any] = {}
    ran = 0
    for index, block in enumerate(blocks):
        if block.lang != "python":
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.text, block.where, "exec"), namespace)
        ran += 1
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following is not None and following.lang == "text":
            shown = _trim(following.text.splitlines())
            got = _trim(printed.getvalue().splitlines())
            assert same_output(shown, got), f"{block.where} prints:\n" + "\n".join(got)
    assert ran >= 1


def test_the_tour_commands_print_what_the_readme_shows(
    shared_default: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from everylabel.serving import create_app

    steps = [(block, step) for block in tour() if block.lang == "console" for step in transcript(block.text)]
    assert len(steps) >= 3
    with TestClient(create_app(lambda: shared_default)) as client:
        for block, (command, shown) in steps:
            got = _run_step(command, client, monkeypatch)
            assert same_output(shown, got), f"{block.where}: $ {command}\nprints:\n" + "\n".join(got)


def _run_step(command: str, client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One `$ ` line of the tour: `[echo TEXT |] everylabel classify ...` run in-process, or
    `curl -s HOST/PATH -d BODY` posted to the app."""
    parts = segments(command)
    stdin = ""
    if len(parts) == 2 and parts[0][0] == "echo":
        stdin, parts = " ".join(parts[0][1:]) + "\n", parts[1:]
    (tokens,) = parts
    if tokens[0] == "curl":
        url = next(token for token in tokens[1:] if not token.startswith("-") and "/" in token)
        body = tokens[tokens.index("-d") + 1]
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.02)
        return client.post("/" + url.split("/", 1)[1], content=body).text.splitlines()
    argv = everylabel_argv(tokens, {})
    assert argv is not None, f"the tour shows a command this test cannot run: {command}"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return _trim(printed.getvalue().splitlines())
