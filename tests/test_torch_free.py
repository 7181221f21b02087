"""The base install has no torch: the command line classifies with the default model, and a command
that needs torch exits 2 naming the extra. Each run blocks the `torch` extra's packages from being
imported, as a venv without them would (`ModuleNotFoundError`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from everylabel.cli import TORCH_EXTRA

BLOCKED_RUN = textwrap.dedent(
    """
    import sys

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

    sys.meta_path.insert(0, Missing())
    from everylabel.cli import main

    code = main(sys.argv[1:])
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {blocked!r})
    print(json.dumps({{"loaded": loaded}}), file=sys.stderr)
    sys.exit(code)
    """
)


def run_without_torch(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    script = "import json\n" + BLOCKED_RUN.format(blocked=set(TORCH_EXTRA))
    return subprocess.run(
        [sys.executable, "-c", script, *argv], input=stdin, capture_output=True, text=True, timeout=180
    )


def test_classify_runs_the_default_model_without_torch() -> None:
    texts = "The striker scored twice and the home side won the cup.\nBake the bread until golden.\n"
    done = run_without_torch("classify", "--labels", "sports,cooking,politics", "--single-label", stdin=texts)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["labels"] for r in results] == [["sports"], ["cooking"]]
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"loaded": []}


@pytest.mark.parametrize(
    "argv",
    [
        ("train", "recipes/default-model.yaml"),
        ("classify", "--labels", "a,b", "--backend", "torch"),
        ("export", "onnx", "--out", "unused-export-folder"),
    ],
    ids=["train", "torch-backend", "export"],
)
def test_a_command_that_needs_torch_exits_2_naming_the_extra(argv: tuple[str, ...]) -> None:
    done = run_without_torch(*argv, stdin="a text\n")
    assert done.returncode == 2, done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("everylabel: error:") and "everylabel[torch]" in first, first
