"""The real handler run once in a process of its own, so that a test can kill it mid-post (SIGKILL)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SCRIPT = (
    "import json, sys\n"
    "from handler.app import lambda_handler\n"
    "from local.lambda_shapes import FakeLambdaContext\n"
    "lambda_handler(json.loads(sys.argv[1]), FakeLambdaContext(remaining_ms=float(sys.argv[2])))\n"
)


def start_invocation_in_subprocess(event: dict[str, Any], remaining_ms: float) -> subprocess.Popen[bytes]:
    """Start one invocation on `event` with `remaining_ms` of Lambda time; the function's environment is
    the test process's (the relay_env fixture sets it), and the editable install makes the code importable."""
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, json.dumps(event), str(remaining_ms)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
