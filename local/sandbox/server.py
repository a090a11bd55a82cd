"""The sandbox's HTTP server: one thread per connection, all of them tracked so ``stop()`` can end them."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import logging
import selectors
import socket
import socketserver
import ssl
import threading
from typing import TYPE_CHECKING, Any, Final

from local.sandbox.handler import SandboxHandler

if TYPE_CHECKING:
    from local.sandbox.core import RefersionSandbox

_log = logging.getLogger("local.sandbox")

THREAD_PREFIX: Final = "refersion-sandbox"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections and threads so stop() can end them all."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        sandbox: RefersionSandbox,
        address: tuple[str, int],
        ssl_context: ssl.SSLContext | None,
        stop_event: threading.Event,
    ) -> None:
        self.sandbox = sandbox
        self.stop_event = stop_event
        self.control_enabled = is_loopback(address[0])
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, int] = {}
        self._workers: set[threading.Thread] = set()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, SandboxHandler)
        if ssl_context is not None:
            try:
                # Handshakes happen in the connection threads, so a stalled or failing client
                # can never block the accept loop.
                self.socket = ssl_context.wrap_socket(
                    self.socket, server_side=True, do_handshake_on_connect=False
                )
            except BaseException:
                self.server_close()
                raise

    def serve_until_stopped(self) -> None:
        """The accept loop. Unlike serve_forever(), it ends at once on wake() rather than on its next poll."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stop_event.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stop_event.is_set():
                        self._accept_one()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:  # the client gave up before accept(), or the socket is closing
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection_id = self.sandbox._connection_opened()
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{THREAD_PREFIX}-conn-{connection_id}",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = connection_id
            self._workers.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._workers.discard(threading.current_thread())

    def connection_id(self, request: socket.socket) -> int:
        with self._conn_lock:
            return self._conns.get(request, 0)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._conn_lock:
                self._conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def abort_connections(self) -> None:
        """Shut down every open connection so blocked reads and writes return at once."""
        with self._conn_lock:
            for conn in self._conns:
                # The plain-socket shutdown, also for TLS sockets: no close_notify, just end it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def live_threads(self) -> list[threading.Thread]:
        with self._conn_lock:
            return list(self._workers)
