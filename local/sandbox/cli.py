"""``python -m local.sandbox``: serve a sandbox by hand until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import threading
from collections.abc import Sequence
from types import FrameType

from local.sandbox.core import RefersionSandbox
from local.sandbox.server import is_loopback
from local.sandbox.values import CONTROL_PREFIX


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.sandbox",
        description="Serve a local stand-in for Refersion's paid-order webhook until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--public-key", default="pub_test")
    parser.add_argument("--secret-key", default="sec_test")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--processing-delay",
        type=float,
        default=0.0,
        help="seconds after a paid order is accepted during which a cancel of it gets 422 (default 0)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key (when not inside --tls-cert)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    context: ssl.SSLContext | None = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.tls_key:
        parser.error("--tls-key needs --tls-cert")

    sandbox = RefersionSandbox(
        args.public_key,
        args.secret_key,
        host=args.host,
        port=args.port,
        ssl_context=context,
        latency=args.latency,
        processing_delay=args.processing_delay,
    )
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    with sandbox:
        print(f"Refersion sandbox listening on {sandbox.url}", flush=True)
        print(f"REST API (conversion/cancel) under {sandbox.api_url}", flush=True)
        if is_loopback(args.host):
            print(f"control endpoints under {sandbox.base_url}{CONTROL_PREFIX}", flush=True)
        else:
            print("control endpoints disabled (not bound to loopback)", flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("Refersion sandbox stopped", flush=True)
    return 0
