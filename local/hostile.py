"""A hostile stand-in for Refersion: a raw-socket HTTP server that answers exactly the bytes it is told to.

Where `local.sandbox` behaves like Refersion, this one misbehaves on purpose, so tests can check that
every answer, however broken, ends in its right outcome (CONTRACT §5): bodies shorter than their
Content-Length, answers trickled a few bytes at a time, garbage that is not HTTP, huge headers, odd
status lines, connections closed before or after the status line. Standard library only.

    with HostileRefersion() as server:
        server.script(Answer(status=200, content_length=100, body=b"{}", cut_after=None))
        ... post to server.url ...
        assert server.post_count() == 1
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BufferedReader
from types import TracebackType

_MAX_REQUEST_HEAD = 64 * 1024
_MAX_REQUEST_BODY = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """The bytes of one answer, and how they are sent.

    status_line: the first line without its CRLF (None: no status line at all, only `raw`).
    content_length: the Content-Length announced (None: len(body); -1: no Content-Length header).
    raw: when set, exactly these bytes are sent instead of an HTTP answer (garbage).
    cut_after: close the connection after this many bytes of the answer (0: before any byte).
    trickle: (n, t): from byte `trickle_from` on, send n bytes every t seconds.
    delay: seconds to wait before the first byte.
    keep_alive: leave the connection open for another request once the answer is complete.
    """

    status: int = 200
    reason: str = "OK"
    status_line: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_length: int | None = None
    raw: bytes | None = None
    cut_after: int | None = None
    trickle: tuple[int, float] | None = None
    trickle_from: int = 0
    delay: float = 0.0
    keep_alive: bool = True

    def head(self) -> bytes:
        line = self.status_line
        if line is None:
            line = f"HTTP/1.1 {self.status} {self.reason}".rstrip().encode("latin-1")
        lines = [line]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in self.headers]
        if self.content_length != -1:
            length = len(self.body) if self.content_length is None else self.content_length
            lines.append(f"Content-Length: {length}".encode())
        if not self.keep_alive:
            lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def wire_bytes(self) -> bytes:
        """Everything this answer would send if nothing cut it."""
        return self.raw if self.raw is not None else self.head() + self.body

    @property
    def complete(self) -> bool:
        """True when the whole answer goes out and the connection may serve another request."""
        return self.raw is None and self.cut_after is None and self.keep_alive


def status_answer(status: int, body: bytes = b"", **changes: object) -> Answer:
    """A plain answer with this status (reason phrase 'Status')."""
    return Answer(status=status, reason="Status", body=body, **changes)  # type: ignore[arg-type]


@dataclass
class ReceivedRequest:
    """One request as it arrived: request line, headers (names lower-cased) and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer | None = field(default=None, repr=False)


Responder = Callable[[ReceivedRequest], Answer]


class HostileRefersion:
    """The server: 127.0.0.1 on an ephemeral port, one thread per connection, scripted answers.

    Answers come from, in order: the script queue (`script`), then the responder (`respond_with`),
    then a plain 200 OK.
    """

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._scripted: deque[Answer] = deque()
        self._responder: Responder | None = None
        self._received: list[ReceivedRequest] = []
        self._connections: set[socket.socket] = set()
        self._connections_opened = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = 0

    # ----- lifecycle
    def __enter__(self) -> HostileRefersion:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tracker/orders/paid"

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            _shut(self._listener)  # wakes the thread blocked in accept(); close() alone would not
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    # ----- scripting and inspection
    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order."""
        with self._lock:
            self._scripted.extend(answers)

    def respond_with(self, responder: Responder | None) -> None:
        """Choose each answer from the request (e.g. by the order id in its body)."""
        with self._lock:
            self._responder = responder

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def post_count(self) -> int:
        return sum(1 for request in self.received() if request.method == "POST")

    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    def reset(self) -> None:
        """Forget the script, the responder and every request received."""
        with self._lock:
            self._scripted.clear()
            self._responder = None
            self._received.clear()

    # ----- serving
    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="hostile-refersion")
        self._threads = [known for known in self._threads if known.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # the listener was closed: stop
            with self._lock:
                self._connections.add(connection)
                self._connections_opened += 1
            self._spawn(self._serve_connection, connection)

    def _serve_connection(self, connection: socket.socket) -> None:
        try:
            with connection:
                reader = connection.makefile("rb")
                for request in _requests_from(reader):
                    answer = self._answer_for(request)
                    if not self._send(connection, answer) or not answer.complete:
                        break
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            with self._lock:
                self._connections.discard(connection)

    def _answer_for(self, request: ReceivedRequest) -> Answer:
        with self._lock:
            self._received.append(request)
            if self._scripted:
                answer = self._scripted.popleft()
            elif self._responder is not None:
                answer = self._responder(request)
            else:
                answer = Answer()
            request.answer = answer
        return answer

    def _send(self, connection: socket.socket, answer: Answer) -> bool:
        """Send the answer as scripted; False when the connection must be closed after it."""
        if answer.delay and self._stopping.wait(answer.delay):
            return False
        data = answer.wire_bytes()
        if answer.cut_after is not None:
            data = data[: answer.cut_after]
        if answer.trickle is None:
            connection.sendall(data)
        else:
            connection.sendall(data[: answer.trickle_from])
            if not self._trickle(connection, data[answer.trickle_from :], *answer.trickle):
                return False
        if answer.cut_after is not None or not answer.complete:
            _shut(connection)
            return False
        return True

    def _trickle(self, connection: socket.socket, data: bytes, size: int, every: float) -> bool:
        for start in range(0, len(data), max(size, 1)):
            if self._stopping.wait(every):
                return False
            connection.sendall(data[start : start + max(size, 1)])
        return True


def _requests_from(reader: BufferedReader) -> Iterator[ReceivedRequest]:
    """Requests read one after another from a kept-alive connection, until it closes."""
    while True:
        request = _read_request(reader)
        if request is None:
            return
        yield request


def _read_request(reader: BufferedReader) -> ReceivedRequest | None:
    line = reader.readline(_MAX_REQUEST_HEAD)
    if not line.strip():
        return None
    parts = line.decode("latin-1").split()
    method, path = ([*parts, "", ""])[:2]
    headers: dict[str, str] = {}
    size = len(line)
    while size < _MAX_REQUEST_HEAD:
        header = reader.readline(_MAX_REQUEST_HEAD)
        size += len(header)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        length = min(int(headers.get("content-length", "0")), _MAX_REQUEST_BODY)
    except ValueError:
        length = 0
    body = reader.read(length) if length > 0 else b""
    return ReceivedRequest(method=method, path=path, headers=headers, body=body)


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
