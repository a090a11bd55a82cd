"""The relay's deployed topology, run locally: what template.yaml deploys, on a moto server.

    with LocalStack() as stack:
        stack.publish(load_event("datafly/seed-order.json"))   # PutEvents on the order events bus
        stack.mapping().run_until_drained(timeout=30)         # Lambda's SQS poller, locally
        stack.sandbox.accepted_order_ids()                    # what "Refersion" credited

What it holds, each built from template.yaml (local/template.py), never from settings of its own:

* the order events bus (OrderEventsBusName's default) and OrderCompletedRule with the template's
  EventPattern, targeting OrderQueue (with the target's DeadLetterConfig and RetryPolicy);
* OrderQueue and OrderDeadLetterQueue with the template's properties as queue attributes (visibility
  timeout, retention, redrive policy to the DLQ, ...), named as the template names them;
* the secret holding the Refersion sandbox's key pair (the template takes its ARN as a parameter);
* IdempotencyTable with the template's key schema, billing mode and TTL;
* the Refersion sandbox (local/sandbox.py) standing in for Refersion's webhook;
* the function's environment: the template's Environment.Variables, resolved against the resources
  above, plus what a boto3 client needs to reach moto, plus the overrides below for fast local runs.

Starting the stack applies that environment to ``os.environ`` (the relay reads it once and caches its
components, so ``handler.wiring.forget_relay()`` is called too); stopping restores ``os.environ``.
Only one stack may be running per process for that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self

from local.aws import ACCOUNT, REGION, LocalAws, drain_queue
from local.lambda_shapes import load_event
from local.poller import EventSourceMapping, QueueDepth
from local.sandbox import RefersionSandbox
from local.template import (
    BUS_PARAMETER,
    DEAD_LETTER_QUEUE,
    QUEUE,
    RULE,
    TABLE,
    Scope,
    Template,
    TemplateSettings,
    load_template,
)

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
# Variables that would point boto3 at a real account or profile; a Lambda environment has none of them.
_FOREIGN_AWS_VARIABLES: Final = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
_EVENT_SOURCE: Final = str(load_event("eventbridge-order.json")["source"])
_PUT_EVENTS_LIMIT: Final = 10
_STOP_GRACE_SECONDS: Final = 3.0

_running_lock = threading.Lock()
_running: LocalStack | None = None

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


class PublishFailed(RuntimeError):
    """PutEvents refused an entry."""


@dataclass(frozen=True)
class StackResources:
    """Physical names of the local resources (what CloudFormation's Ref / GetAtt would return)."""

    stack_name: str
    bus_name: str
    bus_arn: str
    rule_name: str
    rule_arn: str
    queue_name: str
    queue_url: str
    queue_arn: str
    dlq_name: str
    dlq_url: str
    dlq_arn: str
    secret_arn: str
    table_name: str


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
    ) -> None:
        """``overrides``: function environment variables to change (None removes one), applied after
        FAST_OVERRIDES (unless ``fast=False``). ``parameters``: template parameter values (defaults
        otherwise; RefersionEndpoint and RefersionSecretArn are always the local ones)."""
        self.template = template or load_template()
        self.settings: TemplateSettings = self.template.settings()
        # moto keeps its resources in process-wide backends, shared by every moto server of the process:
        # a name of its own keeps this stack's queues and rule apart from any other's.
        self.stack_name = stack_name or f"refersion-relay-local-{uuid.uuid4().hex[:6]}"
        self._public_key, self._secret_key = public_key, secret_key
        self._overrides: dict[str, str | None] = {**(FAST_OVERRIDES if fast else {}), **(overrides or {})}
        self._parameters = dict(parameters or {})
        self.aws = LocalAws()
        self.sandbox = RefersionSandbox(public_key, secret_key)
        self._resources: StackResources | None = None
        self._environment: dict[str, str] = {}
        self._saved_environ: dict[str, str] | None = None
        self._threads_before: set[threading.Thread] = set()
        self._ports: list[int] = []
        self._moto_template: str | None = None
        self._cleanups: list[tuple[str, Callable[[], object]]] = []  # what stop() deletes, newest first
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
            # The whole environment as it was, restored on stop; no variable that points boto3 at a
            # real account or profile survives, not even for the stack's own clients.
            self._saved_environ = dict(os.environ)
            for name in _FOREIGN_AWS_VARIABLES:
                os.environ.pop(name, None)
            self._threads_before = set(threading.enumerate())
            self._moto_template = _complete_moto_envelope()
            self.aws.start()
            self.sandbox.start()
            self._ports = [int(self.aws.endpoint_url.rsplit(":", 1)[1]), self.sandbox.port]
            self._resources = self._create_resources()
            self._environment = self._function_environment(self._resources)
            self._apply_environment()
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
        _forget_relay()
        self._restore_environment()
        self._delete_resources()
        self.sandbox.stop()
        if self.aws.endpoint_url:
            self.aws.stop()
        self.left_behind.extend(_left_behind(self._threads_before, self._ports))
        if self._moto_template is not None:
            _restore_moto_envelope(self._moto_template)
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

    # ---------------------------------------------------------------- building

    def _scope(self, **known: Any) -> Scope:
        return Scope(stack_name=self.stack_name, region=REGION, account_id=ACCOUNT, **known)

    def _create_resources(self) -> StackResources:
        sqs, events = self.aws.client("sqs"), self.aws.client("events")
        parameters = dict(self._parameters)
        bus_name = parameters.setdefault(BUS_PARAMETER, self.settings.bus_name)

        # Queues: the DLQ first, its ARN is in OrderQueue's redrive policy.
        base_scope = self._scope(parameters=parameters)
        dlq_name = str(
            self.template.resolve(self.template.properties(DEAD_LETTER_QUEUE)["QueueName"], base_scope)
        )
        dlq_url = sqs.create_queue(
            QueueName=dlq_name, Attributes=self.template.sqs_attributes(DEAD_LETTER_QUEUE, base_scope)
        )["QueueUrl"]
        self._on_stop(f"queue {dlq_name}", lambda: sqs.delete_queue(QueueUrl=dlq_url))
        dlq_arn = _queue_arn(sqs, dlq_url)
        queue_scope = self._scope(
            parameters=parameters,
            refs={DEAD_LETTER_QUEUE: dlq_url},
            attributes={f"{DEAD_LETTER_QUEUE}.Arn": dlq_arn, f"{DEAD_LETTER_QUEUE}.QueueName": dlq_name},
        )
        queue_name = str(self.template.resolve(self.template.properties(QUEUE)["QueueName"], queue_scope))
        queue_url = sqs.create_queue(
            QueueName=queue_name, Attributes=self.template.sqs_attributes(QUEUE, queue_scope)
        )["QueueUrl"]
        self._on_stop(f"queue {queue_name}", lambda: sqs.delete_queue(QueueUrl=queue_url))
        queue_arn = _queue_arn(sqs, queue_url)

        # The bus exists before the stack (the template takes its name), so it is used when it is there;
        # otherwise it is created here, and deleted on stop. The rule is the stack's own.
        bus_arn = self._event_bus(events, bus_name)
        rule_name = f"{self.stack_name}-{RULE}"
        scope = self._scope(
            parameters=parameters,
            refs={QUEUE: queue_url, DEAD_LETTER_QUEUE: dlq_url},
            attributes={
                f"{QUEUE}.Arn": queue_arn,
                f"{QUEUE}.QueueName": queue_name,
                f"{DEAD_LETTER_QUEUE}.Arn": dlq_arn,
                f"{DEAD_LETTER_QUEUE}.QueueName": dlq_name,
            },
        )
        rule = self.template.properties(RULE)
        rule_arn = events.put_rule(
            Name=rule_name,
            EventBusName=str(self.template.resolve(rule["EventBusName"], scope)),
            EventPattern=json.dumps(self.template.resolve(rule["EventPattern"], scope)),
            State=str(rule.get("State", "ENABLED")),
            Description=str(rule.get("Description", "")),
        )["RuleArn"]
        self._on_stop(f"rule {rule_name}", lambda: events.delete_rule(Name=rule_name, EventBusName=bus_name))
        targets = self.template.resolve(rule["Targets"], scope)
        events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=targets)
        self._on_stop(
            f"targets of {rule_name}",
            lambda: events.remove_targets(
                Rule=rule_name, EventBusName=bus_name, Ids=[t["Id"] for t in targets]
            ),
        )

        # The key pair: the template only takes the secret's ARN (RefersionSecretArn).
        secrets = self.aws.client("secretsmanager")
        secret_arn = secrets.create_secret(
            Name=f"{self.stack_name}/refersion-keys",
            SecretString=json.dumps({"public_key": self._public_key, "secret_key": self._secret_key}),
        )["ARN"]
        self._on_stop(
            "the secret", lambda: secrets.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
        )

        table_name = f"{self.stack_name}-{TABLE}"
        self._create_table(table_name, scope)
        return StackResources(
            stack_name=self.stack_name,
            bus_name=bus_name,
            bus_arn=bus_arn,
            rule_name=rule_name,
            rule_arn=rule_arn,
            queue_name=queue_name,
            queue_url=queue_url,
            queue_arn=queue_arn,
            dlq_name=dlq_name,
            dlq_url=dlq_url,
            dlq_arn=dlq_arn,
            secret_arn=secret_arn,
            table_name=table_name,
        )

    def _event_bus(self, events: Any, bus_name: str) -> str:
        try:
            arn = str(events.create_event_bus(Name=bus_name)["EventBusArn"])
        except events.exceptions.ResourceAlreadyExistsException:
            return str(events.describe_event_bus(Name=bus_name)["Arn"])
        self._on_stop(f"event bus {bus_name}", lambda: events.delete_event_bus(Name=bus_name))
        return arn

    def _on_stop(self, what: str, delete: Callable[[], object]) -> None:
        self._cleanups.append((what, delete))

    def _delete_resources(self) -> None:
        """Newest first, as CloudFormation deletes a stack; a failure is reported, the rest still deleted."""
        while self._cleanups:
            what, delete = self._cleanups.pop()
            try:
                delete()
            except Exception as exc:
                self.left_behind.append(f"{what} (delete failed: {type(exc).__name__})")

    def _create_table(self, table_name: str, scope: Scope) -> None:
        properties = self.template.resolve(self.template.properties(TABLE), scope)
        dynamodb = self.aws.client("dynamodb")
        dynamodb.create_table(
            TableName=table_name,
            AttributeDefinitions=properties["AttributeDefinitions"],
            KeySchema=properties["KeySchema"],
            BillingMode=properties.get("BillingMode", "PROVISIONED"),
        )
        self._on_stop(f"table {table_name}", lambda: dynamodb.delete_table(TableName=table_name))
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={
                    "Enabled": bool(ttl["Enabled"]),
                    "AttributeName": ttl["AttributeName"],
                },
            )

    def _function_environment(self, resources: StackResources) -> dict[str, str]:
        scope = self._scope(
            parameters={
                **self._parameters,
                BUS_PARAMETER: resources.bus_name,
                "RefersionSecretArn": resources.secret_arn,
                "RefersionEndpoint": self.sandbox.url,
            },
            refs={
                QUEUE: resources.queue_url,
                DEAD_LETTER_QUEUE: resources.dlq_url,
                TABLE: resources.table_name,
                RULE: resources.rule_name,
            },
            attributes={
                f"{QUEUE}.Arn": resources.queue_arn,
                f"{DEAD_LETTER_QUEUE}.Arn": resources.dlq_arn,
                f"{RULE}.Arn": resources.rule_arn,
            },
        )
        variables = self.template.resolve(self.template.function_variables("RelayFunction"), scope)
        environment = {name: _text(value) for name, value in variables.items()}
        environment.update(self.aws.environ())
        environment["AWS_REGION"] = REGION  # Lambda sets both AWS_REGION and AWS_DEFAULT_REGION
        for name, value in self._overrides.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment

    def _apply_environment(self) -> None:
        for name in self._overrides.keys() - self._environment.keys():
            os.environ.pop(name, None)  # an override of None unsets the variable
        os.environ.update(self._environment)
        _forget_relay()

    def _restore_environment(self) -> None:
        if self._saved_environ is None:
            return
        for name in os.environ.keys() - self._saved_environ.keys():
            del os.environ[name]
        for name, value in self._saved_environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        self._saved_environ = None


def _complete_moto_envelope() -> str | None:
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


def _restore_moto_envelope(template: str) -> None:
    from moto.events.utils import EventTemplateParser

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template


def _detail_type(detail: Mapping[str, Any]) -> str:
    """What Datafly Signal puts as DetailType: the event name, or the call type for page/identify."""
    return str(detail.get("event") or detail.get("type") or "Datafly Event")


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _forget_relay() -> None:
    from handler.wiring import forget_relay

    forget_relay()


# --------------------------------------------------------------------------- leftovers


def _left_behind(threads_before: set[threading.Thread], ports: Iterable[int]) -> list[str]:
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
