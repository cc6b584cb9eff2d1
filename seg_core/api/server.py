"""Running the API: in the foreground (``python -m seg_core serve``) or on a background thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from fastapi import FastAPI

from seg_core.api.factory import create_app
from seg_core.weights import WEIGHTS_DIR

__all__ = ["BackgroundServer", "serve"]

logger = logging.getLogger(__name__)


def serve(
    host: str = "127.0.0.1", port: int = 8000, weights_dir: str | Path | None = None, data_root: str | Path | None = None
) -> None:
    """Run the API with uvicorn (one process; requests run on its thread pool)."""
    import uvicorn

    started = time.perf_counter()
    application = create_app(weights_dir or WEIGHTS_DIR, data_root=data_root)
    logger.info("BrainSeg Studio API ready in %.1f s", time.perf_counter() - started)
    uvicorn.run(application, host=host, port=port, log_level="info")


class BackgroundServer:
    """Serve ``application`` with uvicorn on 127.0.0.1 in a background thread (for benchmarks and tests).

    Example:
        >>> with BackgroundServer(create_app()) as server:   # doctest: +SKIP
        ...     httpx.get(server.url + "/health").json()
    """

    def __init__(self, application: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(application, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.startup_timeout = startup_timeout

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start at {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
