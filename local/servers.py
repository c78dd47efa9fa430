"""ASGI apps served by uvicorn on a thread of this process, on loopback.

The local stack runs in one Python process: the API Gateway stand-in and the webhook each get a
uvicorn server on its own thread and event loop. The listening socket is bound in the constructor,
so the port (``port=0`` picks a free one) is known before anything starts and the public URLs can
be put into the environment first.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


class _DenialNoise(logging.Filter):
    """uvicorn's sans-I/O WebSocket protocol logs an error after a correct ASGI denial response
    (``websocket.http.response.*``: how the stand-in refuses an upgrade with a status); drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_DenialNoise())


def bind(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening TCP socket (``port=0``: a free port). Raises ``OSError`` if the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class BackgroundServer:
    """``BackgroundServer(app, name="webhook").start()`` serves ``app`` until ``stop()``."""

    def __init__(
        self,
        app: Any,
        *,
        name: str,
        host: str = LOOPBACK,
        port: int = 0,
        ws_max_size: int = 16 * 1024 * 1024,
        log_level: str = "warning",
    ) -> None:
        self.name = name
        self._sock = bind(host, port)
        config = uvicorn.Config(
            app,
            lifespan="off",  # as Mangum runs the webhook in Lambda (lifespan="off")
            log_level=log_level,
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=ws_max_size,
            ws_ping_interval=None,  # API Gateway does not ping clients; neither does the stand-in
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{name}", daemon=True)
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return str(self._sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout_s: float = 15.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} server failed to start") from self._error
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start within {timeout_s:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        self._sock.close()
