"""Each row of CONTRACT §5's outcome table, through the real handler: boto3 to a moto server over HTTP,
urllib3 to the Refersion sandbox over HTTP."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from local.aws import drain_queue, put_key_pair
from local.lambda_shapes import FakeLambdaContext, eventbridge_envelope, sqs_event
from local.sandbox import Reply
from local.seed import seed_body, seed_event
from tests.support.events import as_eventbridge_body, failures
from tests.support.keys import PUBLIC_KEY, SECRET_KEY
from tests.support.relay_env import RelayEnv

pytestmark = pytest.mark.integration


def test_seed_example_is_delivered_with_exactly_the_seed_body_and_headers(relay_env: RelayEnv) -> None:
    # Given the seed's track and identify calls as one Order Completed event, through bus -> queue
    event = sqs_event(as_eventbridge_body(seed_event()))
    # When the function handles the batch
    response = relay_env.invoke(event)
    # Then Refersion got exactly the seed's body and headers, and nothing is reported for retry
    assert failures(response) == []
    [request] = relay_env.sandbox.received()
    assert request.json() == seed_body()
    assert list(request.json()) == list(seed_body())
    assert request.headers["Refersion-Public-Key"] == PUBLIC_KEY
    assert request.headers["Refersion-Secret-Key"] == SECRET_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.path == "/tracker/orders/paid"
    assert request.accepted


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=429, headers={"Retry-After": "7"}),
        Reply(status=500),
        Reply(status=503),
        Reply(status=408),
        Reply(delay=3.0),  # longer than REFERSION_TIMEOUT_SECONDS=1
        Reply(drop="before"),
    ],
    ids=["429", "500", "503", "408", "timeout", "dropped-connection"],
)
def test_transient_failures_are_reported_for_retry_and_not_quarantined(
    relay_env: RelayEnv, reply: Reply
) -> None:
    relay_env.sandbox.script(reply)
    event = sqs_event(as_eventbridge_body(seed_event()))
    response = relay_env.invoke(event)
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert drain_queue(relay_env.aws, relay_env.resources.dlq_url) == []


def test_rotated_keys_are_picked_up_after_a_401_without_a_redeploy(relay_env: RelayEnv) -> None:
    # Given a warm function that has cached the first key pair
    assert failures(relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))) == []
    # When the operator rotates the keys in Secrets Manager (and Refersion revokes the old pair)
    put_key_pair(relay_env.aws, relay_env.resources.secret_id, "pub_rotated", "sec_rotated")
    relay_env.sandbox.set_keys("pub_rotated", "sec_rotated")
    response = relay_env.invoke(sqs_event(as_eventbridge_body(seed_event(order_id="A-2"))))
    # Then the refused post is retried once with the fresh pair and delivered
    assert failures(response) == []
    statuses = [r.status for r in relay_env.sandbox.received()]
    assert statuses == [200, 401, 200]
    assert relay_env.sandbox.received()[-1].headers["Refersion-Secret-Key"] == "sec_rotated"


def test_keys_refused_even_after_a_refresh_come_back_for_retry(relay_env: RelayEnv) -> None:
    relay_env.sandbox.set_keys("pub_other", "sec_other")
    event = sqs_event(as_eventbridge_body(seed_event()))
    response = relay_env.invoke(event)
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert [r.status for r in relay_env.sandbox.received()] == [401, 401]
    assert drain_queue(relay_env.aws, relay_env.resources.dlq_url) == []


@pytest.mark.parametrize("status", [400, 404, 422])
def test_refused_orders_are_quarantined_with_the_original_body_and_a_reason(
    relay_env: RelayEnv, status: int
) -> None:
    relay_env.sandbox.script(Reply(status=status, body=b'{"error": "items[0].sku unknown"}'))
    body = as_eventbridge_body(seed_event())
    response = relay_env.invoke(sqs_event(body))
    assert failures(response) == []
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    assert quarantined["Body"] == body
    attributes = quarantined["MessageAttributes"]
    assert attributes["outcome"]["StringValue"] == "rejected"
    assert attributes["http_status"]["StringValue"] == str(status)
    assert (
        attributes["reason"]["StringValue"]
        == f'Refersion answered {status}: {{"error": "items[0].sku unknown"}}'
    )
    assert attributes["order_id"]["StringValue"] == "20150401102883"


def test_sandbox_own_400_for_a_malformed_item_is_quarantined(relay_env: RelayEnv) -> None:
    # The sandbox validates like Refersion; script nothing, send a body Refersion would refuse by
    # pointing the relay at it with an order whose item the mapping accepts but Refersion does not.
    relay_env.sandbox.script(Reply(status=400))
    response = relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
    assert failures(response) == []
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    assert quarantined["MessageAttributes"]["reason"]["StringValue"].startswith("Refersion answered 400")


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        ("not json at all", "body: is not JSON"),
        ("[1, 2, 3]", "not an object"),
        (json.dumps(seed_event(currency="$US")), "properties.currency"),
        (
            json.dumps(seed_event(products=[{"sku": "A", "price": "$5.50", "quantity": 1}])),
            "properties.products[0].price",
        ),
        (json.dumps(seed_event(products=[])), "properties.products"),
        (as_eventbridge_body(seed_event(cart_id="")), "properties.cart_id"),
    ],
    ids=["not-json", "json-array", "currency", "price-symbol", "no-products", "empty-cart-id"],
)
def test_invalid_records_are_quarantined_with_a_reason_and_never_posted(
    relay_env: RelayEnv, body: str, reason_part: str
) -> None:
    response = relay_env.invoke(sqs_event(body))
    assert failures(response) == []
    assert relay_env.sandbox.received() == []
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    assert quarantined["Body"] == body
    assert quarantined["MessageAttributes"]["outcome"]["StringValue"] == "invalid"
    assert reason_part in quarantined["MessageAttributes"]["reason"]["StringValue"]


def test_non_order_events_are_dropped_without_posting_or_reporting(relay_env: RelayEnv) -> None:
    page = {"type": "page", "name": "Home", "messageId": "m-page", "anonymousId": "anon_1"}
    other_track = {"type": "track", "event": "Product Viewed", "properties": {"sku": "PROD_A"}}
    response = relay_env.invoke(sqs_event(json.dumps(page), as_eventbridge_body(other_track)))
    assert failures(response) == []
    assert relay_env.sandbox.received() == []
    assert drain_queue(relay_env.aws, relay_env.resources.dlq_url) == []


def test_a_mixed_batch_reports_exactly_its_retry_records(relay_env: RelayEnv) -> None:
    relay_env.sandbox.script_for("R-503", Reply(status=503))
    relay_env.sandbox.script_for("R-TIMEOUT", Reply(delay=3.0))
    relay_env.sandbox.script_for("R-422", Reply(status=422))
    bodies = [
        as_eventbridge_body(seed_event(order_id="OK-1")),
        as_eventbridge_body(seed_event(order_id="R-503")),
        json.dumps(seed_event(order_id="OK-2")),
        "garbage",
        json.dumps({"type": "identify", "traits": {"email": "x@example.com"}}),
        as_eventbridge_body(seed_event(order_id="R-TIMEOUT")),
        as_eventbridge_body(seed_event(order_id="R-422")),
    ]
    event = sqs_event(*bodies)
    ids = [record["messageId"] for record in event["Records"]]
    response = relay_env.invoke(event)
    assert sorted(failures(response)) == sorted([ids[1], ids[5]])
    assert sorted(relay_env.sandbox.accepted_order_ids()) == ["OK-1", "OK-2"]
    outcomes = sorted(
        m["MessageAttributes"]["outcome"]["StringValue"]
        for m in drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    )
    assert outcomes == ["invalid", "rejected"]


def test_the_three_trigger_shapes_give_the_same_body(relay_env: RelayEnv) -> None:
    event = seed_event()
    relay_env.invoke(sqs_event(as_eventbridge_body(event)))
    relay_env.invoke(sqs_event(json.dumps(event)))
    relay_env.invoke(eventbridge_envelope(event))
    bodies = [request.body for request in relay_env.sandbox.received()]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert json.loads(bodies[0], parse_float=Decimal) == seed_body()


def test_an_eventbridge_direct_retry_raises_so_lambda_retries_it(relay_env: RelayEnv) -> None:
    relay_env.sandbox.script(Reply(status=503))
    with pytest.raises(Exception, match="Refersion answered 503"):
        relay_env.invoke(eventbridge_envelope(seed_event()))


def test_an_eventbridge_direct_invalid_event_is_quarantined_and_returns(relay_env: RelayEnv) -> None:
    envelope = eventbridge_envelope(seed_event(currency="dollars"))
    result = relay_env.invoke(envelope)
    assert result["outcome"] == "invalid"
    [quarantined] = drain_queue(relay_env.aws, relay_env.resources.dlq_url)
    assert json.loads(quarantined["Body"]) == envelope


def test_records_not_started_near_the_timeout_are_retried_and_never_posted(relay_env: RelayEnv) -> None:
    # Given an invocation with less time left than one record may need (2 x 1 s timeout + 2 s)
    event = sqs_event(*(as_eventbridge_body(seed_event(order_id=f"T-{i}")) for i in range(4)))
    response = relay_env.invoke(event, FakeLambdaContext(remaining_ms=3_000))
    # Then every record is reported for retry and none was posted
    assert sorted(failures(response)) == sorted(record["messageId"] for record in event["Records"])
    assert relay_env.sandbox.received() == []


def test_an_unreadable_secret_posts_nothing_and_loses_nothing(relay_env: RelayEnv) -> None:
    relay_env.set(REFERSION_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    event = sqs_event(*(as_eventbridge_body(seed_event(order_id=f"S-{i}")) for i in range(3)))
    response = relay_env.invoke(event)
    assert sorted(failures(response)) == sorted(record["messageId"] for record in event["Records"])
    assert relay_env.sandbox.received() == []


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        ('{"public_key": "pub"}', "secret_key is missing"),
        ("not json", "SecretString is not JSON"),
        ('{"public_key": "pub", "secret_key": "sec\\r\\nX-Evil: 1"}', "not allowed in an HTTP header"),
    ],
    ids=["missing-secret-key", "not-json", "crlf-in-key"],
)
def test_a_malformed_secret_posts_nothing_and_says_why_without_values(
    relay_env: RelayEnv, secret_string: str, problem: str, relay_logs: io.StringIO
) -> None:
    relay_env.aws.client("secretsmanager").put_secret_value(
        SecretId=relay_env.resources.secret_id, SecretString=secret_string
    )
    event = sqs_event(as_eventbridge_body(seed_event()))
    response = relay_env.invoke(event)
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert relay_env.sandbox.received() == []
    logged = relay_logs.getvalue()
    assert "Refersion key pair unavailable" in logged
    assert problem in logged
    assert "X-Evil" not in logged


def test_a_failed_quarantine_sends_the_record_back_instead_of_losing_it(relay_env: RelayEnv) -> None:
    relay_env.set(DEAD_LETTER_QUEUE_URL=f"{relay_env.aws.endpoint_url}/123456789012/no-such-queue")
    event = sqs_event("not json")
    response = relay_env.invoke(event)
    assert failures(response) == [event["Records"][0]["messageId"]]


def test_a_fixed_secret_takes_effect_at_once_without_waiting_for_the_cache(relay_env: RelayEnv) -> None:
    secrets = relay_env.aws.client("secretsmanager")
    secrets.put_secret_value(SecretId=relay_env.resources.secret_id, SecretString='{"public_key": "pub"}')
    assert len(failures(relay_env.invoke(sqs_event(as_eventbridge_body(seed_event()))))) == 1
    put_key_pair(relay_env.aws, relay_env.resources.secret_id, PUBLIC_KEY, SECRET_KEY)
    assert failures(relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))) == []
    assert relay_env.sandbox.accepted_order_ids() == ["20150401102883"]


@pytest.mark.parametrize(
    ("reply", "maybe_received"),
    [
        (Reply(delay=3.0), True),
        (Reply(drop="after"), True),
        (Reply(drop="before"), True),
        (Reply(status=503), None),
    ],
    ids=["timeout", "dropped-after", "dropped-before", "503"],
)
def test_a_retry_that_may_have_reached_refersion_says_so(
    relay_env: RelayEnv, relay_logs: io.StringIO, reply: Reply, maybe_received: bool | None
) -> None:
    # Without an answer the relay cannot know whether Refersion credited the order; the log says so.
    relay_env.sandbox.script(reply)
    relay_env.invoke(sqs_event(as_eventbridge_body(seed_event())))
    [line] = [json.loads(x) for x in relay_logs.getvalue().splitlines() if '"outcome"' in x]
    assert line["outcome"] == "retry"
    assert line.get("maybe_received") is maybe_received
