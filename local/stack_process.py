"""What a local stack changes in its process, and puts back: os.environ, moto's EventBridge envelope;
and what it checks it left behind (threads, listening sockets)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

# Variables that would point boto3 at a real account or profile; a Lambda environment has none of them.
_FOREIGN_AWS_VARIABLES: Final = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
_STOP_GRACE_SECONDS: Final = 3.0

# moto 5.2.5 delivers rule targets the event without its "account" field: its default input template
# omits it (although its default input paths map has it). Real EventBridge delivers the whole event,
# and the relay's parser (Powertools' EventBridgeModel) rightly requires "account", so every order
# would end "invalid". While a stack runs, moto's default template is the complete event, in the order
# EventBridge writes it; tests/e2e/test_event_source.py checks the envelope that reaches the queue.
_MOTO_DEFAULT_TEMPLATE_WITHOUT_ACCOUNT: Final = (
    '{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", "source": "<source>", '
    '"region": "<region>", "resources": <resources>, "detail": <detail>}'
)
_EVENTBRIDGE_ENVELOPE_TEMPLATE: Final = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
    '"detail": <detail>}'
)


def save_environment() -> dict[str, str]:
    """The whole environment as it was, to restore on stop; no variable that points boto3 at a real
    account or profile survives, not even for the stack's own clients."""
    saved = dict(os.environ)
    for name in _FOREIGN_AWS_VARIABLES:
        os.environ.pop(name, None)
    return saved


def apply_environment(environment: Mapping[str, str], overrides: Iterable[str]) -> None:
    """The function's environment in os.environ; an override missing from it (None) is unset."""
    for name in set(overrides) - environment.keys():
        os.environ.pop(name, None)
    os.environ.update(environment)
    forget_relay()


def restore_environment(saved: Mapping[str, str]) -> None:
    for name in os.environ.keys() - saved.keys():
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def forget_relay() -> None:
    """The relay reads its environment once and caches its components: make it read it again."""
    from handler.wiring import forget_relay as forget

    forget()


def complete_moto_envelope() -> str | None:
    """Make moto deliver the whole EventBridge event to targets; the template it had, to restore."""
    from moto.events.utils import EventTemplateParser

    current = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' in current:
        return None  # a moto that delivers the account already
    if current != _MOTO_DEFAULT_TEMPLATE_WITHOUT_ACCOUNT:
        raise RuntimeError(
            "moto's default EventBridge input template changed: revisit _complete_moto_envelope"
        )
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _EVENTBRIDGE_ENVELOPE_TEMPLATE
    return current


def restore_moto_envelope(template: str) -> None:
    from moto.events.utils import EventTemplateParser

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template


def left_behind(threads_before: set[threading.Thread], ports: Iterable[int]) -> list[str]:
    """Threads started since the stack started that are still alive, and sockets still listening."""
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not threads or time.monotonic() >= deadline:
            break
        for thread in threads:
            thread.join(max(0.0, min(0.1, deadline - time.monotonic())))
    found = [f"thread {t.name}" for t in threads]
    found.extend(f"listening socket on 127.0.0.1:{port}" for port in ports if _listening_here(port))
    return found


def _listening_here(port: int) -> bool:
    """True when this process still has a socket listening on the port.

    Read from /proc (this process's socket inodes against the kernel's LISTEN table), so another
    process that reuses the freed port is not mistaken for ours; elsewhere, a connection attempt.
    """
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        return False
    inodes: set[str] = set()
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    return True
    return False
