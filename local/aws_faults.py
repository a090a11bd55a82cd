"""A fault-injecting HTTP proxy between the relay's boto3 clients and the moto server.

    with AwsFaultProxy(aws.endpoint_url, [FaultRule("dynamodb", "UpdateItem", "throttle")]) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url      # the relay reaches AWS through it
        ...
        proxy.faults_injected()                          # {(service, operation, fault): count}

Every AWS API call is passed through to moto unchanged, unless a rule picks it: the first rule whose
service and operation match (``"*"`` matches any) and whose probability the seeded draw falls under
answers the call with its fault instead. The faults, as AWS documents them for DynamoDB, SQS and
Secrets Manager:

* ``throttle``: HTTP 400 with the service's throttling error code, in its protocol (codes botocore's
  standard retry mode treats as throttles: botocore/retries/standard.py ``_THROTTLED_ERROR_CODES``);
* ``500`` / ``503``: InternalServerError / ServiceUnavailable;
* ``slow``: the call reaches moto only after ``slow_seconds`` (longer than the relay's read timeout),
  so the client gives up and the call still takes effect, late;
* ``drop``: the connection is closed without an answer, the call never reaching moto;
* ``<fault>_after`` (``throttle_after``, ``500_after``, ``503_after``, ``slow_after``, ``drop_after``):
  the call is passed to moto first, so it takes effect, and then answered with the fault: the AWS-side
  twin of the Refersion sandbox's ``drop_after``.

Nothing here is specific to the relay: it reaches the proxy through ``AWS_ENDPOINT_URL`` like any
other endpoint. Every call is recorded (``calls()``), with its parsed request, so that tests and the
soak can tell which order a faulted write was about.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

SERVICES: Final = ("dynamodb", "sqs", "secretsmanager")
BASE_FAULTS: Final = ("throttle", "500", "503", "slow", "drop")
FAULTS: Final = (*BASE_FAULTS, *(f"{name}_after" for name in BASE_FAULTS))
DEFAULT_SLOW_SECONDS: Final = 6.0  # past the relay's boto3 read timeout (1 s, handler/budget.py)

# The X-Amz-Target prefix of each JSON-protocol service.
_TARGET_PREFIXES: Final = {
    "DynamoDB_20120810": "dynamodb",
    "secretsmanager": "secretsmanager",
    "AmazonSQS": "sqs",
}
# The throttling error code each service answers with (all in botocore's standard-mode throttle list).
_THROTTLE_CODES: Final = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "secretsmanager": "ThrottlingException",
    "sqs": "RequestThrottled",
}
_SERVER_ERRORS: Final = {"500": (500, "InternalServerError"), "503": (503, "ServiceUnavailable")}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# Not passed on: hop-by-hop headers, and the two the proxy's own answer writes (Server, Date).
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "server", "date"}
)


def attempts_per_call(retries: Mapping[str, Any] | None) -> int:
    """How many times a boto3 client with this ``Config.retries`` makes one call: botocore reads
    ``max_attempts`` as retries after the first attempt, ``total_max_attempts`` as all of them."""
    retries = retries or {}
    if "total_max_attempts" in retries:
        return int(retries["total_max_attempts"])
    if "max_attempts" in retries:
        return int(retries["max_attempts"]) + 1
    return 3  # standard mode's default


@dataclass(frozen=True)
class FaultRule:
    """Answer calls of ``service``/``operation`` (``"*"`` for any) with ``fault``, with this probability;
    ``times``: at most that many faults from this rule (None: no limit); ``request_contains``: only calls
    whose request (its JSON, or its query form's JSON) contains this text, e.g. a DynamoDB key prefix."""

    service: str
    operation: str
    fault: str
    probability: float = 1.0
    times: int | None = None
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    request_contains: str | None = None

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}: one of {', '.join(FAULTS)}")
        if self.service != "*" and self.service not in SERVICES:
            raise ValueError(f"unknown service {self.service!r}: one of {', '.join(SERVICES)} or '*'")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    def matches(self, service: str, operation: str, request_text: str = "") -> bool:
        wanted = self.request_contains is None or self.request_contains in request_text
        return self.service in ("*", service) and self.operation in ("*", operation) and wanted


@dataclass(frozen=True)
class Call:
    """One AWS API call through the proxy: what it was, and the fault it met (None: passed through)."""

    service: str
    operation: str
    request: Mapping[str, Any]  # the parsed JSON body (or the query protocol's form fields)
    fault: str | None
    moto_status: int | None  # what moto answered (None: the call never reached it)
    status: int | None  # what the client was answered (None: no answer)

    @property
    def took_effect(self) -> bool:
        return self.moto_status is not None and 200 <= self.moto_status < 300

    @property
    def answered(self) -> bool:
        """The client got moto's own 2xx answer, in time (a ``slow`` answer comes after it gave up)."""
        return (
            self.took_effect and self.status == self.moto_status and self.fault not in ("slow", "slow_after")
        )


