"""An app of `everylabel serve` running on a free local port, for tests that drive real HTTP clients."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from tests.test_serve import _health, free_port, wait_for


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread; yields its base URL once `/health` says ready."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started and _health(base) == 200)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
