"""The HTTP endpoint of `serve --metrics` and `worker --metrics`: /healthz, /readyz, /metrics.

A small threading HTTP server of the standard library, in daemon threads: a probe never runs
on the update loop, and a slow scraper never holds up Telegram's updates. /metrics is
prometheus_client's own exposition of the process's registry; the probes answer one line of
text (200 or 503) that a person reading `curl` output understands.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Tuple

from tgsync_cli.core.errors import ConfigError, TgsyncError
from tgsync_cli.runtime.config import parse_listen

log = logging.getLogger("tgsync.metrics")
Verdict = Tuple[bool, str]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def checked_address(listen: str, allow_remote: bool, where: str = "metrics.listen") -> Tuple[str, int]:
    """(host, port) to listen on; a non-loopback address only with `metrics.allow_remote`:
    the figures name the clubs and the endpoints answer anyone who can reach the port."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"{where} {listen!r}: {exc}") from None
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"{where} {listen}: not a loopback address; set metrics.allow_remote = "
                          "true to serve health and metrics to other machines")
    return host, port


def describe(host: str, port: int) -> str:
    """What the start-up report says about the endpoint."""
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}"
    if is_loopback(host):
        return f"{where}/metrics, /healthz, /readyz (this machine only)"
    return (f"{where}/metrics, /healthz, /readyz — reachable from other machines "
            "(metrics.allow_remote = true)")


class Endpoint:
    """Binds at construction (so a port in use is one line before anything connects), serves
    in a daemon thread after `start`."""

    def __init__(self, host: str, port: int, registry: Any, liveness: Callable[[], Verdict],
                 readiness: Callable[[], Verdict]) -> None:
        handler = _handler(registry, liveness, readiness)
        server_cls = _server_class(host)
        try:
            self.server = server_cls((host, port), handler)
        except OSError as exc:
            raise TgsyncError(f"health and metrics endpoint {host}:{port}: cannot listen "
                              f"({exc.strerror or exc})") from None
        self.host, self.port = host, self.server.server_address[1]
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Endpoint":
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="tgsync-metrics", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(2.0)
        self.server.server_close()


def _server_class(host: str) -> type:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

    return Server


def _handler(registry: Any, liveness: Callable[[], Verdict], readiness: Callable[[], Verdict]) -> type:
    # imported here: checking an address (before a worker forks) must not load prometheus_client
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        server_version = "tgsync"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, why = (liveness if path == "/healthz" else readiness)()
                    self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found: /metrics, /healthz or /readyz\n",
                               "text/plain; charset=utf-8")
            except Exception as exc:  # a figure that cannot be read must not kill the endpoint
                log.warning("%s failed: %s: %s", path, type(exc).__name__, exc)
                self._send(500, f"{type(exc).__name__}\n".encode(), "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
