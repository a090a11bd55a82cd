"""The relay's Lambda environment pointed at the local parts (moto server, Refersion sandbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from local.aws import LocalAws, RelayResources
from local.lambda_shapes import FakeLambdaContext
from local.sandbox import RefersionSandbox


@dataclass
class RelayEnv:
    """The relay configured against the local parts; `invoke` calls the real Lambda entry point."""

    aws: LocalAws
    resources: RelayResources
    sandbox: RefersionSandbox
    monkeypatch: pytest.MonkeyPatch

    def set(self, **variables: str | None) -> None:
        """Change the function's environment, as a redeploy would (the relay is rebuilt)."""
        from handler.wiring import forget_relay

        for name, value in variables.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        forget_relay()

    def invoke(self, event: dict[str, Any], context: FakeLambdaContext | None = None) -> Any:
        from handler.app import lambda_handler

        return lambda_handler(event, context or FakeLambdaContext())