@dataclass
class _Script:
    rules: list[FaultRule] = field(default_factory=list)
    used: Counter[int] = field(default_factory=Counter)  # rule index -> faults injected
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class AwsFaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 (ephemeral port) in front of ``target_url`` (moto)."""

    def __init__(self, target_url: str, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        target = urlsplit(target_url)
        if not target.hostname or not target.port:
            raise ValueError("target_url must be http://host:port")
        self._target = (target.hostname, target.port)
        self._lock = threading.Lock()
        self._script = _Script(list(rules), Counter(), random.Random(seed))
        self._calls: list[Call] = []
        self._connections: set[socket.socket] = set()  # open client connections, closed on stop()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        handler = type("AwsFaultProxyHandler", (_ProxyHandler,), {"owner": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, name="aws-fault-proxy", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes every held (slow) call
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:  # idle keep-alive connections of the clients: their
            with contextlib.suppress(OSError):  # handler threads wait on them otherwise
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else 0

    # ---------------------------------------------------------------- the script

    def set_rules(self, rules: Iterable[FaultRule], *, seed: int | None = None) -> None:
        """Replace the rules (and reseed the draw when ``seed`` is given); counters are kept."""
        with self._lock:
            self._script.rules = list(rules)
            self._script.used = Counter()
            if seed is not None:
                self._script.rng = random.Random(seed)

    def clear_rules(self) -> None:
        self.set_rules([])

    def _choose(self, service: str, operation: str, request: Mapping[str, Any]) -> FaultRule | None:
        request_text = json.dumps(request)
        with self._lock:
            script = self._script
            for index, rule in enumerate(script.rules):
                if not rule.matches(service, operation, request_text):
                    continue
                if rule.times is not None and script.used[index] >= rule.times:
                    continue
                if rule.probability >= 1.0 or script.rng.random() < rule.probability:
                    script.used[index] += 1
                    return rule
            return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # ---------------------------------------------------------------- what happened

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def call_counts(self) -> Counter[tuple[str, str]]:
        return Counter((c.service, c.operation) for c in self.calls())

    def faults_injected(self) -> Counter[tuple[str, str, str]]:
        return Counter((c.service, c.operation, c.fault) for c in self.calls() if c.fault)

    def reset_counters(self) -> None:
        with self._lock:
            self._calls.clear()

    # ---------------------------------------------------------------- used by the handler

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def hold(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def forward(self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes) -> _Answer:
        connection = http.client.HTTPConnection(*self._target, timeout=60)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return _Answer(response.status, kept, payload)
        finally:
            connection.close()


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def identify(headers: Mapping[str, str], body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(service, operation, parsed request) of an AWS API call, in the JSON or the query protocol."""
    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.partition(".")
        service = _TARGET_PREFIXES.get(prefix, prefix.lower())
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            parsed = {}
        return service, operation, parsed if isinstance(parsed, dict) else {}
    scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    return (scope.group(1) if scope else "?"), form.get("Action", "?"), form


def fault_answer(service: str, fault: str, *, json_protocol: bool) -> _Answer:
    """The error a service answers with for a throttle or a 5xx, in the protocol the call used."""
    base = fault.removesuffix("_after")
    if base == "throttle":
        status, code = 400, _THROTTLE_CODES.get(service, "ThrottlingException")
    else:
        status, code = _SERVER_ERRORS[base]
    request_id = str(uuid.uuid4())
    message = f"injected by the AWS fault proxy ({fault})"
    if json_protocol:
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
        ]
        if service == "sqs":  # SQS's JSON protocol carries the query-era code in this header
            headers.append(("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"))
        body = json.dumps({"__type": code, "message": message}).encode()
        return _Answer(status, headers, body)
    xml = (
        f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return _Answer(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode())


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: AwsFaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pooled connections expect

    def setup(self) -> None:
        super().setup()
        self.owner.track(self.connection, open_=True)

    def finish(self) -> None:
        self.owner.track(self.connection, open_=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per SDK call would drown the soak's output

    def do_GET(self) -> None:
        self._relay_call("GET")

    def do_POST(self) -> None:
        self._relay_call("POST")

    def do_PUT(self) -> None:
        self._relay_call("PUT")

    def do_DELETE(self) -> None:
        self._relay_call("DELETE")

    def _relay_call(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        lowered = {k.lower(): v for k, v in self.headers.items()}
        service, operation, request = identify(lowered, body)
        rule = self.owner._choose(service, operation, request)
        fault = rule.fault if rule else None
        answer: _Answer | None = None
        moto_status: int | None = None
        try:
            if rule is None or rule.fault in ("slow", *(f for f in FAULTS if f.endswith("_after"))):
                if rule is not None and rule.fault == "slow":
                    self.owner.hold(rule.slow_seconds)  # the call takes effect late
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
                answer = self.owner.forward(method, self.path, headers, body)
                moto_status = answer.status
            if rule is not None and rule.fault == "slow_after":
                self.owner.hold(rule.slow_seconds)
            if fault is not None and fault.removesuffix("_after") in ("throttle", "500", "503"):
                answer = fault_answer(service, fault, json_protocol="x-amz-target" in lowered)
            elif fault is not None and fault.removesuffix("_after") == "drop":
                answer = None
        except OSError:
            answer = None  # moto went away (the stack is stopping): no answer either
        finally:
            status = answer.status if answer is not None else None
            self.owner._record(Call(service, operation, request, fault, moto_status, status))
        if answer is None:
            self._drop()
        else:
            self._answer(answer)

    def _answer(self, answer: _Answer) -> None:
        with contextlib.suppress(OSError):  # the client may have given up (slow)
            self.send_response(answer.status)
            for name, value in answer.headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()

    def _drop(self) -> None:
        """Close without a byte of answer; a reset, as a load balancer that drops the call would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
