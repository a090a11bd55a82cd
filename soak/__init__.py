"""Fault-injection soak on the local topology: ``python -m soak`` (what ``make soak`` runs).

Publishes N valid Datafly "Order Completed" events, ~5 % invalid ones, ~10 % of the valid ones again
later as duplicates (same order id and body, a new EventBridge event) and a few events that are not
orders, on the local order events bus (local/stack.py: bus -> rule -> queue -> Lambda-like poller
-> relay -> Refersion sandbox, DLQ and idempotency table). The sandbox answers with a seeded mix of
500, 503, 429 (Retry-After), timeouts, connections dropped before or after processing, and slow
answers. At least one batch is run in a subprocess instead, and SIGKILLed mid-batch while some of its
posts are answered and others are held by the sandbox.

Once the queue is drained it accounts for every order: sent, delivered, quarantined (with reasons),
duplicates received by the sandbox (each explained by its cause), lost, and the requests in flight when
an invocation was killed, then prints a table and PASS/FAIL lines. Exit status 1 when a guarantee fails.

What a duplicate at the sandbox can come from. Refersion documents no de-duplication, so an order is
credited twice exactly when it processed a post the relay got no answer for: the connection dropped
after processing (``drop_after``), an answer later than the relay's timeout (``timeout``: processed all
the same), or a post in flight when its invocation was killed. These are one and the same window (the
request reached Refersion, no answer came back); no sender can close it without the receiver's help.
The relay logs each such retry with ``maybe_received: true``. Every other fault (5xx, 429, dropped
before processing, slow but answered) must cause no duplicate at all.

Determinism: the events, their publishing order and the sequence of faults drawn follow from the seed.
Which post meets which fault does not quite: the ten posts of a batch go out concurrently, so the
figures differ a little from run to run, while every guarantee holds for each.

AWS-fault phases (``python -m soak --aws-faults``, after the soak above in ``make soak``): the same plan,
with the relay's calls to Secrets Manager, then DynamoDB, then SQS, then all three answered by a fault
proxy (local/aws_faults.py) with throttles, 5xx, slow answers and dropped connections, some after the call
took effect; see soak/aws_phases.py for what each can do to an order and how it is accounted for.

Refund run (``python -m soak --refunds``, issue 11; soak/refunds.py): the same soak with EnableRefunds=true,
full, partial, re-published and early refunds, and a 503 outage during which refunds wait for their orders;
its table adds refunds applied once, lost, over-cancelled and the net quantity per order at the sandbox.
Confirmations runs (``--confirmations``, issue 12; soak/confirmations.py): the same plan with
EnableConfirmations=true, then off; with it on, every duplicate must be of an order whose webhook came later
than the relay's wait or that no webhook covers. ``python -m soak`` with none of ``--plain``, ``--refunds``,
``--confirmations`` runs all three (soak/extra_runs.py; soak/extras.py: what such a run adds).

``run_soak()`` is the whole soak as a function (tests/e2e/test_soak.py runs a small one); ``main()`` is
the command line (soak/__main__.py): ``--orders``, ``--seed``, ``--kills``, ``--timeout``.

Modules, in the order a soak goes: ``settings`` (sizes, fault mix, overrides, kill timing), ``plan``
(the events to publish), ``run`` (publishing, polling, ``run_soak``), ``kills`` (the SIGKILLed batch),
``lines`` (reading the relay's outcome lines), ``accounting`` (every order accounted for), ``result``
(the figures and the guarantees checked on them), ``report`` (the printout), ``aws_phases`` (the
AWS-fault phases' rules and what the proxy saw, by order).
"""

from soak.result import SoakResult
from soak.run import SoakTimeout, run_soak
from soak.settings import DEFAULT_KILLS, DEFAULT_ORDERS, DEFAULT_SEED, FAULT_WEIGHTS

__all__ = [
    "DEFAULT_KILLS",
    "DEFAULT_ORDERS",
    "DEFAULT_SEED",
    "FAULT_WEIGHTS",
    "SoakResult",
    "SoakTimeout",
    "run_soak",
]
