"""Retry pacing on SQS (handler.pacing): each retry hidden for its delay, ten entries per SQS call."""

from __future__ import annotations

import io

from botocore.exceptions import EndpointConnectionError

from handler.outcomes import Outcome, RecordResult
from handler.pacing import SqsVisibilityPacer
from handler.triggers import InboundRecord
from tests.support.fakes import RecordingSqsClient

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"


def pacer(client: RecordingSqsClient) -> SqsVisibilityPacer:
    return SqsVisibilityPacer(client, QUEUE_URL, base_seconds=30, max_seconds=3600)  # type: ignore[arg-type]


def retry(
    n: int, *, receive_count: int = 1, started: bool = True, retry_after: float | None = None
) -> tuple[InboundRecord, RecordResult]:
    inbound = InboundRecord(f"m-{n}", "{}", receipt_handle=f"rh-{n}", receive_count=receive_count)
    result = RecordResult(f"m-{n}", Outcome.RETRY, started=started, retry_after_seconds=retry_after)
    return inbound, result


class TestDelay:
    def test_a_retry_is_hidden_longer_each_time_it_comes_back(self) -> None:
        paced = pacer(RecordingSqsClient())
        assert [paced.delay_for(*retry(1, receive_count=n)) for n in (1, 2, 3)] == [30, 120, 480]

    def test_a_record_never_started_waits_only_the_base_delay(self) -> None:
        assert pacer(RecordingSqsClient()).delay_for(*retry(1, receive_count=4, started=False)) == 30

    def test_refersion_s_longer_retry_after_wins(self) -> None:
        assert pacer(RecordingSqsClient()).delay_for(*retry(1, retry_after=200)) == 200

    def test_a_waiting_record_comes_back_once_its_wait_may_be_over(self) -> None:
        # Given a record waiting 600 s (e.g. for Refersion's confirmation) on its first receive
        inbound = InboundRecord("m-1", "{}", receipt_handle="rh-1", receive_count=1)
        waiting = RecordResult("m-1", Outcome.WAITING, wait_seconds=600)
        # Then it is held until then, not for the first retry's 30 s; a short wait keeps the schedule
        assert pacer(RecordingSqsClient()).delay_for(inbound, waiting) == 600
        short = RecordResult("m-1", Outcome.WAITING, wait_seconds=5)
        assert pacer(RecordingSqsClient()).delay_for(inbound, short) == 30


class TestBatching:
    def test_retries_are_paced_ten_per_call_each_with_its_own_delay(self) -> None:
        # Given 23 retries, the last of which came back for the third time
        client = RecordingSqsClient()
        retries = [retry(n) for n in range(22)] + [retry(22, receive_count=3)]
        # When they are paced
        pacer(client).pace(retries)
        # Then SQS gets three calls of 10, 10 and 3 entries, every receipt handle once, with its delay
        assert [len(call["Entries"]) for call in client.calls] == [10, 10, 3]
        assert all(call["QueueUrl"] == QUEUE_URL for call in client.calls)
        entries = [entry for call in client.calls for entry in call["Entries"]]
        assert [entry["ReceiptHandle"] for entry in entries] == [f"rh-{n}" for n in range(23)]
        assert [entry["VisibilityTimeout"] for entry in entries] == [30] * 22 + [480]
        for call in client.calls:
            ids = [entry["Id"] for entry in call["Entries"]]
            assert len(set(ids)) == len(ids)

    def test_nothing_to_pace_makes_no_call(self) -> None:
        client = RecordingSqsClient()
        pacer(client).pace([])
        assert client.calls == []

    def test_a_record_without_receipt_handle_is_left_to_the_queue_s_own_timeout(self) -> None:
        client = RecordingSqsClient()
        inbound, result = retry(1)
        pacer(client).pace([(InboundRecord("m-x", "{}"), result), (inbound, result)])
        [call] = client.calls
        assert [entry["ReceiptHandle"] for entry in call["Entries"]] == ["rh-1"]


class TestFailures:
    def test_sqs_unreachable_is_logged_and_the_records_still_come_back(self, relay_logs: io.StringIO) -> None:
        client = RecordingSqsClient()
        client.error = EndpointConnectionError(endpoint_url=QUEUE_URL)
        pacer(client).pace([retry(1)])  # does not raise: the partial-batch response still holds
        assert "could not pace retries" in relay_logs.getvalue()

    def test_entries_sqs_refuses_are_counted_in_a_warning(self, relay_logs: io.StringIO) -> None:
        client = RecordingSqsClient()
        client.failed_ids = {"0", "1"}
        pacer(client).pace([retry(n) for n in range(3)])
        assert '"failed":2' in relay_logs.getvalue().replace(" ", "")
