"""The SnapStart restore hook: registered when the runtime offers it, and it drops live state."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest


def test_the_restore_hook_is_registered_when_the_runtime_offers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # snapshot_restore_py exists only inside Lambda's runtime: a stand-in module is the one way to
    # reach this path here.
    registered: list[Callable[..., Any]] = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    import handler.app
    import handler.wiring

    reloaded = importlib.reload(handler.app)
    assert reloaded.SNAPSTART_HOOK_REGISTERED is True
    # (the first import may already have registered it; each registration is the same hook)
    assert registered
    assert all(hook is handler.wiring.forget_relay for hook in registered)


def test_without_the_runtime_module_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # makes the import fail
    import handler.app

    assert importlib.reload(handler.app).SNAPSTART_HOOK_REGISTERED is False


def test_forgetting_the_relay_closes_what_lives_across_invocations(monkeypatch: pytest.MonkeyPatch) -> None:
    import handler.wiring as wiring

    closed: list[str] = []

    class Components:
        relay = object()

        def close(self) -> None:
            closed.append("closed")

    monkeypatch.setattr(wiring, "_components", Components())
    wiring.forget_relay()
    assert closed == ["closed"]
    assert wiring._components is None
