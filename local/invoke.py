"""``sam local invoke`` without Docker: ``python -m local.invoke EVENT_FILE`` (what ``make invoke`` runs).

Starts the local stack (local/stack.py: moto holding template.yaml's resources, the Refersion sandbox,
the function's environment from template.yaml with no local overrides), runs the real entry point
``handler.app.lambda_handler`` once on the event in EVENT_FILE, with a context carrying the template's
timeout and memory, then stops the stack.

As ``sam local invoke`` does, it writes the function's response (JSON) to stdout, and to stderr a START
line, the function's log lines (Powertools' JSON lines and EMF metric documents), END and REPORT.
Exit status: 0 when the handler returned, 1 when it raised (the error is printed as Lambda reports it)
or the stack left a thread or socket behind, 2 when EVENT_FILE is missing, unreadable or not JSON.
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from local.aws import ACCOUNT, REGION
from local.lambda_shapes import FakeLambdaContext
from local.stack import LocalStack
from local.template import FUNCTION, Scope

USAGE = "usage: python -m local.invoke EVENT_FILE   (make invoke EVENT=events/<file>.json)"


class EventFileError(Exception):
    """The event file cannot be used; the message is the one line shown to the user."""


@dataclass(frozen=True)
class Invocation:
    """What one run of the handler came to, as Lambda would report it."""

    request_id: str
    response: Any
    error: BaseException | None
    log_text: str
    duration_ms: float
    memory_mb: int


def read_event(path_text: str) -> Any:
    """The event in the file, or EventFileError with one line saying why not."""
    if not path_text:
        raise EventFileError(f"invoke: no event file given; {USAGE}")
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EventFileError(f"invoke: {path_text}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise EventFileError(f"invoke: {path_text}: cannot be read ({reason})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise EventFileError(f"invoke: {path_text}: not JSON ({exc})") from None


def function_context(stack: LocalStack) -> FakeLambdaContext:
    """A context carrying the template's timeout and memory, named as the stack names the function."""
    memory = stack.template.function_property(FUNCTION, "MemorySize") or 128
    function_name = f"{stack.stack_name}-{FUNCTION}"
    return FakeLambdaContext(
        remaining_ms=stack.settings.function_timeout * 1000,
        function_name=function_name,
        memory_limit_in_mb=int(stack.template.resolve(memory, Scope())),
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
    )


@contextmanager
def captured_function_output(buffer: TextIO) -> Iterator[None]:
    """Everything the function writes (logger lines, EMF documents, warnings) goes to buffer, as
    everything a Lambda function writes to stdout or stderr goes to its log stream."""
    from handler.observability import logger

    stream_handler = logger.registered_handler
    previous = stream_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            yield
    finally:
        stream_handler.setStream(previous)  # type: ignore[attr-defined]


def invoke_once(stack: LocalStack, event: Any) -> Invocation:
    """The real entry point, once, on a started stack; its response or the exception it raised."""
    from handler.app import lambda_handler

    context = function_context(stack)
    buffer = io.StringIO()
    response: Any = None
    error: BaseException | None = None
    started = time.perf_counter()
    with captured_function_output(buffer):
        try:
            response = lambda_handler(event, context)
        except Exception as exc:
            error = exc
    return Invocation(
        request_id=context.aws_request_id,
        response=response,
        error=error,
        log_text=buffer.getvalue(),
        duration_ms=(time.perf_counter() - started) * 1000,
        memory_mb=context.memory_limit_in_mb,
    )


def handler_frames(error: BaseException) -> list[str]:
    """The traceback from the entry point down (this module's own frame left out, as Lambda's runtime's)."""
    trace = error.__traceback__
    return traceback.format_tb(trace.tb_next if trace is not None else None)


def error_document(error: BaseException, request_id: str) -> dict[str, Any]:
    """The error as Lambda's Python runtime returns it to the caller."""
    frames = handler_frames(error)
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": frames,
    }


def report(invocation: Invocation, out: TextIO, err: TextIO) -> None:
    """Response on out; START, the function's lines, the error (if any), END and REPORT on err."""
    request_id = invocation.request_id
    print(f"START RequestId: {request_id} Version: $LATEST", file=err)
    err.write(invocation.log_text)
    if invocation.error is not None:
        error = invocation.error
        frames = "".join(handler_frames(error))
        print(f"[ERROR] {type(error).__name__}: {error}\nTraceback (most recent call last):", file=err)
        err.write(frames)
        response: Any = error_document(error, request_id)
    else:
        response = invocation.response
    print(f"END RequestId: {request_id}", file=err)
    print(
        f"REPORT RequestId: {request_id}\tDuration: {invocation.duration_ms:.2f} ms\t"
        f"Billed Duration: {int(invocation.duration_ms) + 1} ms\tMemory Size: {invocation.memory_mb} MB",
        file=err,
    )
    err.flush()
    print(json.dumps(response), file=out)
    out.flush()


def main(
    argv: list[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    make_stack: Callable[[], LocalStack] | None = None,
) -> int:
    """``make_stack``: how the stack is built (tests pass one to look at the sandbox afterwards)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(USAGE, file=err)
        return 2
    try:
        event = read_event(args[0])
    except EventFileError as exc:
        print(exc, file=err)
        return 2
    # fast=False: the template's environment as deployed (the local overrides only speed up retries).
    stack = make_stack() if make_stack is not None else LocalStack(fast=False)
    with stack:
        runtime = stack.template.function_property(FUNCTION, "Runtime")
        print(
            f"Invoking {stack.settings.function_handler} ({runtime}) on a local stack: moto at "
            f"{stack.aws.endpoint_url}, Refersion sandbox at {stack.sandbox.url}",
            file=err,
        )
        invocation = invoke_once(stack, event)
    report(invocation, out, err)
    for item in stack.left_behind:
        print(f"invoke: left behind after stop: {item}", file=err)
    return 1 if invocation.error is not None or stack.left_behind else 0


if __name__ == "__main__":
    sys.exit(main())
