"""mkdocs hook: the site's front page is README.md, so GitHub and the site show one text.

README.md sits beside mkdocs.yml, outside the docs folder, and links to the pages as `docs/x.md`
(which works on GitHub); the generated `index.md` gets the same text with those links made
relative to the docs folder (`x.md`). A page links to the front page as `../README.md`, which the
site reads as `index.md`. Any other relative link is left as written, so that
`mkdocs build --strict` reports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

README = Path(__file__).with_name("README.md")
# A markdown link or image target that starts with docs/: ](docs/classify.md#labels)
DOCS_LINK = re.compile(r"\]\(docs/")
# A page's link to the front page: ](../README.md#30-second-tour)
README_LINK = re.compile(r"\]\(\.\./README\.md(?=[#)])")


def front_page(readme: str) -> str:
    """README text -> the same text with links into docs/ relative to the docs folder.

    "[Classify](docs/classify.md)" -> "[Classify](classify.md)"
    """
    return DOCS_LINK.sub("](", readme)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """A page's "../README.md" link -> "index.md", the front page on the site."""
    return README_LINK.sub("](index.md", markdown)


def on_files(files: Files, config: Any) -> Files:
    if files.get_file_from_path("index.md") is not None:
        raise ValueError("docs/index.md: the front page is README.md; remove docs/index.md")
    files.append(File.generated(config, "index.md", content=front_page(README.read_text(encoding="utf-8"))))
    return files
