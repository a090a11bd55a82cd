"""How long one record may take, and whether an invocation has that long (CONTRACT §6).

A record starts only while the invocation has its whole budget left, so that nothing is lost to a
Lambda timeout. The budget is the worst case of everything one record does, in sequence:

    budget = 2 x REFERSION_TIMEOUT_SECONDS          a post (an order's, or a refund's one cancel call), and
                                                    the post again after a 401/403 key refresh
           + 12 x AWS_CALL_SECONDS (2 s)            11 AWS calls of the record:
                                                      2 Secrets Manager (read, refresh after 401/403)
                                                      2 DynamoDB Powertools idempotency (lock, done/forget)
                                                      6 DynamoDB order state (CONTRACT §11): seen (a read),
                                                        post-began mark before each of the 2 posts, the
                                                        write after the post, a confirmation look-up
                                                        (CONTRACT §10), a remembered rejection
                                                      1 SQS quarantine
                                                    + 1 SQS call that paces the batch's retries once the
                                                    records are done
           + SLACK_SECONDS (2 s)                    mapping, logging, thread hand-offs
           = 2 x REFERSION_TIMEOUT_SECONDS + 26 s   (46 s with the template's 10 s)

A refund (CONTRACT §9) makes no more calls than that: one cancel call, the same secret reads and
quarantine, and order-state reads and writes within the same count. A record that needs more must
raise AWS_CALLS_PER_RECORD (template.yaml's FunctionTimeout MinValue follows, tests/unit/test_template.py).

An AWS call is bounded by botocore's settings (handler.wiring): one attempt, connect <= 1 s, each
read <= 1 s. No SDK retries: a failed call makes the record's outcome retry (or, after a delivery,
is logged), and SQS brings the record back, paced; retries inside the call would multiply its bound.

The function's timeout must be at least the budget plus STARTUP_MARGIN_SECONDS (building the relay at
a cold start, reading the batch): template.yaml's FunctionTimeout MinValue follows from this.
"""

from __future__ import annotations

import math

from handler.observability import logger

AWS_CONNECT_TIMEOUT_SECONDS = 1
AWS_READ_TIMEOUT_SECONDS = 1
AWS_MAX_ATTEMPTS = 1
AWS_CALL_SECONDS = AWS_MAX_ATTEMPTS * (AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS)
AWS_CALLS_PER_RECORD = 11
AWS_CALLS_AFTER_THE_RECORDS = 1
POSTS_PER_RECORD = 2
SLACK_SECONDS = 2.0
STARTUP_MARGIN_SECONDS = 5
LAMBDA_MAX_TIMEOUT_SECONDS = 900


# Everything of the budget but the posts: the AWS calls and the slack (26 s).
FIXED_SECONDS = (AWS_CALLS_PER_RECORD + AWS_CALLS_AFTER_THE_RECORDS) * AWS_CALL_SECONDS + SLACK_SECONDS
FORMULA = f"{POSTS_PER_RECORD} x REFERSION_TIMEOUT_SECONDS + {FIXED_SECONDS:g} s"


def record_budget_seconds(refersion_timeout_seconds: float) -> float:
    """The longest one record can take (the sum in the module docstring)."""
    return POSTS_PER_RECORD * refersion_timeout_seconds + FIXED_SECONDS


def minimum_function_timeout_seconds(refersion_timeout_seconds: float) -> int:
    """The shortest function timeout under which a record can still start."""
    return math.ceil(record_budget_seconds(refersion_timeout_seconds) + STARTUP_MARGIN_SECONDS)


def budget_fits_invocation(remaining_ms: float, budget_seconds: float) -> bool:
    """False, with one error log, when not even the first record could start in this invocation.

    Called once per invocation (not per record): every record of it will be reported for retry
    without being started, and only a configuration change can help.
    """
    if remaining_ms >= budget_seconds * 1000:
        return True
    logger.error(
        "the function timeout is shorter than one record's time budget: no record can start",
        extra={
            "remaining_ms": int(remaining_ms),
            "record_budget_seconds": budget_seconds,
            "fix": "raise the function timeout (template parameter FunctionTimeout) to at least "
            f"{math.ceil(budget_seconds + STARTUP_MARGIN_SECONDS)} s, or lower "
            f"REFERSION_TIMEOUT_SECONDS (budget = {FORMULA})",
        },
    )
    return False
