"""Resources of the confirmation tests on a moto server: the token secret, and a table with the
template's reconciliation indexes (created from template.yaml as the local stack creates it)."""

from __future__ import annotations

import uuid
from typing import Any

from local.aws import LocalAws
from local.stack_resources import table_definition
from local.template import TABLE, Scope, load_template


def create_indexed_table(aws: LocalAws) -> str:
    template = load_template()
    properties = template.resolve(template.properties(TABLE), Scope())
    name = f"confirmations-{uuid.uuid4().hex[:10]}"
    aws.client("dynamodb").create_table(TableName=name, **table_definition(properties))
    return name


def create_token_secret(aws: LocalAws, token: str) -> str:
    secrets: Any = aws.client("secretsmanager")
    return str(
        secrets.create_secret(Name=f"confirmation-token-{uuid.uuid4().hex[:10]}", SecretString=token)["ARN"]
    )
