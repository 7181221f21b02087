"""The try page at `GET /` in a real headless chromium, and `/docs` and `/redoc` served offline.

One live server (a tiny model) and one browser serve the whole module. The browser tests need
Debian's `chromium` and `chromium-driver` (`make setup` installs them as root) and `selenium`
(the dev extra); without them only those tests are skipped, with the reason.
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from everylabel import Classifier, create_model
from everylabel.serving import create_app
from tests import oracle

TEXT = "a late goal won the match"
LABELS = ["sports", "food", "weather", "politics"]
ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], Any], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def base(backbone_dir, tmp_path_factory) -> Iterator[str]:
    """The URL of a live server, started once for the module. Its tiny model is built in the
    server's loading thread, while the browser starts: tests that classify call `ready` first."""
    import uvicorn

    backbone, folder = backbone_dir("bert"), tmp_path_factory.mktemp("page-model")

    def load() -> Classifier:
        model, tokenizer = create_model(backbone, dropout=0.0, scorer_type="mlp")
        oracle.spread_weights(model, std=0.05)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return Classifier.from_pretrained(folder, device="cpu", backend="torch")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(load)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        wait_for(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:  # the loading thread must not be inside torch when the interpreter exits
        wait_for(lambda: app.state.service.status != "loading", 60)
        server.should_exit = True
        thread.join(30)


def ready(base: str) -> None:
    wait_for(lambda: httpx.get(f"{base}/health").json()["status"] != "loading", 60)
    assert httpx.get(f"{base}/health").json() == {"status": "ready"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module, driven by selenium."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    chrome = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if driver_path is None or chrome is None:
        pytest.skip("no chromium or chromedriver on PATH: `make setup` as root installs Debian's chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1000,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for page errors
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fill_and_classify(driver: Any, base: str, text: str, labels: str, mode: str, threshold: str = "") -> None:
    """Open the page, fill the form as a user would, press Classify and wait for the answer."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/")
    for field, value in (("text", text), ("labels", labels), ("threshold", threshold)):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, mode).click()
    driver.find_element(By.ID, "classify").click()
    wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", 20)


def read_page(driver: Any) -> dict[str, Any]:
    """What the page shows: the bars (top to bottom), the request, the curl command, the error."""
    return driver.execute_script(
        """
        const rows = [...document.querySelectorAll('#bars .bar-row')];
        const error = document.getElementById('error');
        return {
          bars: rows.map((row) => ({
            label: row.querySelector('.bar-label').textContent,
            score: row.dataset.score,
            shown: row.querySelector('.bar-score').textContent,
            width: row.querySelector('.fill').style.width,
            chosen: row.classList.contains('chosen'),
          })),
          request: document.getElementById('request').textContent,
          curl: document.getElementById('curl').textContent,
          error: error.hidden ? null : error.textContent,
          scores_shown: !document.getElementById('scores').hidden,
        };
        """
    )


def check_bars(shown: dict[str, Any], answer: dict[str, Any]) -> None:
    """The bars are the answer's scores, best first, with exactly its chosen labels marked."""
    bars = shown["bars"]
    scores = {bar["label"]: float(bar["score"]) for bar in bars}
    assert scores == pytest.approx(answer["scores"], abs=1e-9)
    assert [bar["label"] for bar in bars] == sorted(answer["scores"], key=answer["scores"].get, reverse=True)
    assert [bar["label"] for bar in bars if bar["chosen"]] == answer["labels"]
    for bar in bars:
        assert bar["shown"] == f"{float(bar['score']):.4f}"
        assert float(bar["width"].rstrip("%")) == pytest.approx(100 * float(bar["score"]), abs=0.01)


def check_curl(command: str, base: str, body: dict[str, Any]) -> None:
    words = shlex.split(command)
    assert words[0] == "curl" and f"{base}/v1/classify" in words
    assert json.loads(words[words.index("-d") + 1]) == body


def test_multi_label_bars_are_the_api_answer(base: str, browser: Any) -> None:
    ready(base)
    first = httpx.post(f"{base}/v1/classify", json={"texts": [TEXT], "labels": LABELS}).json()["results"][0]
    scores = sorted(first["scores"].values(), reverse=True)
    threshold = (scores[1] + scores[2]) / 2  # two labels over it, two under
    body = {"texts": [TEXT], "labels": LABELS, "multi_label": True, "threshold": threshold}
    answer = httpx.post(f"{base}/v1/classify", json=body).json()["results"][0]
    assert len(answer["labels"]) == 2

    console(browser)
    fill_and_classify(browser, base, TEXT, ", ".join(LABELS), "multi", repr(threshold))
    shown = read_page(browser)
    assert console(browser) == []  # no script error, nothing refused or missing
    assert shown["error"] is None and shown["scores_shown"]
    assert json.loads(shown["request"]) == body
    check_bars(shown, answer)
    check_curl(shown["curl"], base, body)


def test_single_label_scores_sum_to_one_and_one_label_is_chosen(base: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    ready(base)
    labels = ["rain, wind", "sports", "food"]  # one per line: a label may hold a comma
    fill_and_classify(browser, base, TEXT, "\n".join(labels), "single", "0.3")
    assert not browser.find_element(By.ID, "threshold").is_enabled()
    shown = read_page(browser)
    body = {"texts": [TEXT], "labels": labels, "multi_label": False}  # no threshold in single-label
    assert json.loads(shown["request"]) == body
    answer = httpx.post(f"{base}/v1/classify", json=body).json()["results"][0]
    check_bars(shown, answer)
    assert sum(float(bar["score"]) for bar in shown["bars"]) == pytest.approx(1, abs=1e-5)
    assert [bar["chosen"] for bar in shown["bars"]] == [True, False, False]
    check_curl(shown["curl"], base, body)


def test_an_error_shows_the_server_detail(base: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    ready(base)
    browser.get(f"{base}/")
    browser.find_element(By.ID, "classify").click()  # the example the page opens with
    wait_for(lambda: read_page(browser)["bars"], 20)
    for labels, threshold, fields in (
        (",", "", {"labels": [], "multi_label": True}),
        ("a, b", "lots", {"labels": ["a", "b"], "multi_label": True, "threshold": "lots"}),
    ):
        for field, value in (("labels", labels), ("threshold", threshold)):
            browser.find_element(By.ID, field).clear()
            browser.find_element(By.ID, field).send_keys(value)
        browser.find_element(By.ID, "classify").click()
        wait_for(lambda: read_page(browser)["error"] is not None, 20)
        shown = read_page(browser)
        body = {"texts": [browser.find_element(By.ID, "text").get_attribute("value")], **fields}
        assert json.loads(shown["request"]) == body
        expected = httpx.post(f"{base}/v1/classify", json=body)
        assert expected.status_code == 422
        assert shown["error"] == f"HTTP 422: {expected.json()['detail']}"
        assert shown["bars"] == [] and not shown["scores_shown"]  # the last answer's bars are gone


def console(browser: Any) -> list[str]:
    """The browser console's errors since the last call."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.slow  # about 3 s: the Swagger UI and ReDoc bundles (2.6 MB of JavaScript) load and render
def test_docs_and_redoc_render_in_the_browser_from_local_files(base: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    def body() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def elsewhere() -> list[str]:
        """What the page asked of other hosts; each must have been refused by the browser."""
        urls = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        return [url for url in urls if not url.startswith(f"{base}/")]

    console(browser)
    browser.get(f"{base}/docs")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, '.opblock[id*="v1_classify"]'), 20)
    assert "everylabel" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert elsewhere() == [] and console(browser) == []

    browser.get(f"{base}/redoc")
    summary, failed = "Classify texts against candidate labels", "Something went wrong"
    wait_for(lambda: summary in body() or failed in body(), 20)
    assert failed not in body(), body()[body().index(failed) :][:300]
    # ReDoc's footer asks a CDN for its logo: the page's Content-Security-Policy stops it in the browser.
    refused = " ".join(message for message in console(browser) if "Content Security Policy" in message)
    assert all(url in refused for url in elsewhere()), (elsewhere(), refused)


class References(HTMLParser):
    """The URLs an HTML page loads: (tag, rel, url) for script src, link href and img src."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag in ("script", "img") else values.get("href") if tag == "link" else None
        if url is not None:
            self.found.append((tag, values.get("rel") or "", url))


def references(html: str) -> list[tuple[str, str, str]]:
    parser = References()
    parser.feed(html)
    return parser.found


def test_pages_reference_only_local_assets_that_answer(base: str) -> None:
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert [url for _, _, url in references(page.text)] == ["data:,"]  # inline CSS and JavaScript only
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    kinds = {"script": "text/javascript", "stylesheet": "text/css", "shortcut icon": "image/png"}
    for path, expected in (("/docs", {"script", "stylesheet", "shortcut icon"}), ("/redoc", {"script"})):
        answer = httpx.get(f"{base}{path}")
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        found = references(answer.text)
        assert expected <= {rel or tag for tag, rel, _ in found}
        for tag, rel, url in found:
            assert url.startswith("/") and not url.startswith("//"), url
            with httpx.stream("GET", f"{base}{url}") as asset:  # the headers and a first part only
                assert asset.status_code == 200, url
                assert asset.headers["content-type"].startswith(kinds[rel or tag]), url
                assert int(asset.headers["content-length"]) > 500, url
                assert next(asset.iter_bytes()), url
    missing = httpx.get(f"{base}/docs/assets/jquery.js")
    assert missing.status_code == 404 and missing.json()["detail"].startswith("jquery.js: no such docs asset")


def test_only_the_api_is_in_the_schema_and_the_page_ships_with_the_package(base: str) -> None:
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert "/v1/classify" in paths and not {"/docs", "/redoc"} & set(paths)
    assert "get" not in paths.get("/", {})  # the page; other protocols may POST to /
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch("serving/page.html", pattern) for pattern in patterns["everylabel"])
    assert (ROOT / "src/everylabel/serving/page.html").is_file()


def test_every_schema_reference_resolves(base: str) -> None:
    """A `$ref` that points nowhere in the OpenAPI document (such as pydantic's `#/$defs/...` left in
    a request body) makes ReDoc refuse the whole document and Swagger UI show resolver errors."""
    schema = httpx.get(f"{base}/openapi.json").json()

    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}/{index}")

    def target(reference: str) -> Any:
        node: Any = schema
        for part in reference.removeprefix("#/").split("/"):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    broken = [(where, ref) for where, ref in walk(schema, "#") if target(ref) is None]
    assert broken == [], f"{len(broken)} references resolve to nothing, e.g. {broken[0][1]} at {broken[0][0]}"
