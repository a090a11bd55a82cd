"""The relay's deployed topology, run locally: what template.yaml deploys, on a moto server.

    with LocalStack() as stack:
        stack.publish(load_event("datafly/seed-order.json"))   # PutEvents on the order events bus
        stack.mapping().run_until_drained(timeout=30)         # Lambda's SQS poller, locally
        stack.sandbox.accepted_order_ids()                    # what "Refersion" credited

What it holds, each built from template.yaml (local/template.py), never from settings of its own:

* the order events bus (OrderEventsBusName's default) and OrderCompletedRule with the template's
  EventPattern resolved with the stack's parameters (EnableRefunds=true adds the refund and
  cancellation names), targeting OrderQueue (with the target's DeadLetterConfig and RetryPolicy);
* OrderQueue and OrderDeadLetterQueue with the template's properties as queue attributes (visibility
  timeout, retention, redrive policy to the DLQ, ...), named as the template names them;
* the secret holding the Refersion sandbox's key pair (the template takes its ARN as a parameter);
* IdempotencyTable with the template's key schema, billing mode and TTL;
* the Refersion sandbox (local/sandbox/) standing in for Refersion's webhook (RefersionEndpoint) and
  its REST API (RefersionApiUrl, the sandbox under ``SANDBOX_API_PATH``): nothing reaches Refersion;
* the function's environment: the template's Environment.Variables, resolved against the resources
  above, plus what a boto3 client needs to reach moto, plus the overrides below for fast local runs.

Starting the stack applies that environment to ``os.environ`` (the relay reads it once and caches its
components, so ``handler.wiring.forget_relay()`` is called too); stopping restores ``os.environ``.
Only one stack may be running per process for that reason.

The resources and the environment are built by local/stack_resources.py; what the stack changes in its
process (os.environ, moto's EventBridge envelope) and checks it left behind is in local/stack_process.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Self

from local.aws import LocalAws, drain_queue
from local.aws_faults import AwsFaultProxy
from local.lambda_shapes import load_event
from local.poller import EventSourceMapping, QueueDepth
from local.sandbox import RefersionSandbox
from local.stack_process import (
    apply_environment,
    complete_moto_envelope,
    forget_relay,
    left_behind,
    restore_environment,
    restore_moto_envelope,
    save_environment,
)
from local.stack_resources import Cleanups, ResourceBuilder, StackResources
from local.template import Template, TemplateSettings, load_template

__all__ = ["FAST_OVERRIDES", "SANDBOX_API_PATH", "LocalStack", "PublishFailed", "StackResources"]

# Overrides of the template's function environment for local runs, and why each is needed.
FAST_OVERRIDES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # The template spaces retries 30 s, 2 min, 8 min, ... up to 1 h: right against a real Refersion
        # outage, but a local run would wait minutes for one retried record. Here every record reported
        # for retry is visible again after 1 s (the schedule itself is unit-tested). The receive
        # count, maxReceiveCount and the redrive to the DLQ are untouched.
        "RETRY_BASE_DELAY_SECONDS": "1",
        "RETRY_MAX_DELAY_SECONDS": "1",
        # The sandbox answers in milliseconds; a dropped or stalled reply should cost 2 s, not the
        # template's 10 s (still far above the sandbox's normal latency, so nothing times out spuriously).
        "REFERSION_TIMEOUT_SECONDS": "2",
    }
)
# REFERSION_API_URL of a local run: the sandbox under the path of Refersion's own API base URL
# (https://api.refersion.com/v2), so a refund's cancel goes to {sandbox}/v2/conversion/cancel.
SANDBOX_API_PATH: Final = "/v2"
_EVENT_SOURCE: Final = str(load_event("eventbridge-order.json")["source"])
_PUT_EVENTS_LIMIT: Final = 10

_running_lock = threading.Lock()
_running: LocalStack | None = None


class PublishFailed(RuntimeError):
    """PutEvents refused an entry."""


class LocalStack:
    """moto (bus, rule, queues, secret, table) + the Refersion sandbox + the function's environment."""

    def __init__(
        self,
        *,
        stack_name: str | None = None,
        public_key: str = "pub_local_4f9a",
        secret_key: str = "sec_local_SECRET_7c21",
        overrides: Mapping[str, str | None] | None = None,
        fast: bool = True,
        parameters: Mapping[str, str] | None = None,
        template: Template | None = None,
        aws_faults: bool = False,
    ) -> None:
        """``overrides``: function environment variables to change (None removes one), applied after
        FAST_OVERRIDES (unless ``fast=False``). ``parameters``: template parameter values (defaults
        otherwise; RefersionEndpoint and RefersionSecretArn are always the local ones), e.g.
        ``{"EnableRefunds": "true"}`` for the refund rule and REFUNDS_ENABLED=true. ``aws_faults``:
        the function's AWS_ENDPOINT_URL points at a fault-injecting proxy in front of moto
        (``self.aws_faults``, local/aws_faults.py), while the stack's own clients (setup, poller,
        assertions) keep talking to moto directly."""
        self.template = template or load_template()
        self._parameters = dict(parameters or {})
        self.settings: TemplateSettings = self.template.settings(self._parameters)
        # moto keeps its resources in process-wide backends, shared by every moto server of the process:
        # a name of its own keeps this stack's queues and rule apart from any other's.
        self.stack_name = stack_name or f"refersion-relay-local-{uuid.uuid4().hex[:6]}"
        self._public_key, self._secret_key = public_key, secret_key
        self._overrides: dict[str, str | None] = {**(FAST_OVERRIDES if fast else {}), **(overrides or {})}
        self.aws = LocalAws()
        self.sandbox = RefersionSandbox(public_key, secret_key)
        self._with_aws_faults = aws_faults
        self.aws_faults: AwsFaultProxy | None = None
        self._resources: StackResources | None = None
        self._environment: dict[str, str] = {}
        self._saved_environ: dict[str, str] | None = None
        self._threads_before: set[threading.Thread] = set()
        self._ports: list[int] = []
        self._moto_template: str | None = None
        self._cleanups = Cleanups()  # what stop() deletes, newest first
        self._started = False
        self.left_behind: list[str] = []  # after stop(): threads or listening sockets still there

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        global _running  # noqa: PLW0603 - os.environ is process-wide: one stack at a time
        with _running_lock:
            if _running is not None:
                raise RuntimeError("another LocalStack is running in this process (os.environ is shared)")
            _running = self
        self._started = True
        self.left_behind = []
        try:
            self._saved_environ = save_environment()
            self._threads_before = set(threading.enumerate())
            self._moto_template = complete_moto_envelope()
            self.aws.start()
            self.sandbox.start()
            self._ports = [int(self.aws.endpoint_url.rsplit(":", 1)[1]), self.sandbox.port]
            builder = ResourceBuilder(self.template, self.aws, self.stack_name, self._cleanups)
            self._resources = builder.create(dict(self._parameters), (self._public_key, self._secret_key))
            self._environment = builder.function_environment(
                self._resources,
                self._parameters,
                self.sandbox.url,
                self._overrides,
                api_url=self.sandbox.base_url + SANDBOX_API_PATH,
            )
            if self._with_aws_faults:
                self.aws_faults = AwsFaultProxy(self.aws.endpoint_url).start()
                self._ports.append(self.aws_faults.port)
                self._environment["AWS_ENDPOINT_URL"] = self.aws_faults.url
            apply_environment(self._environment, self._overrides)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Forget the relay, restore os.environ, delete the resources (as delete-stack would), stop the
        sandbox and moto; then ``left_behind`` lists any thread or listening socket still there."""
        global _running  # noqa: PLW0603
        if not self._started:
            return
        self._started = False
        forget_relay()
        if self._saved_environ is not None:
            restore_environment(self._saved_environ)
            self._saved_environ = None
        self.left_behind.extend(self._cleanups.run())
        if self.aws_faults is not None:
            self.aws_faults.stop()
        self.sandbox.stop()
        if self.aws.endpoint_url:
            self.aws.stop()
        self.left_behind.extend(left_behind(self._threads_before, self._ports))
        if self._moto_template is not None:
            restore_moto_envelope(self._moto_template)
            self._moto_template = None
        with _running_lock:
            if _running is self:
                _running = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- what it holds

    @property
    def resources(self) -> StackResources:
        if self._resources is None:
            raise RuntimeError("the stack is not started")
        return self._resources

    @property
    def environment(self) -> dict[str, str]:
        """The function's environment (as applied to os.environ while the stack runs)."""
        return dict(self._environment)

    def mapping(self, **changes: Any) -> EventSourceMapping:
        """The SQS event source of RelayFunction, with the template's batch size, window and timeout."""
        options: dict[str, Any] = {
            "batch_size": self.settings.batch_size,
            "batching_window_seconds": self.settings.maximum_batching_window,
            "function_timeout_seconds": self.settings.function_timeout,
            "report_batch_item_failures": self.settings.report_batch_item_failures,
            **changes,
        }
        resources = self.resources
        return EventSourceMapping(self.aws.client("sqs"), resources.queue_url, resources.queue_arn, **options)

    def queue_depth(self) -> QueueDepth:
        return self.mapping().depth()

    def take_dead_letters(self) -> list[dict[str, Any]]:
        """Every message on the dead-letter queue, with attributes (read and deleted)."""
        return drain_queue(self.aws, self.resources.dlq_url)

    # ---------------------------------------------------------------- producing

    def publish(self, detail: Mapping[str, Any]) -> str:
        """PutEvents of one Datafly event on the order events bus, as Datafly Signal does; its event id."""
        [event_id] = self.publish_all([detail])
        return event_id

    def publish_all(self, details: Iterable[Mapping[str, Any]]) -> list[str]:
        events = self.aws.client("events")
        entries = [
            {
                "Source": _EVENT_SOURCE,
                "DetailType": _detail_type(detail),
                "Detail": json.dumps(detail),
                "EventBusName": self.resources.bus_name,
            }
            for detail in details
        ]
        ids: list[str] = []
        for start in range(0, len(entries), _PUT_EVENTS_LIMIT):
            answer = events.put_events(Entries=entries[start : start + _PUT_EVENTS_LIMIT])
            for entry in answer["Entries"]:
                if "EventId" not in entry:
                    raise PublishFailed(f"PutEvents refused an entry: {entry}")
                ids.append(str(entry["EventId"]))
        return ids


def _detail_type(detail: Mapping[str, Any]) -> str:
    """What Datafly Signal puts as DetailType: the event name, or the call type for page/identify."""
    return str(detail.get("event") or detail.get("type") or "Datafly Event")
