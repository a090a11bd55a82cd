"""The soak's AWS-fault phases (issue 13; `make soak` runs them at 100 orders each), small."""

from __future__ import annotations

import pytest

from soak import DEFAULT_SEED, run_soak
from soak.aws_phases import AWS_PHASES, AwsPhase
from soak.settings import DONE_MARK

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ORDERS = 30


# make test runs the phase that faults all three services at once; `make soak` runs each one in turn too
# (100 orders each), and tests/integration/test_aws_faults.py covers every service and fault on its own.
SUITE_PHASES = [phase for phase in AWS_PHASES if len(phase.services) == 3]


@pytest.mark.parametrize("phase", SUITE_PHASES, ids=[phase.name for phase in SUITE_PHASES])
def test_with_aws_faults_nothing_is_lost_and_every_duplicate_has_its_cause(phase: AwsPhase) -> None:
    # Given the soak's plan on the local stack, the sandbox's fault mix, and the relay's AWS calls to
    # this phase's services answered with throttles, 5xx, slow answers and dropped connections
    result = run_soak(orders=ORDERS, seed=DEFAULT_SEED, kills=0, timeout=150, aws_phase=phase)
    summary = "\n".join(result.failures())
    assert result.aws is not None

    # Then every service of the phase met faults, and the queue was drained
    faulted = {service for service, _, _ in result.aws.faults}
    assert faulted == set(phase.services)
    assert result.problems == [], result.problems
    assert result.invocation_errors == []
    # ... no order was lost, every valid one was credited, every invalid one quarantined, never posted
    assert result.lost == []
    assert (result.delivered, result.undelivered) == (ORDERS, [])
    assert result.invalid_not_quarantined == []
    assert result.invalid_posted == []
    assert result.redriven_unexplained == []
    # ... every duplicate is a post processed without an answer, or follows a done mark never written
    assert result.duplicates_unambiguous == 0
    assert result.duplicates_by_cause[DONE_MARK] <= result.done_marks_not_written
    assert result.quarantine_copies_unexplained == []
    assert result.left_behind == []
    assert result.passed, summary
