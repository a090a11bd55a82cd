"""The local stack's resources, created on moto from template.yaml as CloudFormation would create them,
and the function's environment resolved against them (local/stack.py puts these together)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local.aws import ACCOUNT, REGION, LocalAws
from local.template import BUS_PARAMETER, DEAD_LETTER_QUEUE, QUEUE, RULE, TABLE, Scope, Template


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


class Cleanups:
    """What deleting the stack deletes: newest first, as CloudFormation deletes a stack."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, delete: Callable[[], object]) -> None:
        self._items.append((what, delete))

    def run(self) -> list[str]:
        """Delete everything; a failure is reported (and returned), the rest still deleted."""
        failed: list[str] = []
        while self._items:
            what, delete = self._items.pop()
            try:
                delete()
            except Exception as exc:
                failed.append(f"{what} (delete failed: {type(exc).__name__})")
        return failed


@dataclass(frozen=True)
class _Queue:
    name: str
    url: str
    arn: str

    def attributes(self, logical_id: str) -> dict[str, str]:
        """What GetAtt returns for this queue."""
        return {f"{logical_id}.Arn": self.arn, f"{logical_id}.QueueName": self.name}


class ResourceBuilder:
    """Creates the template's bus, rule, queues, secret and table on moto, each registered for deletion."""

    def __init__(self, template: Template, aws: LocalAws, stack_name: str, cleanups: Cleanups) -> None:
        self.template = template
        self.aws = aws
        self.stack_name = stack_name
        self.cleanups = cleanups

    def scope(self, **known: Any) -> Scope:
        return Scope(stack_name=self.stack_name, region=REGION, account_id=ACCOUNT, **known)

    def create(self, parameters: dict[str, str], keys: tuple[str, str]) -> StackResources:
        """Every resource; ``parameters`` gets the bus name's default when it has none."""
        bus_name = parameters.setdefault(BUS_PARAMETER, self.template.settings().bus_name)
        # Queues: the DLQ first, its ARN is in OrderQueue's redrive policy.
        dlq = self._create_queue(DEAD_LETTER_QUEUE, self.scope(parameters=parameters))
        queue = self._create_queue(
            QUEUE,
            self.scope(
                parameters=parameters,
                refs={DEAD_LETTER_QUEUE: dlq.url},
                attributes=dlq.attributes(DEAD_LETTER_QUEUE),
            ),
        )
        bus_arn = self._event_bus(bus_name)
        scope = self.scope(
            parameters=parameters,
            refs={QUEUE: queue.url, DEAD_LETTER_QUEUE: dlq.url},
            attributes={**queue.attributes(QUEUE), **dlq.attributes(DEAD_LETTER_QUEUE)},
        )
        rule_name, rule_arn = self._create_rule(bus_name, scope)
        secret_arn = self._create_secret(keys)
        table_name = f"{self.stack_name}-{TABLE}"
        self._create_table(table_name, scope)
        return StackResources(
            stack_name=self.stack_name,
            bus_name=bus_name,
            bus_arn=bus_arn,
            rule_name=rule_name,
            rule_arn=rule_arn,
            queue_name=queue.name,
            queue_url=queue.url,
            queue_arn=queue.arn,
            dlq_name=dlq.name,
            dlq_url=dlq.url,
            dlq_arn=dlq.arn,
            secret_arn=secret_arn,
            table_name=table_name,
        )

    def _create_queue(self, logical_id: str, scope: Scope) -> _Queue:
        sqs = self.aws.client("sqs")
        name = str(self.template.resolve(self.template.properties(logical_id)["QueueName"], scope))
        url = sqs.create_queue(QueueName=name, Attributes=self.template.sqs_attributes(logical_id, scope))[
            "QueueUrl"
        ]
        self.cleanups.add(f"queue {name}", lambda: sqs.delete_queue(QueueUrl=url))
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Queue(name, url, str(arn))

    def _event_bus(self, bus_name: str) -> str:
        """The bus exists before the stack (the template takes its name), so it is used when it is there;
        otherwise it is created here, and deleted on stop."""
        events = self.aws.client("events")
        try:
            arn = str(events.create_event_bus(Name=bus_name)["EventBusArn"])
        except events.exceptions.ResourceAlreadyExistsException:
            return str(events.describe_event_bus(Name=bus_name)["Arn"])
        self.cleanups.add(f"event bus {bus_name}", lambda: events.delete_event_bus(Name=bus_name))
        return arn

    def _create_rule(self, bus_name: str, scope: Scope) -> tuple[str, str]:
        """The stack's own rule with the template's pattern and targets: (name, ARN)."""
        events = self.aws.client("events")
        rule_name = f"{self.stack_name}-{RULE}"
        rule = self.template.properties(RULE)
        rule_arn = events.put_rule(
            Name=rule_name,
            EventBusName=str(self.template.resolve(rule["EventBusName"], scope)),
            EventPattern=json.dumps(self.template.resolve(rule["EventPattern"], scope)),
            State=str(rule.get("State", "ENABLED")),
            Description=str(rule.get("Description", "")),
        )["RuleArn"]
        self.cleanups.add(
            f"rule {rule_name}", lambda: events.delete_rule(Name=rule_name, EventBusName=bus_name)
        )
        targets = self.template.resolve(rule["Targets"], scope)
        events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=targets)
        self.cleanups.add(
            f"targets of {rule_name}",
            lambda: events.remove_targets(
                Rule=rule_name, EventBusName=bus_name, Ids=[t["Id"] for t in targets]
            ),
        )
        return rule_name, str(rule_arn)

    def _create_secret(self, keys: tuple[str, str]) -> str:
        """The key pair: the template only takes the secret's ARN (RefersionSecretArn)."""
        secrets = self.aws.client("secretsmanager")
        secret_arn = str(
            secrets.create_secret(
                Name=f"{self.stack_name}/refersion-keys",
                SecretString=json.dumps({"public_key": keys[0], "secret_key": keys[1]}),
            )["ARN"]
        )
        self.cleanups.add(
            "the secret", lambda: secrets.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
        )
        return secret_arn

    def _create_table(self, table_name: str, scope: Scope) -> None:
        properties = self.template.resolve(self.template.properties(TABLE), scope)
        dynamodb = self.aws.client("dynamodb")
        dynamodb.create_table(TableName=table_name, **table_definition(properties))
        self.cleanups.add(f"table {table_name}", lambda: dynamodb.delete_table(TableName=table_name))
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={
                    "Enabled": bool(ttl["Enabled"]),
                    "AttributeName": ttl["AttributeName"],
                },
            )

    def function_environment(
        self,
        resources: StackResources,
        parameters: Mapping[str, str],
        endpoint: str,
        overrides: Mapping[str, str | None],
        api_url: str | None = None,
    ) -> dict[str, str]:
        """The template's Environment.Variables resolved against the resources and ``parameters`` (so
        EnableRefunds=true gives REFUNDS_ENABLED=true), what a boto3 client needs to reach moto, and the
        overrides (None removes a variable). ``endpoint`` and ``api_url`` stand for RefersionEndpoint and
        RefersionApiUrl: a local run never reaches Refersion itself."""
        scope = self.scope(
            parameters={
                **parameters,
                BUS_PARAMETER: resources.bus_name,
                "RefersionSecretArn": resources.secret_arn,
                "RefersionEndpoint": endpoint,
                **({"RefersionApiUrl": api_url} if api_url is not None else {}),
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
        for name, value in overrides.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_definition(properties: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable's arguments (but the name) from the table's resolved properties, indexes included."""
    definition: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return definition
