"""The relay end to end on a local stack: ``python -m local.demo`` (what ``make demo`` runs).

Publishes five Datafly events on the local order events bus (PutEvents), lets the local SQS event
source run the real handler until the queue is drained, and shows what happened to each event: the
seed's example (delivered), a page view (filtered out by the rule), an invalid order (quarantined in
the dead-letter queue), an order Refersion's sandbox refuses once with a 503 (retried, then delivered)
and an order whose answer is lost, resolved by Refersion's confirmation (issue 12,
local/demo_confirmations.py). Then, with the orders delivered, a partial refund and a full cancellation
(issue 11, local/demo_refunds.py). Outcomes are read from the function's JSON log lines, as an operator
reads CloudWatch Logs.

Exits 0 when everything happened as described, 1 otherwise. No AWS account, Docker or network needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from local import demo_refunds
from local.demo_confirmations import OVERRIDES as CONFIRMATION_OVERRIDES
from local.demo_confirmations import PARAMETERS as CONFIRMATION_PARAMETERS
from local.demo_confirmations import ConfirmationsDemo
from local.demo_rows import FILTERED, QUARANTINED, Row, attach, outcome_lines, relay_logs_to, table
from local.lambda_shapes import load_event
from local.poller import EventSourceMapping
from local.sandbox import PATH, Reply
from local.sqs_invocation import Invocation
from local.stack import LocalStack

DRAIN_TIMEOUT_SECONDS = 45.0


def scenario() -> list[Row]:
    return [
        Row("seed's example", load_event("datafly/seed-order.json"), expected="delivered"),
        Row("page view", load_event("datafly/page-view.json"), expected=FILTERED),
        Row("invalid order", load_event("datafly/invalid-order.json"), expected="invalid"),
        Row("refused once", load_event("datafly/second-order.json"), expected="delivered"),
    ]


def problems_of(
    rows: Sequence[Row], stack: LocalStack, dead_letters: Sequence[Mapping[str, Any]]
) -> list[str]:
    problems = [
        f"{row.label}: expected {row.expected}, got {row.outcome}"
        for row in rows
        if row.outcome != row.expected
    ]
    accepted = stack.sandbox.accepted_order_ids()
    for row in rows:
        if row.expected == "delivered" and accepted.count(row.order_id) != 1:
            problems.append(
                f"{row.label}: Refersion credited order {row.order_id} {accepted.count(row.order_id)} times"
            )
    if stack.sandbox.duplicates():
        problems.append(f"orders credited twice: {stack.sandbox.duplicates()}")
    quarantined = sorted(str(m["MessageAttributes"]["outcome"]["StringValue"]) for m in dead_letters)
    expected_quarantine = sorted(row.expected for row in rows if row.expected in QUARANTINED)
    if quarantined != expected_quarantine:
        problems.append(f"dead-letter queue holds {quarantined}, expected {expected_quarantine}")
    return problems


def _print_settings(stack: LocalStack, out: TextIO) -> None:
    settings, resources = stack.settings, stack.resources
    print(
        "Refersion relay on a local stack (moto + Refersion sandbox), settings from template.yaml",
        file=out,
    )
    print(
        f"  bus {resources.bus_name} -> rule {resources.rule_name} -> queue {resources.queue_name}",
        file=out,
    )
    print(
        f"  queue: visibility {settings.queue_visibility_timeout} s, to {resources.dlq_name} after "
        f"{settings.max_receive_count} receives; function {settings.function_handler}: batch "
        f"{settings.batch_size}, window {settings.maximum_batching_window} s, "
        f"timeout {settings.function_timeout} s",
        file=out,
    )
    print(f"  Refersion sandbox: {stack.sandbox.url}", file=out)


def _print_what_came_out(
    stack: LocalStack, seed: Row, dead_letters: list[dict[str, Any]], out: TextIO
) -> None:
    seed_requests = [r for r in stack.sandbox.received() if r.route == PATH and r.order_id == seed.order_id]
    print(
        f"\nBody Refersion received for the seed's example (order {seed.order_id}), pretty-printed:",
        file=out,
    )
    for request in seed_requests:
        print(json.dumps(json.loads(request.body), indent=2, ensure_ascii=False), file=out)
    print(f"\nDead-letter queue: {len(dead_letters)} message(s)", file=out)
    for message in dead_letters:
        attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
        print(
            f"  outcome={attributes.get('outcome')} order_id={attributes.get('order_id', '-')} "
            f"reason={attributes.get('reason')}",
            file=out,
        )


def _drain(mapping: EventSourceMapping, log_buffer: TextIO) -> list[Invocation]:
    """Run the relay until the queue is drained; its log lines (and the receiver's) go to ``log_buffer``
    and any EMF document printed outside an invocation (the receiver's) is kept off the demo's output."""
    with relay_logs_to(log_buffer), contextlib.redirect_stdout(io.StringIO()):
        return mapping.run_until_drained(DRAIN_TIMEOUT_SECONDS)


def _publish(stack: LocalStack, rows: Sequence[Row]) -> None:
    for row, event_id in zip(rows, stack.publish_all(row.detail for row in rows), strict=True):
        row.event_id = event_id


def _run(stack: LocalStack, rows: list[Row], out: TextIO) -> list[str]:
    """Publish the scenario, drain the queue, print what happened; the problems found."""
    seed, refused = rows[0], rows[3]
    log_buffer = io.StringIO()  # what CloudWatch Logs would hold
    _print_settings(stack, out)
    confirming = ConfirmationsDemo(stack)
    mapping = stack.mapping()
    try:
        confirmed = confirming.start()
        stack.sandbox.script_for(refused.order_id, Reply(status=503))
        _publish(stack, [*rows, confirmed])
        print(
            f"\nPublished {len(rows) + 1} events on {stack.resources.bus_name}; the sandbox answers 503 once "
            f"for order {refused.order_id} and drops the connection after processing order "
            f"{confirmed.order_id}. Polling until the queue is drained...\n",
            file=out,
        )
        invocations = _drain(mapping, log_buffer)
        delivered = [row for row in [*rows, confirmed] if row.expected == "delivered"]
        refunds = demo_refunds.refund_rows(seed.order_id, refused.order_id)
        _publish(stack, refunds)
        invocations += _drain(mapping, log_buffer)
    finally:
        confirming.stop()
    lines = outcome_lines(log_buffer.getvalue())
    attach([*rows, confirmed, *refunds], mapping, lines)
    dead_letters = stack.take_dead_letters()
    print(table(rows), file=out)
    _print_what_came_out(stack, seed, dead_letters, out)
    ordered = demo_refunds.ordered_quantities(delivered)
    _print_refunds(stack, refunds, ordered, out)
    print("\n".join(confirming.story(log_buffer.getvalue())), file=out)
    metrics = sum(len(i.metrics) for i in invocations)
    print(
        f"\n{len(invocations)} invocation(s), {len(lines)} outcome log line(s) and {metrics} EMF metric "
        f"document(s) captured.",
        file=out,
    )
    return [
        *problems_of([*rows, confirmed], stack, dead_letters),
        *demo_refunds.problems(stack, ordered, refunds),
        *confirming.problems(),
    ]


def _print_refunds(
    stack: LocalStack, refunds: Sequence[Row], ordered: demo_refunds.Quantities, out: TextIO
) -> None:
    print(
        "\nIssue 11: once the orders are delivered, a partial refund and a full cancellation "
        "(EnableRefunds=true)\n",
        file=out,
    )
    print(table(refunds), file=out)
    print("\n".join(demo_refunds.story(stack, ordered)), file=out)


def main(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    rows = scenario()
    stack = LocalStack(
        parameters={**demo_refunds.PARAMETERS, **CONFIRMATION_PARAMETERS}, overrides=CONFIRMATION_OVERRIDES
    )
    try:
        stack.start()
        problems = _run(stack, rows, out)
    except Exception as exc:
        problems = [f"the demo failed: {type(exc).__name__}: {exc}"]
    finally:
        stack.stop()
    problems.extend(f"left behind after stop: {item}" for item in stack.left_behind)
    print(f"Stopped the stack after {time.monotonic() - started:.1f} s", end="", file=out)
    if problems:
        print("; UNEXPECTED:", file=out)
        for problem in problems:
            print(f"  - {problem}", file=out)
        return 1
    print(": no thread or listening socket left behind.", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
