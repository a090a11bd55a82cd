"""A moto server on 127.0.0.1 and the AWS resources the relay uses, for tests, the demo and the soak."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Dummy credentials: moto accepts anything, and these can never reach a real account.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class LocalAws:
    """A moto server in a thread of this process; boto3 reaches it over HTTP like any AWS endpoint."""

    def __init__(self) -> None:
        # Imported here: local.lambda_shapes (and the unit tests through it) use this module's constants
        # on machines without moto (make compat).
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalAws:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per SDK call
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def environ(self) -> dict[str, str]:
        """What a process needs in its environment for boto3 to talk to this server."""
        return {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@dataclass(frozen=True)
class RelayResources:
    """The resources of template.yaml that the function itself touches."""

    secret_id: str
    queue_url: str
    dlq_url: str
    table_name: str


def create_relay_resources(
    aws: LocalAws, *, public_key: str = "pub_test", secret_key: str = "sec_test", max_receive_count: int = 12
) -> RelayResources:
    """Fresh, uniquely named resources, so tests sharing one moto server never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    secrets, sqs, dynamodb = aws.client("secretsmanager"), aws.client("sqs"), aws.client("dynamodb")
    secret_arn = secrets.create_secret(
        Name=f"refersion-keys-{suffix}",
        SecretString=json.dumps({"public_key": public_key, "secret_key": secret_key}),
    )["ARN"]
    dlq_url = sqs.create_queue(QueueName=f"orders-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"orders-{suffix}",
        Attributes={
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    table_name = f"idempotency-{suffix}"
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return RelayResources(secret_id=secret_arn, queue_url=queue_url, dlq_url=dlq_url, table_name=table_name)


def put_key_pair(aws: LocalAws, secret_id: str, public_key: str, secret_key: str) -> None:
    """Rotate the key pair the way an operator does: a new secret value, no redeploy."""
    aws.client("secretsmanager").put_secret_value(
        SecretId=secret_id, SecretString=json.dumps({"public_key": public_key, "secret_key": secret_key})
    )


def drain_queue(aws: LocalAws, queue_url: str, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """Every message on a queue, with its attributes, deleting them as they are read."""
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
